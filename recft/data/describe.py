"""Dataset statistics for ``recft data describe``: a JSON-ready dict and a text table."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from recft.data._time import iso_date
from recft.data.features import EntityFeatures
from recft.data.interactions import Interactions

#: value columns with at most this many distinct values get a histogram, others quantiles
HISTOGRAM_MAX_VALUES = 20
QUANTILES = (0.0, 0.25, 0.5, 0.75, 0.9, 0.99, 1.0)


def describe(x: Interactions) -> dict[str, Any]:
    """Counts, sparsity, activity, value distributions, time range and feature coverage.

    Returns:
        A dict of plain Python values (``json.dumps`` works on it): ``interactions``,
        ``users``, ``items``, ``catalog_size``, ``density``, ``sparsity``,
        ``duplicate_pairs``, ``per_user`` / ``per_item`` (min/median/mean/max over those
        with at least one interaction), ``ratings`` / ``weights`` (histogram or quantiles),
        ``time_range`` (ISO dates), ``item_features`` / ``user_features`` (coverage =
        share of the vocabulary with at least one value) and ``item_attributes`` /
        ``user_attributes`` (share with a non-empty display value).

    Example::

        print(format_description(describe(load("ml-100k"))))
    """
    n = len(x)
    per_user, per_item = x.user_activity(), x.item_popularity()  # one O(N) pass each
    users, items = int(np.count_nonzero(per_user)), int(np.count_nonzero(per_item))
    density = n / (users * items) if users * items else 0.0
    result: dict[str, Any] = {
        "name": x.name,
        "feedback": x.feedback,
        "interactions": n,
        "users": users,
        "items": items,
        "catalog_size": x.catalog_size,
        "user_vocab_size": x.user_vocab_size,
        "density": float(density),
        "sparsity": float(1.0 - density),
        "duplicate_pairs": _duplicate_pairs(x),
        "per_user": _summary(per_user),
        "per_item": _summary(per_item),
    }
    if x.ratings is not None:
        result["ratings"] = _distribution(x.ratings)
    if x.weights is not None:
        result["weights"] = _distribution(x.weights)
    if x.timestamps is not None and n:
        # any int64 formats (numpy dates), so describe never fails on the data it describes
        first, last = int(x.timestamps.min()), int(x.timestamps.max())
        result["time_range"] = {"start": iso_date(first), "end": iso_date(last),
                                "days": (last - first) // 86_400}
    for side, features in (("item", x.item_features), ("user", x.user_features)):
        result[f"{side}_features"] = _features(features)
        result[f"{side}_attributes"] = _attributes(features)
    return result


def _duplicate_pairs(x: Interactions) -> int:
    """Interactions whose (user, item) pair occurred before: one in-place sort of pair keys."""
    if not len(x):
        return 0
    keys = x.user_ids.astype(np.int64) * x.catalog_size + x.item_ids
    keys.sort()
    return int(np.count_nonzero(keys[1:] == keys[:-1]))


def _summary(counts: np.ndarray) -> dict[str, float]:
    active = counts[counts > 0]
    if not active.size:
        return {"min": 0, "median": 0.0, "mean": 0.0, "max": 0}
    return {"min": int(active.min()), "median": float(np.median(active)),
            "mean": float(active.mean()), "max": int(active.max())}


def _distribution(values: np.ndarray) -> dict[str, Any]:
    if not values.size:
        return {}
    result: dict[str, Any] = {"min": float(values.min()), "max": float(values.max()),
                              "mean": float(values.mean())}
    counted = pd.Series(values).value_counts(sort=False)  # hashing: no sort of N values
    if len(counted) <= HISTOGRAM_MAX_VALUES:
        counted = counted.sort_index()
        result["histogram"] = {f"{v:g}": int(c) for v, c in zip(counted.index.tolist(),
                                                                 counted.to_numpy())}
    else:
        result["quantiles"] = {f"p{round(q * 100)}": float(v) for q, v in
                               zip(QUANTILES, np.quantile(values, QUANTILES))}
    return result


def _features(features: EntityFeatures | None) -> dict[str, Any]:
    if features is None:
        return {}
    result: dict[str, Any] = {}
    for name, feature in features.categorical.items():
        lengths = feature.lengths()
        result[name] = {"coverage": feature.coverage(), "distinct_values": len(feature.vocab),
                        "mean_values": float(lengths.mean()) if lengths.size else 0.0}
    return result


def _attributes(features: EntityFeatures | None) -> dict[str, float]:
    """Share of entities with a non-empty value, per display attribute."""
    if features is None or features.attributes is None or not len(features.attributes):
        return {}
    table = features.attributes
    return {str(c): float((table[c].notna() & (table[c].astype(str) != "")).mean())
            for c in table.columns}


def format_description(d: dict[str, Any]) -> str:
    """A readable text table of ``describe``'s dict."""
    rows: list[tuple[str, str]] = [
        ("dataset", f"{d.get('name') or '(unnamed)'} ({d['feedback']} feedback)"),
        ("interactions", f"{d['interactions']:,}"),
        ("users", f"{d['users']:,}"),
        ("items", f"{d['items']:,} (catalog {d['catalog_size']:,})"),
        ("density", f"{d['density']:.4%} (sparsity {d['sparsity']:.4%})"),
        ("duplicate pairs", f"{d['duplicate_pairs']:,}"),
    ]
    for key, label in (("per_user", "per user"), ("per_item", "per item")):
        s = d[key]
        rows.append((label, f"min {s['min']:,}  median {s['median']:g}  mean {s['mean']:.1f}"
                            f"  max {s['max']:,}"))
    for key in ("ratings", "weights"):
        if d.get(key):
            rows.append((key, _format_distribution(d[key])))
    if "time_range" in d:
        t = d["time_range"]
        rows.append(("time range", f"{t['start']} .. {t['end']} ({t['days']:,} days)"))
    for key, label in (("item_features", "item feature"), ("user_features", "user feature")):
        for name, f in d.get(key, {}).items():
            extra = f"  {f['distinct_values']:,} values, {f['mean_values']:.2f} per entity"
            rows.append((f"{label} {name}", f"coverage {f['coverage']:.1%}{extra}"))
    for key, label in (("item_attributes", "item attribute"),
                       ("user_attributes", "user attribute")):
        for name, coverage in d.get(key, {}).items():
            rows.append((f"{label} {name}", f"coverage {coverage:.1%}"))
    width = max(len(label) for label, _ in rows)
    return "\n".join(f"{label:<{width}}  {value}" for label, value in rows)


def _format_distribution(s: dict[str, Any]) -> str:
    head = f"min {s['min']:g}  mean {s['mean']:.3g}  max {s['max']:g}"
    if "histogram" in s:
        return head + "  | " + "  ".join(f"{k}: {v:,}" for k, v in s["histogram"].items())
    return head + "  | " + "  ".join(f"{k} {v:g}" for k, v in s["quantiles"].items())
