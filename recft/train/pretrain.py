"""pretrain(): a TwoTower trained from scratch on ``recft.train.fit``, resumable after a kill."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from recft.config import ConfigError
from recft.data.interactions import Interactions
from recft.errors import CheckpointError
from recft.models.architecture import TwoTowerConfig
from recft.models.item_init import initialise_item_rows
from recft.models.text_path import ItemTextVectors
from recft.models.two_tower import TwoTower
from recft.train.batches import BatchBuilder
from recft.train.fit import FitSettings, LoopState, fit
from recft.train.history import History
from recft.train.objectives import RetrievalObjective
from recft.train.optimizers import OptimizerSettings, Optimizers
from recft.train.settings import PretrainConfig
from recft.train.state import (
    as_json,
    data_fingerprint,
    load_training_state,
    save_training_state,
)

if TYPE_CHECKING:
    from recft.train.distributed import Distributed

# fields that may change between a run and its resumption without changing its result
_RESUMABLE_CHANGES = {"epochs", "patience", "checkpoint_every", "checkpoint_seconds"}


def pretrain(
    interactions: Interactions,
    config: TwoTowerConfig | None = None,
    valid: Interactions | None = None,
    pretrain_config: PretrainConfig | None = None,
    *,
    resume_dir: str | Path | None = None,
    progress: bool = True,
    item_text: ItemTextVectors | None = None,
    distributed: Distributed | None = None,
    sharding: Mapping[str, str] | None = None,
) -> tuple[TwoTower, History]:
    """Train a ``TwoTower`` from scratch on ``interactions``.

    The same seed gives the same weights. With ``resume_dir``, state is checkpointed there
    (every ``checkpoint_every`` steps or ``checkpoint_seconds``, and after each epoch) and
    a run restarted with the same directory continues from the last checkpoint to the same
    final weights.

    Args:
        interactions: training interactions (and item/user features).
        config: architecture; sizes are filled from the data. Default ``TwoTowerConfig()``.
        valid: held-out interactions, evaluated by full ranking excluding training items
            after each epoch for early stopping; the best epoch's weights are restored.
        pretrain_config: the process; default ``PretrainConfig()``.
        resume_dir: folder for resumable state (created if needed).
        progress: show a progress bar with the loss and examples/s.
        item_text: the catalog's text vectors, for a config with a text path.
        distributed: run as one rank of a torchrun job (``recft.train.distributed``): the
            tables are sharded by torchrec's DMP and each rank trains on its slice of a
            global batch of ``world_size * batch_size`` examples (in-batch negatives are
            per rank); the resume state is sharded (``recft.train.sharded_state``).
        sharding: table -> ``table_wise | row_wise | column_wise | data_parallel`` (the
            others: torchrec's planner); only with ``distributed``.

    Returns:
        The trained model (eval mode, plain torchrec collections) and its ``History``.
    """
    settings = pretrain_config or PretrainConfig()
    torch.manual_seed(settings.seed)
    item_features, user_features = interactions.item_features, interactions.user_features
    model = TwoTower(
        config or TwoTowerConfig(), interactions.user_vocab, interactions.item_vocab,
        item_features=item_features.categorical if item_features is not None else None,
        user_features=user_features.categorical if user_features is not None else None,
        item_text=item_text,
    ).to(settings.device)
    if settings.item_init == "cooccurrence":  # before Optimizers copies rows into fused tables
        initialise_item_rows(model, interactions)
    world_size = distributed.world_size if distributed is not None else 1
    builder = BatchBuilder.for_model(
        model, interactions, batch_size=settings.batch_size * world_size,
        num_negatives=settings.num_negatives, logq_correction=settings.logq_correction,
        user_id_dropout=settings.user_id_dropout, history_dropout=settings.history_dropout,
    )
    optimizer_settings = OptimizerSettings(
        settings.embedding_optimizer, settings.embedding_lr, settings.dense_optimizer,
        settings.lr, settings.weight_decay)
    if distributed is None:
        optimizers = Optimizers(model, optimizer_settings)
    else:
        from recft.train.sharded_optimizers import ShardedOptimizers

        optimizers = ShardedOptimizers(model, optimizer_settings, context=distributed,
                                       sharding=sharding)
        distributed.seed_rank(settings.seed)
        progress = progress and distributed.is_main
    fit_settings = FitSettings(
        name="pretrain", epochs=settings.epochs, seed=settings.seed,
        early_stopping_metric=settings.early_stopping_metric, patience=settings.patience,
        checkpoint_every=settings.checkpoint_every,
        checkpoint_seconds=settings.checkpoint_seconds, device=settings.device)
    validate = None
    if valid is not None:
        validate = _validator(model, valid, interactions, settings.early_stopping_metric,
                              distributed)
    start, save = None, None
    if resume_dir is not None and distributed is not None:
        from recft.train.sharded_state import sharded_resume

        start, save = sharded_resume(resume_dir, distributed, optimizers,
                                     _identity(model, settings, interactions))
    elif resume_dir is not None:
        identity = _identity(model, settings, interactions)
        start = _load_state(resume_dir, identity)

        def save(state: LoopState) -> None:
            save_training_state(resume_dir, state.tensors, {"identity": identity,
                                                            "loop": state.meta})
    objective = RetrievalObjective(settings.loss, settings.temperature or model.config.temperature)
    history = fit(model, builder, objective, optimizers, fit_settings, validate=validate,
                  start=start, save=save, progress=progress, distributed=distributed)
    return model.eval(), history


def _identity(model: TwoTower, settings: PretrainConfig,
              train: Interactions) -> dict[str, Any]:
    return as_json({"model_config": model.config.to_dict(),
                    "pretrain_config": {k: v for k, v in settings.to_dict().items()
                                        if k not in _RESUMABLE_CHANGES},
                    "data": data_fingerprint(train)})


def _load_state(resume_dir: str | Path, identity: dict[str, Any]) -> LoopState | None:
    state = load_training_state(resume_dir)
    if state is None:
        return None
    tensors, meta = state
    saved = meta.get("identity")
    where = f"{resume_dir}: saved training state"
    if saved is None or "loop" not in meta:
        raise CheckpointError(f"{where} is not a pretraining state of this version; use "
                              "another resume_dir")
    if saved["model_config"] != identity["model_config"]:
        raise CheckpointError(f"{where} is for another architecture: {saved['model_config']}")
    ours, theirs = identity["pretrain_config"], saved["pretrain_config"]
    changed = sorted(k for k in set(ours) | set(theirs) if ours.get(k) != theirs.get(k))
    if changed:
        raise CheckpointError(f"{where} used different settings for {changed}; "
                              "use another resume_dir or the same PretrainConfig")
    if saved["data"] != identity["data"]:
        raise CheckpointError(f"{where} is for other training data ({saved['data']})")
    return LoopState(tensors, meta["loop"])


def _validator(model: TwoTower, valid: Interactions, train: Interactions, metric: str,
               distributed: Distributed | None = None):
    """Full-ranking metrics at the early-stopping cut-off, training items excluded (the
    users split over the ranks when distributed)."""
    from recft.evaluate import evaluate  # heavy, and only needed with a validation set

    k = int(metric.split("@", 1)[1])
    names = sorted({"ndcg", "recall", metric.split("@", 1)[0]})

    def validate() -> dict[str, float]:
        if distributed is not None:
            from recft.train.rank_evaluation import evaluate_over_ranks

            result = evaluate_over_ranks(model, valid, distributed, exclude=train, ks=(k,),
                                         metrics=names)
        else:
            result = evaluate(model, valid, exclude=train, ks=(k,), metrics=names)
        if metric not in result:
            raise ConfigError(f"early_stopping_metric {metric!r} is not among {sorted(result)}")
        return {key: float(value) for key, value in result.items() if "@" in key}

    return validate
