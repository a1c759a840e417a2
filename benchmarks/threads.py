"""One torch thread vs two for recft's small models, on an idle machine and beside a busy one.

Pretrains one epoch on the synthetic demo source with 1 and with 2 torch threads, first with
nothing else running, then while a second process keeps one core busy (as another job, a
test run or a notebook kernel would). Prints seconds per epoch and ratios; writes
benchmarks/results/threads.json. The figures behind the one-thread defaults of the test
suite and of ``recft demo``.

    .venv/bin/python benchmarks/threads.py
"""

from __future__ import annotations

import json
import multiprocessing
import os
import time
from pathlib import Path

import torch

from recft.data import load, split
from recft.models import TwoTowerConfig
from recft.train import PretrainConfig, pretrain

RESULTS = Path(__file__).parent / "results" / "threads.json"


def _spin(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def epoch_seconds(train, threads: int) -> float:
    torch.set_num_threads(threads)
    _, history = pretrain(train, TwoTowerConfig.for_data(train), valid=None,
                          pretrain_config=PretrainConfig(epochs=1, seed=0), progress=False)
    return history.epoch_seconds[0]


def main() -> None:
    parts = split(load("synthetic"), "random:0.8,0.1,0.1", seed=0)
    epoch_seconds(parts.train, 1)  # warm-up: imports, allocator
    figures: dict[str, float] = {}
    for load_label in ("idle", "one core busy"):
        busy = None
        if load_label != "idle":
            busy = multiprocessing.Process(target=_spin, args=(600.0,), daemon=True)
            busy.start()
        try:
            for threads in (1, 2):
                figures[f"{load_label}, {threads} thread(s)"] = epoch_seconds(parts.train, threads)
        finally:
            if busy is not None:
                busy.terminate()
                busy.join()
    for label, seconds in figures.items():
        print(f"{label:<26} {seconds:7.2f} s per epoch")
    report = {
        "what": "one pretraining epoch, synthetic demo source (96k train interactions)",
        "seconds_per_epoch": figures,
        "two_over_one_idle": figures["idle, 2 thread(s)"] / figures["idle, 1 thread(s)"],
        "two_over_one_busy": figures["one core busy, 2 thread(s)"]
        / figures["one core busy, 1 thread(s)"],
        "cpu_count": os.cpu_count(),
    }
    print(f"2 threads / 1 thread: idle x{report['two_over_one_idle']:.2f}, "
          f"beside a busy core x{report['two_over_one_busy']:.2f}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
