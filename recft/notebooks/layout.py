"""Where notebooks and reports live, what a run directory holds, and the run's error type."""

from __future__ import annotations

import hashlib
import json
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from recft.errors import RecftError

# The kernel `make setup` registers (`python -m ipykernel install --sys-prefix --name recft`);
# notebooks name it in their metadata so plain `papermill` and JupyterLab pick the venv.
KERNEL_NAME = "recft"
KERNELSPEC = {"name": KERNEL_NAME, "display_name": "Python (recft)", "language": "python"}
# jupyter_client maps this name to the interpreter that runs the runner: the fallback.
FALLBACK_KERNEL = "python3"

# The runner tells the kernel where to record through the environment, which the kernel
# process inherits; a notebook opened in JupyterLab has no such variable and records nothing.
RUN_DIR_ENV = "RECFT_RUN_DIR"

METRICS_FILE = "metrics.json"  # written by the runner: record + parameters + provenance
RECORD_FILE = "record.json"  # written by `record()` inside the kernel, merged into metrics.json
FIGURES_DIR = "figures"
INDEX_FILE = "index.html"

_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


class NotebookError(RecftError, RuntimeError):
    """A notebook run failed: a cell raised, a cell timed out, or the kernel died.

    Attributes:
        notebook: the notebook's name (file stem).
        cell_index: 0-based index of the failing cell in the source notebook, if known.
        execution_count: the ``In [n]`` number of the failing cell, if known.
        ename: the exception's class name raised in the kernel.
        evalue: the exception's message.
        run_dir: where the partial executed notebook, HTML and metrics.json were written.
    """

    def __init__(self, notebook: str, *, ename: str, evalue: str, cell_index: int | None = None,
                 execution_count: int | None = None, run_dir: Path | None = None) -> None:
        where = f"cell {cell_index}" if cell_index is not None else "execution"
        if execution_count is not None:
            where += f" (In [{execution_count}])"
        message = f"notebook {notebook!r} failed in {where}: {ename}"
        if evalue:
            message += f": {evalue}"
        super().__init__(message)
        self.notebook, self.ename, self.evalue = notebook, ename, evalue
        self.cell_index, self.execution_count, self.run_dir = cell_index, execution_count, run_dir
        if run_dir is not None:
            self.hint = f"partial notebook, HTML and metrics.json are in {run_dir}"


def repo_root() -> Path:
    """The checkout holding ``recft/`` (editable install), else the working directory."""
    root = Path(__file__).resolve().parents[2]
    if (root / "notebooks").is_dir() or (root / "pyproject.toml").is_file():
        return root
    return Path.cwd()


def notebooks_dir() -> Path:
    return repo_root() / "notebooks"


def reports_dir() -> Path:
    return repo_root() / "reports"


def resolve_notebook(name_or_path: str | Path) -> Path:
    """``03_finetune``, a unique prefix like ``03``, or a path -> the ``.ipynb`` file.

    Raises:
        RecftError: no such notebook, or the prefix matches several (the message lists them).
    """
    path = Path(name_or_path)
    if path.suffix == ".ipynb" or path.is_file():
        if not path.is_file():
            raise RecftError(f"notebook not found: {path}")
        return path.resolve()
    directory = notebooks_dir()
    exact = directory / f"{name_or_path}.ipynb"
    if exact.is_file():
        return exact
    available = sorted(p.stem for p in directory.glob("*.ipynb")) if directory.is_dir() else []
    matches = [stem for stem in available if stem.startswith(str(name_or_path))]
    if len(matches) == 1:
        return directory / f"{matches[0]}.ipynb"
    listing = ", ".join(matches or available) or "none"
    what = "is ambiguous" if len(matches) > 1 else "not found"
    raise RecftError(f"notebook {str(name_or_path)!r} {what} in {directory}; available: {listing}")


def make_run_id(parameters: dict[str, Any] | None, now: datetime | None = None) -> str:
    """``20261130T141502Z-3f2a9c1b``: UTC time, then a hash of the parameters given.

    The hash makes two runs of the same command recognisable as such in the index.
    """
    now = now or datetime.now(timezone.utc)
    canonical = json.dumps(parameters or {}, sort_keys=True, default=str)
    digest = hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:8]
    return f"{now.strftime('%Y%m%dT%H%M%SZ')}-{digest}"


def check_safe_name(value: str, what: str) -> str:
    """A name that becomes one path component (run id, figure name): no slashes, no dots first."""
    if not _SAFE_NAME.match(value):
        raise RecftError(f"invalid {what} {value!r}: use letters, digits, '.', '_' and '-'")
    return value
