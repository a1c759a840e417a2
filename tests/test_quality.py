"""End-to-end quality and the demo: slow, run by `make test-slow` (and `make test-all`)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


@pytest.mark.realdata
def test_ml100k_two_tower_reaches_the_published_bar() -> None:
    """RecBole's protocol on ml-100k: the default two-tower clears NDCG@10 0.30 (BPR: 0.2768)."""
    data_dir = os.environ.get("RECFT_DATA_DIR")
    if not data_dir or not (Path(data_dir) / "ml-100k" / "u.data").is_file():
        pytest.skip("RECFT_DATA_DIR does not hold ml-100k")
    from recft.data import load_movielens, split
    from recft.evaluate import evaluate
    from recft.train import PretrainConfig, pretrain

    parts = split(load_movielens("ml-100k", data_dir=data_dir), "random:0.8,0.1,0.1", seed=0)
    model, _ = pretrain(parts.train, valid=parts.valid, pretrain_config=PretrainConfig(seed=0),
                        progress=False)
    known = parts.known("test")
    metrics = evaluate(model, parts.test, exclude=known, history=known)
    assert metrics["ndcg@10"] >= 0.30


def test_small_demo_writes_every_report(tmp_path: Path) -> None:
    from recft.demo import run_demo

    pages = run_demo(out=tmp_path / "runs", reports=tmp_path / "reports", small=True)
    for name in ("01_explore_data", "02_pretrain", "03_finetune", "04_compare_strategies",
                 "05_recommendations"):
        assert pages[name].is_file(), name
    assert pages["index"].is_file()
    assert (tmp_path / "runs" / "tuned" / "model.safetensors").is_file()
