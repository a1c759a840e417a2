"""Synthetic data: generation time per size and flavour, and the planted-structure figures.

Prints, side by side in one run, the seconds to generate each preset and the recall@20 of
the reference scorers on the target (oracle, popularity, item-kNN learned on the source,
item-kNN learned on the target or a quarter of it); writes benchmarks/results/synthetic.json.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from recft.data.synthetic import synthetic
from recft.data.synthetic.diagnostics import planted_structure
from recft.io import atomic_write_text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", nargs="+", default=["tiny", "small", "demo"])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    results = []
    for size in args.sizes:
        for flavour in ("movies", "music"):
            start = time.perf_counter()
            pair = synthetic(flavour, size=size, seed=args.seed)
            seconds = time.perf_counter() - start
            figures = planted_structure(pair, seed=args.seed)
            row = {"size": size, "flavour": flavour, "seconds": seconds,
                   "source_rows": len(pair.source), "target_rows": len(pair.target),
                   "recall@20": figures,
                   "oracle_over_popularity": figures["oracle"] / figures["popularity"],
                   "knn_source_over_popularity": figures["knn_source"] / figures["popularity"]}
            results.append(row)
            print(f"{size:6s} {flavour:6s} {seconds:5.2f} s  source {len(pair.source):>8,} "
                  f"target {len(pair.target):>7,}  " + "  ".join(
                      f"{name} {value:.3f}" for name, value in figures.items()))
    out = Path(__file__).parent / "results" / "synthetic.json"
    atomic_write_text(out, json.dumps(results, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
