"""Resumable fine-tuning: what ``finetune(resume_dir=...)`` saves after every epoch.

The state is one directory written atomically (``recft.train.state``): a safetensors file
with the model's state dict (``model/``), the running stage's optimizer state (``optim/``),
its best-weights snapshot (``best/``) and the RNG states (``rng/``), plus a JSON file with
the stage index, finished epochs, early-stopping counters, every stage's history, the
optimizers' scalar state and a fingerprint of the inputs. Nothing is pickled.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from recft.data.interactions import Interactions
from recft.errors import CheckpointError
from recft.finetune.loop import StageHistory, StageProgress
from recft.finetune.optimizers import StageOptimizers
from recft.finetune.recipe import Recipe
from recft.train.state import (
    as_json,
    data_fingerprint,
    load_training_state,
    save_training_state,
    split_prefix,
)

FORMAT = 1  # bumped when the saved layout changes, so old states are refused clearly


@dataclass
class ResumePoint:
    """Where a saved fine-tuning run stands.

    Attributes:
        histories: the histories of the finished stages.
        current: the progress of the stage that was running (None between stages).
    """

    histories: list[StageHistory]
    current: StageProgress | None


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
        resume.save(model, histories, current, optimizers)
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
        _set_rng(tensors, meta["rng"])
        histories = [StageHistory(**h) for h in meta["histories"]]
        current = None
        if meta["current"] is not None:
            saved = meta["current"]
            current = StageProgress(
                StageHistory(**saved["history"]), saved["epochs_done"], saved["bad_epochs"],
                split_prefix(tensors, "best/") if saved["has_best"] else None,
                saved["elapsed"], (split_prefix(tensors, "optim/"), saved["optimizers"]),
            )
        return ResumePoint(histories, current)

    def save(self, model: nn.Module, histories: list[StageHistory],
             current: StageProgress | None = None,
             optimizers: StageOptimizers | None = None) -> None:
        """Write the run's state: after an epoch of a running stage (``current`` and its
        ``optimizers``) or after a finished stage (``current`` None)."""
        tensors = {f"model/{k}": v for k, v in model.state_dict().items()}
        rng_tensors, rng_meta = _get_rng()
        tensors.update(rng_tensors)
        saved_current = None
        if current is not None:
            if optimizers is None:
                raise ValueError("saving a running stage needs its optimizers")
            optim_tensors, optim_meta = optimizers.state_tensors()
            tensors.update({f"optim/{k}": v for k, v in optim_tensors.items()})
            tensors.update({f"best/{k}": v for k, v in (current.best_state or {}).items()})
            saved_current = {
                "history": current.history.to_dict(), "epochs_done": current.epochs_done,
                "bad_epochs": current.bad_epochs, "elapsed": current.elapsed,
                "has_best": current.best_state is not None, "optimizers": optim_meta,
            }
        meta = {"fingerprint": self.identity, "stage": len(histories), "rng": rng_meta,
                "histories": [h.to_dict() for h in histories], "current": saved_current}
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


def _get_rng() -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """torch, numpy (global) and Python RNG states: dropout draws from torch's, and the
    other two are kept so that user code relying on them resumes the same way too."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    tensors = {"rng/torch": torch.get_rng_state(),
               "rng/numpy": torch.from_numpy(keys.astype(np.int64))}
    meta = {"numpy": [kind, int(pos), int(has_gauss), float(gauss)],
            "python": [version, list(internal), gauss_next]}
    return tensors, meta


def _set_rng(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    torch.set_rng_state(tensors["rng/torch"])
    kind, pos, has_gauss, gauss = meta["numpy"]
    np.random.set_state((kind, tensors["rng/numpy"].numpy().astype(np.uint32), pos, has_gauss,
                         gauss))
    version, internal, gauss_next = meta["python"]
    random.setstate((version, tuple(internal), gauss_next))


__all__ = ["FinetuneResume", "ResumePoint", "fingerprint"]
