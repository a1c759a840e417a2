"""Resumable sharded fine-tuning: what ``finetune(resume_dir=..., distributed=...)`` saves.

The state is the one sharded pretraining writes (``recft.train.sharded_state``: written
with ``torch.distributed.checkpoint``, each rank its own shards, swapped in atomically by
rank 0), of the two kinds a single-process fine-tuning keeps (``recft.finetune.resume``):

- inside a stage, what ``fit`` saves (the tables' shards and their fused optimizer state,
  dense layers, best weights, each rank's RNG), written and read back once the stage has
  sharded its tables (``stage``: the hook ``run_stage`` calls with its optimizers);
- between stages, the whole model every rank then holds (written once) and each rank's
  RNG.

Both carry the run's fingerprint (base weights, recipe, data), the stage index and the
finished stages' histories. Resuming needs the same number of processes and the same
sharding plan (checked, one-line errors).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from torch import nn

from recft.errors import CheckpointError
from recft.finetune.resume import ResumePoint
from recft.train.distributed import Distributed
from recft.train.fit import LoopState
from recft.train.history import History
from recft.train.rng import rng_state, set_rng_state
from recft.train.sharded_state import (
    load_sharded_state,
    save_sharded_state,
    saved_meta,
    sharded_resume,
)

IN_STAGE = LoopState({}, {"loaded": "by the stage, once it has sharded its tables"})
"""``ResumePoint.current`` of a state saved inside a stage (``stage`` loads it)."""


class ShardedFinetuneResume:
    """``FinetuneResume``'s ``load`` and ``save_between``, plus ``stage`` for the running
    stage; every method is a collective (every rank calls it alike).

    Example::

        resume = ShardedFinetuneResume(resume_dir, fingerprint(...), context)
        point = resume.load(model)
        run_stage(..., sharded_resume=resume.stage(index, finished, resuming=...))
        resume.save_between(model, histories)
    """

    def __init__(self, resume_dir: str | Path, identity: dict[str, Any],
                 context: Distributed) -> None:
        self.resume_dir, self.identity, self.context = Path(resume_dir), identity, context

    def load(self, model: nn.Module) -> ResumePoint | None:
        """Where the saved run stands; between stages the saved weights (and this rank's
        RNG) are loaded into ``model`` here. None when nothing is saved yet.

        Raises:
            CheckpointError: unreadable, from another process count, or for other inputs.
        """
        meta = saved_meta(self.resume_dir, self.context)
        if meta is None:
            return None
        saved = meta.get("identity") or {}
        if saved.get("finetune") != self.identity:
            raise CheckpointError(f"{self.resume_dir}: saved state is not this sharded "
                                  "fine-tuning's (other base, recipe or data); use another "
                                  "resume folder or the same inputs")
        histories = [History.from_dict(h) for h in (meta.get("extra") or {})["histories"]]
        if saved.get("inside_stage"):
            return ResumePoint(histories, IN_STAGE)
        targets = {f"model/{k}": v for k, v in model.state_dict().items()}
        state = load_sharded_state(self.resume_dir, self.context,
                                   self._identity(len(histories), False), targets)
        assert state is not None  # saved_meta found it
        set_rng_state(state.tensors, state.meta["rng"])
        return ResumePoint(histories, None)

    def stage(self, index: int, finished: list[History], resuming: bool
              ) -> Callable[[Any], tuple[LoopState | None, Callable[[LoopState], None]]]:
        """``run_stage``'s hook for stage ``index``: given the stage's sharded optimizers,
        ``fit``'s ``start`` (the saved state when ``resuming``) and ``save``."""
        identity = self._identity(index, True)
        extra = {"histories": [h.to_dict() for h in finished]}

        def hook(optimizers: Any) -> tuple[LoopState | None, Callable[[LoopState], None]]:
            return sharded_resume(self.resume_dir, self.context, optimizers, identity,
                                  load=resuming, extra=extra)

        return hook

    def save_between(self, model: nn.Module, histories: list[History]) -> None:
        """After a finished stage (best weights restored, the whole model on every rank)."""
        tensors, rng = rng_state()
        tensors.update({f"model/{k}": v for k, v in model.state_dict().items()})
        save_sharded_state(self.resume_dir, self.context, LoopState(tensors, {"rng": rng}),
                           self._identity(len(histories), False),
                           {"histories": [h.to_dict() for h in histories]})

    def _identity(self, stage: int, inside_stage: bool) -> dict[str, Any]:
        return {"finetune": self.identity, "stage": stage, "inside_stage": inside_stage}


__all__ = ["IN_STAGE", "ShardedFinetuneResume"]
