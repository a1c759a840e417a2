"""Scale-out: torchrec DistributedModelParallel over gloo, 2 processes on 127.0.0.1.

The ranks run ``tests/distributed_cases.py`` with the environment torchrun sets
(``run_ranks``), a few cases per job since starting a job (importing torch and torchrec
twice) costs more than the cases; the CLI tests go through ``recft ... --nproc 2``, i.e.
torchrun's own launcher. Data: the tiny synthetic source.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from recft.cli.launch import worker_argv
from recft.train.rank_batches import rank_slice

TESTS = Path(__file__).parent
WORLD = 2
# float32 sums in another order (two half batches, then an average): Adam's first steps
# divide by sqrt(v) and turn 1e-7 relative gradient noise into up to ~1e-5 on weights that
# moved by 1e-2 or more (measured worst: 7.4e-6)
STEP_TOLERANCE = 5e-5
SHARDING_TYPES = ("table_wise", "row_wise", "column_wise", "data_parallel")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def run_ranks(case: str, out: Path, arg: str = "", world: int = WORLD,
              timeout: float = 300) -> list[dict]:
    """Run ``distributed_cases.py CASE OUT ARG`` as ``world`` ranks; each rank's result."""
    out.mkdir(parents=True, exist_ok=True)
    port = str(free_port())
    processes = []
    log = tempfile.TemporaryFile("w+")  # the ranks' stderr, shown when one fails
    for rank in range(world):
        environment = {**os.environ, "RANK": str(rank), "LOCAL_RANK": str(rank),
                       "WORLD_SIZE": str(world), "LOCAL_WORLD_SIZE": str(world),
                       "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": port,
                       "OMP_NUM_THREADS": "1", "GLOO_SOCKET_IFNAME": "lo"}
        processes.append(subprocess.Popen(
            [sys.executable, str(TESTS / "distributed_cases.py"), case, str(out), arg],
            env=environment, stdout=subprocess.DEVNULL, stderr=log, text=True))
    deadline = time.monotonic() + timeout
    while any(p.poll() is None for p in processes):
        # a rank that failed leaves the others waiting in a collective: stop them, as
        # torchrun's agent does
        if any(p.returncode not in (None, 0) for p in processes) or time.monotonic() > deadline:
            for process in processes:
                process.kill()
        time.sleep(0.2)
    failed = [f"rank {rank}: exit {p.returncode}" for rank, p in enumerate(processes)
              if p.returncode != 0]
    log.seek(0)
    assert not failed, f"{failed}\n{log.read()[-4000:]}"
    return [json.loads((out / f"rank{r}.json").read_text()) for r in range(world)]


@pytest.fixture(scope="module")
def single_checkpoint(tmp_path_factory):
    """A checkpoint written by one process (untrained tiny model) and its model."""
    sys.path.insert(0, str(TESTS))
    from distributed_cases import fresh_model, tiny_train

    model = fresh_model(tiny_train().train)
    path = tmp_path_factory.mktemp("single") / "checkpoint"
    model.save_pretrained(path, training={})
    return path, model


@pytest.fixture(scope="module")
def mechanics(tmp_path_factory, single_checkpoint):
    return run_ranks("mechanics", tmp_path_factory.mktemp("mechanics"),
                     str(single_checkpoint[0]))


@pytest.fixture(scope="module")
def training(tmp_path_factory):
    out = tmp_path_factory.mktemp("training")
    return out, run_ranks("training", out)


def test_rank_slices_cover_the_batch_in_order():
    for size in (1, 7, 64, 65):
        slices = [rank_slice(size, r, 3) for r in range(3)]
        assert slices[0][0] == 0 and slices[-1][1] == size
        assert all(a[1] == b[0] for a, b in zip(slices, slices[1:]))
        assert max(b - a for a, b in slices) - min(b - a for a, b in slices) <= 1


@pytest.mark.parametrize("kind", SHARDING_TYPES)
def test_sharded_forward_equals_unsharded(mechanics, kind):
    """Users, positives and extra negatives of each rank's slice, every table sharded
    ``kind``, against the unsharded model with the same weights."""
    for rank, found in enumerate(mechanics):
        assert found["forward"][f"{kind}/plan"] == [kind]  # the plan did what was asked
        assert found["forward"][kind] < 1e-6, (rank, found["forward"][kind])


@pytest.mark.parametrize("plan", ["mixed", "table_wise"])
def test_steps_match_one_process_with_per_rank_negatives(mechanics, plan):
    """Five steps on 2 ranks (global batch 64) equal one process on the same global
    batches whose in-batch softmax runs over each rank's block: the documented meaning of
    per-rank negatives. ``mixed``: row-wise, column-wise and data-parallel tables."""
    for found in mechanics:
        steps = found[f"steps/{plan}"]
        assert steps["steps"] == 5
        assert max(steps["moved"].values()) > 1e-2  # the steps did move the weights
        worst = max(steps["diffs"], key=steps["diffs"].get)
        assert steps["diffs"][worst] < STEP_TOLERANCE, (worst, steps["diffs"][worst])


def test_per_row_rates_work_on_sharded_tables(mechanics):
    """Pretrained rows at 0.25x the rate of rows appended for new ids (rescaled on the
    shards that own them) match one process; with ``train_only_new_rows`` the pretrained
    rows stay bit-for-bit while new rows train."""
    for found in mechanics:
        scaled, masked = found["steps/scaled"], found["steps/masked"]
        worst = max(scaled["diffs"], key=scaled["diffs"].get)
        assert scaled["diffs"][worst] < STEP_TOLERANCE, (worst, scaled["diffs"][worst])
        assert scaled["old_rows_moved"] > 0 and scaled["new_rows_moved"] > 0
        worst = max(masked["diffs"], key=masked["diffs"].get)
        assert masked["diffs"][worst] < STEP_TOLERANCE, (worst, masked["diffs"][worst])
        assert masked["old_rows_moved"] == 0.0 and masked["new_rows_moved"] > 1e-3


def test_frozen_stage_leaves_sharded_tables_bit_for_bit(mechanics):
    for found in mechanics:
        frozen = found["frozen"]
        assert frozen["examples"] > 0 and frozen["heads"] > 0  # the new parts did train
        assert frozen["plan"] == ["column_wise", "data_parallel", "row_wise"]  # sharded
        assert all(moved == 0.0 for moved in frozen["tables_moved"].values()), frozen


def test_validation_split_over_ranks_equals_one_process(mechanics):
    for found in mechanics:
        single, split = found["validation"]["single"], found["validation"]["split"]
        assert set(split) == {f"{m}@{k}" for m in ("ndcg", "recall", "mrr") for k in (5, 10)}
        assert split["ndcg@10"] > 0
        for key, value in single.items():
            assert abs(split[key] - value) < 1e-9, (key, split[key], value)
    assert mechanics[0]["validation"]["split"] == mechanics[1]["validation"]["split"]


def test_evaluation_sharded_over_users_equals_one_process(mechanics):
    """Every metric at 5 and 10 (coverage, avg_popularity included) and the segments,
    each rank ranking its half of the users in chunks of 7: the single-process result,
    digit for digit, on both ranks."""
    for found in mechanics:
        single, sharded = (json.loads(found["serving"]["evaluate"][key])
                           for key in ("single", "sharded"))
        assert {"coverage@10", "avg_popularity@10", "segments"} <= set(sharded)
        assert sharded["num_users"] == 300 and sharded["ndcg@10"] > 0
        assert found["serving"]["evaluate"]["sharded"] == found["serving"]["evaluate"]["single"]


def test_batch_recommend_sharded_over_users_writes_the_single_process_file(mechanics):
    """The 43 chunks of 301 users (the last one unknown to the model: the fallback
    list) split over 2 ranks, each chunk computed once; and a job a single process
    stopped after 3 chunks is finished by the 2 ranks: both files are the one a single
    process writes, byte for byte."""
    import pyarrow.parquet as pq

    from distributed_serving_cases import CHUNK, STOP_AFTER

    out = Path(mechanics[0]["serving"]["recommend"]["out"])
    single = (out / "single.parquet").read_bytes()
    rows = pq.read_table(out / "single.parquet")
    assert rows.num_rows == 301 * 5 and rows.column("user")[-1].as_py() == "nobody"
    chunks = -(-301 // CHUNK)
    for name, skipped in (("sharded", 0), ("resumed", STOP_AFTER)):
        assert (out / f"{name}.parquet").read_bytes() == single, name
        assert not (out / f"{name}.parquet.parts").exists()  # state removed once assembled
        computed = [found["serving"]["recommend"][name] for found in mechanics]
        assert sorted(computed[0] + computed[1]) == list(range(skipped, chunks)), name
        assert abs(len(computed[0]) - len(computed[1])) <= 1  # shared, not one rank's


def test_single_process_checkpoint_loads_sharded_and_trains_on(mechanics, single_checkpoint):
    _, model = single_checkpoint
    sys.path.insert(0, str(TESTS))
    from distributed_cases import tiny_train

    expected = model.score_users(np.arange(20), tiny_train().train)
    for found in mechanics:
        continued = found["continue"]
        assert continued["loaded"] == 0.0  # every table and layer loaded exactly
        assert torch.allclose(torch.tensor(continued["scores_before"]), expected)
        assert continued["moved"] > 1e-3 and continued["finite"]


def test_sharded_pretrain_ends_with_one_model_on_every_rank(training):
    out, results = training
    weights = [load_file(str(out / f"whole.rank{r}.safetensors")) for r in range(WORLD)]
    for name in weights[0]:
        assert torch.equal(weights[0][name], weights[1][name]), name
    assert results[0]["whole_loss"] == results[1]["whole_loss"]  # the job's statistics
    sys.path.insert(0, str(TESTS))
    from distributed_cases import tiny_train

    # both epochs, every example once per epoch, counted over both ranks
    assert results[0]["examples"] == 2 * len(tiny_train().train)


def test_sharded_run_writes_the_single_process_checkpoint(training):
    from recft.models.checkpoint import load_pretrained

    out, _ = training
    gathered = load_file(str(out / "whole.rank0.safetensors"))
    single = load_pretrained(out / "checkpoint").state_dict()
    assert single.keys() == gathered.keys()
    for name, value in gathered.items():
        assert torch.equal(single[name], value), name


def test_sharded_resume_ends_with_the_weights_of_an_uninterrupted_run(training):
    out, results = training
    saved = results[0]["saved"]
    assert "state/checksums.json" in saved and "state/dcp/.metadata" in saved  # DCP, sharded
    assert sum(name.startswith("state/dcp/") and name.endswith(".distcp") for name in saved) == 2
    for found in results:
        assert found["resumed_loss"][:1] == found["first_loss"]  # epoch 1 came from the state
    for rank in range(WORLD):
        whole = load_file(str(out / f"whole.rank{rank}.safetensors"))
        resumed = load_file(str(out / f"resumed.rank{rank}.safetensors"))
        for name in whole:
            assert torch.equal(whole[name], resumed[name]), name


def test_sharded_finetune_resumes_to_the_weights_of_an_uninterrupted_run(training):
    """Frozen (1 epoch) then full (2 epochs), row- and column-wise tables: stopped right
    after the first between-stages save, resumed at the full stage and stopped after its
    first epoch's save, resumed for the last epoch: the uninterrupted run's weights and
    losses, bit for bit, on both ranks."""
    _, results = training
    for found in results:
        assert found["finetune_stops"] == [[1, False], [1, True]]
        assert found["finetune_epochs_after_resume"] == 1  # the last epoch only
        assert found["finetune_keys_equal"] and found["finetune_finite"]
        assert found["finetune_moved"] > 1e-3  # the fine-tuning did change the weights
        assert found["finetune_diff"] == 0.0
        whole, resumed = found["finetune_losses"]
        assert whole == resumed and [len(stage) for stage in whole] == [1, 2]


def test_worker_command_line_drops_the_launcher_flags():
    from recft.cli import build_parser

    args = build_parser().parse_args([
        "pretrain", "--dataset", "synthetic:tiny", "--out", "x", "--nproc", "2", "--port",
        "1234", "--epochs", "3", "--sharding", "item_id=row_wise", "--quiet"])
    argv = worker_argv(args)
    assert argv[0] == "pretrain"
    assert "--nproc" not in argv and "--port" not in argv
    assert argv[argv.index("--epochs") + 1] == "3"
    assert argv[argv.index("--sharding") + 1] == "item_id=row_wise"
    assert "--quiet" in argv and argv[argv.index("--out") + 1] == "x"


# ---------------------------------------------------------------------------- the command
RECFT = [sys.executable, "-m", "recft"]


def recft_pretrain(out: Path, *flags: str) -> list[str]:
    return [*RECFT, "pretrain", "--dataset", "synthetic:tiny", "--embedding-dim", "16",
            "--out", str(out), *flags]


def test_recft_pretrain_nproc_2_writes_a_checkpoint_with_its_plan(tmp_path):
    out = tmp_path / "base"
    result = subprocess.run(
        recft_pretrain(out, "--epochs", "1", "--nproc", "2", "--sharding",
                       "item_id=row_wise,user_id=table_wise"),
        capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(result.stdout)  # the JSON result alone on stdout, printed once
    assert summary["checkpoint"] == str(out)
    assert "sharding plan" in result.stderr and "row_wise" in result.stderr
    record = json.loads((out / "training.json").read_text())["distributed"]
    assert record["world_size"] == 2
    assert record["sharding"]["item_id"]["sharding"] == "row_wise"
    assert record["sharding"]["user_id"]["sharding"] == "table_wise"
    assert not out.with_name("base.resume").exists()  # superseded by the checkpoint
    from recft.models.checkpoint import load_pretrained

    model = load_pretrained(out)
    assert model.config.embedding_dim == 16
    # the test metrics were ranked by both processes, each for its share of the users:
    # the same figures as one process ranking every user of the saved checkpoint
    from recft.data import load, split
    from recft.evaluate import evaluate

    parts = split(load("synthetic:tiny"), "random:0.8,0.1,0.1", seed=0)
    known = parts.known("test")
    alone = evaluate(model, parts.test, exclude=known, history=known, ks=(10, 20), segments=True)
    assert summary["metrics"]["ndcg@10"] == pytest.approx(alone["ndcg@10"], abs=1e-6)
    assert summary["metrics"]["coverage@20"] == pytest.approx(alone["coverage@20"], abs=1e-6)

    # the done-when: recft finetune --nproc 2 on the synthetic target, from that base
    tuned = tmp_path / "tuned"
    result = subprocess.run(
        [*RECFT, "finetune", "--checkpoint", str(out), "--dataset", "synthetic-target:tiny",
         "--preset", "frozen-only", "--out", str(tuned), "--quiet", "--nproc", "2"],
        capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(result.stdout)
    assert summary["checkpoint"] == str(tuned) and summary["base"] == str(out)
    assert 0.0 < summary["metrics"]["ndcg@10"] <= 1.0
    assert json.loads((tuned / "training.json").read_text())["distributed"]["world_size"] == 2


def test_more_processes_than_cores_is_a_one_line_error(tmp_path, capsys):
    from recft.cli import main

    assert main(["pretrain", "--dataset", "synthetic:tiny", "--out", str(tmp_path / "x"),
                 "--nproc", "4096"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("recft: error: --nproc 4096") and "cores" in err
    assert len(err.splitlines()) == 1 and not (tmp_path / "x").exists()


def test_port_in_use_is_a_one_line_error(tmp_path, capsys):
    from recft.cli import main

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code = main(["pretrain", "--dataset", "synthetic:tiny", "--out", str(tmp_path / "x"),
                     "--nproc", "2", "--port", str(port)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert err.startswith("recft: error:") and f"127.0.0.1:{port} is in use" in err


def test_sharding_without_processes_and_unknown_tables_are_refused(tmp_path, capsys):
    from recft.cli import main
    from recft.config import ConfigError
    from recft.train.sharding import parse_sharding

    assert main(["pretrain", "--dataset", "synthetic:tiny", "--out", str(tmp_path / "x"),
                 "--sharding", "item_id=row_wise"]) == 2
    assert "--sharding applies to sharded runs" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="entry 2 'user_id' is not TABLE=TYPE"):
        parse_sharding("item_id=row_wise,user_id")
    with pytest.raises(ConfigError, match="'diagonal' for table 'item_id' is not one of"):
        parse_sharding("item_id=diagonal")


@pytest.mark.slow  # ~25 s: a launch, a kill and the wind-down
def test_a_rank_that_dies_stops_the_others_and_nothing_is_written(tmp_path):
    """SIGKILL rank 1 mid-training: the command ends within seconds with one line naming
    the dead rank, no rank is left running, and no checkpoint appears."""
    import psutil

    out = tmp_path / "base"
    command = subprocess.Popen(
        recft_pretrain(out, "--epochs", "200", "--patience", "200", "--quiet", "--nproc", "2"),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"})
    launcher = psutil.Process(command.pid)
    deadline = time.monotonic() + 120
    victim = None
    while victim is None and time.monotonic() < deadline:
        for child in launcher.children(recursive=True):
            with contextlib.suppress(psutil.Error):
                if child.environ().get("RANK") == "1" and out.with_name("base.resume").exists():
                    victim = child
        time.sleep(0.5)
    assert victim is not None, "rank 1 never started training"
    workers = [c for c in launcher.children(recursive=True) if c.pid != victim.pid]
    time.sleep(1.0)
    victim.kill()
    killed = time.monotonic()
    _, err = command.communicate(timeout=60)
    assert time.monotonic() - killed < 30  # the others were stopped, not left waiting
    lines = [line for line in err.strip().splitlines() if line]
    assert len(lines) == 1, lines
    assert lines[0].startswith("recft: error: rank 1 of 2 died (signal SIGKILL)")
    assert command.returncode == 1
    assert not out.exists()
    assert not any(w.is_running() and w.status() != psutil.STATUS_ZOMBIE for w in workers)
