"""Split throughput at MovieLens-25M scale: vectorised splits vs a per-user Python loop.

Prints seconds per split kind on synthetic ids (25M rows by default) and the ratio of the
vectorised random split over a per-user loop reference measured side by side on a
smaller slice; writes benchmarks/results/splits.json.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from recft.data import Interactions, Vocabulary
from recft.data.splits import random_split, split
from recft.io import atomic_write_text


def make(rows: int, users: int, items: int, seed: int = 0) -> Interactions:
    rng = np.random.default_rng(seed)
    return Interactions(
        np.sort(rng.integers(0, users, rows)), rng.integers(0, items, rows),
        Vocabulary(np.arange(users)), Vocabulary(np.arange(items)),
        timestamps=rng.integers(800_000_000, 1_700_000_000, rows),
    )


def loop_random_split(x: Interactions, ratios: tuple[float, ...], seed: int) -> list[np.ndarray]:
    """The obvious per-user loop, as the reference the vectorised version is compared to."""
    rng = np.random.default_rng(seed)
    order = np.argsort(x.user_ids, kind="stable")
    bounds = np.r_[0, np.flatnonzero(np.diff(x.user_ids[order])) + 1, len(x)]
    parts: list[list[np.ndarray]] = [[] for _ in ratios]
    for start, end in zip(bounds[:-1], bounds[1:]):
        rows = rng.permutation(order[start:end])
        cuts = np.floor(np.cumsum(ratios)[:-1] * len(rows)).astype(int)
        for part, chunk in zip(parts, np.split(rows, cuts)):
            part.append(chunk)
    return [np.concatenate(p) for p in parts]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=25_000_000)
    parser.add_argument("--users", type=int, default=160_000)
    parser.add_argument("--items", type=int, default=60_000)
    args = parser.parse_args()
    x = make(args.rows, args.users, args.items)
    seconds = {}
    for spec in ("random:0.8,0.1,0.1", "temporal:0.8,0.1,0.1", "leave-last-out",
                 "cold-user:0.1,0.1", "cold-item:0.1"):
        start = time.perf_counter()
        split(x, spec, seed=0)
        seconds[spec] = time.perf_counter() - start
        print(f"{spec:22s} {seconds[spec]:6.2f} s on {len(x):,} rows")
    small = make(min(args.rows, 1_000_000), min(args.users, 20_000), args.items)
    start = time.perf_counter()
    random_split(small, (0.8, 0.1, 0.1), seed=0)
    vectorised = time.perf_counter() - start
    start = time.perf_counter()
    loop_random_split(small, (0.8, 0.1, 0.1), seed=0)
    loop = time.perf_counter() - start
    print(f"random split on {len(small):,} rows: vectorised {vectorised:.2f} s, "
          f"per-user loop {loop:.2f} s, speed-up x{loop / vectorised:.1f}")
    result = {"rows": len(x), "seconds": seconds, "loop_reference_rows": len(small),
              "vectorised_seconds": vectorised, "loop_seconds": loop,
              "speedup": loop / vectorised}
    out = Path(__file__).parent / "results" / "splits.json"
    atomic_write_text(out, json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
