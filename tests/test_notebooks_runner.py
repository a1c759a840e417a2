"""Running notebooks into run directories; parameters cells; recording from inside a kernel."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from recft.cli import main
from recft.errors import RecftError
from recft.notebooks import (
    KERNELSPEC, NotebookError, list_notebooks, read_notebook_info, record, run,
)
from recft.notebooks import layout
from recft.notebooks.html import external_resources
from recft.notebooks.params import parse_parameters_cell, parse_value
from recft.notebooks.record import save_figure, to_jsonable
from recft.notebooks.runner import choose_kernel

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

PLOT = """import matplotlib.pyplot as plt
fig, ax = plt.subplots()
ax.plot(range(N), [i * i for i in range(N)])
plt.show()"""
SAVED_PLOT = """from recft.notebooks import record, save_figure
fig2, ax2 = plt.subplots()
ax2.bar(["a", "b"], [N, 1])
save_figure(fig2, "bars")"""


def write_notebook(path: Path, parameters: str, *cells: str, title: str = "Tiny") -> Path:
    """A notebook naming the recft kernel, with a title, a parameters cell and code cells."""
    notebook = new_notebook(metadata={"kernelspec": dict(KERNELSPEC)})
    params = new_code_cell(parameters)
    params.metadata["tags"] = ["parameters"]
    notebook.cells = [new_markdown_cell(f"# {title}\n\nWhat it shows."), params,
                      *(new_code_cell(source) for source in cells)]
    nbformat.write(notebook, str(path))
    return path


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """One successful and one failing run into the same reports root (kernels are slow)."""
    base = tmp_path_factory.mktemp("runs")
    tiny = write_notebook(base / "tiny.ipynb", 'N = 3  # how many\nLABEL = "x"  # a label\n',
                          PLOT, SAVED_PLOT,
                          'record({"value": N * 2}, protocol={"split": "none", "seed": 0}, '
                          "label=LABEL);")
    bad = write_notebook(base / "bad.ipynb", "N = 3\n", "x = N", "1 / 0", "print('never ran')",
                         title="Bad")
    root = base / "reports"
    # the Makefile exports MPLBACKEND=Agg, which would hide every plot inside the kernel
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MPLBACKEND", "Agg")
        ok = run(tiny, {"N": 5}, root, run_id="five", progress=False)
        with pytest.raises(NotebookError) as failed:
            run(bad, None, root, progress=False)
    return SimpleNamespace(root=root, tiny=tiny, bad=bad, ok=ok, error=failed.value)


@pytest.mark.notebooks
def test_run_writes_metrics_with_protocol_parameters_and_provenance(runs):
    assert runs.ok.run_dir == runs.root / "tiny" / "five"
    record = json.loads((runs.ok.run_dir / "metrics.json").read_text())
    assert record["status"] == "ok" and record["error"] is None
    assert record["metrics"] == {"value": 10} == runs.ok.metrics
    assert record["protocol"] == {"split": "none", "seed": 0}
    assert record["extra"] == {"label": "x"}
    assert record["parameters"] == {"N": 5, "LABEL": "x"} and record["overrides"] == {"N": 5}
    assert set(record["versions"]) >= {"recft", "torch", "torchrec", "python"}
    assert record["versions"]["torch"] and record["versions"]["python"]
    assert re.fullmatch(r"[0-9a-f]{40}", record["git"]["commit"])
    assert record["run_id"] == "five" and record["kernel"] == "recft"
    assert record["wall_time_s"] > 0
    assert not (runs.ok.run_dir / "record.json").exists()  # merged into metrics.json


@pytest.mark.notebooks
def test_run_keeps_executed_notebook_with_injected_parameters(runs):
    executed = nbformat.read(str(runs.ok.notebook_path), as_version=4)
    injected = [c for c in executed.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert len(injected) == 1 and "N = 5" in injected[0].source
    assert executed.metadata.papermill.output_path == str(runs.ok.notebook_path)


@pytest.mark.notebooks
def test_run_extracts_figures(runs):
    names = sorted(p.name for p in (runs.ok.run_dir / "figures").iterdir())
    assert names == ["bars.png", "cell02-1.png"]  # save_figure's name; the plt.show() of cell 2
    for path in runs.ok.figures:
        assert path.read_bytes().startswith(PNG_SIGNATURE)


@pytest.mark.notebooks
def test_run_html_embeds_plots_and_loads_nothing_remote(runs):
    page = runs.ok.html_path.read_text()
    assert page.count("data:image/png;base64") >= 2
    assert 'src="http' not in page and 'href="http' not in page
    assert external_resources(page) == []
    assert "value" in page and "10" in page  # the recorded metrics table


@pytest.mark.notebooks
def test_failing_cell_raises_and_keeps_partial_outputs(runs):
    error = runs.error
    # 0-based in the notebook as written: title, parameters, "x = N", then "1 / 0"
    assert error.ename == "ZeroDivisionError" and error.cell_index == 3
    assert "cell 3 (In [3])" in str(error) and "ZeroDivisionError: division by zero" in str(error)
    record = json.loads((error.run_dir / "metrics.json").read_text())
    assert record["status"] == "failed" and record["error"]["cell_index"] == 3
    executed = nbformat.read(str(error.run_dir / "bad.ipynb"), as_version=4)
    assert not any("never ran" in str(c.get("outputs")) for c in executed.cells)
    assert "ZeroDivisionError" in (error.run_dir / "bad.html").read_text()


@pytest.mark.notebooks
def test_index_lists_successful_and_failed_runs(runs):
    page = (runs.root / "index.html").read_text()
    assert 'href="tiny/five/tiny.html"' in page and "value=10" in page
    assert f"bad/{runs.error.run_dir.name}/bad.html" in page and 'class="failed"' in page
    assert external_resources(page) == []


@pytest.mark.notebooks
def test_cli_run_compare_and_exit_codes(runs, capsys):
    out = str(runs.root)
    assert main(["notebooks", "run", str(runs.tiny), "-p", "N=2", "--out", out,
                 "--run-id", "two", "-q"]) == 0
    assert "value" in capsys.readouterr().out
    assert main(["report", "--compare", "tiny/five", "tiny/two", "--reports", out]) == 0
    line = next(r for r in capsys.readouterr().out.splitlines() if r.strip().startswith("value"))
    assert line.split()[1:] == ["10", "4", "-6"]
    assert main(["notebooks", "run", str(runs.bad), "--out", out, "-q"]) == 1
    assert "ZeroDivisionError" in capsys.readouterr().err
    # unknown parameter: refused before anything runs, as a usage error
    assert main(["notebooks", "run", str(runs.tiny), "-p", "NN=1", "--out", out]) == 2
    assert "unknown parameter(s) NN" in capsys.readouterr().err


@pytest.mark.notebooks
def test_cell_timeout_is_a_notebook_error(tmp_path):
    slow = write_notebook(tmp_path / "slow.ipynb", "N = 1\n", "import time\ntime.sleep(60)")
    with pytest.raises(NotebookError) as failed:
        run(slow, None, tmp_path / "reports", timeout=2, progress=False, update_index=False)
    assert failed.value.ename == "CellTimeoutError" and failed.value.cell_index == 2
    assert "timed out" in str(failed.value)
    assert json.loads((failed.value.run_dir / "metrics.json").read_text())["status"] == "failed"


@pytest.mark.notebooks
def test_html_renders_in_headless_chromium(runs, tmp_path):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("headless Chromium is not installed (.ci/run installs Debian's when it can)")
    shot = tmp_path / "page.png"
    # no network here: without these flags Chromium keeps retrying background connections
    quiet = ["--disable-quic", "--no-first-run", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}"]
    subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", *quiet,
                    f"--screenshot={shot}", "--window-size=1000,1400", runs.ok.html_path.as_uri()],
                   check=True, capture_output=True, timeout=120)
    from PIL import Image

    pixels = Image.open(shot).convert("L")
    low, high = pixels.getextrema()
    assert high - low > 100  # text and a plot, not a blank page


# --- without a kernel --------------------------------------------------------------------

def test_unknown_notebook_parameter_or_kernel_is_refused(tmp_path):
    path = write_notebook(tmp_path / "p.ipynb", "N = 3\n")
    with pytest.raises(RecftError, match="valid: N"):
        run(path, {"M": 1}, tmp_path / "reports")
    with pytest.raises(RecftError, match="no Jupyter kernel named 'nope'"):
        run(path, None, tmp_path / "reports", kernel="nope")
    assert not (tmp_path / "reports").exists()


def test_kernel_choice_falls_back_to_this_interpreter(monkeypatch, caplog):
    from jupyter_client.kernelspec import KernelSpecManager

    installed = {"python3": "/k/python3", "recft": "/k/recft", "other": "/k/other"}
    monkeypatch.setattr(KernelSpecManager, "find_kernel_specs", lambda self: dict(installed))
    assert choose_kernel("other") == "other"
    assert choose_kernel("missing") == "recft"
    assert "kernel 'missing' is not installed" in caplog.text
    del installed["recft"]
    assert choose_kernel("recft") == "python3"
    assert choose_kernel(None, "other") == "other"


def test_interrupted_run_keeps_its_directory_and_reraises(tmp_path, monkeypatch):
    import papermill

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(papermill, "execute_notebook", interrupt)
    path = write_notebook(tmp_path / "p.ipynb", "N = 3\n")
    with pytest.raises(KeyboardInterrupt):
        run(path, {"N": 4}, tmp_path / "reports", run_id="stopped", progress=False)
    record = json.loads((tmp_path / "reports" / "p" / "stopped" / "metrics.json").read_text())
    assert record["status"] == "interrupted" and record["parameters"] == {"N": 4}
    assert (tmp_path / "reports" / "p" / "stopped" / "p.html").is_file()
    assert "stopped" in (tmp_path / "reports" / "index.html").read_text()


def test_resolve_notebook_by_name_prefix_or_path(tmp_path, monkeypatch):
    monkeypatch.setattr(layout, "notebooks_dir", lambda: tmp_path)
    for name in ("01_explore_data", "03_finetune", "03_finetune_sweep"):
        write_notebook(tmp_path / f"{name}.ipynb", "N = 1\n")
    assert layout.resolve_notebook("03_finetune").name == "03_finetune.ipynb"
    assert layout.resolve_notebook("01").name == "01_explore_data.ipynb"
    assert layout.resolve_notebook(tmp_path / "01_explore_data.ipynb").is_absolute()
    with pytest.raises(RecftError, match="ambiguous.*03_finetune, 03_finetune_sweep"):
        layout.resolve_notebook("03_fine")
    with pytest.raises(RecftError, match="not found"):
        layout.resolve_notebook("99")


def test_run_id_is_time_and_parameter_hash():
    first = layout.make_run_id({"N": 5, "A": 1})
    assert re.fullmatch(r"\d{8}T\d{6}Z-[0-9a-f]{8}", first)
    assert first[-8:] == layout.make_run_id({"A": 1, "N": 5})[-8:]
    assert first[-8:] != layout.make_run_id({"N": 6, "A": 1})[-8:]
    with pytest.raises(RecftError):
        layout.check_safe_name("../escape", "run id")


def test_parameters_cell_defaults_and_comments():
    source = ('# dataset name, "tiny" in tests\nDATASET = "movielens-100k"\n'
              "EPOCHS: int = 3  # passes over the data\n"
              "SIZES = {\n    'a': 1,\n}  # per split\n"
              "LR = 10 ** -3\nprint('not a parameter')\nx, y = 1, 2\n")
    parameters = parse_parameters_cell(source)
    assert [(p.name, p.default, p.comment) for p in parameters] == [
        ("DATASET", '"movielens-100k"', 'dataset name, "tiny" in tests'),
        ("EPOCHS", "3", "passes over the data"),
        ("SIZES", "{\n    'a': 1,\n}", "per split"),
        ("LR", "10 ** -3", ""),
    ]
    assert parameters[0].value == "movielens-100k" and parameters[2].value == {"a": 1}
    assert parameters[3].value == "10 ** -3"  # not a literal: shown as written
    with pytest.raises(RecftError, match="line 1"):
        parse_parameters_cell("N = = 3")


def test_list_notebooks_reads_titles_kernels_and_parameters(tmp_path, capsys):
    write_notebook(tmp_path / "02_b.ipynb", "N = 3  # how many\nSMALL = False\n", title="Second")
    notebook = new_notebook(cells=[new_code_cell("x = 1")])
    nbformat.write(notebook, str(tmp_path / "01_a.ipynb"))
    infos = list_notebooks(tmp_path)
    assert [info.name for info in infos] == ["01_a", "02_b"]
    assert not infos[0].has_parameters_cell and infos[0].parameters == []
    assert infos[1].title == "Second" and infos[1].kernel == "recft"
    assert infos[1].defaults() == {"N": 3, "SMALL": False}
    assert infos[1].parameters[0].comment == "how many"
    assert read_notebook_info(tmp_path / "02_b.ipynb") == infos[1]
    assert main(["notebooks", "list", "--dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "02_b  Second" in out and "N = 3" in out and "# how many" in out
    assert "no cell tagged 'parameters'" in out


@pytest.mark.parametrize(("text", "value"), [
    ("3", 3), ("true", True), ("0.5", 0.5), ("1e-3", 0.001), ("null", None), ("abc", "abc"),
    ("'3'", "3"), ("[1, 2]", [1, 2]), ("", ""), ("a: b", {"a": "b"}),
])
def test_cli_values_are_yaml_scalars(text, value):
    assert parse_value(text) == value and type(parse_value(text)) is type(value)


def test_cli_run_parameter_file_and_bad_assignment(tmp_path, capsys):
    (tmp_path / "p.yaml").write_text("- not a mapping\n")
    assert main(["notebooks", "run", "x", "-f", str(tmp_path / "p.yaml")]) == 2
    assert "expected a mapping" in capsys.readouterr().err
    assert main(["notebooks", "run", "x", "-p", "NOEQUALS"]) == 2
    assert "expected KEY=VALUE" in capsys.readouterr().err


def test_record_outside_a_runner_displays_and_writes_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv(layout.RUN_DIR_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    assert record({"ndcg@10": 0.25}, protocol={"seed": 0}) == {"ndcg@10": 0.25}
    out = capsys.readouterr().out
    assert "ndcg@10" in out and "0.25" in out and "seed=0" in out
    assert list(tmp_path.iterdir()) == []


def test_record_and_save_figure_under_a_runner(tmp_path, monkeypatch):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    monkeypatch.setenv(layout.RUN_DIR_ENV, str(tmp_path))
    record({"a": np.float32(0.5), "per_segment": {"cold": np.int64(3)}}, note="first")
    record({"b": 2}, protocol={"split": "temporal"})  # a second call merges
    saved = json.loads((tmp_path / "record.json").read_text())
    assert saved["metrics"] == {"a": 0.5, "per_segment": {"cold": 3}, "b": 2}
    assert saved["protocol"] == {"split": "temporal"} and saved["extra"] == {"note": "first"}
    fig, ax = plt.subplots()
    ax.plot([0, 1])
    assert save_figure(fig, "curve.png") == tmp_path / "figures" / "curve.png"
    assert (tmp_path / "figures" / "curve.png").read_bytes().startswith(PNG_SIGNATURE)
    with pytest.raises(RecftError, match="figure name"):
        save_figure(fig, "../outside")
    plt.close(fig)


def test_to_jsonable_refuses_opaque_objects():
    assert to_jsonable({"p": Path("x"), "s": {2, 1}}) == {"p": "x", "s": [1, 2]}
    with pytest.raises(RecftError, match=r"metrics\.model"):
        to_jsonable({"model": object()}, "metrics")
