"""History: what one training run (pretraining, or one fine-tuning stage) did, epoch by epoch."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any


@dataclass
class History:
    """Per-epoch record of a run of ``recft.train.fit`` (JSON-ready through ``to_dict``).

    Attributes:
        name: the run (``pretrain``, or the fine-tuning stage's name).
        loss: mean training loss per epoch.
        throughput: training examples per second per epoch (validation excluded).
        epoch_seconds: training seconds per epoch (validation excluded).
        valid: validation metrics after each epoch (empty without validation data).
        initial_valid: metrics of the starting weights, when they are a candidate.
        trainable_per_epoch: scalars that could change in each epoch (gradual unfreezing).
        trainable_parameters / total_parameters / groups: at the run's widest; ``groups``
            maps a parameter group to ``{"trainable", "total"}``.
        examples_seen: training examples processed.
        optimizer_state_bytes: optimizer state (moments, accumulators) at the end of the
            run; frozen parameters have none.
        best_epoch: 1-based epoch whose weights were kept; 0: the starting weights were
            never beaten; None: no validation.
        stopped_early: early stopping ended the run.
        wall_seconds: seconds including validation, summed across resumptions.
    """

    name: str = "train"
    loss: list[float] = field(default_factory=list)
    throughput: list[float] = field(default_factory=list)
    epoch_seconds: list[float] = field(default_factory=list)
    valid: list[dict[str, float]] = field(default_factory=list)
    initial_valid: dict[str, float] | None = None
    trainable_per_epoch: list[int] = field(default_factory=list)
    trainable_parameters: int = 0
    total_parameters: int = 0
    groups: dict[str, dict[str, int]] = field(default_factory=dict)
    examples_seen: int = 0
    optimizer_state_bytes: int = 0
    best_epoch: int | None = None
    best_metric: float | None = None
    stopped_early: bool = False
    wall_seconds: float = 0.0

    @property
    def wall_time(self) -> float:
        """Alias of ``wall_seconds`` (the name pretraining histories used)."""
        return self.wall_seconds

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> History:
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})


__all__ = ["History"]
