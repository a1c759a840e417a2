"""Big inputs: `recft data describe` and the load-for-pretraining step on an ml-25m-sized file.

Writes a synthetic release in the ml-25m layout (ratings.csv ``userId,movieId,rating,
timestamp`` sorted by user, 162,541 users, a 62,423-movie movies.csv with quoted titles) of
``--rows`` ratings into a temporary folder, then runs each step in its own subprocess and
reports wall time and peak RSS (``os.wait4``'s ``ru_maxrss``: the whole process, Python,
numpy, pandas and pyarrow included):

  describe-release   ``recft data describe FOLDER --json`` (the MovieLens CSV loader)
  describe-file      ``recft data describe ratings.csv --user-col userId --item-col movieId``
                     (the loader for the user's own files)
  pretrain-load      what ``recft pretrain --dataset FOLDER`` does: load, split
                     ``random:0.8,0.1,0.1``, build the model, batch builder and optimizers,
                     then ``--train-steps`` training steps of 1,024 examples (a full epoch
                     of 20M examples takes about an hour on one core)
  describe-bad-*     both describes on a copy whose last line has the time ``1e20``: the
                     error path (pyarrow refuses, the reference reader names the line)

The pretrain-load child also reports its final interaction arrays (``arrays_mib``) and the
memory added while loading (``load_extra_mib``, benchmarks/peak_memory.py), whose ratio is
the loader's peak over its result. Target (issue 13): every step under 4 GB at 25M rows.
Times depend on what else runs: the JSON records the load average before and after.

Usage: OMP_NUM_THREADS=1 python benchmarks/bench_big_file.py [--rows 25000000]
Writes benchmarks/results/big_file.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv

ML25M_USERS, ML25M_MOVIES = 162_541, 62_423
RATINGS = np.asarray(["0.5", "1.0", "1.5", "2.0", "2.5", "3.0", "3.5", "4.0", "4.5", "5.0"])
GIB = 2**30
STEPS = ("describe-release", "describe-file", "pretrain-load", "describe-bad-release",
         "describe-bad-file")


def write_release(folder: Path, rows: int, seed: int = 0, chunk: int = 2_000_000) -> None:
    """ratings.csv and movies.csv in the ml-25m layout, written in chunks (bounded memory)."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    movie_ids = np.sort(rng.choice(np.arange(1, 3 * ML25M_MOVIES), ML25M_MOVIES, replace=False))
    pd.DataFrame({  # pandas quotes only the titles with commas, as the release does
        "movieId": movie_ids,
        "title": [f"Movie, number {i} ({1900 + i % 120})" for i in range(ML25M_MOVIES)],
        "genres": np.where(np.arange(ML25M_MOVIES) % 9 == 0, "(no genres listed)",
                           "Comedy|Drama"),
    }).to_csv(folder / "movies.csv", index=False)
    # users in order, each with a heavy-tailed number of ratings, like the real release
    users = np.sort(rng.integers(1, ML25M_USERS + 1, rows))
    every = min(rows, ML25M_USERS)
    users[:every] = np.arange(1, every + 1)  # every user id occurs at least once
    users.sort()
    popularity = 1.0 / np.arange(1, ML25M_MOVIES + 1) ** 0.9
    popularity /= popularity.sum()
    schema = pa.schema([("userId", pa.int64()), ("movieId", pa.int64()),
                        ("rating", pa.string()), ("timestamp", pa.int64())])
    # no quotes, as in ml-25m (pyarrow would write "4.0" and a quoted header)
    options = pa_csv.WriteOptions(quoting_style="none", include_header=False)
    with open(folder / "ratings.csv", "wb") as sink, \
            pa_csv.CSVWriter(sink, schema, write_options=options) as writer:
        sink.write(b"userId,movieId,rating,timestamp\n")
        for start in range(0, rows, chunk):
            n = min(chunk, rows - start)
            writer.write_table(pa.table({
                "userId": users[start:start + n],
                "movieId": movie_ids[rng.choice(ML25M_MOVIES, n, p=popularity)],
                "rating": RATINGS[rng.integers(0, 10, n)],
                "timestamp": rng.integers(789_652_009, 1_574_327_703, n),
            }, schema=schema))


def child(folder: Path) -> None:
    """The pretrain-load step, in the measured subprocess: load, split, size the model."""
    sys.path.insert(0, str(Path(__file__).parent))
    from peak_memory import PeakMemory

    from recft.data import load, split
    from recft.models import TwoTowerConfig

    started = time.perf_counter()
    with PeakMemory() as memory:
        x = load(str(folder))
    loaded = time.perf_counter() - started
    columns = (x.user_ids, x.item_ids, x.ratings, x.timestamps)
    arrays = sum(c.nbytes for c in columns if c is not None) / 2**20
    result = {"rows": len(x), "users": len(x.user_vocab), "items": len(x.item_vocab),
              "load_seconds": loaded, "arrays_mib": arrays,
              "load_extra_mib": memory.extra_mib}
    parts = split(x, "random:0.8,0.1,0.1", seed=0)
    config = TwoTowerConfig.for_data(parts.train)
    result["split_rows"] = [len(parts.train), len(parts.valid), len(parts.test)]
    result["model_rows"] = [config.num_users, config.num_items]
    result.update(_train_steps(parts.train, config, int(os.environ.get("TRAIN_STEPS", "0"))))
    print(json.dumps(result))


def _train_steps(train, config, steps: int) -> dict:
    """Pretraining's state (model, histories, fused optimizers) and ``steps`` steps of it."""
    if not steps:
        return {}
    from recft.models import TwoTower
    from recft.train import BatchBuilder, OptimizerSettings, Optimizers
    from recft.train.objectives import RetrievalObjective

    started = time.perf_counter()
    features = train.item_features.categorical if train.item_features is not None else None
    model = TwoTower(config, train.user_vocab, train.item_vocab, item_features=features)
    builder = BatchBuilder.for_model(model, train, batch_size=1024, history_dropout=0.5)
    optimizers = Optimizers(model, OptimizerSettings())
    objective = RetrievalObjective("softmax", model.config.temperature)
    setup = time.perf_counter() - started
    started = time.perf_counter()
    for step, batch in zip(range(steps), builder.batches(epoch=0, seed=0)):
        loss = objective(model, batch)
        optimizers.zero_grad()
        loss.backward()
        optimizers.step()
    seconds = time.perf_counter() - started
    optimizers.close()
    return {"train_setup_seconds": setup, "train_steps": steps,
            "train_examples_per_s": steps * 1024 / seconds}


def measure(command: list[str], exit_code: int = 0) -> dict:
    """Run ``command``: wall time, peak RSS, and its JSON output (or, when it is meant to
    fail, its one-line error)."""
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               env=env, text=True)
    # communicate() reaps the child; wait4 must reap it to get its rusage, so read first
    stdout = process.stdout.read()
    stderr = process.stderr.read()
    _, status, usage = os.wait4(process.pid, 0)
    code = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - started
    if code != exit_code:
        raise SystemExit(f"{' '.join(command)} exited {code}, not {exit_code}:\n{stderr}")
    output = json.loads(stdout) if exit_code == 0 else {"error": stderr.strip()}
    return {"wall_seconds": round(seconds, 2), "peak_rss_mib": round(usage.ru_maxrss / 1024),
            "output": output}


def step_command(step: str, folder: Path, bad_folder: Path) -> list[str]:
    describe = [sys.executable, "-m", "recft", "data", "describe"]
    file_columns = ["--user-col", "userId", "--item-col", "movieId"]
    commands = {
        "describe-release": [*describe, str(folder), "--json"],
        "describe-file": [*describe, str(folder / "ratings.csv"), *file_columns, "--json"],
        "pretrain-load": [sys.executable, __file__, "--child", str(folder)],
        "describe-bad-release": [*describe, str(bad_folder)],
        "describe-bad-file": [*describe, str(bad_folder / "ratings.csv"), *file_columns],
    }
    return commands[step]


def with_bad_last_line(folder: Path, bad_folder: Path) -> None:
    """A copy of the release whose last rating has the time 1e20 (an error to locate)."""
    shutil.copytree(folder, bad_folder)
    with open(bad_folder / "ratings.csv", "a") as handle:
        handle.write("7,1,4.0,1e20\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=25_000_000)
    parser.add_argument("--steps", nargs="+", choices=STEPS, default=list(STEPS))
    parser.add_argument("--train-steps", type=int, default=50,
                        help="training steps after loading in the pretrain-load step")
    parser.add_argument("--child", metavar="FOLDER", help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.environ["TRAIN_STEPS"] = str(args.train_steps)  # read by the measured child
    if args.child:
        child(Path(args.child))
        return
    results = {"benchmark": "big_file", "rows": args.rows, "cpus": os.cpu_count(),
               "load_average_before": os.getloadavg()[0], "steps": {}}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "ml-25m"
        started = time.perf_counter()
        write_release(folder, args.rows)
        size = (folder / "ratings.csv").stat().st_size
        results["ratings_csv_mib"] = round(size / 2**20)
        print(f"wrote {args.rows:,} ratings ({size / 2**20:,.0f} MiB) in "
              f"{time.perf_counter() - started:.0f}s")
        bad_folder = Path(tmp) / "ml-25m-bad"
        if any("bad" in step for step in args.steps):
            with_bad_last_line(folder, bad_folder)
        for step in args.steps:
            figures = measure(step_command(step, folder, bad_folder),
                              exit_code=2 if "bad" in step else 0)
            output = figures.pop("output")
            if step in ("describe-release", "describe-file"):
                output = {"rows": output.get("interactions"), "users": output.get("users"),
                          "items": output.get("items")}
            results["steps"][step] = {**figures, **output}
            extra = ""
            if "load_extra_mib" in output:
                extra = (f"  loading added {output['load_extra_mib']:,.0f} MiB for "
                         f"{output['arrays_mib']:,.0f} MiB of arrays "
                         f"({output['load_extra_mib'] / output['arrays_mib']:.1f}x)")
            if "error" in output:
                extra = f"  exit 2: {output['error'][:100]}"
            print(f"{step:<20} {figures['wall_seconds']:7.1f}s  peak RSS "
                  f"{figures['peak_rss_mib'] / 1024:5.2f} GiB{extra}")
    results["load_average_after"] = os.getloadavg()[0]  # other processes slow the times
    results["under_4_gib"] = all(s["peak_rss_mib"] < 4 * 1024 for s in results["steps"].values())
    out = Path(__file__).parent / "results" / "big_file.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
