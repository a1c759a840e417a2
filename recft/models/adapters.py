"""Low-rank adapters: LoRA on tower Linear layers and a low-rank delta on embedding tables."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from recft.errors import TrainingError
from recft.models.roles import ParameterRoles

ADAPTER_TARGETS = ("towers", "tables")


class LowRankLinear(nn.Linear):
    """``y = x W^T + b + scale * (x A^T) B^T`` with ``B`` zero at attach time (peft LoRA).

    It *is* an ``nn.Linear`` sharing the wrapped layer's ``weight``/``bias`` Parameters, so
    state-dict keys and pretrained-parameter bookkeeping stay unchanged; only ``lora_down``
    (A, (r, in)) and ``lora_up`` (B, (out, r)) are added.
    """

    def __init__(self, base: nn.Linear, rank: int, alpha: float | None = None) -> None:
        super().__init__(base.in_features, base.out_features, bias=base.bias is not None,
                         device="meta")
        self.weight = base.weight
        self.bias = base.bias
        self.rank = rank
        self.scale = (alpha if alpha is not None else rank) / rank
        device, dtype = base.weight.device, base.weight.dtype
        self.lora_down = nn.Parameter(torch.empty(rank, base.in_features, device=device,
                                                  dtype=dtype))
        nn.init.kaiming_uniform_(self.lora_down, a=math.sqrt(5))
        self.lora_up = nn.Parameter(torch.zeros(base.out_features, rank, device=device,
                                                dtype=dtype))

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        """(B, in) -> (B, out)."""
        delta = F.linear(F.linear(inputs, self.lora_down), self.lora_up)
        return F.linear(inputs, self.weight, self.bias) + self.scale * delta

    def delta_weight(self) -> torch.Tensor:
        """(out, in) the weight change this adapter adds."""
        return self.scale * self.lora_up @ self.lora_down

    def merged(self) -> nn.Linear:
        plain = nn.Linear(self.in_features, self.out_features, bias=self.bias is not None,
                          device="meta")
        with torch.no_grad():
            self.weight.add_(self.delta_weight())
        plain.weight, plain.bias = self.weight, self.bias
        return plain


class LowRankEmbeddingBag(nn.EmbeddingBag):
    """Pooled ``E[row] + scale * U[row] V``: a rank-r delta on every row of a table.

    Sum/mean pooling is linear, so the delta is pooled from ``U`` (rows, r) then projected
    by ``V`` (r, dim); the (rows, dim) table is never materialised. ``U`` starts at zero.
    """

    def __init__(self, base: nn.EmbeddingBag, rank: int, alpha: float | None = None) -> None:
        if base.mode not in ("sum", "mean"):
            raise TrainingError(f"table adapters need sum or mean pooling, got {base.mode!r}")
        super().__init__(base.num_embeddings, base.embedding_dim, mode=base.mode,
                         include_last_offset=base.include_last_offset,
                         padding_idx=base.padding_idx, device="meta")
        self.weight = base.weight
        self.rank = rank
        self.scale = (alpha if alpha is not None else rank) / rank
        device, dtype = base.weight.device, base.weight.dtype
        self.lora_rows = nn.Parameter(torch.zeros(base.num_embeddings, rank, device=device,
                                                  dtype=dtype))
        self.lora_basis = nn.Parameter(
            torch.randn(rank, base.embedding_dim, device=device, dtype=dtype) / math.sqrt(rank)
        )

    def forward(self, input: torch.Tensor, offsets: torch.Tensor | None = None,  # noqa: A002
                per_sample_weights: torch.Tensor | None = None) -> torch.Tensor:
        """Same call as ``nn.EmbeddingBag`` (torchrec passes keywords); (B, dim) pooled."""
        pooled = super().forward(input, offsets, per_sample_weights)
        low = F.embedding_bag(input, self.lora_rows, offsets, mode=self.mode,
                              per_sample_weights=per_sample_weights,
                              include_last_offset=self.include_last_offset,
                              padding_idx=self.padding_idx)
        return pooled + self.scale * low @ self.lora_basis

    def effective_weight(self) -> torch.Tensor:
        """(rows, dim) table with the delta applied (for code that reads rows directly)."""
        return self.weight + self.delta_weight()

    def delta_weight(self) -> torch.Tensor:
        return self.scale * self.lora_rows @ self.lora_basis

    def merged(self) -> nn.EmbeddingBag:
        plain = nn.EmbeddingBag(self.num_embeddings, self.embedding_dim, mode=self.mode,
                                include_last_offset=self.include_last_offset,
                                padding_idx=self.padding_idx, device="meta")
        with torch.no_grad():
            self.weight.add_(self.delta_weight())
        plain.weight = self.weight
        return plain


ADAPTER_TYPES = (LowRankLinear, LowRankEmbeddingBag)


def attach_adapters(model: nn.Module, rank: int = 8, targets: Sequence[str] = ADAPTER_TARGETS,
                    alpha: float | None = None, *,
                    roles: ParameterRoles | None = None) -> list[str]:
    """Wrap every *pretrained* tower Linear and/or embedding table with a low-rank adapter.

    Layers added for fine-tuning (heads) are left alone: they train directly. Train with
    ``Stage(trainable="adapters")``; the pretrained weights then never change and only the
    delta needs saving (``save_adapter``).

    Args:
        rank: r of the low-rank factors.
        targets: subset of ``("towers", "tables")``.
        alpha: LoRA scale numerator (delta scaled by alpha / r); default r (scale 1).
        roles: which parameters are pretrained; default: every current one (attach
            adapters before heads, or pass the roles taken before the heads were added).

    Returns:
        Names of the wrapped modules.
    """
    unknown = set(targets) - set(ADAPTER_TARGETS)
    if unknown:
        raise TrainingError(f"adapter targets must be in {ADAPTER_TARGETS}, got {sorted(unknown)}")
    if rank < 1:
        raise TrainingError(f"adapter rank must be >= 1, got {rank}")
    pretrained = (roles or ParameterRoles.of(model)).pretrained
    wrapped = []
    for name, module in list(model.named_modules()):
        if isinstance(module, ADAPTER_TYPES) or f"{name}.weight" not in pretrained:
            continue
        if isinstance(module, nn.Linear) and "towers" in targets:
            _replace(model, name, LowRankLinear(module, rank, alpha))
        elif isinstance(module, nn.EmbeddingBag) and "tables" in targets:
            _replace(model, name, LowRankEmbeddingBag(module, rank, alpha))
        else:
            continue
        wrapped.append(name)
    if not wrapped:
        raise TrainingError(f"no pretrained layer matches adapter targets {list(targets)}")
    return wrapped


def adapter_modules(model: nn.Module) -> dict[str, nn.Module]:
    return {n: m for n, m in model.named_modules() if isinstance(m, ADAPTER_TYPES)}


def adapter_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """Only the adapter parameters (``*.lora_*``), detached CPU copies."""
    return {n: p.detach().cpu().clone() for n, p in model.named_parameters() if ".lora_" in n}


def merge_adapters(model: nn.Module) -> nn.Module:
    """Fold every adapter into its base weight and restore plain layers (in place).

    Afterwards the model has its original architecture (it saves as a normal checkpoint),
    and gives the same outputs as with the adapters attached (up to float rounding).
    """
    for name, module in list(adapter_modules(model).items()):
        _replace(model, name, module.merged())
    return model


def _replace(root: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = root.get_submodule(parent_name) if parent_name else root
    setattr(parent, child, new)
