"""rank-checkpoints: zero-shot, readable share and optional probe per base, Python and CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from recft.data import synthetic
from recft.errors import DataError
from recft.data import Interactions
from recft.finetune.checkpoint_choice import (
    known_items,
    rank_checkpoints,
    ranking_table,
    sample_users,
)
from recft.models.two_tower import TwoTower, TwoTowerConfig
from recft.train import PretrainConfig, pretrain

CONFIG = {"embedding_dim": 16, "tower_layers": (32, 16)}


@pytest.fixture(scope="module")
def bases(tmp_path_factory):
    """A base pretrained on the target's source domain, and the same architecture untrained."""
    folder = tmp_path_factory.mktemp("bases")
    pair = synthetic("movies", size="tiny", seed=0)
    trained, _ = pretrain(pair.source, TwoTowerConfig(**CONFIG), progress=False,
                          pretrain_config=PretrainConfig(epochs=4, seed=0,
                                                         user_id_dropout=0.5))
    trained.save_pretrained(folder / "trained")
    torch.manual_seed(0)
    features = pair.source.item_features.categorical
    untrained = TwoTower(TwoTowerConfig(**CONFIG), pair.source.user_vocab,
                         pair.source.item_vocab, item_features=features)
    untrained.save_pretrained(folder / "untrained")
    return folder, pair.target


def test_the_base_that_learned_the_domain_ranks_first(bases) -> None:
    folder, target = bases
    lines: list[str] = []
    scores = rank_checkpoints([folder / "untrained", folder / "trained"], target,
                              max_users=200, probe_epochs=1, log=lines.append)
    assert [s.checkpoint for s in scores] == [str(folder / "trained"), str(folder / "untrained")]
    assert [s.rank for s in scores] == [1, 2] and len(lines) == 2
    best, worst = scores
    assert best.zero_shot["ndcg@10"] > worst.zero_shot["ndcg@10"]
    assert best.probe["ndcg@10"] > worst.probe["ndcg@10"]
    assert all(s.seconds > 0 and s.details["probe_examples"] > 0 for s in scores)
    table = ranking_table(scores)
    assert table.splitlines()[1].split()[0] == "1" and table.splitlines()[1].endswith("trained")


def test_without_a_probe_zero_shot_ranks_and_the_readable_share_breaks_ties(bases) -> None:
    folder, target = bases
    scores = rank_checkpoints([folder / "untrained", folder / "trained"], target,
                              max_users=200)  # default: no probe
    assert [s.checkpoint for s in scores] == [str(folder / "trained"), str(folder / "untrained")]
    assert all(s.probe == {} and "probe_examples" not in s.details for s in scores)
    assert all(s.readable == 1.0 for s in scores)  # the target's items share ids with both
    assert ranking_table(scores).splitlines()[1].split()[2] == "-"  # no probe column value
    # a target of items no base knows: zero-shot ranks nothing, readability decides
    foreign = Interactions.from_raw(np.repeat(np.arange(30), 4),
                                    np.arange(120) % 40 + 10_000, name="foreign")
    ranked = rank_checkpoints([folder / "trained"], foreign, max_users=30)
    assert ranked[0].zero_shot["ndcg@10"] >= 0 and ranked[0].readable == 0.0


def test_readable_items_are_those_known_by_id_or_by_a_feature_value(bases) -> None:
    import dataclasses

    from recft.data.features import CategoricalFeature, EntityFeatures
    from recft.models.checkpoint import load_pretrained

    folder, target = bases
    base = load_pretrained(folder / "trained")
    assert known_items(base, target).all()  # same domain: every item known by id
    name, feature = next(iter(base.item_features.items()))
    a_known_value = feature.vocab.ids[0]
    # four items no base has seen: a known value, an unknown one, both, none
    lists = [[a_known_value], ["never-seen"], ["never-seen", a_known_value], []]
    foreign = Interactions.from_raw(np.array([0, 0, 1, 1]), np.array([900, 901, 902, 903]),
                                    name="foreign")
    foreign = dataclasses.replace(foreign, item_features=EntityFeatures(
        {name: CategoricalFeature.from_lists(lists, name=name),
         "a feature the base lacks": CategoricalFeature.from_lists([["x"]] * 4)}))
    assert known_items(base, foreign).tolist() == [True, False, True, False]


def test_the_sample_is_seeded_and_keeps_whole_users(bases) -> None:
    _, target = bases
    sample = sample_users(target, 50, seed=3)
    assert sample.num_users == 50
    users = np.unique(sample.user_ids)
    per_user = np.bincount(target.user_ids)[users]
    assert len(sample) == per_user.sum()  # every interaction of a chosen user is kept
    assert np.array_equal(sample.user_ids, sample_users(target, 50, seed=3).user_ids)
    assert sample_users(target, 10_000, seed=0) is target
    with pytest.raises(DataError, match="at least one checkpoint"):
        rank_checkpoints([], target)


def test_rank_checkpoints_command_prints_the_ranking_and_its_time(bases, tmp_path,
                                                                   capsys) -> None:
    from recft.cli import main

    folder, target = bases
    path = tmp_path / "target.csv"
    target.to_pandas()[["user_id", "item_id", "timestamp"]].to_csv(path, index=False)
    assert main(["rank-checkpoints", "--checkpoints", str(folder / "untrained"),
                 str(folder / "trained"), "--dataset", str(path), "--users", "150",
                 "--probe-epochs", "1", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert [r["checkpoint"] for r in result["ranking"]] == [str(folder / "trained"),
                                                             str(folder / "untrained")]
    assert result["seconds"] > 0 and result["ranking"][0]["rank"] == 1
    assert main(["rank-checkpoints", "--checkpoints", str(folder / "trained"), "--dataset",
                 str(path), "--users", "100", "--probe-epochs", "1", "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "ranked 1 checkpoints" in printed and str(folder / "trained") in printed
