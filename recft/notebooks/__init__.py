"""Run notebooks with papermill and collect them into ``reports/``; record results from inside.

Outside a notebook::

    from recft.notebooks import run
    result = run("03_finetune", {"EPOCHS": 3})      # reports/03_finetune/<run-id>/
    result.metrics["ndcg@10"]

Inside a notebook (the last cell)::

    from recft.notebooks import record, save_figure
    save_figure(fig, "learning_curve")
    record({"ndcg@10": ndcg}, protocol=protocol);

Modules: ``runner`` (execution and the run directory), ``record`` (the in-kernel side),
``params`` (reading ``parameters`` cells), ``html`` (self-contained HTML),
``reports`` (index page and run comparison), ``executed`` (figures and failing cells of an
executed notebook), ``layout`` (paths, names, the error type).
papermill and nbconvert are imported only when a notebook is run or rendered, so
``record`` is cheap to import inside a kernel.
"""

from __future__ import annotations

from recft.notebooks.layout import KERNELSPEC, NotebookError
from recft.notebooks.params import NotebookInfo, Parameter, list_notebooks, read_notebook_info
from recft.notebooks.record import record, save_figure
from recft.notebooks.reports import compare_runs, find_runs, load_run, write_index
from recft.notebooks.runner import RunResult, run

__all__ = [
    "KERNELSPEC",
    "NotebookError",
    "NotebookInfo",
    "Parameter",
    "RunResult",
    "compare_runs",
    "find_runs",
    "list_notebooks",
    "load_run",
    "read_notebook_info",
    "record",
    "run",
    "save_figure",
    "write_index",
]
