"""Resumable state of a sharded run, written with ``torch.distributed.checkpoint`` (DCP).

Each rank writes its own shards of the tables and of their fused optimizer state; tensors
every rank holds alike (dense layers, their optimizer state, best weights) are written
once; each rank's RNG state is kept under its own keys. The folder is built in a private
staging directory and swapped in by rank 0 in one atomic step (``recft.io``), with the
training metadata (``state.json``) and ``checksums.json`` written last, as for a
single-process state: a kill at any instant leaves the previous complete state or this one.

Resuming needs the same world size and the same sharding plan (checked), and rebuilds the
load targets from the freshly sharded model, so each rank reads only its own shards.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
import torch.distributed.checkpoint as dcp

from recft.errors import CheckpointError
from recft.io import atomic_directory, recover_directory
from recft.models import checkpoint_checks as checks
from recft.models import checkpoint_io as cio
from recft.train.distributed import Distributed
from recft.train.fit import LoopState
from recft.train.state import STATE_DIR

META_NAME = "state.json"
SHARDS_DIR = "dcp"
_RNG_PREFIX = "rng/"


def save_sharded_state(resume_dir: str | Path, context: Distributed, state: LoopState,
                       identity: dict[str, Any], extra: dict[str, Any] | None = None) -> None:
    """Write ``resume_dir/state/`` from every rank (a collective); ``extra``: JSON the
    caller reads back with ``saved_meta`` (fine-tuning's finished stages)."""
    target = Path(resume_dir) / STATE_DIR
    tensors = _rank_keys(state.tensors, context.rank)
    meta = {"identity": identity, "loop": state.meta, "world_size": context.world_size,
            "extra": extra}
    rng_per_rank = _gather_objects(context, state.meta.get("rng"))
    if not context.is_main:
        staging = context.broadcast_object(None)
        dcp.save(tensors, checkpoint_id=Path(staging) / SHARDS_DIR)
        return
    with atomic_directory(target) as staging:
        context.broadcast_object(str(staging))
        dcp.save(tensors, checkpoint_id=staging / SHARDS_DIR)
        meta["rng_per_rank"] = rng_per_rank
        (staging / META_NAME).write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n")
        cio.write_checksums(staging)


def load_sharded_state(resume_dir: str | Path, context: Distributed, identity: dict[str, Any],
                       targets: dict[str, Any]) -> LoopState | None:
    """The state saved in ``resume_dir``, loaded into (and returned around) ``targets``
    (``model/``, ``optim/`` entries of the freshly sharded run), or None when there is
    none. Every rank gets the same answer, or the same ``CheckpointError``."""
    target = Path(resume_dir) / STATE_DIR
    meta = context.on_main(lambda: _check(target, resume_dir, context.world_size, identity))
    if meta is None:
        return None
    shards = target / SHARDS_DIR
    saved = dcp.FileSystemReader(str(shards)).read_metadata().state_dict_metadata
    mine = f"rank{context.rank}/"
    load_into = {key: value for key, value in targets.items() if key in saved}
    for key, entry in saved.items():
        if key in load_into or not _replicated(key, mine):
            continue  # another rank's shards, or its RNG
        if not hasattr(entry, "size"):
            raise CheckpointError(f"{target}: saved entry {key!r} is not a tensor")
        # what every rank holds alike and a fresh run has not created yet (best weights,
        # dense optimizer moments): read whole
        load_into[key] = torch.empty(tuple(entry.size), dtype=entry.properties.dtype)
    missing = sorted(k for k in targets if k not in saved)
    if missing:
        raise CheckpointError(f"{target}: saved state lacks {missing[:3]} (delete the resume "
                              "folder to start over)")
    dcp.load(load_into, checkpoint_id=str(shards))
    tensors = {(key[len(mine):] if key.startswith(mine) else key): value
               for key, value in load_into.items()}
    loop = dict(meta["loop"])
    loop["rng"] = meta["rng_per_rank"][context.rank]
    return LoopState(tensors, loop)


def sharded_resume(resume_dir: str | Path, context: Distributed, optimizers: Any,
                   identity: dict[str, Any], *, load: bool = True,
                   extra: dict[str, Any] | None = None) -> tuple[LoopState | None, Any]:
    """``fit``'s ``start`` and ``save`` for a sharded run resumable in ``resume_dir``.

    ``optimizers`` is the run's ``ShardedOptimizers`` (already sharded): its plan is part of
    the identity a resumed run must match. ``load=False``: a fresh start whatever the
    folder holds (its state is replaced at the first save); ``extra``: saved with every
    state (``save_sharded_state``).
    """
    identity = json.loads(json.dumps({**identity, "sharding": optimizers.tables.summary}))
    start = None
    if load:
        targets = {f"model/{k}": v for k, v in optimizers.model_state().items()}
        targets.update({f"optim/{k}": v for k, v in optimizers.state_tensors()[0].items()})
        start = load_sharded_state(resume_dir, context, identity, targets)

    def save(state: LoopState) -> None:
        save_sharded_state(resume_dir, context, state, identity, extra)

    return start, save


def saved_meta(resume_dir: str | Path, context: Distributed) -> dict[str, Any] | None:
    """``state.json`` of the sharded state in ``resume_dir`` (checksums verified, written by
    this many processes), the same on every rank; None when there is none. Its
    ``identity`` is left to the caller to compare."""
    target = Path(resume_dir) / STATE_DIR
    return context.on_main(lambda: _check(target, resume_dir, context.world_size))


def _check(target: Path, resume_dir: str | Path, world_size: int,
           identity: dict[str, Any] | None = None) -> dict[str, Any] | None:
    recover_directory(target)
    if not target.is_dir():
        return None
    where = f"resume state {target}"
    try:
        checksums = checks.read_checksums(target, (META_NAME,))
        checks.verify_checksums(target, checksums)
        meta = cio.read_json(target / META_NAME, target)
    except CheckpointError as error:
        raise CheckpointError(f"resume state {error} (delete {resume_dir} to start this run "
                              "from the beginning)") from None
    if not isinstance(meta, dict) or "world_size" not in meta:
        raise CheckpointError(f"{where} was not written by a sharded run (delete {resume_dir} "
                              "or run with the process count it was written with)")
    if meta["world_size"] != world_size:
        raise CheckpointError(f"{where} was written by {meta['world_size']} processes, not "
                              f"{world_size}: rerun with --nproc {meta['world_size']}")
    saved = meta.get("identity", {})
    if identity is None:
        return meta
    changed = sorted(k for k in set(identity) | set(saved) if identity.get(k) != saved.get(k))
    if changed:
        raise CheckpointError(f"{where} was written with different {changed}; use another "
                              f"resume folder or the same settings (delete {resume_dir})")
    return meta


def _replicated(key: str, mine: str) -> bool:
    """Saved entries a rank reads whole: best weights, dense optimizer state, its RNG.
    (Fused optimizer state is sharded: a rank's targets already hold its own shards.)"""
    if key.startswith("optim/"):
        return not key.startswith("optim/fused/")
    return key.startswith(("best/", mine))


def _rank_keys(tensors: dict[str, Any], rank: int) -> dict[str, Any]:
    """RNG states differ by rank: each rank's go under its own keys."""
    return {(f"rank{rank}/{key}" if key.startswith(_RNG_PREFIX) else key): value
            for key, value in tensors.items()}


def _gather_objects(context: Distributed, value: Any) -> list[Any]:
    gathered: list[Any] = [None] * context.world_size
    torch.distributed.all_gather_object(gathered, value, group=context.group)
    return gathered


__all__ = ["load_sharded_state", "save_sharded_state", "saved_meta", "sharded_resume"]
