"""Which base to fine-tune: rank candidate checkpoints quickly on a sample of the target.

Fine-tuning every candidate base and keeping the best costs one full fine-tuning per base.
``rank_checkpoints`` spends a small share of that: on a seeded sample of the target's
users (split per user 80/10/10), each base is scored twice,

1. **zero-shot**: the base untouched (new ids aligned, items read by text when the base
   has a text path), ranking the sample's held-out items;
2. **probe**: a short ``frozen`` stage (the new retrieval towers only, a few epochs) on the
   sample's training part, then the same ranking;

and the bases are ranked by the probe's NDCG@10 (the zero-shot one breaks ties). The probe
measures what a frozen -> full fine-tuning starts from: how well the base's
representations fit the target once a small head adapts them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from recft.data.interactions import Interactions
from recft.data.splits import split
from recft.errors import DataError

SAMPLE_SPLIT = "random:0.8,0.1,0.1"
METRIC = "ndcg@10"


@dataclass
class CheckpointScore:
    """How one base did on the target sample.

    Attributes:
        checkpoint: the base's directory.
        zero_shot: NDCG@10 / recall@10 of the untouched base on the sample's test part.
        probe: the same after the short frozen stage.
        seconds: wall time spent on this base (loading, aligning, probing, evaluating).
        rank: 1 = the base to fine-tune.
    """

    checkpoint: str
    zero_shot: dict[str, float]
    probe: dict[str, float]
    seconds: float
    rank: int = 0
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def score(self) -> tuple[float, float]:
        return self.probe[METRIC], self.zero_shot[METRIC]

    def to_dict(self) -> dict[str, Any]:
        return {"rank": self.rank, "checkpoint": self.checkpoint, "zero_shot": self.zero_shot,
                "probe": self.probe, "seconds": round(self.seconds, 2), **self.details}


def sample_users(target: Interactions, max_users: int, seed: int) -> Interactions:
    """The interactions of ``max_users`` users drawn at random (all when fewer)."""
    users = np.unique(target.user_ids)
    if len(users) <= max_users:
        return target
    chosen = np.random.default_rng(seed).choice(users, max_users, replace=False)
    return target.subset(np.flatnonzero(np.isin(target.user_ids, chosen)))


def rank_checkpoints(checkpoints: Sequence[str | Path], target: Interactions, *,
                     max_users: int = 500, probe_epochs: int = 2, seed: int = 0,
                     sample_weighting: str = "none",
                     log: Callable[[str], None] | None = None) -> list[CheckpointScore]:
    """Score every base on one seeded sample of ``target`` and rank them, best first.

    Args:
        checkpoints: base checkpoint directories (any recft checkpoint).
        target: the target domain (its own ids; aligned to each base by raw id).
        max_users: users in the sample (the cost grows with it).
        probe_epochs: epochs of the frozen probe stage.
        seed: draws the sample and its split, seeds the probe.
        sample_weighting: the recipe's example weighting (``"log1p"`` for play counts).
        log: called with one line per base as it finishes.

    Returns:
        CheckpointScores sorted by rank (probe NDCG@10, then zero-shot NDCG@10).
    """
    from recft.evaluate import evaluate
    from recft.finetune.finetune import finetune
    from recft.finetune.recipe import Recipe
    from recft.finetune.scoring import zero_shot
    from recft.models.checkpoint import load_pretrained

    if not checkpoints:
        raise DataError("rank_checkpoints needs at least one checkpoint")
    parts = split(sample_users(target, max_users, seed), SAMPLE_SPLIT, seed=seed)
    exclude = parts.known("test")

    def metrics(scorer: Any) -> dict[str, float]:
        result = evaluate(scorer, parts.test, exclude=exclude, history=parts.train,
                          ks=(10,), metrics=("ndcg", "recall"))
        return {key: float(result[key]) for key in ("ndcg@10", "recall@10")}

    scores = []
    for checkpoint in checkpoints:
        started = time.perf_counter()
        zero = metrics(zero_shot(load_pretrained(checkpoint), parts.train))
        recipe = Recipe.frozen_only(epochs=probe_epochs, seed=seed,
                                    sample_weighting=sample_weighting)
        result = finetune(load_pretrained(checkpoint), parts.train, recipe, valid=None,
                          progress=False)
        probe = metrics(result.scorer())
        score = CheckpointScore(str(checkpoint), zero, probe, time.perf_counter() - started,
                                details={"probe_examples": result.examples_seen})
        scores.append(score)
        if log is not None:
            log(f"{checkpoint}: zero-shot {METRIC} {zero[METRIC]:.4f}, probe {probe[METRIC]:.4f} "
                f"({score.seconds:.1f} s)")
    scores.sort(key=lambda s: s.score, reverse=True)
    for rank, score in enumerate(scores, start=1):
        score.rank = rank
    return scores


def ranking_table(scores: Sequence[CheckpointScore]) -> str:
    """The ranking as a plain-text table (what ``recft rank-checkpoints`` prints)."""
    lines = [f"{'rank':>4}  {'probe ' + METRIC:>14}  {'zero-shot':>9}  {'seconds':>7}  checkpoint"]
    for s in scores:
        lines.append(f"{s.rank:>4}  {s.probe[METRIC]:>14.4f}  {s.zero_shot[METRIC]:>9.4f}  "
                     f"{s.seconds:>7.1f}  {s.checkpoint}")
    return "\n".join(lines)
