"""The record stamped next to every reported number: data, split, ranking protocol, metrics."""

from __future__ import annotations

from typing import Any

from recft.data.splits import Split

RANKING_PROTOCOL = {
    "ranking": "full",  # every catalog item is a candidate; no sampled negatives
    "exclude_seen": True,  # items the model knows for a user are never recommended to them
    "relevance": "every held-out interaction",
}


def training_record(dataset: str, split: Split, metrics: dict[str, Any], *,
                    config: Any = None, history: Any = None, **extra: Any) -> dict[str, Any]:
    """The ``training.json`` content of a checkpoint (and the protocol a report stamps).

    Args:
        dataset: the dataset name or file the split was made from.
        split: the split; its spec, seed and part sizes are recorded.
        metrics: test metrics from ``evaluate`` (segments kept apart).
        config: the training config dataclass (recorded with ``to_dict``).
        history: the training history (recorded with ``to_dict``).
        extra: anything else to keep (wall time, base checkpoint, recipe ...).
    """
    record: dict[str, Any] = {
        "dataset": dataset,
        "split": split.spec,
        "seed": split.seed,
        "protocol": {**RANKING_PROTOCOL, **split.protocol(), "evaluated_on": "test"},
        "metrics": {k: v for k, v in metrics.items() if k != "segments"},
    }
    if metrics.get("segments"):
        record["segments"] = metrics["segments"]
    if config is not None:
        record["training_config"] = config.to_dict()
    if history is not None:
        record["history"] = history.to_dict()
    record.update(extra)
    return record
