"""movies -> music zero-shot: which part of a movies base carries a user's taste to artists?

The README's zero-shot row of ``recft compare --scenario movies-to-music`` is
``recft.finetune.cross_domain.TextHistoryScorer`` (the base's projected text space plus the
target's log-popularity). This script scores the same base on the same split and 10% of the
target's training interactions (``compare``'s own subsample) in every variant, so that the
README can say what each part adds:

- popularity (the prior alone);
- the base's towers (``zero_shot(..., through_text=False)``: what zero-shot was before);
- the text scorer in the base's projected space and in the encoder's own space (which uses
  nothing the base learned), each with and without the popularity prior.

Run it after ``benchmarks/compare_scenarios.py --scenarios movies-to-music --fractions 0.1``
(it reads that run's base checkpoint):

    RECFT_DATA_DIR=/work/shared/data OMP_NUM_THREADS=1 \\
        .venv/bin/python benchmarks/zero_shot_through_text.py
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

from recft.data import split
from recft.evaluate import evaluate
from recft.finetune.compare import subsample
from recft.finetune.cross_domain import TextHistoryScorer, movies_to_music_scenario
from recft.finetune.scoring import zero_shot
from recft.io import atomic_write_text
from recft.models.baselines import MostPopular
from recft.models.checkpoint import load_pretrained

RESULTS = Path(__file__).parent / "results" / "zero_shot_through_text.json"
BASE = Path(__file__).parent / "results" / "compare" / "movies-to-music" / "base"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", type=Path, default=BASE)
    parser.add_argument("--fraction", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    scenario = movies_to_music_scenario(seed=args.seed)
    parts = split(scenario.target, scenario.split_spec, seed=args.seed)
    train = subsample(parts.train, args.fraction, args.seed)

    def test_ndcg(scorer: object) -> dict[str, float]:
        # as recft compare scores its rows: every training interaction excluded
        result = evaluate(scorer, parts.test, exclude=parts.train, history=train,
                          ks=(10,), metrics=("ndcg", "recall"))
        return {key: round(float(result[key]), 4) for key in ("ndcg@10", "recall@10")}

    rows = {"popularity": test_ndcg(MostPopular().fit(train)),
            "towers (zero-shot before)": test_ndcg(
                zero_shot(load_pretrained(args.base), train, through_text=False))}
    aligned = zero_shot(load_pretrained(args.base), train)  # the text scorer: the README row
    assert isinstance(aligned, TextHistoryScorer)
    for space in ("projected", "encoder"):
        for weight, label in ((aligned.text_weight, "+ log-popularity"), (None, "alone")):
            scorer = TextHistoryScorer(aligned.model, aligned.alignment, train,
                                       text_weight=weight, space=space)
            rows[f"text, {space} space, {label}"] = test_ndcg(scorer)
    for name, metrics in rows.items():
        print(f"{name:<42} ndcg@10 {metrics['ndcg@10']:.4f}  recall@10 {metrics['recall@10']:.4f}")
    report = {"base": str(args.base), "fraction": args.fraction, "seed": args.seed,
              "train_interactions": len(train),
              "test_users": int(np.unique(parts.test.user_ids).size),
              "text_weight": aligned.text_weight, "rows": rows}
    atomic_write_text(args.out, json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
