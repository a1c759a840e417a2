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


@pytest.fixture(autouse=True)
def _one_thread_kernels(monkeypatch: pytest.MonkeyPatch) -> None:
    # kernels inherit the environment; tiny models run ~5x faster on one thread here
    monkeypatch.setenv("OMP_NUM_THREADS", "1")


@pytest.fixture(scope="module")
def pretrained(reports: Path) -> tuple[Path, dict]:
    checkpoint = reports / "runs" / "base"
    result = run("02_pretrain", {"SMALL": True, "CHECKPOINT_DIR": str(checkpoint)}, out=reports,
                 progress=False)
    return checkpoint, json.loads((result.run_dir / "metrics.json").read_text())


def _metrics(result) -> dict:
    return json.loads((result.run_dir / "metrics.json").read_text())


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


def test_02_pretrain_saves_a_checkpoint_and_beats_popularity(pretrained) -> None:
    checkpoint, metrics = pretrained
    assert metrics["status"] == "ok"
    assert (checkpoint / "model.safetensors").is_file() and (checkpoint / "README.md").is_file()
    ndcg = metrics["metrics"]["ndcg@10"]
    assert 0 < ndcg <= 1
    assert ndcg > metrics["extra"]["baselines"]["popularity"]["ndcg@10"]
    assert metrics["protocol"]["ranking"] == "full" and metrics["protocol"]["spec"] == "random:0.8,0.1,0.1"


def test_03_finetune_records_stages_and_alignment(pretrained, reports: Path) -> None:
    checkpoint, _ = pretrained
    result = run("03_finetune", {"SMALL": True, "CHECKPOINT": str(checkpoint),
                                 "OUTPUT_DIR": str(reports / "runs" / "tuned")}, out=reports, progress=False)
    metrics = _metrics(result)
    assert metrics["status"] == "ok" and 0 < metrics["metrics"]["ndcg@10"] <= 1
    stages = metrics["extra"]["stages"]
    assert stages["frozen"]["trainable_parameters"] < stages["full"]["trainable_parameters"]
    assert metrics["extra"]["alignment"]["users"]["new"] == 150  # every target user is new
    assert (reports / "runs" / "tuned" / "model.safetensors").is_file()


def test_04_compare_records_every_strategy(pretrained, reports: Path) -> None:
    checkpoint, _ = pretrained
    result = run("04_compare_strategies", {"SMALL": True, "CHECKPOINT": str(checkpoint),
                                           "OUTPUT_DIR": str(reports / "runs" / "compare")},
                 out=reports, progress=False)
    metrics = _metrics(result)
    strategies = {row["strategy"] for row in metrics["extra"]["rows"]}
    assert strategies == {"popularity", "ease", "itemknn", "ease-source", "itemknn-source",
                          "scratch", "zero-shot", "frozen", "frozen+full", "adapters", "blend"}
    assert all(row["ci95"]["ndcg@10"][0] <= row["metrics"]["ndcg@10"] <= row["ci95"]["ndcg@10"][1]
               for row in metrics["extra"]["rows"])
    assert all(0 <= v <= 1 for v in metrics["metrics"].values())
    assert metrics["protocol"]["fractions"] == [0.25, 1.0]
    assert (result.run_dir / "figures" / "data_efficiency.png").is_file()


def test_report_html_is_self_contained(reports: Path) -> None:
    pages = list(reports.glob("*/*/*.html"))
    assert pages
    for page in pages:
        html = page.read_text()
        assert 'src="http' not in html and "href=\"http" not in html.replace('<a href="http', "")
        assert "data:image/png;base64" in html
    assert (reports / "index.html").is_file()


def test_05_recommendations_serves_known_and_new_users(pretrained, reports: Path) -> None:
    checkpoint, _ = pretrained  # a pretrained checkpoint serves its own dataset
    result = run("05_recommendations", {"SMALL": True, "CHECKPOINT": str(checkpoint),
                                        "DATASET": "synthetic"}, out=reports, progress=False)
    metrics = _metrics(result)
    assert metrics["status"] == "ok" and metrics["metrics"]["shown_users"] == 3
    assert metrics["metrics"]["held_out_hits_shown"] >= 1
    assert 0 <= metrics["metrics"]["cold_user_feature_share"] <= 1
    assert len(metrics["extra"]["cold_user"]["history"]) == 5
