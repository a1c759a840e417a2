"""Execute a notebook with papermill and collect it into ``reports/<notebook>/<run-id>/``."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from recft.errors import RecftError
from recft.io import atomic_directory, atomic_write_text
from recft.notebooks.executed import extract_figures, last_started_cell, source_index
from recft.notebooks.html import notebook_to_html
from recft.notebooks.layout import (
    FALLBACK_KERNEL, FIGURES_DIR, KERNEL_NAME, METRICS_FILE, RECORD_FILE, RUN_DIR_ENV,
    NotebookError, check_safe_name, make_run_id, reports_dir, repo_root, resolve_notebook,
)
from recft.notebooks.params import check_parameters, read_notebook_info
from recft.notebooks.record import environment_versions, to_jsonable
from recft.process_env import restored_environment

logger = logging.getLogger(__name__)


@dataclass
class RunResult:
    """What a run produced; every path is inside ``run_dir``."""

    notebook: str
    run_id: str
    run_dir: Path
    status: str  # "ok" | "failed" | "interrupted"
    metrics: dict[str, Any]
    notebook_path: Path
    html_path: Path
    metrics_path: Path
    figures: list[Path] = field(default_factory=list)
    wall_time_s: float = 0.0
    record: dict[str, Any] = field(default_factory=dict)  # the whole metrics.json


def run(name_or_path: str | Path, parameters: dict[str, Any] | None = None,
        out: str | Path | None = None, *, run_id: str | None = None, kernel: str | None = None,
        timeout: float | None = None, progress: bool = True,
        update_index: bool = True) -> RunResult:
    """Execute a notebook and write its report directory.

    The run directory ``<out>/<notebook>/<run_id>/`` receives the executed ``.ipynb``, a
    self-contained ``.html``, ``metrics.json`` and ``figures/*.png``; then
    ``<out>/index.html`` is regenerated. The directory appears in one rename, so the index
    never lists half a run. When a cell fails, the partial notebook, HTML and a
    ``metrics.json`` with ``"status": "failed"`` are still written before the error is raised.

    Args:
        name_or_path: ``03_finetune`` (in the repository's ``notebooks/``), a unique prefix
            such as ``03``, or a path to an ``.ipynb``.
        parameters: values injected after the notebook's ``parameters``-tagged cell; every
            name must be assigned in that cell.
        out: reports root (default ``<repo>/reports``).
        run_id: directory name of the run (default: UTC time + hash of ``parameters``);
            an existing run with this id is replaced.
        kernel: Jupyter kernel name. Default: the one in the notebook's metadata if it is
            installed, else ``recft``, else ``python3`` (the interpreter running this).
        timeout: seconds allowed per cell (default: no limit).
        progress: show papermill's progress bar on stderr.
        update_index: regenerate ``<out>/index.html`` afterwards.

    One run at a time per process: the kernel's settings travel through ``os.environ``
    and papermill changes the working directory while it executes.

    Returns:
        The run's paths, status and recorded metrics.

    Raises:
        NotebookError: a cell raised or timed out, or the kernel died (outputs still written).
        RecftError: unknown notebook, parameter or kernel (nothing executed).
    """
    import papermill
    from papermill.exceptions import PapermillExecutionError

    source = resolve_notebook(name_or_path)
    info = read_notebook_info(source)
    given = dict(parameters or {})
    check_parameters(info, given)
    kernel_name = choose_kernel(info.kernel, kernel)
    # absolute: papermill changes the process's working directory while the notebook runs
    root = (Path(out) if out is not None else reports_dir()).resolve()
    if run_id is not None:
        run_id = check_safe_name(str(run_id), "run id")
    else:
        run_id = _unique(root / info.name, make_run_id(given))
    final = root / info.name / run_id
    executed_name = f"{info.name}.ipynb"
    logger.info("running %s (kernel %s) -> %s", source, kernel_name, final)

    started = datetime.now(timezone.utc)
    clock = time.perf_counter()
    failure: NotebookError | None = None
    interrupted = False
    with atomic_directory(final) as staging:
        try:
            with _kernel_environment(staging), _quiet_papermill():
                papermill.execute_notebook(
                    str(source), str(staging / executed_name), parameters=given,
                    kernel_name=kernel_name, progress_bar=progress, cwd=str(source.parent),
                    execution_timeout=timeout,
                )
        except PapermillExecutionError as error:
            failure = NotebookError(
                info.name, ename=error.ename, evalue=error.evalue,
                cell_index=source_index(staging / executed_name, error.cell_index),
                execution_count=error.exec_count,
            )
        except KeyboardInterrupt:
            interrupted = True
        except Exception as error:  # a cell timeout, a dead kernel: still keep what ran
            text = " ".join(str(error).split())[:500]
            index, count = last_started_cell(staging / executed_name)
            failure = NotebookError(info.name, ename=type(error).__name__, evalue=text,
                                    cell_index=index, execution_count=count)
        wall = time.perf_counter() - clock
        status = "interrupted" if interrupted else "failed" if failure else "ok"
        record = _collect(staging, source, executed_name, final, info, given, kernel_name,
                          run_id, status, failure, started, wall)
    if update_index:
        _refresh_index(root)
    if interrupted:
        raise KeyboardInterrupt
    if failure is not None:
        failure.run_dir = final
        failure.hint = f"partial notebook, HTML and metrics.json are in {final}"
        raise failure
    return _result(final, record)


def choose_kernel(declared: str | None, requested: str | None = None) -> str:
    """The kernel to run on: requested, else declared if installed, else recft, else python3.

    Raises:
        RecftError: ``requested`` is not an installed kernel (the message lists them).
    """
    from jupyter_client.kernelspec import KernelSpecManager

    available = set(KernelSpecManager().find_kernel_specs())
    if requested:
        if requested not in available:
            raise RecftError(f"no Jupyter kernel named {requested!r}; installed: "
                             f"{', '.join(sorted(available)) or 'none'}")
        return requested
    if declared and declared in available:
        return declared
    fallback = KERNEL_NAME if KERNEL_NAME in available else FALLBACK_KERNEL
    if declared:
        logger.warning("kernel %r is not installed; running on %r. Register it with: "
                       "python -m ipykernel install --sys-prefix --name recft "
                       "--display-name 'Python (recft)'", declared, fallback)
    return fallback


def git_state(root: Path | None = None) -> dict[str, Any]:
    """``{"commit": sha or None, "dirty": bool or None}`` of the code that ran."""
    root = root or repo_root()
    try:
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True,
                                text=True, timeout=10, check=True).stdout.strip()
        status = subprocess.run(["git", "-C", str(root), "status", "--porcelain",
                                 "--untracked-files=no"], capture_output=True, text=True,
                                timeout=20, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}
    return {"commit": commit or None, "dirty": bool(status.strip())}


def _collect(staging: Path, source: Path, executed_name: str, final: Path, info: Any,
             given: dict[str, Any], kernel_name: str, run_id: str, status: str,
             failure: NotebookError | None, started: datetime, wall: float) -> dict[str, Any]:
    """Write the HTML, figures and metrics.json of a finished (or failed) execution."""
    import nbformat

    executed = staging / executed_name
    try:
        notebook = nbformat.read(str(executed), as_version=4)
    except (OSError, ValueError):  # papermill never got to write it: show the source instead
        notebook = nbformat.read(str(source), as_version=4)
    # papermill recorded the staging path; point at where the file will live
    notebook.metadata.setdefault("papermill", {})["output_path"] = str(final / executed_name)
    atomic_write_text(executed, nbformat.writes(notebook))
    html_name = f"{info.name}.html"
    atomic_write_text(staging / html_name, notebook_to_html(notebook))
    figures = extract_figures(notebook, staging / FIGURES_DIR)

    recorded: dict[str, Any] = {}
    record_path = staging / RECORD_FILE
    if record_path.is_file():
        recorded = json.loads(record_path.read_text(encoding="utf-8"))
        record_path.unlink()  # merged into metrics.json: one file of results per run
    effective = {**info.defaults(), **given}
    error = None
    if failure is not None:
        error = {"ename": failure.ename, "evalue": failure.evalue, "cell_index": failure.cell_index,
                 "execution_count": failure.execution_count, "message": str(failure)}
    metrics = {
        "notebook": info.name,
        "title": info.title,
        "source": _display_path(source),
        "run_id": run_id,
        "status": status,
        "error": error,
        "started_at": started.isoformat(timespec="seconds"),
        "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "wall_time_s": round(wall, 3),
        "parameters": to_jsonable(effective, "parameters"),
        "overrides": to_jsonable(given, "parameters"),
        "metrics": recorded.get("metrics") or {},
        "protocol": recorded.get("protocol"),
        "extra": recorded.get("extra") or {},
        "recorded": bool(recorded),
        # the kernel's own versions when it recorded; else this interpreter's
        "versions": recorded.get("versions") or environment_versions(),
        "git": git_state(),
        "kernel": kernel_name,
        "files": {
            "notebook": executed_name,
            "html": html_name,
            "figures": sorted(p.relative_to(staging).as_posix() for p in set(figures)),
        },
    }
    atomic_write_text(staging / METRICS_FILE, json.dumps(metrics, indent=2, sort_keys=False) + "\n")
    return metrics


def _result(run_dir: Path, record: dict[str, Any]) -> RunResult:
    files = record["files"]
    return RunResult(
        notebook=record["notebook"], run_id=record["run_id"], run_dir=run_dir,
        status=record["status"], metrics=record["metrics"],
        notebook_path=run_dir / files["notebook"], html_path=run_dir / files["html"],
        metrics_path=run_dir / METRICS_FILE, figures=[run_dir / f for f in files["figures"]],
        wall_time_s=record["wall_time_s"], record=record,
    )


def _refresh_index(root: Path) -> None:
    from recft.notebooks.reports import write_index

    try:
        write_index(root)
    except (OSError, ValueError) as error:  # the run itself is complete; the index can be redone
        logger.warning("could not update %s/index.html (%s); run `recft report --index`",
                       root, error)


def _unique(directory: Path, run_id: str) -> str:
    candidate, suffix = run_id, 2
    while (directory / candidate).exists():
        candidate, suffix = f"{run_id}-{suffix}", suffix + 1
    return candidate


def _display_path(path: Path) -> str:
    try:
        return path.resolve().relative_to(repo_root()).as_posix()
    except ValueError:
        return str(path)


@contextlib.contextmanager
def _kernel_environment(run_dir: Path) -> Iterator[None]:
    """Set what the kernel process inherits: where to record, and an inline plot backend."""
    with restored_environment((RUN_DIR_ENV, "MPLBACKEND", "TQDM_DISABLE")):
        os.environ[RUN_DIR_ENV] = str(run_dir)
        # A report is read after the fact: progress bars would only add pages of stderr to it
        # (JupyterLab, where nobody sets this, keeps its live widgets).
        os.environ.setdefault("TQDM_DISABLE", "1")
        # The Makefile exports MPLBACKEND=Agg for scripts; in a kernel that hides every plot.
        if os.environ.get("MPLBACKEND", "").lower() in ("", "agg"):
            os.environ["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"
        yield


@contextlib.contextmanager
def _quiet_papermill() -> Iterator[None]:
    """papermill logs its (staging) paths at INFO; recft logs the final ones instead."""
    papermill_logger = logging.getLogger("papermill")
    level = papermill_logger.level
    if not logger.isEnabledFor(logging.DEBUG):
        papermill_logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        papermill_logger.setLevel(level)
