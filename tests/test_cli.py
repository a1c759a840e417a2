"""The recft command as a whole: help, version, config files, one-line errors, exit codes."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from recft._version import __version__
from recft.cli import EXIT_USAGE, main


def test_version_and_grouped_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stop:
        main(["--version"])
    assert stop.value.code == 0
    assert __version__ in capsys.readouterr().out
    assert main([]) == EXIT_USAGE
    help_text = capsys.readouterr().out
    for stage in ("data:", "pretraining:", "evaluation:"):
        assert stage in help_text
    assert "exit codes" in help_text


def test_unknown_dataset_is_one_line_error_with_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["data", "describe", "ml-nope"])
    err = capsys.readouterr().err
    assert code == EXIT_USAGE
    assert "Traceback" not in err
    assert err.startswith("recft: error:") and "ml-100k" in err  # valid names listed


def test_config_file_supplies_flags_and_command_line_wins(tmp_path, capsys) -> None:
    data = tmp_path / "mine.csv"
    data.write_text("user_id,item_id\nu1,a\nu1,b\nu2,a\n")
    config = tmp_path / "describe.yaml"
    config.write_text("json: true\n")
    assert main(["data", "describe", str(data), "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert out.lstrip().startswith("{") and '"interactions": 3' in out


def test_config_file_with_unknown_key_names_the_file(tmp_path, capsys) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text("no_such_flag: 1\n")
    code = main(["data", "describe", "synthetic", "--config", str(config)])
    err = capsys.readouterr().err
    assert code == EXIT_USAGE and "bad.yaml" in err and "no_such_flag" in err


def test_python_dash_m_recft_runs() -> None:
    result = subprocess.run([sys.executable, "-m", "recft", "--version"], capture_output=True, text=True)
    assert result.returncode == 0 and __version__ in result.stdout


def test_config_file_alone_can_supply_required_flags(tmp_path, capsys) -> None:
    config = tmp_path / "evaluate.yaml"
    config.write_text("baseline: popularity\ndataset: synthetic:tiny\njson: true\nk: [5, 10]\n")
    assert main(["evaluate", "--config", str(config)]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["model"] == "popularity" and "ndcg@5" in result["metrics"]
    # the command line wins over the file
    assert main(["evaluate", "--config", str(config), "--k", "3"]) == 0
    assert "ndcg@3" in json.loads(capsys.readouterr().out)["metrics"]


def test_missing_or_malformed_config_file_is_one_line(tmp_path, capsys) -> None:
    assert main(["evaluate", "--config", str(tmp_path / "nope.yaml")]) == EXIT_USAGE
    assert "config file not found" in capsys.readouterr().err
    bad = tmp_path / "bad.yaml"
    bad.write_text("dataset: [unclosed\n")
    assert main(["evaluate", "--config", str(bad)]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "not valid YAML" in err and "Traceback" not in err
