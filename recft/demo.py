"""The main job on the embedded default: synthetic data -> pretrain -> fine-tune -> reports.

Every step is one of the project's notebooks, executed by papermill, so the demo's output
is the same set of reports a data scientist reads and CI publishes.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from recft.data import synthetic
from recft.data.describe import describe, format_description

REPO = Path(__file__).resolve().parents[1]


def demo_steps(runs: Path, small: bool, seed: int) -> list[tuple[str, dict]]:
    """(notebook, parameters) in order; later steps read what earlier ones wrote."""
    base, tuned = runs / "base", runs / "tuned"
    common = {"SMALL": small, "SEED": seed}
    return [
        ("01_explore_data", {"DATASET": "synthetic-target", "SMALL": small}),
        ("02_pretrain", {**common, "DATASET": "synthetic", "CHECKPOINT_DIR": str(base),
                         # target users are new to the base: teach it to serve by history
                         "USER_ID_DROPOUT": 0.5, "EPOCHS": 10}),
        ("03_finetune", {**common, "CHECKPOINT": str(base), "DATASET": "synthetic-target",
                         "OUTPUT_DIR": str(tuned)}),
        ("04_compare_strategies", {**common, "CHECKPOINT": str(base), "DATASET": "synthetic-target",
                                   "FRACTIONS": [0.05, 0.1, 0.25, 0.5, 1.0],
                                   "OUTPUT_DIR": str(runs / "compare")}),
        ("05_recommendations", {**common, "CHECKPOINT": str(tuned), "DATASET": "synthetic-target"}),
    ]


def run_demo(out: str | Path | None = None, reports: str | Path | None = None,
             small: bool = False, seed: int = 0) -> dict[str, Path]:
    """Run every stage on the synthetic source/target domains.

    Args:
        out: folder for checkpoints and comparison files (default ``runs/demo``).
        reports: reports root (default ``reports/``).
        small: tiny sizes (seconds instead of minutes).
        seed: seed of data splits and training.

    Returns:
        Each notebook's HTML report, plus ``"index"``: ``reports/index.html``.
    """
    from recft.notebooks import run

    # The demo's models are small: on this 2-core machine two threads save 18% per epoch
    # when idle but cost 3.4x beside one busy core (benchmarks/threads.py), and a busy core
    # is the common case (tests, other kernels). Set OMP_NUM_THREADS yourself to override.
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    runs = Path(out or REPO / "runs" / "demo").resolve()
    reports_root = Path(reports or REPO / "reports").resolve()
    pair = synthetic("movies", seed=seed, size="tiny" if small else "demo")
    for label, part in (("source domain (pretraining)", pair.source),
                        ("target domain (fine-tuning)", pair.target)):
        print(f"== {label} ==\n{format_description(describe(part))}\n")
    pages: dict[str, Path] = {}
    notebooks = REPO / "notebooks"
    for name, parameters in demo_steps(runs, small, seed):
        if not (notebooks / f"{name}.ipynb").is_file():
            print(f"-- {name}: notebook not present, skipped")
            continue
        started = time.perf_counter()
        print(f"-- {name} ...", flush=True)
        result = run(name, parameters, out=reports_root, progress=False)
        pages[name] = result.html_path
        print(f"   done in {time.perf_counter() - started:.0f} s: {result.html_path}")
    pages["index"] = reports_root / "index.html"
    print(f"\nReports index: {pages['index']}")
    if "03_finetune" in pages:
        print(f"Fine-tuning report: {pages['03_finetune']}")
    return pages
