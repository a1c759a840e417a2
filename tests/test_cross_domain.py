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
from recft.finetune.cross_domain import TextHistoryScorer
from recft.finetune.scoring import TargetScorer, target_scorer, zero_shot
from recft.finetune.vocab_transfer import align_vocabulary
from recft.models.text_path import ItemTextVectors
from recft.models.checkpoint import load_pretrained
from recft.text import encoders, item_texts
from tests.conftest import build_checkerboard
from tests.text_models import KeywordEncoder, text_model
from tests.tiny_models import tiny_two_tower


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


def _movies_base_and_music_target():
    """A text base that knows comedies and dramas; a target of 20 artists sharing no id
    with it, even ones jazz and odd ones rock, and users who each play one of the two."""
    movies = namespaced(synthetic("movies", size="tiny", seed=0).source, "movie")
    base = text_model(movies, "id+text",
                      texts=["comedy" if n % 2 else "drama" for n in range(len(movies.item_vocab))])
    music = namespaced(build_checkerboard(20), "music")
    genres = ["jazz" if int(i.split(":")[1]) % 2 == 0 else "rock" for i in music.item_vocab.ids]
    return base, music, ItemTextVectors.encode(music, KeywordEncoder(), texts=genres)


def test_zero_shot_through_text_carries_a_users_taste_to_a_new_domain() -> None:
    base, music, vectors = _movies_base_and_music_target()
    alignment = align_vocabulary(base, music, item_text=vectors)
    assert alignment.counts["items"]["matched"] == 0
    scorer = TextHistoryScorer(base, alignment, music)
    scores = scorer.score_users(np.arange(20), music).numpy()
    jazz = np.array([int(i.split(":")[1]) % 2 == 0 for i in music.item_vocab.ids])
    fans = np.array([int(u.split(":")[1]) % 2 == 0 for u in music.user_vocab.ids])
    # every jazz fan ranks every jazz artist above every rock artist, and the other way round;
    # every artist is played equally often here, so taste alone decides
    assert (scores[fans][:, jazz].min(axis=1) > scores[fans][:, ~jazz].max(axis=1)).all()
    assert (scores[~fans][:, ~jazz].min(axis=1) > scores[~fans][:, jazz].max(axis=1)).all()
    # the prior: log(1 + plays in the target given); a user without history gets just that
    plays = np.bincount(music.item_ids, minlength=20)
    assert len(set(plays.tolist())) == 1  # 9 plays each
    alone = music.subset(np.flatnonzero(music.user_ids != 0))
    np.testing.assert_allclose(scorer.score_users(np.array([0]), alone)[0].numpy(),
                               np.log1p(plays), rtol=1e-6)
    skewed = music.subset(np.flatnonzero(music.item_ids != 2))  # artist 2 never played
    popular = TextHistoryScorer(base, alignment, skewed).score_users(np.array([0]), alone)[0]
    assert popular.argmin() == 2
    # in the encoder's own space (nothing the base learned) the taste is the same
    raw = TextHistoryScorer(base, alignment, music, space="encoder", text_weight=None)
    raw_scores = raw.score_users(np.arange(20), music).numpy()
    np.testing.assert_allclose(raw_scores[fans][:, jazz], 1.0, rtol=1e-6)  # cosine alone
    np.testing.assert_allclose(raw_scores[fans][:, ~jazz], 0.0, atol=1e-6)


def test_zero_shot_uses_text_only_for_a_text_base_that_knows_no_target_item() -> None:
    base, music, _ = _movies_base_and_music_target()
    assert isinstance(zero_shot(base, music), TextHistoryScorer)
    base, music, _ = _movies_base_and_music_target()
    assert isinstance(zero_shot(base, music, through_text=False), TargetScorer)
    # an id-only base keeps its towers: the scores are target_scorer's, unchanged
    data = build_checkerboard(20)
    target = data.subset(np.flatnonzero(data.user_ids < 10))
    first, second = tiny_two_tower(data), tiny_two_tower(data)
    second.load_state_dict(first.state_dict())
    plain = zero_shot(first, target)
    assert isinstance(plain, TargetScorer)
    users = np.arange(target.num_users)
    assert np.array_equal(plain.score_users(users, target).numpy(),
                          target_scorer(second, target).score_users(users, target).numpy())
    # a text base on a target whose items it knows keeps its towers too
    own = text_model(data, "id+text")
    assert isinstance(zero_shot(own, target), TargetScorer)
    from recft.errors import DataError

    with pytest.raises(DataError, match="needs a base that reads item text"):
        zero_shot(tiny_two_tower(data), target, through_text=True)
