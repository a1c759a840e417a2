"""recft.finetune: fine-tune a pretrained two-tower on a target domain, and prove it helps.

Modules:
    recipe          Recipe and Stage: what trains, in which order, at which LRs; presets
    freezing        set_trainable: the one place that freezes / unfreezes; TrainableReport
    vocab_transfer  align_vocabulary: grow tables for new ids, old rows bit-for-bit
    new_rows        initial rows for new ids: zeros / mean / feature_mean / random
    adapter_io      save_adapter / load_adapter: the delta only, checked against its base
    stage           run_stage: one stage as a setup over recft.train.fit; the objective
    resume          FinetuneResume: finetune(resume_dir=...) state
    finetune        finetune() -> FineTuneResult (save, save_adapter, scorer)
    scoring         TargetScorer (target ids and catalog), CatalogMask (model rows)

The models it produces (FineTunedTwoTower, heads, adapters) live in ``recft.models``; the
training engine (loop, optimizers) in ``recft.train``.
    compare         compare(): baselines and recft's strategies at data fractions, per seed
    compare_baselines  popularity, EASE and item-kNN rows (target or source + target), tuned
    comparison_stats   means over seeds, bootstrap intervals, verdicts vs the best baseline
    comparison_table  write_comparison: comparison.json / _protocol.json / .md, the tables
    scenarios       the synthetic, movies and music comparison presets
    scenario_run    run_scenario: pretrain on the source, then compare, per seed
"""

from __future__ import annotations

from recft.finetune.adapter_io import delta_size, load_adapter, save_adapter
from recft.finetune.compare import FRACTIONS, STRATEGIES, compare, subsample
from recft.finetune.comparison_table import comparison_markdown
from recft.finetune.finetune import FineTuneResult, example_weights, finetune
from recft.finetune.freezing import TrainableReport, set_trainable
from recft.finetune.recipe import Recipe, Stage
from recft.finetune.scenarios import SCENARIOS, Scenario, cohort_split
from recft.finetune.scoring import TargetScorer, target_scorer, zero_shot
from recft.finetune.vocab_transfer import VocabAlignment, align_vocabulary
from recft.models.adapters import adapter_state_dict, attach_adapters, merge_adapters
from recft.models.finetuned import FineTunedTwoTower, attach_heads
from recft.models.heads import Head, HeadBatch, register_head
from recft.models.roles import ParameterRoles

__all__ = [
    "FRACTIONS", "STRATEGIES", "FineTuneResult", "FineTunedTwoTower", "Head", "HeadBatch",
    "ParameterRoles", "Recipe", "SCENARIOS", "Scenario", "Stage", "TargetScorer", "TrainableReport", "VocabAlignment", "adapter_state_dict",
    "align_vocabulary", "attach_adapters", "attach_heads", "cohort_split", "compare",
    "comparison_markdown", "delta_size",
    "example_weights", "finetune", "load_adapter", "merge_adapters", "register_head",
    "save_adapter", "set_trainable", "subsample", "target_scorer", "zero_shot",
]
