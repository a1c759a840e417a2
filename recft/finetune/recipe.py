"""Recipe and Stage: what a fine-tuning run trains, in which order, at which learning rates."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from recft.config import ConfigError, ConfigMixin

TRAINABLE_KEYWORDS = ("new", "all", "adapters")
NEW_ID_INITS = ("zeros", "mean", "feature_mean", "random")
LOSSES = ("sampled_softmax", "bpr", "mse", "bce")
SAMPLE_WEIGHTINGS = ("none", "log1p", "rating", "weights")
ADAPTER_TARGETS = ("towers", "tables")


@dataclass
class Stage(ConfigMixin):
    """One stage of a fine-tuning run: which parameters train, how fast, for how long.

    Example::

        Stage("frozen", epochs=3, trainable="new")
        Stage("full", epochs=10, trainable="all", pretrained_lr_scale=0.1, warmup_steps=100)
        Stage("top", trainable=["user_tower.*", "heads.*"])   # fnmatch patterns on names
    """

    name: str = "stage"
    epochs: int = field(default=5, metadata={"help": "maximum epochs over the training data"})
    trainable: str | list[str] = field(
        default="all",
        metadata={"help": "'new' (only parts added for fine-tuning), 'all', 'adapters', "
                  "or a list of fnmatch patterns over parameter names"},
    )
    freeze_tower_layers: bool = field(
        default=True,
        metadata={"help": "with trainable='new': also freeze the pretrained tower MLP layers "
                  "(False lets them train while the tables stay frozen)"},
    )
    learning_rate: float = field(default=1e-3, metadata={"help": "Adam LR of dense new parts"})
    embedding_learning_rate: float = field(
        default=0.05, metadata={"help": "RowWiseAdagrad LR of embedding tables (new rows)"}
    )
    pretrained_lr_scale: float = field(
        default=1.0,
        metadata={"help": "discriminative LRs: pretrained parameters (grown tables included) "
                  "train at LR x this"},
    )
    weight_decay: float = field(
        default=0.0, metadata={"help": "decoupled decay on trainable dense weights only"}
    )
    warmup_steps: int = field(default=0, metadata={"help": "linear LR warm-up steps"})
    early_stopping_metric: str | None = field(
        default=None, metadata={"help": "validation metric to stop on, e.g. 'ndcg@10'"}
    )
    patience: int = field(default=2, metadata={"help": "epochs without improvement to stop"})
    restore_best: bool = field(
        default=True, metadata={"help": "reload the best-validation weights at the end"}
    )
    gradual_unfreeze_every: int = field(
        default=0,
        metadata={"help": "epochs between unfreezing one more layer group, top first "
                  "(0 = everything in `trainable` from the start)"},
    )
    train_only_new_rows: bool = field(
        default=False,
        metadata={"help": "embedding tables train, but a gradient mask keeps pretrained rows "
                  "bit-for-bit; only rows added for new ids change"},
    )

    def __post_init__(self) -> None:
        if isinstance(self.trainable, tuple):
            self.trainable = list(self.trainable)
        if isinstance(self.trainable, str):
            if self.trainable not in TRAINABLE_KEYWORDS:
                raise ConfigError(
                    f"stage {self.name!r}: trainable must be one of {TRAINABLE_KEYWORDS} or a "
                    f"list of parameter-name patterns, got {self.trainable!r}"
                )
        elif not (isinstance(self.trainable, list) and self.trainable
                  and all(isinstance(p, str) for p in self.trainable)):
            raise ConfigError(
                f"stage {self.name!r}: trainable patterns must be a non-empty list of strings, "
                f"got {self.trainable!r}"
            )
        _positive(self, "epochs", self.epochs, integer=True)
        _positive(self, "learning_rate", self.learning_rate)
        _positive(self, "embedding_learning_rate", self.embedding_learning_rate)
        _positive(self, "pretrained_lr_scale", self.pretrained_lr_scale)
        _positive(self, "weight_decay", self.weight_decay, allow_zero=True)
        _positive(self, "warmup_steps", self.warmup_steps, integer=True, allow_zero=True)
        _positive(self, "patience", self.patience, integer=True)
        _positive(self, "gradual_unfreeze_every", self.gradual_unfreeze_every, integer=True,
                  allow_zero=True)
        if self.early_stopping_metric is not None and "@" not in self.early_stopping_metric:
            raise ConfigError(
                f"stage {self.name!r}: early_stopping_metric must look like 'ndcg@10' or "
                f"'recall@20', got {self.early_stopping_metric!r}"
            )


@dataclass
class Recipe(ConfigMixin):
    """A fine-tuning process: stages plus everything shared across them.

    Example::

        recipe = Recipe.default()                       # frozen -> full
        recipe = Recipe.adapters(rank=8)                # low-rank deltas only
        recipe.save("recipe.yaml"); Recipe.load("recipe.yaml") == recipe
    """

    stages: list[Stage] = field(default_factory=lambda: Recipe.default().stages)
    new_id_init: str = field(
        default="feature_mean",
        metadata={"help": "init of item rows the checkpoint has not seen: zeros | mean | "
                  "feature_mean (mean of rows sharing item features) | random"},
    )
    new_user_init: str = field(
        default="zeros",
        metadata={"help": "init of new user rows; zeros = an empty id bag, so an untrained "
                  "new user is served by history alone"},
    )
    heads: list[str] = field(
        default_factory=lambda: ["retrieval"],
        metadata={"help": "heads to attach (see recft.models.heads.HEADS / register_head)"},
    )
    loss: str = field(default="sampled_softmax", metadata={"help": f"one of {LOSSES}"})
    logq_correction: bool = field(
        default=True, metadata={"help": "subtract log item frequency from in-batch logits"}
    )
    temperature: float | None = field(
        default=None, metadata={"help": "softmax temperature (None: the model's own)"}
    )
    num_negatives: int = field(
        default=256,
        metadata={"help": "uniform negatives shared by a batch, besides in-batch ones (bpr "
                  "needs >= 1): a small target's positives cover a sliver of the catalog, "
                  "and without them the rest of it drifts unchecked"},
    )
    user_id_dropout: float = field(
        default=0.0,
        metadata={"help": "share of examples trained without their user id, so users known "
                  "only by their history are served well"},
    )
    sample_weighting: str = field(
        default="none",
        metadata={"help": "none | log1p (of rating / play count) | rating | weights (column)"},
    )
    head_item_downweight: float = field(
        default=0.0,
        metadata={"help": "alpha: example weight x (item popularity)^-alpha, mean 1 "
                  "(0 = off); counters head-item dominance"},
    )
    rating_threshold: float = field(
        default=4.0, metadata={"help": "binary head label: rating (or count) >= threshold"}
    )
    adapter_rank: int = field(default=8, metadata={"help": "rank of adapters when attached"})
    adapter_targets: list[str] = field(
        default_factory=lambda: ["towers", "tables"],
        metadata={"help": f"where adapters go: subset of {ADAPTER_TARGETS}"},
    )
    use_adapters: bool = field(default=False, metadata={"help": "attach adapters before stages"})
    batch_size: int = 512
    min_steps_per_epoch: int = field(
        default=8,
        metadata={"help": "small target data: the batch shrinks (down to 16) so an epoch "
                  "still takes this many optimizer steps"},
    )
    valid_users: int | None = field(
        default=2000, metadata={"help": "users sampled for per-epoch validation (None = all)"}
    )
    seed: int = 0

    def __post_init__(self) -> None:
        self.stages = [s if isinstance(s, Stage) else Stage.from_dict(s, source="stage")
                       for s in self.stages]
        if not self.stages:
            raise ConfigError("recipe needs at least one stage")
        names = [s.name for s in self.stages]
        if len(set(names)) != len(names):
            raise ConfigError(f"stage names must be unique, got {names}")
        _choice("new_id_init", self.new_id_init, NEW_ID_INITS)
        _choice("loss", self.loss, LOSSES)
        _choice("sample_weighting", self.sample_weighting, SAMPLE_WEIGHTINGS)
        self.heads = list(self.heads)
        self.adapter_targets = list(self.adapter_targets)
        for target in self.adapter_targets:
            _choice("adapter_targets", target, ADAPTER_TARGETS)
        _choice("new_user_init", self.new_user_init, NEW_ID_INITS)
        if self.temperature is not None:
            _positive(self, "temperature", self.temperature)
        _positive(self, "num_negatives", self.num_negatives, integer=True, allow_zero=True)
        if self.loss == "bpr" and self.num_negatives < 1:
            raise ConfigError("loss 'bpr' needs num_negatives >= 1")
        for loss, head in (("mse", "rating"), ("bce", "binary")):
            if self.loss == loss and head not in self.heads:
                raise ConfigError(f"loss {loss!r} trains the {head!r} head: add it to heads")
        if not 0.0 <= self.user_id_dropout <= 1.0:
            raise ConfigError(f"user_id_dropout must be in [0, 1], got {self.user_id_dropout}")
        _positive(self, "head_item_downweight", self.head_item_downweight, allow_zero=True)
        _positive(self, "adapter_rank", self.adapter_rank, integer=True)
        _positive(self, "batch_size", self.batch_size, integer=True)
        _positive(self, "min_steps_per_epoch", self.min_steps_per_epoch, integer=True)
        if self.valid_users is not None:
            _positive(self, "valid_users", self.valid_users, integer=True)
        uses_adapters = any(s.trainable == "adapters" for s in self.stages)
        if uses_adapters and not self.use_adapters:
            raise ConfigError("a stage trains 'adapters' but use_adapters is False")

    def to_dict(self) -> dict[str, Any]:
        values = dataclasses.asdict(self)
        values["stages"] = [s.to_dict() for s in self.stages]
        return values

    @classmethod
    def from_dict(cls, values: dict[str, Any], *, source: str = "recipe",
                  strict: bool = False) -> Recipe:
        """Like ``ConfigMixin.from_dict``; stages are read with the same strictness."""
        if isinstance(values, dict) and isinstance(values.get("stages"), list):
            values = {**values, "stages": [
                Stage.from_dict(s, source=f"{source} stage {i + 1}", strict=strict)
                if isinstance(s, dict) else s for i, s in enumerate(values["stages"])]}
        return super().from_dict(values, source=source, strict=strict)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Recipe) and self.to_dict() == other.to_dict()

    def replace(self, **changes: Any) -> Recipe:
        return dataclasses.replace(self, **changes)

    def stage(self, name: str) -> Stage:
        for stage in self.stages:
            if stage.name == name:
                return stage
        raise ConfigError(f"no stage {name!r}; stages are {[s.name for s in self.stages]}")

    # ------------------------------------------------------------------ presets
    @classmethod
    def default(cls, **overrides: Any) -> Recipe:
        """``frozen`` (tables and pretrained towers fixed, new parts train) then ``full``
        (everything, pretrained at 0.1x LR, warm-up, early stopping on valid ndcg@10)."""
        stages = [
            # the first epoch on a small target often dips before improving: patience 3
            Stage("frozen", epochs=5, trainable="new", learning_rate=3e-3,
                  early_stopping_metric="ndcg@10", patience=3),
            Stage("full", epochs=10, trainable="all", learning_rate=1e-3,
                  pretrained_lr_scale=0.1, warmup_steps=50,
                  early_stopping_metric="ndcg@10", patience=3),
        ]
        return cls(stages=stages, **overrides)

    @classmethod
    def frozen_only(cls, epochs: int = 5, **overrides: Any) -> Recipe:
        """Only the parts added for fine-tuning train; every pretrained weight is fixed."""
        stages = [Stage("frozen", epochs=epochs, trainable="new", learning_rate=3e-3,
                        early_stopping_metric="ndcg@10", patience=3)]
        return cls(stages=stages, **overrides)

    @classmethod
    def adapters(cls, rank: int = 8, epochs: int = 10, **overrides: Any) -> Recipe:
        """Low-rank adapters on tower layers and tables (plus the light residual retrieval
        towers); pretrained weights stay fixed. Table factors get a small LR: a row delta
        driven by a few target interactions otherwise overshoots."""
        stages = [Stage("adapters", epochs=epochs, trainable="adapters", learning_rate=3e-3,
                        embedding_learning_rate=0.005, early_stopping_metric="ndcg@10",
                        patience=3)]
        return cls(stages=stages, use_adapters=True, adapter_rank=rank, **overrides)

    @classmethod
    def scratch(cls, epochs: int = 15, **overrides: Any) -> Recipe:
        """One all-parameters stage at full LR: the training budget of a from-scratch run."""
        stages = [Stage("scratch", epochs=epochs, trainable="all", learning_rate=3e-3,
                        early_stopping_metric="ndcg@10", patience=3)]
        overrides.setdefault("heads", [])
        return cls(stages=stages, **overrides)


def _choice(name: str, value: Any, valid: tuple[str, ...]) -> None:
    if value not in valid:
        raise ConfigError(f"{name} must be one of {valid}, got {value!r}")


def _positive(owner: Any, name: str, value: Any, *, integer: bool = False,
              allow_zero: bool = False) -> None:
    label = f"stage {owner.name!r}: " if isinstance(owner, Stage) else ""
    kind = (int,) if integer else (int, float)
    ok = isinstance(value, kind) and not isinstance(value, bool)
    ok = ok and (value >= 0 if allow_zero else value > 0)
    if not ok:
        bound = ">= 0" if allow_zero else "> 0"
        raise ConfigError(f"{label}{name} must be {'an integer' if integer else 'a number'} "
                          f"{bound}, got {value!r}")
