"""Which way to read MovieLens ``::``-separated files: measured side by side in one run.

Candidates on a synthetic ml-1m-style ratings.dat (100k and 1M rows):
  python   pd.read_csv(sep="::", engine="python")
  replace  bytes.replace(b"::", b"\\x1f") + C parser  (what recft.data._parsing does)
  colon    C parser with sep=":" and the empty odd columns dropped (ratings files only:
           titles contain ":", so it cannot read movies.dat)

Usage: python benchmarks/bench_separator.py [--rows 100000 1000000] [--repeats 3]
Prints seconds and ratios; writes benchmarks/results/separator.json.
"""

from __future__ import annotations

import argparse
import io
import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

NAMES = ["user", "item", "rating", "timestamp"]
DTYPES = {"user": "int64", "item": "int64", "rating": "float64", "timestamp": "int64"}


def write_ratings(path: Path, rows: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({
        "user": rng.integers(1, 6041, rows),
        "item": rng.integers(1, 3953, rows),
        "rating": rng.integers(1, 6, rows),
        "timestamp": rng.integers(956703932, 1046454590, rows),
    })
    lines = (frame["user"].astype(str) + "::" + frame["item"].astype(str) + "::"
             + frame["rating"].astype(str) + "::" + frame["timestamp"].astype(str))
    path.write_text("\n".join(lines) + "\n")


def read_python(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, sep="::", engine="python", header=None, names=NAMES, dtype=DTYPES)


def read_replace(path: Path) -> pd.DataFrame:
    data = path.read_bytes().replace(b"::", b"\x1f")
    return pd.read_csv(io.BytesIO(data), sep="\x1f", header=None, names=NAMES, dtype=DTYPES)


def read_colon(path: Path) -> pd.DataFrame:
    frame = pd.read_csv(path, sep=":", header=None, usecols=[0, 2, 4, 6])
    frame.columns = NAMES
    return frame.astype(DTYPES)


def best_time(function: Callable[[Path], pd.DataFrame], path: Path, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function(path)
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for rows in args.rows:
            path = Path(tmp) / f"ratings-{rows}.dat"
            write_ratings(path, rows)
            expected = read_python(path)
            for function in (read_replace, read_colon):
                pd.testing.assert_frame_equal(function(path), expected)
            seconds = {name: best_time(fn, path, args.repeats) for name, fn in
                       (("python", read_python), ("replace", read_replace),
                        ("colon", read_colon))}
            row = {"rows": rows, "seconds": seconds,
                   "python_over_replace": seconds["python"] / seconds["replace"],
                   "replace_over_colon": seconds["replace"] / seconds["colon"]}
            results.append(row)
            print(f"{rows:>9,} rows: " + "  ".join(f"{k} {v:.3f}s" for k, v in seconds.items())
                  + f"  | python/replace {row['python_over_replace']:.1f}x"
                  + f"  replace/colon {row['replace_over_colon']:.2f}x")
    out = Path(__file__).parent / "results" / "separator.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"benchmark": "separator", "results": results}, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
