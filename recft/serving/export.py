"""export(): a self-contained serving bundle (item embeddings, faiss index, exported user tower)."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import platform
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from recft._version import __version__
from recft.errors import CheckpointError
from recft.io import atomic_directory

if TYPE_CHECKING:
    from torch import nn

    from recft.serving.history import HistoryLike
    from recft.serving.recommender import Recommender

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
FILES = {
    "user_tower": "user_tower.pt2",
    "index": "index.faiss",
    "item_embeddings": "item_embeddings.npy",
    "items_table": "items.parquet",
    "items": "items.json",
    "users": "users.json",
}
USAGE = """\
import json, faiss, numpy as np, torch
users = json.load(open("users.json"))["ids"]; items = json.load(open("items.json"))["ids"]
user_row = {u: r for r, u in enumerate(users)}; item_row = {i: r for r, i in enumerate(items)}
tower = torch.export.load("user_tower.pt2").module(); index = faiss.read_index("index.faiss")
history = torch.tensor([[item_row[i] for i in ITEMS_OLDEST_FIRST]])
emb = tower(torch.tensor([user_row.get(USER, -1)]), history, torch.tensor([history.shape[1]]))
scores, rows = index.search(emb.numpy(), 10)      # scores * (1 / temperature) = model scores
top_items = [items[r] for r in rows[0]]"""


def export(model_or_dir: nn.Module | Recommender | str | Path, out: str | Path,
           index: str = "auto", *, nlist: int | None = None, nprobe: int | None = None,
           history: HistoryLike | None = None, num_queries: int = 1000,
           seed: int = 0) -> Path:
    """Write a serving bundle that runs with torch and faiss only (no recft, no torchrec).

    The bundle (written atomically) holds ``user_tower.pt2`` (``torch.export``: user rows,
    padded history rows and lengths -> user embeddings; see ``manifest.json`` for the call),
    ``index.faiss`` (inner product over item embeddings: ``IndexFlatIP`` or
    ``IndexIVFFlat``), ``item_embeddings.npy`` (I, D) float32, ``items.parquet`` (item_id,
    row, embedding), ``items.json`` / ``users.json`` (raw ids in row order) and
    ``manifest.json`` (versions, dims, normalisation, temperature, index recall, sha256 of
    every file). For an IVF index, recall@10/@100 against exact search is measured on up
    to ``num_queries`` real users (those with a history when one is known, else users
    by id) and recorded.

    Args:
        model_or_dir: a checkpoint directory, a (fine-tuned) TwoTower, or a Recommender
            (whose history is used for the recall queries).
        out: the bundle directory (replaced if it exists).
        index: ``"exact"``, ``"ivf"`` or ``"auto"`` (IVF above 50,000 items).
        nlist, nprobe: IVF lists and lists probed per query (defaults: about 4 sqrt(I)
            and nlist / 8).
        history: users' histories for the recall queries (overrides a Recommender's).
        num_queries: users sampled for the recall measurement.
        seed: seed of the user sample and of IVF training.

    Returns:
        ``out``.

    Raises:
        CheckpointError: a weight or an item embedding is NaN or inf (the message names the
            tensor or the items); nothing is written.

    Example::

        export("runs/base", "serving/base", index="auto", history=train)
    """
    import torch

    from recft.models.checkpoint_checks import check_finite
    from recft.serving.index import build_index, recall_at_k, resolve_kind
    from recft.serving.user_tower import INPUTS, OUTPUT, export_user_tower

    rec = _recommender(model_or_dir, history)
    model, config = rec.model, rec.model.config
    # a checkpoint directory was checked when loaded; a model in memory is checked here
    check_finite(f"cannot export {type(model).__name__}", model.state_dict())
    _, item_embeddings = rec.embed_items()
    item_embeddings = np.ascontiguousarray(item_embeddings, dtype=np.float32)
    _check_finite_rows(item_embeddings, rec.item_vocab.ids)
    kind = resolve_kind(index, len(item_embeddings))
    faiss_index, index_info = build_index(item_embeddings, kind, nlist, nprobe, seed)
    query_users, query_source = _query_users(rec, num_queries, seed)
    _, queries = rec.embed_users(query_users)
    index_info.update(recall_at_k(faiss_index, item_embeddings, queries),
                      recall_queries=len(query_users), query_source=query_source)
    tower = export_user_tower(model)

    out = Path(out)
    with atomic_directory(out) as staging:
        import faiss

        # the staging folder is private (mkdtemp); a bundle is meant to be shipped and read
        staging.chmod(0o777 & ~_umask())
        torch.export.save(tower, staging / FILES["user_tower"])
        faiss.write_index(faiss_index, str(staging / FILES["index"]))
        np.save(staging / FILES["item_embeddings"], item_embeddings, allow_pickle=False)
        _write_items_table(staging / FILES["items_table"], rec.item_vocab.ids, item_embeddings)
        for key, vocab in (("items", rec.item_vocab), ("users", rec.user_vocab)):
            _write_json(staging / FILES[key], vocab.to_dict())
        manifest = {
            "format": "recft-serving-bundle",
            "format_version": FORMAT_VERSION,
            "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "versions": _versions(),
            "source": _source(rec, model),
            "model": {
                "num_users": len(rec.user_vocab), "num_items": len(rec.item_vocab),
                "dim": int(item_embeddings.shape[1]), "normalized": bool(config.normalize),
                "temperature": float(config.temperature), "use_history": config.use_history,
                "max_history": int(config.max_history),
                "user_features": list(config.user_feature_sizes),
                "item_features": list(config.item_feature_sizes),
                # items read as text (recft.models.text_path); added: served from text only
                "item_text": getattr(config, "item_text", "none"),
                "text_encoder": getattr(config, "text_encoder", None),
                "items_added_from_text": len(getattr(rec, "added_items", {})),
            },
            "score": "user_embedding @ item_embedding / temperature (the index ranks by the "
                     "inner product, which orders items the same way)",
            "ids": {"users": FILES["users"], "items": FILES["items"],
                    "row": "an id's position in its list is its row"},
            "user_tower": {"file": FILES["user_tower"], "format": "torch.export",
                           "load": "torch.export.load(path).module()",
                           "call": "tower(user_rows, history, lengths)", "inputs": INPUTS,
                           "output": OUTPUT},
            "index": {"file": FILES["index"], "load": "faiss.read_index(path)", **index_info},
            "item_embeddings": {"file": FILES["item_embeddings"], "dtype": "float32",
                                "shape": list(item_embeddings.shape), "rows": "item rows"},
            "usage": USAGE,
            "files": {name: _file_record(staging / name) for name in sorted(FILES.values())},
        }
        _write_json(staging / MANIFEST, manifest)
    return out


def _recommender(source: Any, history: HistoryLike | None) -> Recommender:
    from recft.serving.recommender import Recommender

    if isinstance(source, Recommender):
        if history is None:
            return source
        rec = Recommender(source.model, history)
        rec.checkpoint = source.checkpoint
        return rec
    if isinstance(source, (str, Path)):
        return Recommender.from_pretrained(source, history=history)
    return Recommender(source, history)


def _check_finite_rows(item_embeddings: np.ndarray, item_ids: np.ndarray) -> None:
    bad = np.flatnonzero(~np.isfinite(item_embeddings).all(axis=1))
    if len(bad):
        raise CheckpointError(
            f"cannot export: the item tower gives NaN/inf embeddings for {len(bad)} of "
            f"{len(item_embeddings)} items (first ids: {item_ids[bad[:5]].tolist()}) although "
            "the weights are finite; the model is numerically broken"
        )


def _query_users(rec: Recommender, limit: int, seed: int) -> tuple[np.ndarray, str]:
    rng = np.random.default_rng(seed)
    if rec.history is not None and rec.history.num_users:
        pool, source = rec.history.users.ids, "users with a history (id + history)"
    else:
        pool, source = rec.user_vocab.ids, "users of the vocabulary (id only, no history)"
    if len(pool) > limit:
        pool = pool[np.sort(rng.choice(len(pool), size=limit, replace=False))]
    return pool, source


def _write_items_table(path: Path, ids: np.ndarray, embeddings: np.ndarray) -> None:
    """items.parquet: item_id, row, embedding (a fixed-size float32 list per item)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    flat = pa.array(embeddings.reshape(-1), type=pa.float32())
    item_ids = pa.array(ids.tolist(), type=pa.int64() if ids.dtype.kind in "iu" else pa.string())
    pq.write_table(pa.table({
        "item_id": item_ids,
        "row": pa.array(np.arange(len(ids), dtype=np.int64)),
        "embedding": pa.FixedSizeListArray.from_arrays(flat, embeddings.shape[1]),
    }), path)


def _source(rec: Recommender, model: Any) -> dict[str, Any]:
    checkpoint = rec.checkpoint
    checksums = None if checkpoint is None else checkpoint / "checksums.json"
    return {
        "checkpoint": None if checkpoint is None else str(checkpoint),
        "checkpoint_checksums_sha256": hashlib.sha256(checksums.read_bytes()).hexdigest()
        if checksums is not None and checksums.is_file() else None,
        "model_type": getattr(model, "model_type", type(model).__name__),
    }


def _versions() -> dict[str, str]:
    import faiss
    import torch

    return {"recft": __version__, "torch": torch.__version__, "faiss": faiss.__version__,
            "numpy": np.__version__, "python": platform.python_version()}


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _file_record(path: Path) -> dict[str, Any]:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return {"sha256": digest.hexdigest(), "bytes": path.stat().st_size}


def _write_json(path: Path, value: Any) -> None:
    path.write_text(json.dumps(value, indent=1, sort_keys=False) + "\n", encoding="utf-8")
