"""Reports without a kernel: self-contained HTML, the index page, run comparison, `recft report`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from recft.cli import main
from recft.errors import RecftError
from recft.notebooks.html import external_resources, make_self_contained
from recft.notebooks.reports import compare_runs, find_runs, key_metrics, resolve_run, write_index

REMOTE_PAGE = """<!DOCTYPE html><html><head>
<script src="https://cdnjs.cloudflare.com/ajax/libs/require.js/2.1.10/require.min.js"></script>
<script src=""></script>
<script type="text/x-mathjax-config">MathJax.Hub.Config({});</script>
<link rel="stylesheet" href="https://fonts.googleapis.com/css?family=Roboto">
<link rel="icon" href="//cdn.example.org/favicon.ico">
<style>@import url("https://fonts.example.org/a.css");
@font-face { font-family: X; src: url(https://fonts.example.org/x.woff2); }
.logo { background: url(data:image/png;base64,AAAA); }</style>
<script type="module">const m = (await import("https://cdn.example.org/mermaid.mjs"));</script>
</head><body>
<p>See <a href="https://example.com/paper">the paper</a>; CSS text: url(https://a.b/c).</p>
<div style="background: url('https://example.com/bg.png')">styled</div>
<img src="https://example.com/plot.png" alt="remote plot">
<img src="data:image/png;base64,iVBORw0KGgo=" alt="inline plot">
<iframe src="http://example.com/embed"></iframe>
<script>var local = 1;</script>
</body></html>"""


def _write_run(root: Path, notebook: str, run_id: str, *, status: str = "ok",
               metrics: dict | None = None, parameters: dict | None = None,
               started: str = "2026-01-01T00:00:00+00:00") -> Path:
    """A run directory as the runner writes it (metrics.json plus an HTML file)."""
    run_dir = root / notebook / run_id
    run_dir.mkdir(parents=True)
    (run_dir / f"{notebook}.html").write_text("<html></html>")
    record = {
        "notebook": notebook, "run_id": run_id, "status": status, "started_at": started,
        "wall_time_s": 1.5, "parameters": parameters or {}, "overrides": parameters or {},
        "metrics": metrics or {}, "protocol": {"split": "random:0.8,0.1,0.1", "seed": 0},
        "git": {"commit": "0123456789abcdef0123456789abcdef01234567", "dirty": False},
        "error": None if status == "ok" else {"message": "cell 2 (In [3]): ZeroDivisionError"},
        "files": {"notebook": f"{notebook}.ipynb", "html": f"{notebook}.html", "figures": []},
    }
    (run_dir / "metrics.json").write_text(json.dumps(record))
    return run_dir


@pytest.fixture
def reports(tmp_path: Path) -> Path:
    root = tmp_path / "reports"
    _write_run(root, "03_finetune", "20260101T000000Z-aaaa", parameters={"EPOCHS": 1},
               metrics={"test": {"ndcg@10": 0.25, "recall@10": 0.4}, "coverage": 0.5})
    _write_run(root, "03_finetune", "20260102T000000Z-bbbb", parameters={"EPOCHS": 3},
               metrics={"test": {"ndcg@10": 0.3, "recall@10": 0.45}, "coverage": 0.5},
               started="2026-01-02T00:00:00+00:00")
    _write_run(root, "05_recommendations", "20260103T000000Z-cccc", status="failed",
               started="2026-01-03T00:00:00+00:00")
    return root


# --- self-contained HTML ---------------------------------------------------------------

def test_external_resources_finds_every_remote_load_but_not_links():
    found = " ".join(external_resources(REMOTE_PAGE))
    for url in ("require.min.js", "fonts.googleapis.com", "favicon.ico", "a.css", "x.woff2",
                "mermaid.mjs", "plot.png", "example.com/embed", "bg.png"):
        assert url in found
    assert "example.com/paper" not in found  # a link loads nothing until clicked
    assert "a.b/c" not in found


def test_make_self_contained_strips_remote_loads_and_keeps_local_content():
    page = make_self_contained(REMOTE_PAGE)
    assert external_resources(page) == []
    assert 'src="http' not in page and "src=\"//" not in page
    assert '<link rel="stylesheet" href="http' not in page and "url(https://fonts" not in page
    assert 'style="background: none"' in page
    assert '<script src=""' not in page
    assert '<a href="https://example.com/paper">' in page  # links stay
    assert "CSS text: url(https://a.b/c)." in page  # text about CSS is not CSS
    assert "data:image/png;base64,iVBORw0KGgo=" in page
    assert "url(data:image/png;base64,AAAA)" in page
    assert "var local = 1;" in page and "MathJax.Hub.Config" in page  # inline scripts stay
    assert "remote plot" in page  # a remote image becomes a link that names it


# --- index ---------------------------------------------------------------------------------

def test_find_runs_newest_first_skipping_staging_and_broken(reports: Path):
    staging = reports / "03_finetune" / ".20260104T000000Z-dddd.x1.tmp"
    staging.mkdir()
    (staging / "metrics.json").write_text("{}")
    broken = reports / "03_finetune" / "broken"
    broken.mkdir()
    (broken / "metrics.json").write_text("{not json")
    ids = [run.path.name for run in find_runs(reports)]
    assert ids == ["20260103T000000Z-cccc", "20260102T000000Z-bbbb", "20260101T000000Z-aaaa"]


def test_write_index_lists_runs_with_links_status_and_key_metrics(reports: Path):
    path = write_index(reports)
    page = path.read_text()
    assert path == reports / "index.html"
    for run_id in ("20260101T000000Z-aaaa", "20260102T000000Z-bbbb", "20260103T000000Z-cccc"):
        assert run_id in page
    assert 'href="03_finetune/20260102T000000Z-bbbb/03_finetune.html"' in page
    assert 'class="failed"' in page and "ZeroDivisionError" in page
    assert "test/ndcg@10=0.3, test/recall@10=0.45, coverage=0.5" in page
    assert "EPOCHS=3" in page
    assert external_resources(page) == [] and "<script" not in page
    assert not list(reports.glob(".index.html.*"))  # atomic write left no temporary file


def test_index_of_empty_root_says_how_to_make_runs(tmp_path: Path):
    page = write_index(tmp_path / "none").read_text()
    assert "0 run(s)" in page and "recft notebooks run" in page


def test_key_metrics_prefers_ranking_metrics_at_10():
    metrics = {"loss": 0.1, "valid": {"recall@10": 0.2}, "ndcg@10": 0.3, "label": "x", "ok": True}
    expected = [("ndcg@10", 0.3), ("valid/recall@10", 0.2), ("loss", 0.1)]
    assert key_metrics(metrics, limit=3) == expected


# --- comparison --------------------------------------------------------------------------

def test_compare_shows_both_values_and_the_difference(reports: Path):
    comparison = compare_runs("03_finetune/20260101T000000Z-aaaa", "20260102T000000Z-bbbb", reports)
    text = comparison.to_text()
    line = next(row for row in text.splitlines() if "test/ndcg@10" in row)
    assert line.split()[1:] == ["0.25", "0.3", "+0.05"]
    params = next(row for row in text.splitlines() if row.strip().startswith("EPOCHS"))
    assert params.split()[1:] == ["1", "3", "+2"]
    assert "0123456789ab" in text
    page = comparison.to_html()
    assert "0.25" in page and "+0.05" in page and external_resources(page) == []
    assert page.count('class="diff"') == 3  # ndcg, recall, EPOCHS differ; coverage does not


def test_resolve_run_by_path_and_errors(reports: Path):
    run = resolve_run(reports / "03_finetune" / "20260101T000000Z-aaaa")
    assert run.record["run_id"] == "20260101T000000Z-aaaa"
    with pytest.raises(RecftError, match="no run"):
        resolve_run("nope", reports)
    _write_run(reports, "04_other", "20260101T000000Z-aaaa")
    with pytest.raises(RecftError, match="ambiguous"):
        resolve_run("20260101T000000Z-aaaa", reports)


def test_cli_report_compare_index_and_exit_codes(reports: Path, tmp_path: Path, capsys):
    html_file = tmp_path / "compare.html"
    code = main(["report", "--compare", "03_finetune/20260101T000000Z-aaaa",
                 "03_finetune/20260102T000000Z-bbbb", "--reports", str(reports),
                 "--html", str(html_file)])
    out = capsys.readouterr().out
    assert code == 0
    assert "0.25" in out and "0.3" in out and "+0.05" in out
    assert "+0.05" in html_file.read_text()
    assert main(["report", "--index", "--reports", str(reports)]) == 0
    assert (reports / "index.html").is_file()
    assert main(["report", "--compare", "missing", "03_finetune/20260101T000000Z-aaaa",
                 "--reports", str(reports)]) == 2
    assert "no run 'missing'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(["report", "--reports", str(reports)])  # neither --compare nor --index
    assert exit_info.value.code == 2
