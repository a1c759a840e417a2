"""Record metrics and figures from inside a notebook, where the runner can collect them."""

from __future__ import annotations

import base64
import dataclasses
import html
import io
import json
import math
import os
import platform
from collections.abc import Mapping
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from recft.errors import RecftError
from recft.io import atomic_write_bytes, atomic_write_text
from recft.notebooks.layout import FIGURES_DIR, RECORD_FILE, RUN_DIR_ENV, check_safe_name

FIGURE_METADATA_KEY = "recft_figure"  # names a displayed PNG so the runner files it by name


def current_run_dir() -> Path | None:
    """The run directory the runner set for this kernel, or None outside a runner."""
    value = os.environ.get(RUN_DIR_ENV)
    return Path(value) if value else None


def environment_versions() -> dict[str, str | None]:
    """Versions of recft, torch, torchrec and Python, read without importing torch."""
    from recft._version import __version__

    versions: dict[str, str | None] = {"recft": __version__}
    for package in ("torch", "torchrec", "fbgemm-gpu-cpu", "numpy"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    versions["python"] = platform.python_version()
    return versions


def to_jsonable(value: Any, where: str = "value") -> Any:
    """Plain JSON types from numpy/torch scalars and arrays, dataclasses, paths and sets.

    Raises:
        RecftError: something that has no faithful JSON form (the message names its key).
    """
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, (set, frozenset)):
        return sorted(to_jsonable(v, where) for v in value)
    if isinstance(value, Path):
        return str(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return to_jsonable(dataclasses.asdict(value), where)
    if hasattr(value, "tolist"):  # numpy scalars/arrays and torch tensors, without importing them
        return to_jsonable(value.tolist(), where)
    raise RecftError(f"{where}: cannot record a {type(value).__name__} as JSON; "
                     "pass numbers, strings, lists or dicts")


def flatten(mapping: Mapping[str, Any] | None, prefix: str = "") -> dict[str, Any]:
    """``{"test": {"ndcg@10": 0.3}}`` -> ``{"test/ndcg@10": 0.3}``; lists stay as values."""
    flat: dict[str, Any] = {}
    for key, value in (mapping or {}).items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{name}/"))
        else:
            flat[name] = value
    return flat


def format_value(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.4g}"
    return str(value)


class MetricsTable:
    """Displays as an HTML table in notebooks and as aligned text elsewhere."""

    def __init__(self, metrics: Mapping[str, Any], protocol: Mapping[str, Any] | None = None):
        self.rows = list(flatten(metrics).items())
        self.protocol = flatten(protocol)

    def __repr__(self) -> str:
        width = max((len(k) for k, _ in self.rows), default=6)
        lines = [f"{k:<{width}}  {format_value(v)}" for k, v in self.rows]
        if self.protocol:
            lines.append("protocol: " + ", ".join(f"{k}={v}" for k, v in self.protocol.items()))
        return "\n".join(lines) or "(no metrics)"

    def _repr_html_(self) -> str:
        body = "".join(f"<tr><td>{html.escape(k)}</td><td>{html.escape(format_value(v))}</td></tr>"
                       for k, v in self.rows)
        caption = ""
        if self.protocol:
            text = ", ".join(f"{k}={v}" for k, v in self.protocol.items())
            caption = f"<caption>protocol: {html.escape(text)}</caption>"
        return (f"<table>{caption}<thead><tr><th>metric</th><th>value</th></tr></thead>"
                f"<tbody>{body}</tbody></table>")


def record(metrics: Mapping[str, Any], protocol: Mapping[str, Any] | None = None,
           **extra: Any) -> dict[str, Any]:
    """Record a notebook's results; call it in the last cell.

    Under ``recft notebooks run`` (or ``recft.notebooks.run``) the record is written to the
    run directory, and the runner merges it into ``metrics.json``. Opened interactively it
    only displays the table. Calling it again merges into the earlier record. End the line
    with ``;`` so Jupyter does not also print the returned dict.

    Args:
        metrics: name -> number (nested dicts allowed, e.g. per segment).
        protocol: how the numbers were obtained (split, threshold, ranking, exclusion, seed).
        **extra: anything else worth keeping next to them (JSON-serialisable).

    Returns:
        The metrics, as a plain dict.

    Example::

        record({"ndcg@10": ndcg, "recall@10": recall}, protocol=result.protocol);
    """
    if not isinstance(metrics, Mapping):
        raise RecftError(f"record() takes a dict of metrics, got {type(metrics).__name__}")
    payload = {
        "metrics": to_jsonable(metrics, "metrics"),
        "protocol": to_jsonable(protocol, "protocol") if protocol is not None else None,
        "extra": to_jsonable(extra, "extra"),
        "versions": environment_versions(),
        "recorded_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    run_dir = current_run_dir()
    if run_dir is not None:
        path = run_dir / RECORD_FILE
        if path.is_file():
            payload = _merge(json.loads(path.read_text(encoding="utf-8")), payload)
        atomic_write_text(path, json.dumps(payload, indent=2, sort_keys=True) + "\n")
    _display(MetricsTable(payload["metrics"], payload["protocol"]))
    return dict(metrics)


def _merge(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    merged = dict(new)
    for key in ("metrics", "protocol", "extra"):
        if old.get(key) or new.get(key):
            merged[key] = {**(old.get(key) or {}), **(new.get(key) or {})}
    return merged


def save_figure(fig: Any, name: str, *, dpi: int = 120) -> Path | None:
    """Save a matplotlib figure as ``figures/<name>.png`` of the run, and show it inline.

    Inside a notebook the figure is displayed once and closed (so the inline backend does
    not show it a second time). Outside a runner nothing is written.

    Args:
        fig: a matplotlib Figure, or None for the current one.
        name: file name without extension (letters, digits, ``.``, ``_``, ``-``).
        dpi: resolution of the PNG.

    Returns:
        The written path under the runner, else None.
    """
    import matplotlib.pyplot as plt

    fig = plt.gcf() if fig is None else fig
    name = check_safe_name(name.removesuffix(".png"), "figure name")
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    data = buffer.getvalue()
    path = None
    run_dir = current_run_dir()
    if run_dir is not None:
        path = run_dir / FIGURES_DIR / f"{name}.png"
        atomic_write_bytes(path, data)
    if _in_ipython():
        from IPython.display import display

        bundle = {"image/png": base64.b64encode(data).decode("ascii"),
                  "text/plain": f"<figure {name}>"}
        display(bundle, raw=True, metadata={"image/png": {FIGURE_METADATA_KEY: name}})
        plt.close(fig)
    return path


def _in_ipython() -> bool:
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    return get_ipython() is not None


def _display(table: MetricsTable) -> None:
    if _in_ipython():
        from IPython.display import display

        display(table)
    else:
        print(repr(table))
