"""finetune(): align ids, attach heads/adapters, run the recipe's stages, return the result."""

from __future__ import annotations

import copy
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from recft.data.interactions import Interactions
from recft.errors import DataError
from recft.finetune.recipe import Recipe
from recft.finetune.resume import FinetuneResume, fingerprint
from recft.finetune.scoring import CatalogMask, TargetScorer
from recft.finetune.stage import Objective, run_stage
from recft.finetune.vocab_transfer import VocabAlignment, align_vocabulary
from recft.models.adapters import adapter_modules, attach_adapters, merge_adapters
from recft.models.finetuned import attach_heads
from recft.models.roles import ParameterRoles
from recft.train.batches import BatchBuilder
from recft.train.history import History

if TYPE_CHECKING:
    from recft.train.distributed import Distributed


@dataclass
class FineTuneResult:
    """A fine-tuned model and how it got there.

    Attributes:
        model: the fine-tuned model (in its grown vocabulary; eval mode).
        recipe: the recipe that was run.
        stages: per stage: losses, valid metrics per epoch, trainable / total parameters,
            wall seconds, examples seen.
        alignment: target ids -> model rows, matched / new counts per side.
        roles: which parameters (and table rows) came from the base checkpoint.
        base: the base checkpoint directory, when known.
    """

    model: nn.Module
    recipe: Recipe
    stages: list[History]
    alignment: VocabAlignment
    roles: ParameterRoles
    base: str | None = None
    adapters: list[str] = field(default_factory=list)

    @property
    def wall_seconds(self) -> float:
        return sum(s.wall_seconds for s in self.stages)

    @property
    def examples_seen(self) -> int:
        return sum(s.examples_seen for s in self.stages)

    @property
    def trainable_parameters(self) -> int:
        """The most scalars any stage could change."""
        return max((s.trainable_parameters for s in self.stages), default=0)

    def scorer(self) -> TargetScorer:
        """Scores in the target's own ids and catalog (for ``recft.evaluate``)."""
        return TargetScorer(self.model, self.alignment)

    def to_dict(self) -> dict[str, Any]:
        return {
            "base": self.base,
            "recipe": self.recipe.to_dict(),
            "alignment": self.alignment.to_dict(),
            "stages": [s.to_dict() for s in self.stages],
            "adapters": self.adapters,
            "compute": {"wall_seconds": self.wall_seconds, "examples_seen": self.examples_seen,
                        "trainable_parameters": self.trainable_parameters},
        }

    def save(self, directory: str | Path, training: dict[str, Any] | None = None) -> Path:
        """Write a full checkpoint (adapters merged) recording base checkpoint and recipe.

        It loads with ``load_pretrained`` like any checkpoint and serves the new ids.
        """
        from recft.models.checkpoint import save_pretrained

        model = self.model
        if adapter_modules(model):
            model = merge_adapters(copy.deepcopy(model))
        record = {"stage": "finetune", **self.to_dict(), **(training or {})}
        return save_pretrained(model, directory, training=record)

    def save_adapter(self, directory: str | Path) -> Path:
        """Write only the delta against ``base`` (see ``recft.finetune.adapter_io``)."""
        from recft.finetune.adapter_io import save_adapter

        if self.base is None:
            raise DataError("save_adapter needs the base checkpoint directory: pass base= to "
                            "finetune()")
        return save_adapter(self.model, directory, self.base, self.roles, recipe=self.recipe)


def finetune(model: nn.Module, train: Interactions, recipe: Recipe | None = None,
             valid: Interactions | None = None, *, valid_history: Interactions | None = None,
             base: str | Path | None = None, progress: bool = True,
             verbose: bool = False, resume_dir: str | Path | None = None,
             distributed: Distributed | None = None,
             sharding: Mapping[str, str] | None = None) -> FineTuneResult:
    """Fine-tune a pretrained model on a target domain, following ``recipe``.

    1. The target's raw ids are aligned with the model's vocabularies; tables grow for
       new users / items (pretrained rows kept bit-for-bit; new rows per the recipe).
    2. Heads (``recipe.heads``) and, with ``recipe.use_adapters``, adapters are attached.
    3. Each stage trains what it names; frozen parameters get neither gradient nor
       optimizer state. Validation ranks the target's catalog for early stopping.

    Args:
        model: a pretrained TwoTower (e.g. ``load_pretrained(dir)``); modified in place
            and returned (heads make it a ``FineTunedTwoTower``) in ``result.model``.
        train: target training interactions, in the target's own vocabularies.
        recipe: default ``Recipe.default()`` (frozen -> full).
        valid: held-out target interactions for per-epoch metrics and early stopping.
        valid_history: what the model may know about valid users (default ``train``;
            the split's ``valid_history`` for cold users).
        base: the base checkpoint directory, recorded in saved checkpoints.
        progress: tqdm bars; verbose: print each stage's trainable-parameter table.
        resume_dir: folder for resumable state, written atomically after every epoch of
            every stage. A rerun with the same folder (and the same freshly loaded base,
            recipe and data) skips what was done and ends with bit-identical weights and
            the same histories; other inputs raise ``CheckpointError``.
        distributed: run as one rank of a torchrun job: every stage's tables are sharded by
            torchrec's DMP (``sharding``: table -> type, as for ``pretrain``), each rank
            trains on its slice of global batches ``world_size`` times the recipe's batch
            size; every rank ends with the whole fine-tuned model. ``resume_dir`` then
            holds a sharded state (``recft.finetune.sharded_resume``; the same process
            count resumes it), except for recipes with gradual unfreezing (not resumable
            sharded yet: run without resume state, with a warning).

    Returns:
        A FineTuneResult; ``result.scorer()`` evaluates in target ids.

    Example::

        model = load_pretrained("runs/base")
        result = finetune(model, split.train, Recipe.default(), valid=split.valid)
        evaluate(result.scorer(), split.test, exclude=split.train)
        result.save("runs/finetuned")
    """
    recipe = recipe or Recipe.default()
    if distributed is not None and resume_dir is not None and any(
            stage.gradual_unfreeze_every for stage in recipe.stages):
        # a widened stage's new fused optimizer state is not in the sharded state yet
        logging.getLogger("recft").warning("sharded fine-tuning with gradual unfreezing is not "
                                           "resumable yet: running without %s", resume_dir)
        resume_dir = None
    resume: Any = None
    if resume_dir is not None:  # fingerprint the base before it is modified below
        identity = fingerprint(model, recipe, train, valid, base)
        if distributed is None:
            resume = FinetuneResume(resume_dir, identity)
        else:
            from recft.finetune.sharded_resume import ShardedFinetuneResume

            resume = ShardedFinetuneResume(resume_dir, identity, distributed)
    torch.manual_seed(recipe.seed)
    _unfuse(model)
    roles = ParameterRoles.of(model)
    alignment = align_vocabulary(model, train, init=recipe.new_id_init, seed=recipe.seed,
                                 user_init=recipe.new_user_init)
    roles = roles.with_new_rows(alignment.first_new_rows)
    model = attach_heads(model, _head_specs(recipe, train))
    wrapped = attach_adapters(model, recipe.adapter_rank, recipe.adapter_targets,
                              roles=roles) if recipe.use_adapters else []
    # ids are aligned once, here: training and validation run in model rows
    target = alignment.remap(train).replace(weights=example_weights(train, recipe))
    world = distributed.world_size if distributed is not None else 1
    builder = BatchBuilder.for_model(  # a global batch of world x what a rank trains on
        model, target, batch_size=world * effective_batch_size(-(-len(target) // world), recipe),
        num_negatives=recipe.num_negatives, logq_correction=recipe.logq_correction,
        user_id_dropout=recipe.user_id_dropout,
    )
    objective = Objective(recipe, recipe.temperature or model.config.temperature,
                          train.ratings, implicit=train.feedback == "implicit")
    validate = None
    if valid is not None and len(valid):
        known = valid_history if valid_history is not None else train
        validate = _validator(CatalogMask(model, alignment.item_rows), valid, known,
                              alignment, recipe, distributed)
    # the steps above are deterministic, so a resumed run redoes them on the fresh base and
    # then loads the saved weights (and RNG states) over the result
    point = resume.load(model) if resume is not None else None
    histories = list(point.histories) if point is not None else []
    offset = sum(stage.epochs for stage in recipe.stages[:len(histories)])
    for index, stage in enumerate(recipe.stages[len(histories):], start=len(histories)):
        start = point.current if point is not None and index == len(point.histories) \
            else None
        save = None
        if resume is not None:
            finished = list(histories)

            def save(state, finished=finished):  # after an epoch, or every N seconds
                resume.save_stage(finished, state)

        sharded_resume = None
        if resume is not None and distributed is not None:  # once the stage is sharded
            sharded_resume = resume.stage(index, finished, resuming=start is not None)
            start, save = None, None
        histories.append(run_stage(model, stage, builder, objective, roles, seed=recipe.seed,
                                   epoch_offset=offset, validate=validate, progress=progress,
                                   verbose=verbose and (distributed is None or distributed.is_main),
                                   start=start, save=save, distributed=distributed,
                                   sharding=sharding, sharded_resume=sharded_resume,
                                   device=_device_of(model)))
        offset += stage.epochs
        if resume is not None:
            resume.save_between(model, histories)  # the stage's end, best weights restored
    model.requires_grad_(True)  # the stages' freezing was theirs, not the model's state
    return FineTuneResult(model.eval(), recipe, histories, alignment, roles,
                          None if base is None else str(base), wrapped)


def effective_batch_size(examples: int, recipe: Recipe) -> int:
    """``recipe.batch_size``, shrunk (not below 16) so that an epoch over ``examples`` takes
    at least ``recipe.min_steps_per_epoch`` steps: at 5% of a small target, one full batch
    per epoch would leave early stopping nothing to choose between."""
    smallest = min(16, recipe.batch_size)
    return max(smallest, min(recipe.batch_size, -(-examples // recipe.min_steps_per_epoch)))


def example_weights(train: Interactions, recipe: Recipe) -> np.ndarray | None:
    """(N,) training weights from the recipe's weighting, mean 1 (None = uniform).

    ``log1p`` damps play counts (a 500-play artist is not 500 times the evidence);
    ``head_item_downweight`` alpha multiplies by popularity^-alpha so head items do not
    dominate the gradient.
    """
    kind = recipe.sample_weighting
    weights: np.ndarray | None = None
    if kind in ("log1p", "rating"):
        if train.ratings is None:
            raise DataError(f"sample_weighting={kind!r} needs ratings or play counts; "
                            f"{train.name or 'the training data'} has none")
        values = np.maximum(train.ratings.astype(np.float64), 0.0)
        weights = np.log1p(values) if kind == "log1p" else values
    elif kind == "weights":
        weights = train.sample_weights().astype(np.float64)
    if recipe.head_item_downweight > 0:
        popularity = np.maximum(train.item_popularity()[train.item_ids], 1).astype(np.float64)
        factor = popularity ** -recipe.head_item_downweight
        weights = factor if weights is None else weights * factor
    if weights is None:
        return None
    mean = weights.mean() if len(weights) else 1.0
    return (weights / (mean if mean > 0 else 1.0)).astype(np.float32)


def _head_specs(recipe: Recipe, train: Interactions) -> dict[str, dict[str, Any]]:
    specs: dict[str, dict[str, Any]] = {}
    for kind in recipe.heads:
        spec: dict[str, Any] = {"kind": kind}
        if kind == "rating":
            if train.ratings is None:
                raise DataError("the rating head needs explicit ratings or counts")
            spec["mean_rating"] = float(train.ratings.mean())
        specs[kind] = spec
    return specs


def _validator(scorer: CatalogMask, valid: Interactions, history: Interactions,
               alignment: VocabAlignment, recipe: Recipe,
               distributed: Distributed | None = None):
    """Per-epoch full-ranking metrics on (a seeded sample of) the valid users, in model rows
    (remapped once here) over the target's catalog."""
    from recft.evaluate import evaluate

    users = np.unique(valid.user_ids)
    if recipe.valid_users is not None and len(users) > recipe.valid_users:
        chosen = np.random.default_rng(recipe.seed).choice(users, recipe.valid_users,
                                                           replace=False)
        valid = valid.subset(np.isin(valid.user_ids, chosen))
    valid, history = alignment.remap(valid), alignment.remap(history)
    ks = sorted({int(s.early_stopping_metric.split("@")[1]) for s in recipe.stages
                 if s.early_stopping_metric} or {10})

    def validate() -> dict[str, float]:
        if distributed is not None:  # the users split over the ranks
            from recft.train.rank_evaluation import evaluate_over_ranks

            return evaluate_over_ranks(scorer, valid, distributed, exclude=history,
                                       history=history, ks=ks, metrics=["ndcg", "recall"])
        result = evaluate(scorer, valid, exclude=history, history=history, ks=ks,
                          metrics=["ndcg", "recall"])
        return {k: float(v) for k, v in result.items() if "@" in k}

    return validate


def _unfuse(model: nn.Module) -> None:
    """Replace torchrec FusedEmbeddingBagCollections (left by an unfinished pretraining) by
    plain collections with the same weights: their in-backward optimizer would update
    tables we mean to freeze."""
    from torchrec.modules.embedding_modules import EmbeddingBagCollection
    from torchrec.modules.fused_embedding_modules import FusedEmbeddingBagCollection

    for name, module in list(model.named_modules()):
        if isinstance(module, FusedEmbeddingBagCollection):
            device = next(module.parameters()).device
            plain = EmbeddingBagCollection(module.embedding_bag_configs(),
                                           device=torch.device("meta")).to_empty(device=device)
            plain.load_state_dict(module.state_dict())
            owner, _, attr = name.rpartition(".")
            setattr(model.get_submodule(owner) if owner else model, attr, plain)


__all__ = ["FineTuneResult", "effective_batch_size", "example_weights", "finetune"]


def _device_of(model: nn.Module) -> str:
    """Where the model lives: batches follow it (a model moved to a GPU trains there)."""
    return str(next(model.parameters(), torch.empty(0)).device)
