"""``recft evaluate --nproc 2`` and ``recft recommend --nproc 2``: the users split over 2
processes (torchrun's launcher, gloo on 127.0.0.1), the single-process output exactly.

The functions behind them are checked in the shared job of ``test_distributed.py``
(``test_evaluation_sharded_over_users_equals_one_process``,
``test_batch_recommend_sharded_over_users_writes_the_single_process_file``); here, the
commands: launching, printing once, the lock, the file assembled once.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from recft.cli import main

TESTS = Path(__file__).parent
RECFT = [sys.executable, "-m", "recft"]
DATA = ["--dataset", "synthetic:tiny", "--split", "random:0.8,0.1,0.1", "--seed", "0"]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    """An untrained tiny model of the synthetic:tiny catalog, and its training part."""
    sys.path.insert(0, str(TESTS))
    from distributed_cases import fresh_model, tiny_train

    folder = tmp_path_factory.mktemp("serving")
    train = tiny_train().train
    fresh_model(train).save_pretrained(folder / "checkpoint", training={})
    train.to_pandas().to_csv(folder / "train.csv", index=False)
    return folder / "checkpoint"


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """This process scores as each rank does (one thread each): same sums, same digits."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def run_sharded(*args: str) -> subprocess.CompletedProcess:
    result = subprocess.run([*RECFT, *args, "--nproc", "2", "--quiet"], capture_output=True,
                            text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def test_recft_recommend_nproc_2_writes_the_single_process_file(checkpoint, tmp_path, capsys):
    """8 chunks of 40 users split over 2 ranks: the same Parquet file, byte for byte, one
    report line, no state left."""
    histories = checkpoint.parent / "train.csv"
    flags = ["--checkpoint", str(checkpoint), "--histories", str(histories), "--k", "5",
             "--chunk-size", "40"]
    with one_thread():
        assert main(["recommend", *flags, "--out", str(tmp_path / "single.parquet"),
                     "--quiet"]) == 0
    capsys.readouterr()
    sharded = tmp_path / "sharded.parquet"
    result = run_sharded("recommend", *flags, "--out", str(sharded))
    assert result.stdout.strip() == f"wrote {300 * 5:,} recommendations to {sharded}"
    assert sharded.read_bytes() == (tmp_path / "single.parquet").read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sharded.parquet", "single.parquet"]


@pytest.mark.slow  # ~25 s: a launch; the sharded evaluation itself is checked in the shared job
def test_recft_evaluate_nproc_2_prints_the_single_process_result(checkpoint, capsys):
    flags = ["evaluate", "--checkpoint", str(checkpoint), *DATA, "--segments", "--json"]
    with one_thread():
        assert main(flags) == 0
    single = capsys.readouterr().out
    result = run_sharded(*flags)
    assert result.stdout == single  # the same JSON text (NaN included), printed once
    metrics = json.loads(single)["metrics"]
    assert metrics["num_users"] == 300 and "segments" in metrics and metrics["ndcg@10"] > 0
