"""Which chunks of a batch job each rank computes, when a job runs sharded over users.

A batch job (``recft.serving.batch.BatchJob``) cuts its users into chunks whose size does
not depend on the number of processes, so a chunk's part file is the same bytes whoever
computes it: the assembled output equals one process's, and a killed job resumes with any
number of processes. The ranks take contiguous shares of the missing chunks and advance
in rounds of one chunk each; after every round rank 0 records the round's chunks in the
manifest (ranks whose share is shorter sit the last round out, with ``None``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import numpy as np
import torch

T = TypeVar("T")


def chunks_of_rank(missing: list[int], context: Any) -> Iterator[int | None]:
    """This rank's chunk for each round, ``None`` where its share has run out; every rank
    gets the same number of rounds. Without ``context``, every missing chunk in order."""
    if context is None:
        yield from missing
        return
    from recft.train.rank_evaluation import users_of_rank

    mine = users_of_rank(np.asarray(missing, dtype=np.int64), context)
    rounds = -(-len(missing) // context.world_size)
    for step in range(rounds):
        yield int(mine[step]) if step < len(mine) else None


def finished_chunks(index: int | None, context: Any) -> list[int]:
    """The chunks every rank finished this round (a collective when sharded)."""
    if context is None:
        return [] if index is None else [index]
    mine = torch.tensor([] if index is None else [index], dtype=torch.int64)
    return [int(i) for part in context.all_gather_tensors(mine) for i in part]


def on_main(context: Any, compute: Callable[[], T]) -> T:
    """``compute()`` here, or sharded on rank 0 only with its result (or error) on every
    rank (``Distributed.on_main``)."""
    return compute() if context is None else context.on_main(compute)


__all__ = ["chunks_of_rank", "finished_chunks", "on_main"]
