"""movies-to-music with a text-only architecture (base and scratch read text, no id block).

The README's caveat to the movies-to-music table: how much of frozen -> full's margin over
scratch comes from reading text rather than from the movies pretraining. Same protocol as
``recft compare --scenario movies-to-music`` at 10% of the target.

    RECFT_DATA_DIR=/work/shared/data OMP_NUM_THREADS=1 \\
        .venv/bin/python benchmarks/movies_to_music_text_only.py
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import torch

from recft.finetune.comparison_table import MARKDOWN_NAME
from recft.finetune.cross_domain import movies_to_music_scenario
from recft.finetune.scenario_run import run_scenario

OUT = Path(__file__).parent / "results" / "compare" / "movies-to-music-text-only"


def main() -> int:
    torch.set_num_threads(1)
    scenario = dataclasses.replace(movies_to_music_scenario(), name="movies-to-music-text-only",
                                   item_text="text")
    run_scenario(scenario, OUT, fractions=[0.1],
                 strategies=["popularity", "scratch", "zero-shot", "frozen", "frozen+full"])
    print((OUT / MARKDOWN_NAME).read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
