"""Which base to fine-tune: rank candidate checkpoints quickly on a sample of the target.

Fine-tuning every candidate base and keeping the best costs one full fine-tuning per base.
``rank_checkpoints`` spends a small share of that. On a seeded sample of the target's users
(split per user 80/10/10), each base is loaded once and scored by

1. **zero-shot** NDCG@10: the base untouched (the target's ids aligned to it, new rows
   initialised from the item features they share with the base), its own towers ranking
   the sample's held-out items: what the base knows of these users and items;
2. **readable share**: the share of the sample's training interactions whose item the base
   can read at all, by id (it was pretrained on it), by text (it has a text path and the
   item has a text) or by a feature value it was pretrained with. It orders the bases
   that zero-shot cannot tell apart (a base that shares nothing with the target ranks
   nothing: NDCG@10 0 for all of them), and it is free once the ids are aligned;
3. optionally (``probe_epochs`` > 0) a **probe**: a short ``frozen`` stage (new retrieval
   towers only) on the sample's training part, then the same ranking. It costs a
   fine-tuning's fixed overheads per base, which at small targets is most of what a full
   fine-tuning costs (``benchmarks/rank_checkpoints.py``: 28% of it), so it is off by default.

Bases are ranked by (probe NDCG@10 when probed,) zero-shot NDCG@10, then readable share.
Zero-shot through text (``scoring.zero_shot``'s text scorer for cross-domain bases) is not
used here: its popularity prior comes from the target, the same for every base, so it
would measure the target rather than the base.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

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
        probe: the same after the short frozen stage ({} without a probe).
        seconds: wall time spent on this base (loading, aligning, probing, evaluating).
        readable: share of the sample's training interactions whose item the base reads
            by id, text or a known feature value.
        rank: 1 = the base to fine-tune.
    """

    checkpoint: str
    zero_shot: dict[str, float]
    probe: dict[str, float]
    seconds: float
    readable: float = 0.0
    rank: int = 0
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def score(self) -> tuple[float, ...]:
        """The sort key, higher first."""
        probe = (self.probe[METRIC],) if self.probe else ()
        return (*probe, self.zero_shot[METRIC], self.readable)

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


def known_items(base: Any, target: Interactions) -> np.ndarray:
    """(target catalog,) bool: items ``base`` was pretrained on, or that have a value of an
    item feature the base was pretrained with (new rows then start from those values'
    rows: ``feature_mean``). Call it before aligning (the base's own vocabularies)."""
    known = base.item_vocab.encode(target.item_vocab.ids, unknown="mark") >= 0
    theirs = target.item_features.categorical if target.item_features else {}
    for name, feature in (getattr(base, "item_features", None) or {}).items():
        other = theirs.get(name)
        if other is None or not len(other.values):
            continue
        value_known = feature.vocab.encode(other.vocab.ids, unknown="mark") >= 0
        item_of_value = np.repeat(np.arange(len(other.offsets) - 1), np.diff(other.offsets))
        hits = np.bincount(item_of_value[value_known[other.values]],
                           minlength=len(other.offsets) - 1)
        known[:len(hits)] |= hits[:len(known)] > 0
    return known


def readable_by_text(model: Any, item_rows: np.ndarray) -> np.ndarray:
    """(target catalog,) bool: items an aligned ``model`` reads through a non-empty text."""
    path = getattr(model, "item_text", None)
    if path is None:
        return np.zeros(len(item_rows), dtype=bool)
    return path.vectors[torch.from_numpy(np.asarray(item_rows))].abs().sum(dim=1).gt(0).numpy()


def _copy(model: Any) -> Any:
    """A deep copy sharing the vocabularies and features, which aligning replaces rather
    than modifies (deep-copying their id arrays would cost as much as loading the model)."""
    shared = [model.user_vocab, model.item_vocab, *(getattr(model, "item_features", None)
                                                     or {}).values(),
              *(getattr(model, "user_features", None) or {}).values()]
    return copy.deepcopy(model, memo={id(obj): obj for obj in shared})


def rank_checkpoints(checkpoints: Sequence[str | Path], target: Interactions, *,
                     max_users: int = 300, probe_epochs: int = 0, seed: int = 0,
                     sample_weighting: str = "none",
                     log: Callable[[str], None] | None = None) -> list[CheckpointScore]:
    """Score every base on one seeded sample of ``target`` and rank them, best first.

    Args:
        checkpoints: base checkpoint directories (any recft checkpoint).
        target: the target domain (its own ids; aligned to each base by raw id).
        max_users: users in the sample (the cost grows with it).
        probe_epochs: epochs of the frozen probe stage; 0 (default): no probe.
        seed: draws the sample and its split, seeds the probe.
        sample_weighting: the recipe's example weighting (``"log1p"`` for play counts).
        log: called with one line per base as it finishes.

    Returns:
        CheckpointScores sorted by rank (probe NDCG@10 when probed, zero-shot NDCG@10,
        readable share).
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
        base = load_pretrained(checkpoint)
        knows = known_items(base, parts.train)
        probing = probe_epochs > 0
        scorer = zero_shot(_copy(base) if probing else base, parts.train, through_text=False)
        zero = metrics(scorer)
        knows |= readable_by_text(scorer.model, scorer.alignment.item_rows)
        readable = float(knows[parts.train.item_ids].mean()) if len(parts.train) else 0.0
        probe: dict[str, float] = {}
        details: dict[str, Any] = {"readable_share": round(readable, 4)}
        if probing:
            recipe = Recipe.frozen_only(epochs=probe_epochs, seed=seed,
                                        sample_weighting=sample_weighting)
            result = finetune(base, parts.train, recipe, valid=None, progress=False)
            probe = metrics(result.scorer())
            details["probe_examples"] = result.examples_seen
        score = CheckpointScore(str(checkpoint), zero, probe, time.perf_counter() - started,
                                readable=readable, details=details)
        scores.append(score)
        if log is not None:
            probed = f", probe {probe[METRIC]:.4f}" if probe else ""
            log(f"{checkpoint}: zero-shot {METRIC} {zero[METRIC]:.4f}{probed}, readable "
                f"{readable:.0%} ({score.seconds:.1f} s)")
    scores.sort(key=lambda s: s.score, reverse=True)
    for rank, score in enumerate(scores, start=1):
        score.rank = rank
    return scores


def ranking_table(scores: Sequence[CheckpointScore]) -> str:
    """The ranking as a plain-text table (what ``recft rank-checkpoints`` prints)."""
    lines = [f"{'rank':>4}  {'zero-shot ' + METRIC:>18}  {'probe':>6}  {'readable':>8}  "
             f"{'seconds':>7}  checkpoint"]
    for s in scores:
        probe = f"{s.probe[METRIC]:.4f}" if s.probe else "-"
        lines.append(f"{s.rank:>4}  {s.zero_shot[METRIC]:>18.4f}  {probe:>6}  "
                     f"{s.readable:>8.0%}  {s.seconds:>7.1f}  {s.checkpoint}")
    return "\n".join(lines)
