"""Resumable fine-tuning: what ``finetune(resume_dir=...)`` saves.

The state is one directory written atomically (``recft.train.state``): a safetensors file
with the model's state dict and, inside a running stage, what ``recft.train.fit`` saves
(optimizer state, best weights, every RNG), plus a JSON file with the stage index, the
finished stages' histories, the running stage's loop state and a fingerprint of the
inputs. Nothing is pickled.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from recft.data.interactions import Interactions
from recft.errors import CheckpointError
from recft.finetune.recipe import Recipe
from recft.train.fit import LoopState
from recft.train.history import History
from recft.train.rng import rng_state, set_rng_state
from recft.train.state import (
    as_json,
    data_fingerprint,
    load_training_state,
    save_training_state,
    split_prefix,
)

FORMAT = 2  # bumped when the saved layout changes, so old states are refused clearly


@dataclass
class ResumePoint:
    """Where a saved fine-tuning run stands.

    Attributes:
        histories: the histories of the finished stages.
        current: the loop state of the stage that was running (None between stages).
    """

    histories: list[History]
    current: LoopState | None


def fingerprint(model: nn.Module, recipe: Recipe, train: Interactions,
                valid: Interactions | None, base: str | Path | None) -> dict[str, Any]:
    """Identity of a fine-tuning run's inputs, taken from the base model before it is
    modified: a resumed run must start from the same weights, recipe and data, or its
    result would silently mix two runs."""
    weights = sum(float(t.detach().double().sum()) for t in model.state_dict().values()
                  if t.is_floating_point())
    config = model.config.to_dict() if hasattr(model, "config") else None
    return as_json({
        "format": FORMAT, "recipe": recipe.to_dict(), "base": None if base is None else str(base),
        "model": {"config": config, "weights_sum": weights},
        "train": data_fingerprint(train),
        "valid": None if valid is None or not len(valid) else data_fingerprint(valid),
    })


class FinetuneResume:
    """Saves and restores a fine-tuning run's state in ``resume_dir``.

    Example::

        resume = FinetuneResume(resume_dir, fingerprint(model, recipe, train, valid, base))
        point = resume.load(model)          # after heads/adapters are attached
        ...
        resume.save_stage(histories, loop_state)     # inside a stage (fit's save callback)
        resume.save_between(model, histories)        # after a finished stage
    """

    def __init__(self, resume_dir: str | Path, identity: dict[str, Any]) -> None:
        self.resume_dir = Path(resume_dir)
        self.identity = identity

    def load(self, model: nn.Module) -> ResumePoint | None:
        """Load the saved weights into ``model`` and the RNG states; None when nothing is
        saved yet.

        Raises:
            CheckpointError: the state is unreadable or was saved for other inputs.
        """
        state = load_training_state(self.resume_dir)
        if state is None:
            return None
        tensors, meta = state
        self._check(meta.get("fingerprint"))
        try:
            model.load_state_dict(split_prefix(tensors, "model/"))
        except RuntimeError as error:
            raise CheckpointError(f"{self.resume_dir}: saved weights do not fit the model: "
                                  f"{error}") from None
        histories = [History.from_dict(h) for h in meta["histories"]]
        if meta["loop"] is None:
            set_rng_state(tensors, meta["rng"])
            return ResumePoint(histories, None)
        return ResumePoint(histories, LoopState(tensors, meta["loop"]))

    def save_stage(self, histories: list[History], state: LoopState) -> None:
        """Inside a running stage: the finished stages' histories and ``fit``'s state."""
        self._write(state.tensors, histories, state.meta, {})

    def save_between(self, model: nn.Module, histories: list[History]) -> None:
        """After a finished stage (its best weights restored)."""
        tensors, meta = rng_state()
        tensors.update({f"model/{k}": v for k, v in model.state_dict().items()})
        self._write(tensors, histories, None, meta)

    def _write(self, tensors: dict[str, Any], histories: list[History],
               loop: dict[str, Any] | None, rng: dict[str, Any]) -> None:
        meta = {"fingerprint": self.identity, "stage": len(histories), "rng": rng,
                "histories": [h.to_dict() for h in histories], "loop": loop}
        save_training_state(self.resume_dir, tensors, meta)

    def _check(self, saved: dict[str, Any] | None) -> None:
        if saved == self.identity:
            return
        if saved is None or saved.get("format") != FORMAT:
            raise CheckpointError(f"{self.resume_dir}: not a fine-tuning state of this version; "
                                  "use another resume_dir")
        changed = sorted(k for k in self.identity if saved.get(k) != self.identity[k])
        raise CheckpointError(f"{self.resume_dir}: saved fine-tuning state is for other inputs "
                              f"(different {', '.join(changed)}); use another resume_dir or "
                              "the same base, recipe and data")


__all__ = ["FinetuneResume", "ResumePoint", "fingerprint"]
