"""Cold items: evaluated on cold-item splits, served by Recommender and the CLI from their text."""

from __future__ import annotations

import copy
import json

import numpy as np
import pandas as pd
import pytest
import torch

from recft.data import split, synthetic
from recft.errors import DataError
from recft.evaluate import evaluate
from recft.evaluate.cold_items import CandidateScorer, cold_item_rows, evaluate_cold_items
from recft.models.baselines import MostPopular
from recft.serving import Recommender, export
from recft.serving.ids import ServingWarning
from recft.text import EncoderNotAvailableError
from recft.models.text_path import ItemTextVectors
from recft.models.two_tower import TwoTower, TwoTowerConfig
from recft.train import PretrainConfig, pretrain
from tests.conftest import build_checkerboard
from tests.text_models import KeywordEncoder, parity_texts
from tests.tiny_models import tiny_two_tower


@pytest.fixture(autouse=True)
def _private_text_cache(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("RECFT_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def parity_model(tmp_path_factory):
    """A text-only model trained on the checkerboard, where parity (the text) is the taste."""
    data = build_checkerboard(20)
    vectors = ItemTextVectors.encode(data, KeywordEncoder(), texts=parity_texts(data),
                                     cache_dir=tmp_path_factory.mktemp("cache"))
    config = TwoTowerConfig(embedding_dim=8, tower_layers=(16, 8), dropout=0.0,
                            item_text="text")
    torch.manual_seed(0)
    model, _ = pretrain(data, config, item_text=vectors, progress=False,
                        pretrain_config=PretrainConfig(epochs=15, batch_size=16, seed=0,
                                                       lr=0.01, history_dropout=0.0))
    return model, data


def test_a_cold_item_is_served_from_its_text(parity_model) -> None:
    model, data = parity_model
    rec = Recommender(copy.deepcopy(model), history=data)
    rows = rec.add_items({100: "even", 101: "odd"})
    assert rows.tolist() == [20, 21] and len(rec.item_vocab) == 22
    lists = rec.recommend([0, 1], k=22)
    score = {(u, i): s for u, i, s in zip(lists.user, lists.item, lists.score)}
    # user 0 saw every even item but item 0; the new even item reads exactly like item 0
    # (same text, no features, no id block): they tie, above every odd item
    assert score[0, 100] == score[0, 0] > score[0, 101]
    assert score[1, 101] == score[1, 1] > score[1, 100]
    assert lists.groupby("user").item.first().to_dict() == {0: 0, 1: 1}  # ties: by row
    only_new = rec.recommend([0, 1], k=1, filter_items=[100, 101])
    assert only_new.item.tolist() == [100, 101]
    similar = rec.similar_items([101], k=3)
    assert all(int(i) % 2 == 1 for i in similar.similar_item)


def test_an_item_without_text_is_the_generic_item_with_one_warning(parity_model) -> None:
    model, data = parity_model
    rec = Recommender(copy.deepcopy(model), history=data)
    with pytest.warns(ServingWarning, match="2 item\\(s\\) without text"):
        rec.add_items([200, 201, 202], texts=["", "  ", "even"])
    _, vectors = rec.embed_items([200, 201, 202])
    np.testing.assert_array_equal(vectors[0], vectors[1])  # all text-less new items tie
    assert not np.allclose(vectors[0], vectors[2])
    np.testing.assert_array_equal(rec.model.item_text.vectors[-3:-1].numpy(), 0.0)


def test_known_items_get_a_new_text_and_bad_calls_fail_in_one_line(parity_model) -> None:
    model, data = parity_model
    rec = Recommender(copy.deepcopy(model), history=data)
    before = rec.embed_items([0])[1][0]
    assert rec.add_items([0], texts=["odd"]).tolist() == [0]
    after = rec.embed_items([0])[1][0]
    np.testing.assert_allclose(after, rec.embed_items([1])[1][0], rtol=1e-6)
    assert not np.allclose(before, after)
    with pytest.raises(DataError, match="2 item ids but 1 texts"):
        rec.add_items([300, 301], texts=["odd"])
    with pytest.raises(DataError, match="item ids are integers; 'x' is not one"):
        rec.add_items({"x": "even"})
    with pytest.raises(DataError, match="repeated item ids"):
        rec.add_items([300, 300], texts=["odd", "even"])
    plain = Recommender(tiny_two_tower(data))
    with pytest.raises(DataError, match="no text path"):
        plain.add_items({300: "even"})


def test_a_missing_encoder_fails_naming_it_while_stored_items_still_serve(parity_model,
                                                                          tmp_path) -> None:
    model, data = parity_model
    model.save_pretrained(tmp_path / "ckpt")
    rec = Recommender.from_pretrained(tmp_path / "ckpt", history=data)
    assert len(rec.recommend([0, 1], k=2)) == 4  # the stored vectors need no encoder
    with pytest.raises(EncoderNotAvailableError, match="'keywords' \\(version 1\\)"):
        rec.add_items({100: "even"})
    assert len(rec.item_vocab) == 20  # nothing half-added
    rec.add_items({100: "even"}, encoder=KeywordEncoder())
    assert 100 in rec.item_vocab


def test_a_reloaded_tfidf_checkpoint_encodes_cold_items_itself(tmp_path) -> None:
    from recft.models.checkpoint import load_pretrained
    from recft.text import text_encoder

    data = build_checkerboard(20)
    texts = [f"{word} number {n}" for word, n in zip(parity_texts(data), range(20))]
    encoder = text_encoder("tfidf", fit_texts=texts, dim=6)
    torch.manual_seed(0)
    model = TwoTower(TwoTowerConfig(embedding_dim=8, tower_layers=(16, 8), dropout=0.0,
                                    item_text="text"), data.user_vocab, data.item_vocab,
                     item_text=ItemTextVectors.encode(data, encoder, texts=texts))
    model.save_pretrained(tmp_path / "tfidf")
    assert (tmp_path / "tfidf" / "text_encoder.safetensors").is_file()
    loaded = load_pretrained(tmp_path / "tfidf")
    assert loaded.text_encoder is not None and loaded.text_encoder.version == encoder.version
    new = {100: texts[4], 101: "odd number 7 sequel"}
    served, built = Recommender(loaded, history=data), Recommender(model, history=data)
    served.add_items(new)  # no encoder= needed after the reload
    built.add_items(new)
    assert served.recommend([0, 1], k=22).equals(built.recommend([0, 1], k=22))
    scores = served.model.score_users(np.array([0]), data)[0]
    # the same text as item 4 and no id block: the same score (to float rounding)
    assert float(scores[20]) == pytest.approx(float(scores[4]), rel=1e-6)
    assert float(scores[21]) != pytest.approx(float(scores[4]), rel=1e-3)
    # a checkpoint without the encoder's files (an older one) still asks for encoder=
    from recft.models.checkpoint_io import write_checksums

    for name in ("text_encoder.json", "text_encoder.safetensors"):
        (tmp_path / "tfidf" / name).unlink()
    write_checksums(tmp_path / "tfidf")
    old = load_pretrained(tmp_path / "tfidf")
    with pytest.raises(EncoderNotAvailableError, match="pass the fitted encoder"):
        Recommender(old, history=data).add_items(new)


def test_export_includes_cold_items_and_its_user_tower_reads_text(parity_model,
                                                                  tmp_path) -> None:
    model, data = parity_model
    rec = Recommender(copy.deepcopy(model), history=data)
    rec.add_items({100: "even"})
    out = export(rec, tmp_path / "bundle", index="exact")
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["model"]["item_text"] == "text"
    assert manifest["model"]["items_added_from_text"] == 1
    items = json.loads((out / "items.json").read_text())["ids"]
    assert items[-1] == 100 and len(items) == 21
    embeddings = np.load(out / "item_embeddings.npy")
    np.testing.assert_array_equal(embeddings, rec.embed_items()[1])
    tower = torch.export.load(out / "user_tower.pt2").module()
    history = torch.tensor([[2, 4, 20], [1, 3, -1]])  # the cold item pooled by its text
    got = tower(torch.tensor([0, -1]), history, torch.tensor([3, 2])).detach().numpy()
    _, expected = rec.embed_users([0, 999], histories={0: [2, 4, 100], 999: [1, 3]})
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_cli_recommends_and_exports_items_given_as_text(parity_model, tmp_path, capsys,
                                                       monkeypatch) -> None:
    from recft.cli import main
    from recft.text import encoders

    model, data = parity_model
    model.save_pretrained(tmp_path / "ckpt")
    texts = tmp_path / "texts.csv"
    pd.DataFrame({"item_id": [100, 101], "text": ["even", "odd"]}).to_csv(texts, index=False)
    histories = tmp_path / "histories.csv"
    data.to_pandas()[["user_id", "item_id", "timestamp"]].to_csv(histories, index=False)
    allowed = tmp_path / "allowed.csv"
    pd.DataFrame({"item_id": [100, 101]}).to_csv(allowed, index=False)
    users = tmp_path / "users.csv"
    pd.DataFrame({"user_id": [0, 1]}).to_csv(users, index=False)
    recommend = ["recommend", "--checkpoint", str(tmp_path / "ckpt"), "--histories",
                 str(histories), "--item-texts", str(texts), "--items", str(allowed),
                 "--k", "1", "--users", str(users)]
    # the checkpoint's encoder is not installed: one line naming it, exit 2
    assert main([*recommend, "--out", str(tmp_path / "none.parquet")]) == 2
    error = capsys.readouterr().err.strip()
    assert "'keywords' (version 1)" in error and "\n" not in error
    # once it is installed (here: known by name), the cold items are served and exported
    real = encoders.text_encoder
    monkeypatch.setattr(encoders, "text_encoder", lambda name, *args, **kwargs:
                        KeywordEncoder() if name == "keywords" else real(name, *args, **kwargs))
    assert main([*recommend, "--out", str(tmp_path / "recs.parquet")]) == 0
    recs = pd.read_parquet(tmp_path / "recs.parquet")
    assert dict(zip(recs.user, recs.item)) == {0: 100, 1: 101}
    assert main(["export", "--checkpoint", str(tmp_path / "ckpt"), "--item-texts", str(texts),
                 "--out", str(tmp_path / "bundle"), "--index", "exact"]) == 0
    items = json.loads((tmp_path / "bundle" / "items.json").read_text())["ids"]
    assert items[-2:] == [100, 101]


def test_cold_item_evaluation_ranks_only_the_held_out_items() -> None:
    data = synthetic("movies", size="tiny", seed=0).source
    parts = split(data, "cold-item:0.2", seed=0)
    cold = cold_item_rows(parts)
    assert len(cold) == round(0.2 * data.num_items)
    assert not np.isin(cold, parts.train.item_ids).any()
    oracle = MostPopular().fit(parts.test)  # knows the cold items' test counts
    result = evaluate_cold_items(oracle, parts, ks=(10,))
    assert result["ranking"] == "cold items" and result["num_cold_items"] == len(cold)
    # the same as ranking the full catalog with every warm item masked out by hand
    restricted = CandidateScorer(oracle, cold, data.catalog_size)
    assert result["ndcg@10"] == pytest.approx(
        evaluate(restricted, parts.test, exclude=parts.known("test"), ks=(10,))["ndcg@10"])
    untrained = MostPopular().fit(parts.train)  # every cold item scores 0: ties by row
    assert evaluate_cold_items(untrained, parts, ks=(10,))["ndcg@10"] < result["ndcg@10"]
    with pytest.raises(DataError, match="no cold items"):
        evaluate_cold_items(oracle, split(data, "random:0.8,0.1,0.1", seed=0))


def test_a_text_model_ranks_items_it_never_trained_on_by_their_text() -> None:
    """Checkerboard with items 0 and 1 held out of training: the text model ranks each
    for the users of its parity; an id-only model's untrained rows know nothing."""
    from tests.conftest import build_checkerboard

    data = build_checkerboard(20)
    keep = ~np.isin(data.item_ids, [0, 1])
    parts_train = data.subset(np.flatnonzero(keep))
    vectors = ItemTextVectors.encode(data, KeywordEncoder(), texts=parity_texts(data))
    config = TwoTowerConfig(embedding_dim=8, tower_layers=(16, 8), dropout=0.0,
                            item_text="text")
    torch.manual_seed(0)
    model, _ = pretrain(parts_train, config, item_text=vectors, progress=False,
                        pretrain_config=PretrainConfig(epochs=15, batch_size=16, seed=0,
                                                       lr=0.01, history_dropout=0.0))
    scores = model.score_users(np.arange(2, 20), parts_train)[:, :2]
    even_users = np.arange(2, 20) % 2 == 0
    assert (scores[even_users, 0] > scores[even_users, 1]).all()
    assert (scores[~even_users, 1] > scores[~even_users, 0]).all()


def test_cold_item_evaluation_scores_a_model_left_in_training_mode_without_dropout() -> None:
    data = synthetic("movies", size="tiny", seed=0).source
    parts = split(data, "cold-item:0.2", seed=0)
    vectors = ItemTextVectors.encode(data, KeywordEncoder(), texts=["comedy"] * len(
        data.item_vocab))
    torch.manual_seed(0)
    model = TwoTower(TwoTowerConfig(embedding_dim=8, tower_layers=(16, 8), dropout=0.5,
                                    item_text="text"), data.user_vocab, data.item_vocab,
                     item_text=vectors).train()
    first = evaluate_cold_items(model, parts, ks=(10,))
    assert evaluate_cold_items(model, parts, ks=(10,))["ndcg@10"] == first["ndcg@10"]
    assert model.training  # the caller's mode is restored
