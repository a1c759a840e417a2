"""evaluate(): chunked full ranking equals the direct metric, exclusion, history, segments."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from recft.data import Interactions
from recft.errors import DataError
from recft.evaluate import binary_metrics, evaluate, rating_metrics, topk_metrics
from recft.evaluate.segments import activity_bucket_names, activity_buckets, head_items


class DotScorer:
    """Random user and item embeddings; remembers the history it was given."""

    def __init__(self, num_users: int, num_items: int, seed: int = 0) -> None:
        generator = torch.Generator().manual_seed(seed)
        self.users = torch.randn(num_users, 8, generator=generator)
        self.items = torch.randn(num_items, 8, generator=generator)
        self.histories: list[Interactions] = []

    def score_users(self, users: np.ndarray, history: Interactions) -> torch.Tensor:
        self.histories.append(history)
        return self.users[torch.from_numpy(users)] @ self.items.T


def skewed_split(seed: int = 0, num_users: int = 50, num_items: int = 40,
                 ) -> tuple[Interactions, Interactions]:
    rng = np.random.default_rng(seed)
    # skewed item choice so popularity, head and tail are meaningful
    weights = rng.pareto(1.5, num_items) + 0.1
    users, items = [], []
    for user in range(num_users):
        count = int(rng.integers(2, 30))
        chosen = rng.choice(num_items, min(count, num_items), replace=False, p=weights / weights.sum())
        users += [user] * len(chosen)
        items += chosen.tolist()
    data = Interactions.from_raw(users, items)
    held_out = rng.random(len(data)) < 0.25
    return data.subset(~held_out), data.subset(held_out)


def test_chunked_evaluation_equals_direct_metrics() -> None:
    train, test = skewed_split()
    scorer = DotScorer(train.user_vocab_size, train.catalog_size)
    got = evaluate(scorer, test, exclude=train, ks=(5, 10), batch_size=7)
    with torch.no_grad():
        scores = scorer.users @ scorer.items.T
    expected = topk_metrics(scores, test.user_item_sets(), exclude=train.user_item_sets(),
                            ks=(5, 10), item_popularity=train.item_popularity())
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, abs=1e-12), key
    assert got["num_users"] == np.unique(test.user_ids).size
    assert got["exclude_seen"] is True and got["ranking"] == "full"
    # one call per chunk of 7 users, all given the training data as history
    assert len(scorer.histories) == -(-got["num_users"] // 7)
    assert all(history is train for history in scorer.histories)


def test_embedding_model_encodes_the_catalog_once_and_scores_as_score_users() -> None:
    from tiny_models import tiny_two_tower

    train, test = skewed_split(seed=7)
    model = tiny_two_tower(train, seed=7)
    calls: list[int] = []
    encode_items = model.encode_items

    def counted(*args: object, **kwargs: object) -> torch.Tensor:
        calls.append(1)
        return encode_items(*args, **kwargs)

    model.encode_items = counted  # type: ignore[method-assign]

    class ScoreUsersOnly:
        """The same model seen through score_users alone (the generic path)."""

        def score_users(self, users: np.ndarray, history: Interactions) -> torch.Tensor:
            return model.score_users(users, history)

    fast = evaluate(model, test, exclude=train, ks=(5, 10), batch_size=6)
    assert len(calls) == 1  # one catalog encoding for all ceil(users / 6) chunks
    calls.clear()
    generic = evaluate(ScoreUsersOnly(), test, exclude=train, ks=(5, 10), batch_size=6)
    assert len(calls) == -(-generic["num_users"] // 6)  # score_users re-encodes per chunk
    assert fast == generic


def test_per_user_values_are_those_of_topk_metrics_and_average_to_the_result() -> None:
    train, test = skewed_split(seed=8)
    scorer = DotScorer(train.user_vocab_size, train.catalog_size, seed=8)
    result, per_user = evaluate(scorer, test, exclude=train, ks=(5,), batch_size=7,
                                return_per_user=True)
    users = np.unique(test.user_ids)
    _, direct = topk_metrics(scorer.users @ scorer.items.T, test.user_item_sets(),
                             exclude=train.user_item_sets(), ks=(5,),
                             item_popularity=train.item_popularity(), return_per_user=True)
    assert set(per_user) == set(direct)
    for key, values in per_user.items():
        np.testing.assert_allclose(values, direct[key][users], rtol=0, atol=1e-12)
        assert np.nanmean(values) == pytest.approx(result[key], abs=1e-12)


def test_default_chunk_keeps_the_score_block_within_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    train, test = skewed_split(seed=6)
    # `recft.evaluate.evaluate` is the function; the module lives in sys.modules
    module = sys.modules["recft.evaluate.evaluate"]
    monkeypatch.setattr(module, "BLOCK_BYTES", 4 * train.catalog_size * 5)  # five float32 rows
    sizes: list[int] = []

    class Recorder(DotScorer):
        def score_users(self, users: np.ndarray, history: Interactions) -> torch.Tensor:
            sizes.append(len(users))
            return super().score_users(users, history)

    scorer = Recorder(train.user_vocab_size, train.catalog_size)
    chunked = evaluate(scorer, test, exclude=train, ks=(5,))
    assert max(sizes) == 5 and sum(sizes) == chunked["num_users"]
    assert chunked == evaluate(scorer, test, exclude=train, ks=(5,), batch_size=1000)


def test_seen_items_are_excluded_even_when_scored_highest() -> None:
    train, test = skewed_split(seed=1)
    seen = torch.from_numpy(train.user_item_sets().toarray())
    noise = torch.rand(seen.shape, generator=torch.Generator().manual_seed(1))

    class Scores:
        def __init__(self, table: torch.Tensor) -> None:
            self.table = table

        def score_users(self, users: np.ndarray, history: Interactions) -> torch.Tensor:
            return self.table[torch.from_numpy(users)]

    memoriser = Scores(seen * 100.0 + noise)  # seen items first, then the noise order
    excluded = evaluate(memoriser, test, exclude=train, ks=(5,))
    # once seen items are excluded, boosting them changes nothing
    assert excluded == evaluate(Scores(noise), test, exclude=train, ks=(5,))
    assert excluded["exclude_seen"] is True
    kept = evaluate(memoriser, test, history=train, ks=(5,))
    assert kept["exclude_seen"] is False
    # without exclusion the (never relevant) seen items fill the lists
    assert kept["recall@5"] < excluded["recall@5"]


def test_history_defaults_to_exclude_and_never_to_test() -> None:
    train, test = skewed_split(seed=2)
    scorer = DotScorer(train.user_vocab_size, train.catalog_size)
    evaluate(scorer, test, ks=(5,))
    assert all(len(history) == 0 for history in scorer.histories)
    extra = train.subset(np.arange(10))
    evaluate(scorer, test, exclude=train, history=extra, ks=(5,))
    assert scorer.histories[-1] is extra


def test_bad_inputs_raise_clear_errors() -> None:
    train, test = skewed_split(seed=3)
    other = Interactions.from_raw([0, 1], [100, 200])
    scorer = DotScorer(train.user_vocab_size, train.catalog_size)
    with pytest.raises(DataError, match="vocabularies"):
        evaluate(scorer, test, exclude=other)

    class WrongShape:
        def score_users(self, users: np.ndarray, history: Interactions) -> torch.Tensor:
            return torch.zeros(len(users), 3)

    with pytest.raises(ValueError, match="catalog_size"):
        evaluate(WrongShape(), test, exclude=train)
    with pytest.raises(TypeError, match="score_users"):
        evaluate(object(), test, exclude=train)  # type: ignore[arg-type]


def test_segments_partition_users_and_restrict_relevance_to_head_or_tail() -> None:
    train, test = skewed_split(seed=4, num_users=80)
    scorer = DotScorer(train.user_vocab_size, train.catalog_size, seed=4)
    result = evaluate(scorer, test, exclude=train, ks=(10,), segments=True, batch_size=16)
    segments = result["segments"]
    user_segments = {k: v for k, v in segments.items() if k.startswith("users:activity:")}
    assert sum(v["num_users"] for v in user_segments.values()) == result["num_users"]
    # the user-weighted mean of the buckets is the overall mean
    pooled = sum(v["ndcg@10"] * v["num_users"] for v in user_segments.values()) / result["num_users"]
    assert pooled == pytest.approx(result["ndcg@10"])

    head = head_items(train.item_popularity())
    scores = scorer.users @ scorer.items.T
    relevant = test.user_item_sets().multiply(head[None, :].astype(np.float32)).tocsr()
    direct = topk_metrics(scores, relevant, exclude=train.user_item_sets(), ks=(10,))
    assert segments["items:head"]["recall@10"] == pytest.approx(direct["recall@10"])
    assert segments["items:head"]["ndcg@10"] == pytest.approx(direct["ndcg@10"])
    assert segments["items:head"]["num_items"] + segments["items:tail"]["num_items"] == \
        train.catalog_size
    share = segments["items:head"]["interaction_share"] + segments["items:tail"]["interaction_share"]
    assert share == pytest.approx(1.0)


def test_activity_buckets_and_head_items() -> None:
    assert activity_bucket_names() == ["0", "1-5", "6-20", "21-50", "51+"]
    buckets = activity_buckets(np.array([0, 1, 5, 6, 20, 21, 50, 51, 400]))
    assert buckets.tolist() == [0, 1, 1, 2, 2, 3, 3, 4, 4]
    # 10 items with interactions -> head is the 2 most popular; the unseen item is tail
    popularity = np.array([5, 1, 9, 0, 2, 3, 1, 1, 7, 1, 1])
    assert np.flatnonzero(head_items(popularity)).tolist() == [2, 8]


def test_module_is_eval_mode_during_scoring_and_restored() -> None:
    train, test = skewed_split(seed=5)

    class Module(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.modes: list[bool] = []

        def score_users(self, users: np.ndarray, history: Interactions) -> torch.Tensor:
            self.modes.append(self.training)
            return torch.zeros(len(users), history.catalog_size)

    model = Module().train()
    evaluate(model, test, exclude=train, ks=(5,))
    assert model.modes and not any(model.modes)
    assert model.training


def test_rating_and_binary_helpers() -> None:
    test = Interactions.from_raw([0, 0, 1], [0, 1, 1], ratings=[4.0, 2.0, 5.0])
    got = rating_metrics(np.array([4.0, 3.0, 3.0]), test)
    assert got["mae"] == pytest.approx(1.0)
    assert got["rmse"] == pytest.approx(np.sqrt(5 / 3))
    with pytest.raises(DataError, match="no ratings"):
        rating_metrics(np.zeros(2), Interactions.from_raw([0, 1], [0, 1]))
    binary = binary_metrics(torch.tensor([0.2, 0.9, 0.4]), torch.tensor([0, 1, 1]))
    assert binary["auc"] == 1.0 and binary["num_examples"] == 3


def test_recft_evaluate_is_callable_and_a_module_whatever_is_imported_first() -> None:
    # a fresh interpreter per order: the top-level lazy name and the subpackage import
    # both set `recft.evaluate`, and both orders must leave a callable module
    body = textwrap.dedent(
        """
        import numpy as np, torch
        from recft.data import Interactions
        train = Interactions.from_raw([0, 0, 1, 1], [0, 1, 1, 2])
        test = Interactions.from_raw([0, 1], [2, 0], user_vocab=train.user_vocab,
                                     item_vocab=train.item_vocab)
        class Constant:
            def score_users(self, users, history):
                return torch.arange(3.0).repeat(len(users), 1)
        result = recft.evaluate(Constant(), test, exclude=train, ks=(1,))
        assert result["hit@1"] == 1.0, result  # item 2 then item 0 once seen ones drop
        assert callable(recft.evaluate.topk_metrics)
        from recft.evaluate import evaluate
        assert evaluate.__module__ == "recft.evaluate.evaluate"
        print("ok")
        """
    )
    for first in ("import recft", "import recft.evaluate"):
        code = f"{first}\nimport recft\n{body}"
        run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             timeout=120)
        assert run.returncode == 0 and run.stdout.strip() == "ok", (first, run.stderr[-2000:])
