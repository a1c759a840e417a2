"""Model card (a checkpoint's README.md) rendered from config.json and training.json."""

from __future__ import annotations

import math
import numbers
from typing import Any

FILE_DESCRIPTIONS = {
    "README.md": "this model card",
    "config.json": "model type, architecture, format/recft versions, sizes, tensor manifest",
    "model.safetensors": "all weights (safetensors; no pickle)",
    "training.json": "data, split, seed, metrics, library versions, hardware, wall time",
    "checksums.json": "sha256 of every file; written last, marks the checkpoint complete",
    "vocab/users.json": "user vocabulary: raw user id of every embedding row",
    "vocab/items.json": "item vocabulary: raw item id of every embedding row",
    "vocab/item_features.safetensors": "item side features (jagged offsets/values/weights)",
    "vocab/item_features.json": "value vocabularies of the item side features",
    "vocab/user_features.safetensors": "user side features (jagged offsets/values/weights)",
    "vocab/user_features.json": "value vocabularies of the user side features",
    "vocab/item_attributes.parquet": "item display attributes (titles etc.)",
}

_NOT_RECORDED = "not recorded"


def render_model_card(meta: dict[str, Any], training: dict[str, Any], files: list[str]) -> str:
    """Markdown model card for a checkpoint.

    Args:
        meta: the content of ``config.json``.
        training: the content of ``training.json``; recognised keys are ``name``,
            ``description``, ``dataset``, ``split``, ``seed``, ``protocol``, ``metrics``,
            ``wall_time_s``, ``intended_use`` and ``limitations`` (all optional).
        files: the checkpoint's files, relative POSIX paths.
    """
    sizes = meta.get("sizes", {})
    model_class = meta.get("model_class", "recft.models.two_tower.TwoTower")
    module, _, class_name = model_class.rpartition(".")
    title = training.get("name") or f"recft {meta['model_type']} recommender"
    protocol = training.get("protocol") or {}
    lines = [
        f"# {title}",
        "",
        training.get("description") or (
            f"A `{meta['model_type']}` retrieval model saved by recft {meta['recft_version']} "
            f"(checkpoint format {meta['format_version']}). Users and items are embedded into "
            "one space by torchrec embedding tables and tower MLPs; a user's score for an item "
            "is the similarity of the two embeddings."
        ),
        "",
        "## Model",
        "",
        f"- Users: {sizes.get('num_users', '?'):,}; items: {sizes.get('num_items', '?'):,}",
        f"- Parameters: {sizes.get('num_parameters', 0):,}",
        *_feature_lines(sizes),
        "- Architecture:",
        *(f"  - `{key}`: `{value}`" for key, value in sorted(meta.get("architecture", {}).items())),
        "",
        "## Training data",
        "",
        f"- Dataset: {_describe(training.get('dataset'))}",
        f"- Wall time: {_wall_time(training)}",
        f"- Saved: {training.get('saved_at', _NOT_RECORDED)} with "
        + ", ".join(f"{k} {v}" for k, v in sorted((training.get("versions") or {}).items())),
        "",
        "## Evaluation protocol",
        "",
        f"- Split: {_describe(training.get('split'))}",
        f"- Seed: {training.get('seed', _NOT_RECORDED)}",
        f"- Ranking: {_ranking(protocol, sizes)}",
        f"- Seen-item exclusion: {_exclusion(protocol)}",
        *(f"- {key.replace('_', ' ').capitalize()}: {_describe(value)}"
          for key, value in sorted(protocol.items())
          if key not in ("ranking", "full_ranking", "exclude_seen")),
        "",
        "## Metrics",
        "",
        metrics_table(training.get("metrics")),
        "",
        "## Intended use",
        "",
        training.get("intended_use") or (
            "Candidate retrieval and ranking for the users and items in this checkpoint's "
            "vocabularies, and a starting point for fine-tuning on a related domain with "
            "`recft.finetune`. Scores are comparable within one user, not across users."
        ),
        "",
        "## Limitations",
        "",
        training.get("limitations") or (
            "Trained on the interactions above only: it reflects that data's popularity and "
            "selection biases. Items absent from the item vocabulary cannot be recommended "
            "until the model is fine-tuned with them; users absent from the user vocabulary "
            "are served only from their interaction history. The metrics hold for the stated "
            "split and protocol and do not predict online performance."
        ),
        "",
        "## How to load",
        "",
        "```python",
        f"from {module} import {class_name}",
        "",
        f'model = {class_name}.from_pretrained("path/to/this/directory")',
        "```",
        "",
        "Loading validates the format version, checksums, vocabularies and every tensor's "
        "shape, and reads weights with safetensors only (nothing is unpickled).",
        "",
        "## Files",
        "",
        "| File | Contents |",
        "| --- | --- |",
        *(f"| `{name}` | {FILE_DESCRIPTIONS.get(name, '')} |" for name in files),
        "",
    ]
    return "\n".join(lines)


def metrics_table(metrics: Any) -> str:
    """Markdown table of flat ``{metric: value}`` or nested ``{row: {metric: value}}`` metrics."""
    if not metrics:
        return "No metrics were recorded."
    if not isinstance(metrics, dict):
        return _describe(metrics)
    flat = {k: v for k, v in metrics.items() if not isinstance(v, dict)}
    nested = {k: v for k, v in metrics.items() if isinstance(v, dict)}
    if not nested:
        rows = [f"| {name} | {_number(value)} |" for name, value in flat.items()]
        return "\n".join(["| Metric | Value |", "| --- | ---: |", *rows])
    if flat:
        nested = {"all": flat, **nested}
    columns: list[str] = []
    for values in nested.values():
        columns += [c for c in values if c not in columns]
    lines = ["| | " + " | ".join(columns) + " |", "| --- |" + " ---: |" * len(columns)]
    for row, values in nested.items():
        lines.append(f"| {row} | " + " | ".join(_number(values.get(c)) for c in columns) + " |")
    return "\n".join(lines)


def _number(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return str(value)
    if isinstance(value, numbers.Integral):
        return f"{value:,}"
    return f"{value:.4f}"


def _describe(value: Any) -> str:
    if value is None or value == {}:
        return _NOT_RECORDED
    if isinstance(value, dict):
        return "; ".join(f"{k}={_describe(v)}" for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return ", ".join(_describe(v) for v in value)
    return str(value)


def _feature_lines(sizes: dict[str, Any]) -> list[str]:
    lines = []
    for what in ("item", "user"):
        features = sizes.get(f"{what}_features") or {}
        if features:
            listed = ", ".join(f"{name} ({count:,} values)" for name, count in features.items())
            lines.append(f"- {what.capitalize()} features: {listed}")
    return lines


def _wall_time(training: dict[str, Any]) -> str:
    seconds = training.get("wall_time_s", training.get("wall_time"))
    if not isinstance(seconds, (int, float)):
        return _NOT_RECORDED if seconds is None else str(seconds)
    return f"{seconds:.1f} s" + (f" on {training['hardware'].get('cuda') or 'CPU'}"
                                 if isinstance(training.get("hardware"), dict) else "")


def _ranking(protocol: dict[str, Any], sizes: dict[str, Any]) -> str:
    ranking = protocol.get("ranking")
    if ranking is None and "full_ranking" in protocol:
        ranking = "full" if protocol["full_ranking"] else "sampled"
    if ranking is None:
        return _NOT_RECORDED
    if ranking == "full":
        return f"full ranking over all {sizes.get('num_items', '?'):,} items (no sampled negatives)"
    return str(ranking)


def _exclusion(protocol: dict[str, Any]) -> str:
    if "exclude_seen" not in protocol:
        return _NOT_RECORDED
    if protocol["exclude_seen"]:
        return "items a user interacted with in training are removed before ranking"
    return "none (training items stay in the ranking)"
