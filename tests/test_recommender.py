"""Recommender: the same scores recft.evaluate ranks, cold users, fallbacks, filters, raw ids."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from recft.data import Interactions, Vocabulary, synthetic
from recft.models.checkpoint import save_pretrained
from recft.models.two_tower import TwoTower, TwoTowerConfig
from recft.serving import Recommender, ServingWarning
from recft.serving.ranking import top_k
from recft.train import PretrainConfig, pretrain


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[TwoTower, Interactions, Path]:
    """A tiny pretrained model (300 users, 200 items with genres/year), its train data and
    its checkpoint directory."""
    train = synthetic("movies", size="tiny", seed=0).source
    model, _ = pretrain(train, TwoTowerConfig(embedding_dim=16, tower_layers=(32, 16)),
                        pretrain_config=PretrainConfig(epochs=1), progress=False)
    directory = save_pretrained(model, tmp_path_factory.mktemp("ckpt") / "base")
    return model, train, directory


@pytest.fixture(scope="module")
def rec(trained: tuple[TwoTower, Interactions, Path]) -> Recommender:
    _, train, directory = trained
    return Recommender.from_pretrained(directory, history=train)


def _expected(model: TwoTower, users: np.ndarray, history: Interactions, k: int,
              exclude: Interactions | None) -> tuple[np.ndarray, torch.Tensor]:
    """Top-k item rows by model.score_users (the evaluate path), seen items at -inf."""
    scores = model.score_users(users, history).clone()
    if exclude is not None:
        seen = exclude.user_item_sets()[users].tocoo()
        scores[seen.row, seen.col] = float("-inf")
    values, rows = torch.topk(scores, k)
    return rows.numpy(), values


def test_recommend_equals_score_users_top_k_with_seen_excluded(trained, rec) -> None:
    model, train, _ = trained
    users = np.arange(len(train.user_vocab))
    frame = rec.recommend(train.user_vocab.ids, k=10)
    rows, values = _expected(model, users, train, 10, exclude=train)
    assert list(frame.columns) == ["user", "rank", "item", "score"]
    assert frame["user"].tolist() == np.repeat(train.user_vocab.ids, 10).tolist()
    assert frame["rank"].tolist() == list(range(1, 11)) * len(users)
    assert frame["item"].tolist() == train.item_vocab.ids[rows].ravel().tolist()
    np.testing.assert_allclose(frame["score"].to_numpy(), values.numpy().ravel(), rtol=1e-5)
    seen = set(zip(train.user_ids.tolist(), train.item_ids.tolist()))
    recommended = zip(train.user_vocab.encode(frame["user"]),
                      train.item_vocab.encode(frame["item"]))
    assert not seen & set(recommended)


def test_batch_size_and_history_form_do_not_change_results(trained, rec) -> None:
    _, train, directory = trained
    users = train.user_vocab.ids[:40]
    reference = rec.recommend(users, k=7)
    pd.testing.assert_frame_equal(rec.recommend(users, k=7, batch_size=3), reference)
    from_frame = Recommender.from_pretrained(directory, history=train.to_pandas())
    pd.testing.assert_frame_equal(from_frame.recommend(users, k=7), reference)
    # duplicates are served once, in first-occurrence order
    twice = rec.recommend([users[1], users[0], users[1]], k=7)
    assert twice["user"].unique().tolist() == [users[1], users[0]]


def test_cold_user_with_history_is_served_by_the_history_tower(trained, rec) -> None:
    model, train, _ = trained
    items = train.item_vocab.ids[[3, 50, 120]]
    frame = rec.recommend(["new-user"], histories={"new-user": list(items)}, k=5)
    cold = Interactions.from_raw(["new-user"] * 3, items, user_vocab=Vocabulary(["new-user"]),
                                 item_vocab=model.item_vocab)
    rows, _ = _expected(model, np.array([0]), cold, 5, exclude=cold)
    assert frame["item"].tolist() == train.item_vocab.ids[rows[0]].tolist()
    assert not set(frame["item"]) & set(items)


def test_call_history_replaces_the_stored_one(trained, rec) -> None:
    model, train, _ = trained
    user, item = train.user_vocab.ids[5], train.item_vocab.ids[7]
    frame = rec.recommend([user], histories={user: [item]}, k=5)
    only = Interactions.from_raw([user], [item], user_vocab=model.user_vocab,
                                 item_vocab=model.item_vocab)
    rows, _ = _expected(model, np.array([5]), only, 5, exclude=only)
    assert frame["item"].tolist() == train.item_vocab.ids[rows[0]].tolist()


def test_unknown_items_in_a_history_are_ignored_with_one_counted_warning(rec) -> None:
    item = rec.item_vocab.ids[9]
    with pytest.warns(ServingWarning, match="2 interaction"):
        noisy = rec.recommend(["x"], histories={"x": [item, "nope-1", "nope-2"]}, k=5)
    clean = rec.recommend(["x"], histories={"x": [item]}, k=5)
    pd.testing.assert_frame_equal(noisy, clean)


def test_unknown_user_without_history_gets_popularity_with_one_warning(trained, rec) -> None:
    _, train, _ = trained
    counts = train.item_popularity()
    expected = np.lexsort((np.arange(len(counts)), -counts))[:4]
    with pytest.warns(ServingWarning, match="2 user") as caught:
        frame = rec.recommend(["ghost-1", train.user_vocab.ids[0], "ghost-2"], k=4)
    assert len(caught) == 1
    ghost = frame[frame["user"] == "ghost-2"]
    assert ghost["item"].tolist() == train.item_vocab.ids[expected].tolist()
    assert ghost["score"].tolist() == counts[expected].astype(float).tolist()


def test_without_any_history_the_fallback_is_the_models_prior(trained) -> None:
    model, train, _ = trained
    bare = Recommender(model)
    with torch.no_grad():
        prior = model.score(model.encode_users(np.array([-1]), None), model.encode_items())
    expected = torch.topk(prior, 5).indices[0].numpy()
    with pytest.warns(ServingWarning, match="prior"):
        frame = bare.recommend(["ghost"], k=5)
    assert frame["item"].tolist() == train.item_vocab.ids[expected].tolist()


def test_filter_items_allow_list_and_callable_agree(trained, rec) -> None:
    model, train, _ = trained
    allowed = train.item_vocab.ids[::3]
    users = train.user_vocab.ids[:10]
    by_list = rec.recommend(users, k=5, filter_items=allowed)
    by_rule = rec.recommend(users, k=5, filter_items=lambda ids: np.isin(ids, allowed))
    pd.testing.assert_frame_equal(by_list, by_rule)
    assert set(by_list["item"]) <= set(allowed)
    scores = model.score_users(np.arange(10), train).clone()
    seen = train.user_item_sets()[np.arange(10)].tocoo()
    scores[seen.row, seen.col] = float("-inf")
    keep = np.zeros(len(train.item_vocab), dtype=bool)
    keep[::3] = True
    scores[:, torch.from_numpy(~keep)] = float("-inf")
    top = torch.topk(scores, 5).indices.numpy()
    assert by_list["item"].tolist() == train.item_vocab.ids[top].ravel().tolist()


def test_top_k_breaks_ties_by_item_row_across_the_cut() -> None:
    scores = torch.tensor([[1.0, 3.0, 2.0, 3.0, 3.0, float("-inf")],
                           [0.0, float("-inf"), float("-inf"), 5.0, float("-inf"), 0.0]])
    counts, items, values = top_k(scores, 2)
    assert counts.tolist() == [2, 2]
    assert items.tolist() == [1, 3, 3, 0]  # 3-way tie at the top: lowest rows win
    counts, items, values = top_k(scores, 4)
    assert counts.tolist() == [4, 3]  # -inf (excluded) entries are dropped
    assert items.tolist() == [1, 3, 4, 2, 3, 0, 5]
    assert values[:4].tolist() == [3.0, 3.0, 3.0, 2.0]


def test_similar_items_is_cosine_top_k_without_the_item_itself(rec) -> None:
    ids, embeddings = rec.embed_items()
    unit = embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True)
    with pytest.warns(ServingWarning, match="unknown"):
        frame = rec.similar_items([ids[4], "no-such-item", ids[17]], k=3)
    assert frame["item"].tolist() == [ids[4]] * 3 + [ids[17]] * 3
    for query, group in frame.groupby("item", sort=False):
        row = int(np.flatnonzero(ids == query)[0])
        cosine = unit @ unit[row]
        cosine[row] = -np.inf
        assert group["similar_item"].tolist() == ids[np.argsort(-cosine)[:3]].tolist()
        np.testing.assert_allclose(group["score"], np.sort(cosine)[::-1][:3], rtol=1e-5)


def test_embeddings_match_the_model(trained, rec) -> None:
    model, train, _ = trained
    ids, users = rec.embed_users(train.user_vocab.ids[:6])
    with torch.no_grad():
        expected = model.encode_users(np.arange(6), train).numpy()
    assert ids.tolist() == train.user_vocab.ids[:6].tolist()
    np.testing.assert_array_equal(users, expected)
    item_ids, items = rec.embed_items(train.item_vocab.ids[[2, 0]])
    assert item_ids.tolist() == train.item_vocab.ids[[2, 0]].tolist()
    np.testing.assert_allclose(items, model.encode_items(np.array([2, 0])).detach().numpy(),
                               rtol=1e-5, atol=1e-6)  # other batch shape: last-bit noise


def test_integer_ids_from_text_are_cast_and_all_users_served(checkerboard) -> None:
    torch.manual_seed(0)
    model = TwoTower(TwoTowerConfig(embedding_dim=8, tower_layers=(8,)),
                     checkerboard.user_vocab, checkerboard.item_vocab).eval()
    rec = Recommender(model, history=checkerboard)
    as_text = rec.recommend(["3", "12"], k=3)
    pd.testing.assert_frame_equal(as_text, rec.recommend(np.array([3, 12]), k=3))
    assert as_text["user"].dtype == np.int64 and as_text["item"].dtype == np.int64
    everyone = rec.recommend(k=2)  # users=None: every user with a history
    assert everyone["user"].unique().tolist() == list(range(20))
    # user 4 saw the 9 even items but 4: only item 4 and the 10 odd items may be listed
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a known user with a history: no warning
        lists = rec.recommend([4], k=20)
    assert sorted(lists["item"]) == sorted({4} | set(range(1, 20, 2)))


def test_similar_command_prints_the_facades_neighbours(trained, rec, capsys) -> None:
    from recft.cli import main

    _, train, directory = trained
    items = train.item_vocab.ids[[4, 17]]
    assert main(["similar", "--checkpoint", str(directory), "--items", ",".join(items),
                 "--k", "3", "--json"]) == 0
    printed = pd.read_json(io.StringIO(capsys.readouterr().out))
    expected = rec.similar_items(items, k=3)
    assert printed["similar_item"].tolist() == expected["similar_item"].tolist()
    assert printed["item"].tolist() == expected["item"].tolist()
