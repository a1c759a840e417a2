"""What reaches stdout and stderr: the JSON result alone on stdout, recft's own messages on
stderr, library noise (fbgemm's "Successfully loaded" lines, TBE arguments, warnings) only
with --verbose, and every error as exactly one line."""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from recft.cli import main
from recft.cli.common import print_json
from recft.cli.streams import command_streams

LIBRARY_NOISE = ("Successfully loaded", "[TBE=", "Warning", "warnings.warn")
PROGRESS_BAR = re.compile(r"\d+%\|")  # tqdm's bar: "epoch 1/2:  83%|########3 | 5/6 ..."


def run_recft(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("PYTHONWARNINGS", None)  # the user's own filters would win over recft's
    return subprocess.run([sys.executable, "-m", "recft", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def message_lines(stderr: str) -> list[str]:
    """stderr without progress bars (tqdm redraws them with carriage returns)."""
    lines = re.split(r"[\r\n]+", stderr)
    return [line for line in lines if line.strip() and not PROGRESS_BAR.search(line)]


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess[str]]:
    """`recft pretrain` without -q: progress bars and per-epoch lines are on."""
    folder = tmp_path_factory.mktemp("streams")
    run = run_recft("pretrain", "--dataset", "synthetic-target:tiny", "--epochs", "2",
                    "--out", "base", cwd=folder)
    assert run.returncode == 0, run.stderr[-3000:]
    return folder / "base", run


def test_pretrain_stdout_is_json_and_stderr_holds_only_recfts_epoch_lines(pretrained) -> None:
    checkpoint, run = pretrained
    summary = json.loads(run.stdout)  # the whole of stdout, nothing before or after
    assert summary["checkpoint"] == "base" and 0 < summary["metrics"]["ndcg@10"] <= 1
    lines = message_lines(run.stderr)
    assert [re.search(r"epoch \d+: loss", line) is not None for line in lines] == [True, True], lines
    assert not any(noise in run.stderr for noise in LIBRARY_NOISE)


def test_quiet_command_loading_torchrec_writes_nothing_to_stderr(pretrained) -> None:
    checkpoint, _ = pretrained
    run = run_recft("similar", "--checkpoint", str(checkpoint), "--items", "i00003", "--json",
                    "-q", cwd=checkpoint.parent)
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stderr == ""
    assert {row["item"] for row in json.loads(run.stdout)} == {"i00003"}


def test_verbose_shows_the_library_messages_again(pretrained) -> None:
    checkpoint, _ = pretrained
    run = run_recft("similar", "--checkpoint", str(checkpoint), "--items", "i00003", "--json",
                    "--verbose", cwd=checkpoint.parent)
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stderr.count("Successfully loaded: 'fbgemm_gpu_") >= 10  # 14 with 1.8.0
    json.loads(run.stdout)  # still nothing but the result on stdout


@pytest.mark.parametrize("args", [
    ("pretrain", "--dataset", "missing.csv", "--out", "x"),  # bad input, after torchrec loads
    ("pretrain", "--dataset", "synthetic:tiny"),  # usage: --out missing
], ids=["missing-file", "usage"])
def test_an_error_is_exactly_one_line_and_exit_2(tmp_path: Path, args: tuple[str, ...]) -> None:
    run = run_recft(*args, cwd=tmp_path)
    assert run.returncode == 2
    assert run.stdout == ""
    assert run.stderr.endswith("\n") and run.stderr.count("\n") == 1, run.stderr
    assert run.stderr.startswith("recft: error: ")


def test_hint_joins_the_error_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["data", "describe", "ml-1m", "--data-dir", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert "not found" in err and "; hint: run `recft data download ml-1m`" in err


def _warn_from(module_name: str, message: str) -> None:
    """Raise a warning attributed to ``module_name``, as code in that module would."""
    exec("import warnings\nwarnings.warn(MESSAGE)", {"__name__": module_name, "MESSAGE": message})


@pytest.mark.parametrize("verbose", [False, True])
def test_library_warnings_are_dropped_unless_verbose_and_recfts_kept(monkeypatch, verbose) -> None:
    monkeypatch.setattr(sys, "warnoptions", [])
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        with command_streams(verbose=verbose, quiet=False, json_stdout=False):
            _warn_from("torchrec.distributed.fake", "library noise")
            _warn_from("recft.data.fake", "a recft warning")
        _warn_from("torchrec.distributed.fake", "after the command")
    shown = [str(w.message) for w in seen]
    expected = ["a recft warning"] if not verbose else ["library noise", "a recft warning"]
    assert shown == expected + ["after the command"]  # filters restored on exit


def test_library_info_logs_are_dropped_and_levels_restored() -> None:
    root, recft_logger, torchrec_logger = (logging.getLogger(name) for name in ("", "recft", "torchrec"))
    before = root.level, recft_logger.level
    with command_streams(verbose=False, quiet=False, json_stdout=False):
        assert not root.isEnabledFor(logging.INFO)  # fbgemm logs with logging.info(...)
        assert not torchrec_logger.isEnabledFor(logging.WARNING)
        assert recft_logger.isEnabledFor(logging.INFO)
    with command_streams(verbose=False, quiet=True, json_stdout=False):
        assert not recft_logger.isEnabledFor(logging.INFO)
        assert recft_logger.isEnabledFor(logging.WARNING)
    with command_streams(verbose=True, quiet=False, json_stdout=False):
        assert root.isEnabledFor(logging.DEBUG) and torchrec_logger.isEnabledFor(logging.INFO)
    assert (root.level, recft_logger.level) == before


def test_json_commands_divert_everything_else_printed_to_stderr(capsys) -> None:
    with command_streams(verbose=False, quiet=False, json_stdout=True):
        print("trainable vs total parameters")  # as library code would
        print_json({"ok": 1})
    captured = capsys.readouterr()
    assert json.loads(captured.out) == {"ok": 1}
    assert captured.err == "trainable vs total parameters\n"
    print("plain again")  # the diversion ends with the command
    assert capsys.readouterr().out == "plain again\n"


def test_finetune_prints_its_parameter_tables_to_stderr_and_only_json_to_stdout(
        pretrained, capsys: pytest.CaptureFixture[str]) -> None:
    checkpoint, _ = pretrained
    capsys.readouterr()
    assert main(["finetune", "--checkpoint", str(checkpoint), "--dataset", "synthetic-target:tiny",
                 "--preset", "frozen-only", "--out", str(checkpoint.with_name("tuned"))]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["base"] == str(checkpoint)
    assert "trainable vs total parameters" in captured.err  # printed by recft.finetune.freezing
    assert re.search(r"epoch 1: loss", captured.err)
