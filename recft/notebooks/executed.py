"""Read what papermill left in an executed notebook: plots, and which cell was running."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from recft.io import atomic_write_bytes
from recft.notebooks.record import FIGURE_METADATA_KEY

INJECTED_TAG = "injected-parameters"  # papermill's tag on the cell it adds
ERROR_MARKER_TAG = "papermill-error-cell-tag"  # papermill's tag on its "exception here" cells


def extract_figures(notebook: Any, directory: Path) -> list[Path]:
    """Write every PNG output to ``directory``: ``cell03-1.png``, or ``<name>.png`` for
    figures shown by ``save_figure`` (kept as saved if the kernel already wrote them).

    Cell numbers are 0-based indices in the source notebook (papermill's cells skipped).
    """
    written: list[Path] = []
    for index, cell in _source_cells(notebook):
        count = 0
        for output in cell.get("outputs", []):
            data = output.get("data", {}).get("image/png")
            if not data:
                continue
            count += 1
            name = output.get("metadata", {}).get("image/png", {}).get(FIGURE_METADATA_KEY)
            path = directory / (f"{name}.png" if name else f"cell{index:02d}-{count}.png")
            if not path.exists():
                atomic_write_bytes(path, base64.b64decode(data))
            written.append(path)
    return written


def _source_cells(notebook: Any) -> Iterator[tuple[int, Any]]:
    index = 0
    for cell in notebook.cells:
        tags = cell.get("metadata", {}).get("tags", [])
        if INJECTED_TAG in tags or ERROR_MARKER_TAG in tags:
            continue
        yield index, cell
        index += 1


def source_index(executed: Path, executed_index: int) -> int | None:
    """papermill counts its injected cell; users count the cells they wrote."""
    import nbformat

    try:
        notebook = nbformat.read(str(executed), as_version=4)
    except (OSError, ValueError):
        return None
    cells = [c for c in notebook.cells
             if ERROR_MARKER_TAG not in c.get("metadata", {}).get("tags", [])]
    injected = sum(1 for c in cells[:executed_index]
                   if INJECTED_TAG in c.get("metadata", {}).get("tags", []))
    return executed_index - injected


def last_started_cell(executed: Path) -> tuple[int | None, int | None]:
    """The cell running when a timeout or kernel death stopped execution: the last one begun."""
    import nbformat

    try:
        notebook = nbformat.read(str(executed), as_version=4)
    except (OSError, ValueError):
        return None, None
    started = [(index, cell) for index, cell in _source_cells(notebook)
               if cell.get("metadata", {}).get("papermill", {}).get("start_time")]
    if not started:
        return None, None
    index, cell = started[-1]
    return index, cell.get("execution_count")
