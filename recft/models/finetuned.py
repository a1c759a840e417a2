"""FineTunedTwoTower: a TwoTower carrying heads added for fine-tuning, saved and loaded whole."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torchrec.sparse.jagged_tensor import KeyedJaggedTensor

from recft.errors import TrainingError
from recft.models.heads import RETRIEVAL, build_head
from recft.models.checkpoint import register_model
from recft.models.two_tower import TwoTower, TwoTowerConfig

MODEL_TYPE = "two_tower_finetuned"


@dataclass
class FineTunedTwoTowerConfig(TwoTowerConfig):
    """A TwoTowerConfig plus the heads attached for fine-tuning.

    ``heads`` maps a head's name to ``{"kind": <registered kind>, **factory options}``.
    """

    heads: dict[str, dict[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__post_init__()
        for name, spec in self.heads.items():
            if not isinstance(spec, dict) or "kind" not in spec:
                raise TrainingError(f"head {name!r} needs a spec {{'kind': ..., options}}, "
                                    f"got {spec!r}")


@register_model(MODEL_TYPE)
class FineTunedTwoTower(TwoTower):
    """TwoTower whose encoders include an optional residual retrieval tower pair and which
    holds task heads (rating, binary, yours) in ``heads``.

    Built by :func:`attach_heads`; ``load_pretrained`` rebuilds the heads from the config.
    """

    model_type = MODEL_TYPE
    config_class = FineTunedTwoTowerConfig

    def __init__(self, config: FineTunedTwoTowerConfig, user_vocab: Any, item_vocab: Any,
                 item_features: Any = None, user_features: Any = None) -> None:
        super().__init__(config, user_vocab, item_vocab, item_features=item_features,
                         user_features=user_features)
        self.heads = nn.ModuleDict()
        for name, spec in self.config.heads.items():
            options = {k: v for k, v in spec.items() if k != "kind"}
            self.heads[name] = build_head(self, spec["kind"], options)

    @property
    def residual_towers(self) -> nn.Module | None:
        for name, spec in self.config.heads.items():
            if spec["kind"] == RETRIEVAL:
                return self.heads[name]
        return None

    def task_heads(self) -> dict[str, nn.Module]:
        """Heads that score (user, item) pairs: everything but the retrieval towers."""
        return {n: self.heads[n] for n, s in self.config.heads.items() if s["kind"] != RETRIEVAL}

    # ------------------------------------------------------------------ encoders
    def _user_output(self, user_base: torch.Tensor) -> torch.Tensor:
        output = self.user_tower(user_base)
        residual = self.residual_towers
        return output if residual is None else output + residual.user_delta(user_base)

    def _item_output(self, item_base: torch.Tensor) -> torch.Tensor:
        output = self.item_tower(item_base)
        residual = self.residual_towers
        return output if residual is None else output + residual.item_delta(item_base)

    def forward(self, user_features: KeyedJaggedTensor,
                item_features: KeyedJaggedTensor) -> tuple[torch.Tensor, torch.Tensor]:
        user_base, item_base = self.base_representations(user_features, item_features)
        return (self._finish(self._user_output(user_base)),
                self._finish(self._item_output(item_base)))

    def encode_item_features(self, item_features: KeyedJaggedTensor) -> torch.Tensor:
        return self._finish(self._item_output(self._item_base(item_features)))

    def encode_user_features(self, user_features: KeyedJaggedTensor,
                             item_features: KeyedJaggedTensor) -> torch.Tensor:
        user_base, _ = self.base_representations(user_features, item_features)
        return self._finish(self._user_output(user_base))


def attach_heads(model: TwoTower, heads: Sequence[str] | Mapping[str, dict[str, Any]],
                 ) -> TwoTower:
    """Return ``model`` with new heads, sharing every pretrained module (no weight copies).

    Args:
        model: a TwoTower (or an already fine-tuned one, whose heads are kept).
        heads: kinds (``["retrieval", "rating"]``, each named after its kind) or
            ``{name: {"kind": kind, **options}}``.

    Returns:
        ``model`` itself when ``heads`` is empty, else a FineTunedTwoTower sharing its
        modules; the heads' parameters are the only new names (see ``ParameterRoles``).
    """
    specs = {h: {"kind": h} for h in heads} if not isinstance(heads, Mapping) else \
        {n: dict(s) for n, s in heads.items()}
    if not specs:
        return model
    existing = dict(getattr(model.config, "heads", {}) or {})
    clash = sorted(set(specs) & set(existing))
    if clash:
        raise TrainingError(f"heads {clash} are already attached")
    values = {f.name: getattr(model.config, f.name) for f in dataclasses.fields(TwoTowerConfig)}
    config = FineTunedTwoTowerConfig(**values, heads={**existing, **specs})
    # the constructor builds fresh tables; they are replaced by the model's own below
    new = FineTunedTwoTower(config, model.user_vocab, model.item_vocab,
                            item_features=model.item_features, user_features=model.user_features)
    for name, module in model.named_children():
        if name == "heads":
            for head_name, head in module.items():
                new.heads[head_name] = head
        else:
            setattr(new, name, module)
    new.item_attributes = getattr(model, "item_attributes", None)
    new.text_encoder = getattr(model, "text_encoder", None)
    return new.train(model.training)
