"""movies -> music: disjoint ids, a base that reads text, and the comparison's text-aware rows."""

from __future__ import annotations

import json

import numpy as np
import pytest

from recft.data import synthetic
from recft.finetune.compare import _scratch
from recft.finetune.cross_domain import namespaced
from recft.finetune.scenario_run import run_scenario
from recft.finetune.scenarios import REAL_DATA, SCENARIOS, Scenario
from recft.finetune.scoring import zero_shot
from recft.models.checkpoint import load_pretrained
from recft.text import encoders, item_texts
from tests.text_models import KeywordEncoder


@pytest.fixture(autouse=True)
def _keyword_encoder_by_name(tmp_path, monkeypatch) -> None:
    """The scenario looks its encoder up by name: make the keyword encoder known."""
    monkeypatch.setenv("RECFT_CACHE_DIR", str(tmp_path / "cache"))
    real = encoders.text_encoder
    monkeypatch.setattr(encoders, "text_encoder", lambda name, *args, **kwargs:
                        KeywordEncoder() if name == "keywords" else real(name, *args, **kwargs))


def test_namespaced_domains_share_no_id_but_keep_rows_and_texts() -> None:
    movies = synthetic("movies", size="tiny", seed=0).source
    music = synthetic("music", size="tiny", seed=0).source
    named = namespaced(music, "music")
    assert named.item_vocab.ids[0] == f"music:{music.item_vocab.ids[0]}"
    assert named.user_vocab.ids[0] == f"music-user:{music.user_vocab.ids[0]}"
    assert np.array_equal(named.item_ids, music.item_ids)
    assert item_texts(named).texts == item_texts(music).texts
    other = namespaced(movies, "movie")
    assert not np.isin(named.item_vocab.ids, other.item_vocab.ids).any()
    assert "movies-to-music" in SCENARIOS and "movies-to-music" in REAL_DATA


def test_a_text_base_transfers_to_a_domain_without_shared_ids(tmp_path) -> None:
    movies = namespaced(synthetic("movies", size="tiny", seed=0).source, "movie")
    music = namespaced(synthetic("music", size="tiny", seed=0).source, "music")
    scenario = Scenario("m2m", movies, music, "random:0.8,0.1,0.1", "movies -> music",
                        item_text="text", text_encoder="keywords")
    rows = run_scenario(scenario, tmp_path / "m2m", fractions=[0.5],
                        strategies=["popularity", "scratch", "zero-shot"], pretrain_epochs=1,
                        embedding_dim=8, log=None)
    assert {r["strategy"] for r in rows} == {"popularity", "scratch", "zero-shot"}
    base = tmp_path / "m2m" / "base"
    architecture = json.loads((base / "config.json").read_text())["architecture"]
    assert (architecture["item_text"], architecture["text_encoder"]) == ("text", "keywords")
    # zero-shot: every music item is new to the base and read by the same encoder
    model = load_pretrained(base)
    scorer = zero_shot(model, music)
    texts = item_texts(music).texts
    rows_of_music = scorer.alignment.item_rows
    expected = KeywordEncoder().encode(texts)
    np.testing.assert_array_equal(model.item_text.vectors[rows_of_music].numpy(), expected)
    assert scorer.alignment.counts["items"]["matched"] == 0
    # scratch: the same architecture over the target's catalog, reading its texts
    scratch = _scratch(base, music, seed=0)
    np.testing.assert_array_equal(scratch.item_text.vectors.numpy(), expected)
