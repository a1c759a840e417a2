"""ParameterRoles: which parameters of a model came from its checkpoint and which are new.

Fine-tuning treats the two differently (frozen first, lower learning rates later, adapter
deltas saved against the base), so the distinction is an explicit value passed to whoever
needs it, never state hidden on the model.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from torch import nn

ADAPTER_MARK = "lora_"  # every adapter parameter name contains this fragment


@dataclass(frozen=True)
class ParameterRoles:
    """The pretrained parameters of a model and the new rows of its grown tables.

    Attributes:
        pretrained: names of parameters loaded from the base checkpoint; everything added
            later (heads, adapters) is new.
        first_new_rows: table parameter name -> first row appended for ids the checkpoint
            had not seen (rows before it are pretrained).

    Example::

        roles = ParameterRoles.of(model)                       # before anything is added
        alignment = align_vocabulary(model, target)
        roles = roles.with_new_rows(alignment.first_new_rows)
    """

    pretrained: frozenset[str]
    first_new_rows: Mapping[str, int] = field(default_factory=dict)

    @classmethod
    def of(cls, model: nn.Module) -> ParameterRoles:
        """Every current parameter of ``model`` counts as pretrained."""
        return cls(frozenset(name for name, _ in model.named_parameters()))

    def with_new_rows(self, first_new_rows: Mapping[str, int]) -> ParameterRoles:
        """These roles plus grown tables; a table grown twice keeps its first boundary,
        since only the checkpoint's rows are pretrained."""
        rows = dict(first_new_rows)
        rows.update(self.first_new_rows)
        return ParameterRoles(self.pretrained, rows)

    def is_pretrained(self, name: str) -> bool:
        return name in self.pretrained


def table_parameter_names(model: nn.Module) -> set[str]:
    """Names of parameters that are embedding tables (EBC / EmbeddingBag / Embedding)."""
    names = set()
    for module_name, module in model.named_modules():
        if isinstance(module, (nn.EmbeddingBag, nn.Embedding)):
            prefix = f"{module_name}." if module_name else ""
            names.add(f"{prefix}weight")
    return names


def is_row_indexed(name: str, tables: set[str]) -> bool:
    """A table, or an adapter's per-row factor (looked up by id like a table)."""
    return name in tables or name.endswith(f"{ADAPTER_MARK}rows")


__all__ = ["ADAPTER_MARK", "ParameterRoles", "is_row_indexed", "table_parameter_names"]
