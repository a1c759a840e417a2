"""The ``reports/index.html`` page over all runs, and a side-by-side comparison of two runs."""

from __future__ import annotations

import html
import json
import logging
import math
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from recft.errors import RecftError
from recft.io import atomic_write_text
from recft.notebooks.layout import INDEX_FILE, METRICS_FILE, reports_dir
from recft.notebooks.record import flatten, format_value

logger = logging.getLogger(__name__)

# Shown first in the index when a run recorded them (matched on the last path component,
# so "test/ndcg@10" counts); other numbers fill the remaining slots.
KEY_METRICS = ("ndcg@10", "recall@10", "hit_rate@10", "mrr@10", "precision@10", "auc", "rmse")

_CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em; color: #222; }
h1 { font-size: 1.5em; margin-bottom: .2em; } p.meta { color: #666; margin-top: 0; }
table { border-collapse: collapse; margin: 1em 0; } caption { text-align: left; font-weight: 600; }
th, td { border-bottom: 1px solid #ddd; padding: .35em .8em; text-align: left; }
td { vertical-align: top; }
th { background: #f4f4f6; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
.ok { color: #0a7d32; font-weight: 600; }
.failed, .interrupted { color: #b3261e; font-weight: 600; }
.diff { background: #fff6d5; } code { font-size: 12px; } a { color: #1a56b4; }
"""


@dataclass(frozen=True)
class Run:
    """A run directory and its ``metrics.json``."""

    path: Path
    record: dict[str, Any]

    @property
    def label(self) -> str:
        notebook = self.record.get("notebook", self.path.parent.name)
        return f"{notebook}/{self.record.get('run_id', self.path.name)}"


def load_run(path: str | Path) -> Run:
    """Read a run directory (or its ``metrics.json``).

    Raises:
        RecftError: no ``metrics.json`` there, or it is not valid JSON.
    """
    path = Path(path)
    directory = path.parent if path.name == METRICS_FILE else path
    file = directory / METRICS_FILE
    if not file.is_file():
        raise RecftError(f"not a run directory (no {METRICS_FILE}): {directory}")
    try:
        record = json.loads(file.read_text(encoding="utf-8"))
    except ValueError as error:
        raise RecftError(f"{file}: not valid JSON ({error})") from None
    if not isinstance(record, dict):
        raise RecftError(f"{file}: expected a JSON object")
    return Run(directory, record)


def find_runs(root: str | Path | None = None) -> list[Run]:
    """Every ``<root>/<notebook>/<run-id>/metrics.json``, newest first (unreadable ones skipped)."""
    root = Path(root) if root is not None else reports_dir()
    runs = []
    for file in sorted(root.glob(f"*/*/{METRICS_FILE}")):
        if file.parent.name.startswith(".") or file.parent.parent.name.startswith("."):
            continue  # a run still being written (staging directory)
        try:
            runs.append(load_run(file.parent))
        except RecftError as error:
            logger.warning("skipping %s", error)
    return sorted(runs, key=lambda r: (str(r.record.get("started_at", "")), r.label), reverse=True)


def resolve_run(reference: str | Path, root: str | Path | None = None) -> Run:
    """A run from a directory path, ``notebook/run-id`` under ``root``, or a bare run id.

    Raises:
        RecftError: nothing matches, or a bare run id matches several notebooks' runs.
    """
    root = Path(root) if root is not None else reports_dir()
    for candidate in (Path(reference), root / str(reference)):
        if (candidate / METRICS_FILE).is_file():
            return load_run(candidate)
    matches = [run for run in find_runs(root) if run.path.name == str(reference)]
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise RecftError(f"run id {str(reference)!r} is ambiguous: "
                         + ", ".join(run.label for run in matches))
    raise RecftError(f"no run {str(reference)!r}: give a run directory, "
                     f"or notebook/run-id under {root}")


def key_metrics(metrics: dict[str, Any] | None, limit: int = 4) -> list[tuple[str, Any]]:
    """Up to ``limit`` numeric metrics, the ``KEY_METRICS`` first."""
    numeric = {k: v for k, v in flatten(metrics).items()
               if isinstance(v, (int, float)) and not isinstance(v, bool)}
    chosen = [k for key in KEY_METRICS for k in numeric if k.rsplit("/", 1)[-1] == key]
    chosen += [k for k in numeric if k not in chosen]
    return [(k, numeric[k]) for k in dict.fromkeys(chosen)][:limit]


def render_index(runs: list[Run], root: Path) -> str:
    """A self-contained page (inline CSS only) listing ``runs`` with links into ``root``."""
    rows = []
    for run in runs:
        record = run.record
        try:
            base = run.path.relative_to(root).as_posix()
        except ValueError:
            base = run.path.as_posix()
        html_file = (record.get("files") or {}).get("html")
        run_id = html.escape(str(record.get("run_id", run.path.name)))
        link = run_id
        if html_file:
            link = f'<a href="{html.escape(base)}/{html.escape(html_file)}">{run_id}</a>'
        status = str(record.get("status", "?"))
        metrics = ", ".join(f"{html.escape(k)}={html.escape(format_value(v))}"
                            for k, v in key_metrics(record.get("metrics")))
        error = (record.get("error") or {}).get("message", "")
        if error and not metrics:
            metrics = f'<span class="failed">{html.escape(error)}</span>'
        overrides = ", ".join(f"{html.escape(str(k))}={html.escape(json.dumps(v))}"
                              for k, v in (record.get("overrides") or {}).items())
        wall = record.get("wall_time_s")
        rows.append(
            "<tr>"
            f"<td>{html.escape(str(record.get('notebook', run.path.parent.name)))}</td>"
            f"<td>{link} <a href=\"{html.escape(base)}/{METRICS_FILE}\">json</a></td>"
            f"<td>{html.escape(str(record.get('started_at', '')))}</td>"
            f'<td class="{html.escape(status)}" title="{html.escape(error)}">'
            f"{html.escape(status)}</td>"
            f'<td class="num">{"" if wall is None else f"{float(wall):.1f} s"}</td>'
            f"<td>{metrics}</td><td><code>{overrides}</code></td>"
            "</tr>"
        )
    generated = datetime.now(timezone.utc).isoformat(timespec="seconds")
    empty = '<tr><td colspan="7">no runs yet: <code>recft notebooks run NAME</code></td></tr>'
    body = "\n".join(rows) or empty
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>recft reports</title><style>{_CSS}</style></head><body>"
        f"<h1>recft reports</h1><p class=\"meta\">{len(runs)} run(s); generated {generated}</p>"
        "<table><thead><tr><th>notebook</th><th>run</th><th>started (UTC)</th><th>status</th>"
        "<th>wall time</th><th>key metrics</th><th>parameters set</th></tr></thead>"
        f"<tbody>\n{body}\n</tbody></table></body></html>\n"
    )


def write_index(root: str | Path | None = None) -> Path:
    """Regenerate ``<root>/index.html`` from the runs on disk (atomic write)."""
    root = Path(root) if root is not None else reports_dir()
    path = root / INDEX_FILE
    atomic_write_text(path, render_index(find_runs(root), root))
    return path


@dataclass(frozen=True)
class Comparison:
    """Two runs side by side: run facts, every metric (with B - A), parameters, protocol."""

    a: Run
    b: Run

    def sections(self) -> list[tuple[str, list[tuple[str, Any, Any]]]]:
        ra, rb = self.a.record, self.b.record
        facts = [(key, ra.get(key), rb.get(key))
                 for key in ("notebook", "run_id", "status", "started_at", "wall_time_s")]
        commits = [((r.get("git") or {}).get("commit") or "")[:12] or None for r in (ra, rb)]
        facts.append(("git commit", *commits))
        sections = [("run", facts)]
        for name in ("metrics", "parameters", "protocol"):
            left, right = flatten(ra.get(name)), flatten(rb.get(name))
            keys = list(dict.fromkeys([*left, *right]))
            if keys:
                sections.append((name, [(k, left.get(k), right.get(k)) for k in keys]))
        return sections

    def to_text(self) -> str:
        table = [("", "A", "B", "B - A")]
        for title, rows in self.sections():
            table.append((f"[{title}]", "", "", ""))
            table += [(f"  {k}", _cell(va), _cell(vb), _delta(va, vb)) for k, va, vb in rows]
        widths = [max(len(row[i]) for row in table) for i in range(4)]
        lines = [f"A = {self.a.path}", f"B = {self.b.path}", ""]
        lines += ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip()
                  for row in table]
        return "\n".join(lines) + "\n"

    def to_html(self) -> str:
        parts = []
        for title, rows in self.sections():
            body = "".join(
                ('<tr class="diff">' if va != vb and title != "run" else "<tr>")
                + f'<td>{html.escape(k)}</td><td class="num">{html.escape(_cell(va))}</td>'
                + f'<td class="num">{html.escape(_cell(vb))}</td>'
                + f'<td class="num">{html.escape(_delta(va, vb))}</td></tr>'
                for k, va, vb in rows)
            parts.append(f"<table><caption>{html.escape(title)}</caption><thead><tr><th></th>"
                         "<th>A</th><th>B</th><th>B - A</th></tr></thead>"
                         f"<tbody>{body}</tbody></table>")
        return (
            '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f"<title>recft: {html.escape(self.a.label)} vs {html.escape(self.b.label)}</title>"
            f"<style>{_CSS}</style></head><body><h1>Run comparison</h1>"
            f'<p class="meta">A = {html.escape(str(self.a.path))}<br>'
            f"B = {html.escape(str(self.b.path))}</p>"
            + "".join(parts) + "</body></html>\n"
        )


def compare_runs(a: str | Path, b: str | Path, root: str | Path | None = None) -> Comparison:
    """Compare two runs given as directories, ``notebook/run-id`` or run ids (see resolve_run)."""
    return Comparison(resolve_run(a, root), resolve_run(b, root))


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, (list, dict)):
        return json.dumps(value)
    return format_value(value)


def _delta(a: Any, b: Any) -> str:
    numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (a, b))
    if not numbers or a == b:
        return ""
    difference = b - a
    if isinstance(difference, float) and math.isnan(difference):
        return ""
    return f"{difference:+.4g}"
