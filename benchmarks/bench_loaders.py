"""Loader cost against a bare pandas read, side by side on synthetic release-format files.

For a CSV release (ml-25m layout) and a ``::`` release (ml-10m layout) of ``--rows``
ratings, times:
  bare   pd.read_csv of the ratings file alone with fixed dtypes (no checks, no catalog)
  recft  load_movielens: strict parsing, catalog/tag files, id encoding, features
and reports recft/bare (the price of validation and features) and rows per second.

Usage: python benchmarks/bench_loaders.py [--rows 2000000] [--repeats 2]
Writes benchmarks/results/loaders.json.
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

from recft.data.movielens import load_movielens

DTYPES = {"userId": "int64", "movieId": "int64", "rating": "float64", "timestamp": "int64"}


def write_release(folder: Path, rows: int, separator: str, seed: int = 0) -> None:
    """ratings/movies/tags in the CSV (``,`` with headers) or ``::`` layout."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    movies = 60_000
    ratings = pd.DataFrame({
        "userId": np.sort(rng.integers(1, max(rows // 150, 2), rows)),
        "movieId": rng.zipf(1.3, rows) % movies + 1,
        "rating": rng.integers(1, 11, rows) / 2,
        "timestamp": rng.integers(789652009, 1574327703, rows),
    })
    titles = pd.DataFrame({"movieId": np.arange(1, movies + 1),
                           "title": [f"Movie, number {i} ({1900 + i % 120})"
                                     for i in range(movies)],
                           "genres": np.where(np.arange(movies) % 7 == 0, "(no genres listed)",
                                              "Comedy|Drama")})
    tags = pd.DataFrame({"userId": rng.integers(1, 1000, rows // 25),
                         "movieId": rng.integers(1, movies + 1, rows // 25),
                         "tag": rng.choice(["funny", "Dark", "atmospheric", "twist"], rows // 25),
                         "timestamp": rng.integers(1137000000, 1574000000, rows // 25)})
    if separator == ",":
        ratings.to_csv(folder / "ratings.csv", index=False, float_format="%.1f")
        titles.to_csv(folder / "movies.csv", index=False)
        tags.to_csv(folder / "tags.csv", index=False)
        return
    for name, frame in (("ratings", ratings), ("movies", titles), ("tags", tags)):
        buffer = io.StringIO()
        frame.to_csv(buffer, index=False, header=False, sep="\x1f", float_format="%g")
        (folder / f"{name}.dat").write_text(buffer.getvalue().replace("\x1f", "::"))


def bare_read(folder: Path) -> pd.DataFrame:
    if (folder / "ratings.csv").exists():
        return pd.read_csv(folder / "ratings.csv", dtype=DTYPES)
    data = (folder / "ratings.dat").read_bytes().replace(b"::", b"\x1f")
    return pd.read_csv(io.BytesIO(data), sep="\x1f", header=None, names=list(DTYPES),
                       dtype=DTYPES)


def best_time(function: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for layout, separator, name in (("csv", ",", "ml-25m"), ("dat", "::", "ml-10m")):
            folder = Path(tmp) / layout
            write_release(folder, args.rows, separator)
            loaded = load_movielens(name, path=folder)
            assert len(loaded) == args.rows
            bare = best_time(lambda f=folder: bare_read(f), args.repeats)
            full = best_time(lambda f=folder, n=name: load_movielens(n, path=f), args.repeats)
            row = {"layout": layout, "rows": args.rows, "bare_seconds": bare,
                   "recft_seconds": full, "recft_over_bare": full / bare,
                   "recft_rows_per_second": args.rows / full}
            results.append(row)
            print(f"{layout}: {args.rows:,} ratings  bare {bare:.2f}s  recft {full:.2f}s  "
                  f"ratio {full / bare:.2f}x  ({args.rows / full / 1e6:.1f}M rows/s)")
    out = Path(__file__).parent / "results" / "loaders.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"benchmark": "loaders", "results": results}, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
