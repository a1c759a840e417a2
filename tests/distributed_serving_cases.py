"""Evaluation and batch recommendation sharded over users, as each rank of a test job runs
them (``distributed_cases.py mechanics``): the sharded result next to the single-process
one computed in the same process (same threads), for the test to compare exactly."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from recft.train.distributed import Distributed

CHUNK = 7  # users per chunk: 300 users give 43 chunks, an odd count for 2 ranks
STOP_AFTER = 3  # chunks the interrupted single-process job finishes


class Interrupted(Exception):
    """Stands for a kill of a single-process batch job."""


def case_serving(context: Distributed, out: Path, checkpoint: str, train_and_test) -> dict:
    return {"evaluate": _evaluate(context, checkpoint, train_and_test),
            "recommend": _recommend(context, out, checkpoint, train_and_test.train)}


def _evaluate(context: Distributed, checkpoint: str, parts) -> dict:
    """``evaluate`` with every metric, coverage, avg_popularity and segments, each rank
    ranking its users in chunks of ``CHUNK`` (one process: other chunk boundaries)."""
    from recft.evaluate import evaluate
    from recft.models.checkpoint import load_pretrained

    model = load_pretrained(checkpoint)
    options = {"exclude": parts.train, "history": parts.train, "ks": (5, 10),
               "segments": True}
    single = evaluate(model, parts.test, **options)
    sharded = evaluate(model, parts.test, batch_size=CHUNK, distributed=context, **options)
    # JSON text: NaN (an empty segment) compares equal to itself, any other digit differs
    return {"single": json.dumps(single, sort_keys=True),
            "sharded": json.dumps(sharded, sort_keys=True)}


def _recommend(context: Distributed, out: Path, checkpoint: str, train) -> dict:
    """A sharded batch job; then a job a single process started (stopped after
    ``STOP_AFTER`` chunks) finished by the 2 ranks; rank 0 also writes the single-process
    file. Each rank reports the chunks it computed."""
    from recft.serving import Recommender
    from recft.serving.batch import BatchJob

    rec = Recommender.from_pretrained(checkpoint)
    histories = train.to_pandas()
    # every user, then one unknown to the model without history (the fallback list)
    users = np.append(train.user_vocab.ids.astype(object), "nobody")
    options = {"k": 5, "chunk_size": CHUNK, "histories": histories, "progress": False}
    computed: dict[str, list[int]] = {"sharded": [], "resumed": []}

    def job(name: str, **extra) -> BatchJob:
        return BatchJob(rec, users, out / f"{name}.parquet", **options, **extra)

    job("sharded", distributed=context, on_chunk=computed["sharded"].append).run()
    if context.is_main:
        job("single").run()

        def stop(index: int) -> None:
            if index + 1 == STOP_AFTER:
                raise Interrupted

        try:
            job("resumed", on_chunk=stop).run()
        except Interrupted:
            pass
    context.barrier()
    job("resumed", distributed=context, on_chunk=computed["resumed"].append).run()
    return {**computed, "out": str(out)}


__all__ = ["CHUNK", "STOP_AFTER", "case_serving"]
