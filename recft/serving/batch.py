"""Batch recommendation jobs: chunked, bounded-memory, atomic, and resumable after a kill."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from recft._version import __version__
from recft.errors import DataError
from recft.io import atomic_write_bytes, atomic_write_text
from recft.serving.history import HistoryLike
from recft.serving.rank_chunks import chunks_of_rank, finished_chunks, on_main
from recft.serving.ids import ItemFilter
from recft.serving.recommender import BLOCK_BYTES, Recommender

MANIFEST = "manifest.json"
STATE_SUFFIX = ".parts"  # recs.parquet -> recs.parquet.parts/


@dataclass
class BatchJob:
    """Top-k lists for many users, written to one Parquet file, one chunk of users at a time.

    Peak memory is one (chunk_size x catalog) score block plus one chunk's lists, never
    users x items. Each finished chunk is written as a part file in ``<out>.parts/`` and
    recorded in its ``manifest.json`` with a fingerprint of the inputs (model, users,
    histories, k, chunk size, filters); a rerun after a crash or a kill skips recorded
    chunks, so every user appears exactly once. When all chunks are done the parts are
    streamed into ``out`` (a temporary file, then one rename) and the state is removed.

    Example::

        job = BatchJob(Recommender.from_pretrained("runs/base"), users, "recs.parquet", k=100)
        job.run()          # rerun the same line after an interruption to resume
    """

    recommender: Recommender
    users: Iterable[Any]
    out: str | Path
    k: int = 100
    chunk_size: int | None = None  # default: a score block near 128 MB
    histories: HistoryLike | None = None
    exclude_seen: bool = True
    filter_items: ItemFilter | None = None
    progress: bool = True
    on_chunk: Callable[[int], None] | None = field(default=None, repr=False)
    distributed: Any = None  # a recft.train.distributed.Distributed: chunks split over ranks

    def __post_init__(self) -> None:
        self.out = Path(self.out)
        if int(self.k) < 1:
            raise DataError(f"k must be >= 1, got {self.k}")
        if self.chunk_size is not None and int(self.chunk_size) < 1:
            raise DataError(f"chunk_size must be >= 1, got {self.chunk_size}")

    @property
    def state_dir(self) -> Path:
        return self.out.with_name(self.out.name + STATE_SUFFIX)

    def run(self, restart: bool = False) -> Path:
        """Compute the missing chunks and write ``out``; ``restart`` discards earlier state.

        Sharded (``distributed`` set, every rank running the same job): the ranks share
        the missing chunks, each writing its parts, and rank 0 alone keeps the manifest
        and assembles ``out``: the file one process writes, resumable with any number of
        processes (``recft.serving.rank_chunks``).

        Raises:
            DataError: earlier state exists for different inputs (rerun with restart).
        """
        rec, context = self.recommender, self.distributed
        request = rec.prepare(self.histories, self.filter_items)
        users = rec.user_ids(self.users, request)
        size = int(self.chunk_size or max(1, BLOCK_BYTES // (4 * len(rec.item_vocab))))
        num_chunks = -(-len(users) // size)
        fingerprint = self._fingerprint(users, request, size)
        manifest = on_main(context, lambda: self._load_state(fingerprint, restart, num_chunks))
        schema = _schema(users, rec.item_vocab.ids)
        done = set(manifest["completed"])
        fallbacks = 0
        main = context is None or context.is_main
        bar = _progress(num_chunks, len(done), self.progress and main)
        try:
            for index in chunks_of_rank([i for i in range(num_chunks) if i not in done],
                                        context):
                if index is not None:
                    chunk = users[index * size:(index + 1) * size]
                    frame, fallback = rec.recommend_chunk(chunk, request, self.k,
                                                          self.exclude_seen)
                    fallbacks += fallback
                    table = pa.Table.from_pandas(frame, schema=schema, preserve_index=False)
                    _write_parquet(table, self.state_dir / _part_name(index))
                # the parts are durable before the manifest names them: a kill in between
                # only recomputes them
                finished = finished_chunks(index, context)
                done.update(finished)
                manifest["completed"] = sorted(done)
                on_main(context, lambda: atomic_write_text(self.state_dir / MANIFEST,
                                                           json.dumps(manifest, indent=1)))
                bar.update(len(finished))
                if self.on_chunk is not None and index is not None:
                    self.on_chunk(index)
        finally:
            bar.close()
        if context is not None:
            fallbacks = int(context.sum([fallbacks])[0])
        if main:
            rec.warn_fallback(fallbacks, request)
        on_main(context, lambda: self._finish(num_chunks, schema))
        return self.out

    def _finish(self, num_chunks: int, schema: pa.Schema) -> None:
        self._concatenate(num_chunks, schema)
        shutil.rmtree(self.state_dir)

    # ------------------------------------------------------------------ state
    def _fingerprint(self, users: np.ndarray, request: Any, size: int) -> dict[str, Any]:
        rec = self.recommender
        return {
            "model": model_fingerprint(rec),
            "users": _digest([_id_bytes(users)]),
            "num_users": int(len(users)),
            "histories": None if request.histories is None
            else _digest(request.histories.fingerprint_arrays()),
            "k": int(self.k),
            "chunk_size": size,
            "exclude_seen": bool(self.exclude_seen),
            "filter_items": None if request.allowed is None else _digest([request.allowed]),
        }

    def _load_state(self, fingerprint: dict[str, Any], restart: bool,
                    num_chunks: int) -> dict[str, Any]:
        state, path = self.state_dir, self.state_dir / MANIFEST
        if restart and state.exists():
            shutil.rmtree(state)
        if path.is_file():
            try:
                manifest = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError) as error:
                raise DataError(f"unreadable job state ({error})", path=path,
                                hint="rerun with --restart (restart=True) to start over") from None
            if manifest.get("fingerprint") != fingerprint:
                old = manifest.get("fingerprint") or {}
                differ = sorted(key for key in fingerprint if old.get(key) != fingerprint[key])
                raise DataError(
                    f"{state} holds a partial job started with different inputs "
                    f"(differs in: {', '.join(differ) or 'format'}); finish it with the same "
                    "inputs, or discard it", path=self.out,
                    hint="rerun with --restart (restart=True) to discard the partial job")
            return manifest
        state.mkdir(parents=True, exist_ok=True)
        manifest = {"fingerprint": fingerprint, "num_chunks": num_chunks, "completed": [],
                    "recft_version": __version__}
        atomic_write_text(path, json.dumps(manifest, indent=1))
        return manifest

    def _concatenate(self, num_chunks: int, schema: pa.Schema) -> None:
        # streamed part by part into a temporary file: memory stays one part, and the
        # rename makes the output appear whole or not at all
        self.out.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.out.with_name(f".{self.out.name}.{os.getpid()}.tmp")
        try:
            with pq.ParquetWriter(temporary, schema) as writer:
                for index in range(num_chunks):
                    writer.write_table(pq.read_table(self.state_dir / _part_name(index),
                                                     schema=schema))
            os.replace(temporary, self.out)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise


def recommend_batch(recommender: Recommender, users: Iterable[Any] | str | Path,
                    out: str | Path, k: int = 100, chunk_size: int | None = None,
                    histories: HistoryLike | None = None, *, exclude_seen: bool = True,
                    filter_items: ItemFilter | None = None, restart: bool = False,
                    progress: bool = True, on_chunk: Callable[[int], None] | None = None,
                    distributed: Any = None) -> Path:
    """Write top-``k`` lists of ``users`` to the Parquet file ``out``; resumable (see BatchJob).

    Args:
        recommender: what to serve.
        users: raw user ids, or a CSV/Parquet file of them (see ``read_users``).
        out: the output Parquet file (columns user, rank, item, score).
        k: list length.
        chunk_size: users per chunk (part file); default keeps scores near 128 MB.
        histories: per-job histories (replace the Recommender's for the users they cover).
        exclude_seen, filter_items: as in ``Recommender.recommend``.
        restart: discard the state of an earlier, unfinished job for ``out``.
        progress: show a tqdm bar over chunks.
        on_chunk: called with each chunk's index once it is durably recorded.
        distributed: a ``recft.train.distributed.Distributed``: the chunks are split over
            the ranks (every rank calls this with the same arguments; ``out`` must be on a
            file system every rank sees), and the output is the one a single process writes.

    Returns:
        ``out``.

    Example::

        recommend_batch(rec, "users.csv", "recs.parquet", k=100, chunk_size=2048)
    """
    if isinstance(users, (str, Path)):
        users = read_users(users)
    job = BatchJob(recommender, users, out, k=k, chunk_size=chunk_size, histories=histories,
                   exclude_seen=exclude_seen, filter_items=filter_items, progress=progress,
                   on_chunk=on_chunk, distributed=distributed)
    return job.run(restart=restart)


def read_users(path: str | Path, column: str | None = None, label: str = "user") -> np.ndarray:
    """Raw ids from a CSV/TSV/Parquet file: ``column``, else ``<label>_id``, ``<label>``, or
    the only column. CSV ids are read as text (``"007"`` stays itself) and cast later to
    the model's id type.

    Example::

        users = read_users("users.csv")                  # the user_id column
        allowed = read_users("catalog.csv", label="item")
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{label}s file not found", path=path)
    if path.suffix == ".parquet":
        frame = pd.read_parquet(path)
    elif path.suffix in (".csv", ".tsv", ".txt"):
        frame = pd.read_csv(path, sep="\t" if path.suffix == ".tsv" else ",", dtype=str,
                            keep_default_na=False, skip_blank_lines=False)
    else:
        raise DataError(f"{label}s file must be .csv, .tsv, .txt or .parquet", path=path)
    names = [column] if column else [c for c in (f"{label}_id", label) if c in frame.columns]
    if not names and len(frame.columns) == 1:
        names = [frame.columns[0]]
    if not names or names[0] not in frame.columns:
        raise DataError(f"no {label} column (looked for {column or f'{label}_id, {label}'}; "
                        f"found {list(frame.columns)})", path=path)
    values = frame[names[0]]
    blank = values.isna() | (values.astype(str).str.strip() == "")
    if blank.any():
        line = int(np.flatnonzero(blank.to_numpy())[0]) + 2
        raise DataError(f"empty {label} id", path=path, line=line)
    return values.to_numpy()


def model_fingerprint(recommender: Recommender) -> str:
    """sha256 of what the model's outputs depend on: the checkpoint's checksum record (or
    the weights themselves) and the Recommender's stored history."""
    parts: list[np.ndarray] = []
    checkpoint = recommender.checkpoint
    checksums = None if checkpoint is None else checkpoint / "checksums.json"
    if checksums is not None and checksums.is_file():
        parts.append(np.frombuffer(checksums.read_bytes(), dtype=np.uint8))
    else:
        for name, tensor in sorted(recommender.model.state_dict().items()):
            parts += [np.frombuffer(name.encode(), dtype=np.uint8),
                      tensor.detach().cpu().contiguous().numpy()]
    if recommender.history is not None:
        parts += recommender.history.fingerprint_arrays()
    if recommender.added_items:  # items served from their text change every list
        parts.append(np.frombuffer(repr(list(recommender.added_items.items())).encode(),
                                   dtype=np.uint8))
    return _digest(parts)


def _digest(arrays: list[np.ndarray]) -> str:
    digest = hashlib.sha256()
    for array in arrays:
        array = np.ascontiguousarray(array)
        digest.update(str((array.dtype.str, array.shape)).encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def _id_bytes(ids: np.ndarray) -> np.ndarray:
    if ids.dtype.kind in "iu":
        return ids.astype(np.int64)
    return np.frombuffer("\x1f".join(map(str, ids.tolist())).encode(), dtype=np.uint8)


def _schema(users: np.ndarray, items: np.ndarray) -> pa.Schema:
    def kind(ids: np.ndarray) -> pa.DataType:
        return pa.int64() if ids.dtype.kind in "iu" else pa.string()

    return pa.schema([("user", kind(users)), ("rank", pa.int64()), ("item", kind(items)),
                      ("score", pa.float32())])


def _part_name(index: int) -> str:
    return f"part-{index:06d}.parquet"


def _write_parquet(table: pa.Table, path: Path) -> None:
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    atomic_write_bytes(path, sink.getvalue().to_pybytes())


def _progress(total: int, initial: int, enabled: bool) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, disable=not enabled, unit="chunk",
                desc="recommend")

