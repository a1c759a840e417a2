"""Every notebook runs through papermill at its SMALL size and records sensible metrics."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from recft.notebooks import list_notebooks, run

pytestmark = pytest.mark.notebooks
NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


@pytest.fixture(scope="module")
def reports(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("reports")


def test_every_notebook_has_a_documented_parameters_cell_with_small() -> None:
    infos = list_notebooks(NOTEBOOKS)
    assert len(infos) >= 1
    for info in infos:
        names = {p.name for p in info.parameters}
        assert "SMALL" in names, info.name
        assert all(p.comment for p in info.parameters), f"{info.name}: every parameter needs a comment"


def test_01_explore_data_records_dataset_counts(reports: Path) -> None:
    result = run("01_explore_data", {"SMALL": True}, out=reports, progress=False)
    metrics = json.loads((result.run_dir / "metrics.json").read_text())
    assert metrics["status"] == "ok"
    assert metrics["metrics"]["users"] == 300 and metrics["metrics"]["items"] == 200
    assert metrics["protocol"]["dataset"] == "synthetic"
    assert {"overview.png", "timeline.png", "item_features.png"} <= {
        p.name for p in (result.run_dir / "figures").iterdir()
    }
