"""The one place that decides what a fine-tuning stage trains, and freezes everything else."""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from recft.config import ConfigError
from recft.errors import TrainingError
from recft.models.roles import ADAPTER_MARK, ParameterRoles, table_parameter_names



@dataclass
class TrainableReport:
    """Trainable vs total parameter counts per group after ``set_trainable``.

    Attributes:
        groups: group name -> (trainable, total) scalar counts.
        trainable_names: parameter names with ``requires_grad`` (masked tables included).
        masked_rows: table parameter name -> number of leading (pretrained) rows kept fixed
            by a gradient mask.
    """

    groups: dict[str, tuple[int, int]] = field(default_factory=dict)
    trainable_names: list[str] = field(default_factory=list)
    masked_rows: dict[str, int] = field(default_factory=dict)

    @property
    def trainable_parameters(self) -> int:
        return sum(t for t, _ in self.groups.values())

    @property
    def total_parameters(self) -> int:
        return sum(n for _, n in self.groups.values())

    def to_dict(self) -> dict[str, Any]:
        return {
            "trainable_parameters": self.trainable_parameters,
            "total_parameters": self.total_parameters,
            "groups": {k: {"trainable": t, "total": n} for k, (t, n) in self.groups.items()},
        }

    def table(self) -> str:
        """A plain-text table "group | trainable | total | %" with a total line."""
        width = max([len("group"), *(len(k) for k in self.groups)])
        lines = [f"{'group':<{width}}  {'trainable':>12}  {'total':>12}  {'%':>6}"]
        rows = [*self.groups.items(), ("all", (self.trainable_parameters,
                                               self.total_parameters))]
        for name, (trainable, total) in rows:
            share = 100.0 * trainable / total if total else 0.0
            lines.append(f"{name:<{width}}  {trainable:>12,}  {total:>12,}  {share:>6.2f}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()


def group_of(name: str, tables: set[str]) -> str:
    """Report group of a parameter: ``table:<name>``, ``adapters`` or its top module."""
    if ADAPTER_MARK in name:
        return "adapters"
    if name in tables:
        parts = name.split(".")
        return f"table:{parts[-2] if len(parts) >= 2 else name}"
    return name.split(".")[0]


# ---------------------------------------------------------------------- freezing
def resolve_trainable(model: nn.Module, trainable: str | list[str], roles: ParameterRoles,
                      *, freeze_tower_layers: bool = True,
                      train_only_new_rows: bool = False) -> set[str]:
    """Names of the parameters a stage trains (before gradual unfreezing).

    Args:
        trainable: ``"all"``, ``"new"`` (not in the pretrained record), ``"adapters"``
            (adapters plus other new parts; needs attached adapters), or fnmatch patterns.
        freeze_tower_layers: with ``"new"``, False also trains pretrained non-table layers.
        train_only_new_rows: grown tables train (the optimizer keeps their pretrained rows);
            other pretrained tables are frozen whatever ``trainable`` says.
    """
    names = [n for n, _ in model.named_parameters()]
    pretrained = roles.pretrained
    tables = table_parameter_names(model)
    grown = dict(roles.first_new_rows)
    if isinstance(trainable, list):
        chosen = {n for n in names if any(fnmatch.fnmatchcase(n, p) for p in trainable)}
        if not chosen:  # a recipe typo: bad input (exit 2), not a failed run
            raise ConfigError(
                f"trainable patterns {trainable} match no parameter; names look like "
                f"{names[:6]}"
            )
    elif trainable == "all":
        chosen = set(names)
    elif trainable in ("new", "adapters"):
        if trainable == "adapters" and not any(ADAPTER_MARK in n for n in names):
            raise TrainingError("trainable='adapters' but the model has no adapters; call "
                                "recft.finetune.attach_adapters first (Recipe.use_adapters)")
        chosen = {n for n in names if n not in pretrained}
        if trainable == "new" and not freeze_tower_layers:
            chosen |= {n for n in names if n in pretrained and n not in tables}
    else:
        raise TrainingError(f"trainable must be one of ('new', 'all', 'adapters') or a list "
                            f"of patterns, got {trainable!r}")
    if train_only_new_rows:
        # pretrained tables train only through their appended rows (held by the optimizer)
        chosen = (chosen - (tables & pretrained)) | set(grown)
    return chosen


def set_trainable(model: nn.Module, trainable: str | list[str] | set[str],
                  roles: ParameterRoles | None = None, *, freeze_tower_layers: bool = True,
                  train_only_new_rows: bool = False, verbose: bool = False) -> TrainableReport:
    """Freeze every parameter except those ``trainable`` selects; report the counts.

    Frozen parameters get ``requires_grad=False``, and every parameter loses any
    in-backward optimizer left by pretraining, so no gradient and no optimizer can touch a
    frozen one: it stays bit-for-bit identical. With ``train_only_new_rows`` a grown table
    trains, but ``report.masked_rows`` tells the optimizers to keep its pretrained rows
    fixed (``recft.train.optimizers``); pretrained tables that did not grow stay frozen.

    Args:
        trainable: keyword or patterns (see ``resolve_trainable``), or an explicit name set.
        roles: pretrained vs new parameters; default: every parameter is pretrained.

    Raises:
        TrainingError: nothing would train.
    """
    roles = roles or ParameterRoles.of(model)
    if isinstance(trainable, set):
        chosen = set(trainable)
    else:
        chosen = resolve_trainable(model, trainable, roles,
                                   freeze_tower_layers=freeze_tower_layers,
                                   train_only_new_rows=train_only_new_rows)
    tables = table_parameter_names(model)
    report = TrainableReport()
    for name, param in model.named_parameters():
        train = name in chosen
        param.requires_grad_(train)
        # an optimizer left in backward by pretraining would step frozen tables, or step
        # trainable ones a second time at the pretraining LR: the stage owns every update
        detach_fused_optimizers(param)
        trainable_count = param.numel() if train else 0
        # a grown pretrained table under train_only_new_rows: only the new rows may move
        old = roles.first_new_rows.get(name)
        if train and train_only_new_rows and old is not None and roles.is_pretrained(name):
            report.masked_rows[name] = old
            trainable_count = (param.shape[0] - old) * (param.numel() // max(param.shape[0], 1))
        if train:
            report.trainable_names.append(name)
        group = group_of(name, tables)
        done, total = report.groups.get(group, (0, 0))
        report.groups[group] = (done + trainable_count, total + param.numel())
    if report.trainable_parameters == 0:
        raise TrainingError(
            f"this stage trains nothing (trainable={trainable!r}, train_only_new_rows="
            f"{train_only_new_rows}): 'new' needs heads, adapters or grown tables; use "
            "'all', 'adapters' or patterns matching parameter names"
        )
    if verbose:
        print("trainable vs total parameters\n" + report.table())
    return report


def detach_fused_optimizers(param: nn.Parameter) -> None:
    """Remove optimizers applied in backward (torchrec/pretraining) from ``param``.

    Such an optimizer steps from a hook on the parameter's gradient accumulator, outside any
    optimizer we build, so a table we freeze must not keep one.
    """
    from torch.distributed.optim import apply_optimizer_in_backward as in_backward

    for handle in in_backward.param_to_optim_hook_handle_map.pop(param, []):
        handle.remove()
    in_backward.param_to_acc_grad_map.pop(param, None)
    for attr in ("_in_backward_optimizers", "_optimizer_classes", "_optimizer_kwargs"):
        if hasattr(param, attr):
            delattr(param, attr)


# ---------------------------------------------------------------------- unfreezing order
def unfreeze_groups(model: nn.Module, names: Iterable[str],
                    roles: ParameterRoles) -> list[list[str]]:
    """Split trainable ``names`` into groups for gradual unfreezing, top of the network first.

    Group 0 is everything new (heads, adapters, grown-but-new parts); then pretrained dense
    layers by depth from the output down (the last Linear of every tower together, then the
    one before, ...); the embedding tables come last.
    """
    names = set(names)
    pretrained = roles.pretrained
    tables = table_parameter_names(model)
    groups: list[list[str]] = [sorted(n for n in names if n not in pretrained)]
    # depth of each pretrained Linear from the top of its tower
    towers: dict[str, list[str]] = {}
    for module_name, module in model.named_modules():
        if isinstance(module, nn.Linear) and f"{module_name}.weight" in pretrained:
            towers.setdefault(module_name.split(".")[0], []).append(module_name)
    depth_of: dict[str, int] = {}
    for layers in towers.values():
        for depth, layer in enumerate(reversed(layers)):
            depth_of[layer] = depth
    by_depth: dict[int, list[str]] = {}
    others = []
    for name in sorted(names & pretrained):
        if name in tables:
            continue
        layer = name.rsplit(".", 1)[0]
        if layer in depth_of:
            by_depth.setdefault(depth_of[layer], []).append(name)
        else:
            others.append(name)
    groups += [by_depth[d] for d in sorted(by_depth)]
    if others:
        groups.append(others)
    groups.append(sorted(names & pretrained & tables))
    return [g for g in groups if g]
