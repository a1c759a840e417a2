"""The item tower's text path: frozen vectors in the checkpoint, projected, pooled for users."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from recft.config import ConfigError
from recft.data import synthetic
from recft.errors import DataError, RecftError
from recft.finetune.vocab_transfer import align_vocabulary
from recft.models.checkpoint import load_pretrained
from recft.models.finetuned import attach_heads
from recft.models.inputs import ITEM_HISTORY, ITEM_ID, item_features_kjt, user_features_kjt
from recft.models.text_path import ItemTextVectors, checkpoint_encoder
from recft.models.two_tower import TwoTower, TwoTowerConfig
from recft.text import EncoderNotAvailableError
from recft.train import PretrainConfig, pretrain
from recft.train.batches import BatchBuilder
from tests.text_models import KeywordEncoder, parity_texts, text_model
from tests.tiny_models import tiny_two_tower


@pytest.fixture(autouse=True)
def _private_text_cache(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("RECFT_CACHE_DIR", str(tmp_path / "cache"))


def test_default_config_leaves_text_out_and_old_checkpoints_load(checkerboard, tmp_path) -> None:
    model = tiny_two_tower(checkerboard)
    assert model.item_text is None and "item_text" not in model.config.to_dict()
    model.save_pretrained(tmp_path / "plain")
    meta = json.loads((tmp_path / "plain" / "config.json").read_text())
    assert not any(key.startswith(("item_text", "text_")) for key in meta["architecture"])
    assert not any("item_text" in name for name in meta["tensors"])
    again = load_pretrained(tmp_path / "plain")
    users = np.arange(4)
    assert torch.equal(again.score_users(users, checkerboard),
                       model.eval().score_users(users, checkerboard))


@pytest.mark.parametrize("mode", ["id+text", "text"])
def test_vectors_are_saved_with_the_weights_and_scores_reload_exactly(checkerboard, tmp_path,
                                                                      mode) -> None:
    model = text_model(checkerboard, mode).eval()
    model.save_pretrained(tmp_path / "ckpt")
    meta = json.loads((tmp_path / "ckpt" / "config.json").read_text())
    assert meta["architecture"]["item_text"] == mode
    assert (meta["architecture"]["text_encoder"], meta["architecture"]["text_encoder_version"],
            meta["architecture"]["text_dim"]) == ("keywords", "1", KeywordEncoder.dim)
    assert meta["tensors"]["item_text.vectors"]["shape"] == [20, KeywordEncoder.dim]
    again = load_pretrained(tmp_path / "ckpt")
    assert torch.equal(again.item_text.vectors, model.item_text.vectors)
    assert again.item_text.vectors[0].tolist() == [1.0, 0, 0, 0, 0, 0]  # item 0: "even"
    users = np.arange(6)
    assert torch.equal(again.score_users(users, checkerboard),
                       model.score_users(users, checkerboard))


def test_text_only_items_are_what_they_say_and_ids_do_not_count(checkerboard) -> None:
    model = text_model(checkerboard, "text").eval()
    items = model.encode_items()
    # same text, no features: one embedding per parity, whatever the id rows hold
    assert torch.allclose(items[0], items[2]) and torch.allclose(items[1], items[3])
    assert not torch.allclose(items[0], items[1])
    with torch.no_grad():
        model.item_ebc.embedding_bags[ITEM_ID].weight.normal_()
    assert torch.equal(model.encode_items(), items)


def test_id_and_text_both_move_an_item(checkerboard) -> None:
    model = text_model(checkerboard, "id+text").eval()
    before = model.encode_items()
    assert not torch.allclose(before[0], before[2])  # the id rows differ
    model.item_text.set_rows(np.array([0]), KeywordEncoder().encode(["odd"]))
    after = model.encode_items()
    assert not torch.allclose(after[0], before[0]) and torch.equal(after[1:], before[1:])


def test_kjt_batches_read_item_rows_and_pool_history_text(checkerboard) -> None:
    """The torchrec input path: item rows from the item_id bags (0 or 1 long), the
    history's text mean-pooled from the item_history bags."""
    model = text_model(checkerboard, "id+text").eval()
    users, items = np.array([0, 1, 2]), np.array([4, 5, -1])
    history = (np.array([2, 1, 0]), np.array([2, 6, 3]))  # user 0: items 2, 6; user 1: 3
    known = items >= 0
    item_kjt = item_features_kjt(items[known], {}, None)
    kjt = item_features_kjt(None, {}, history, batch_size=3)
    # a batch whose last row has an empty item_id bag
    merged = type(kjt)(keys=[ITEM_ID, ITEM_HISTORY],
                       values=torch.cat([item_kjt[ITEM_ID].values(), kjt[ITEM_HISTORY].values()]),
                       lengths=torch.cat([torch.tensor([1, 1, 0]), kjt[ITEM_HISTORY].lengths()]))
    user_base, item_base = model.base_representations(user_features_kjt(users, {}), merged)
    dim = model.config.embedding_dim
    projected = model.item_text.projection(model.item_text.vectors).detach()
    text_block = item_base[:, dim:2 * dim].detach()
    assert torch.allclose(text_block[0], projected[4]) and torch.allclose(text_block[1],
                                                                           projected[5])
    assert torch.equal(text_block[2], torch.zeros(dim))  # empty bag: zero, like an EBC
    history_text = user_base[:, 2 * dim:3 * dim].detach()  # after user id and history ids
    assert torch.allclose(history_text[0], (projected[2] + projected[6]) / 2, atol=1e-6)
    assert torch.allclose(history_text[1], projected[3])
    assert torch.equal(history_text[2], torch.zeros(dim))
    assert user_base.shape[1] == model.user_base_dim and item_base.shape[1] == model.item_base_dim


def test_pretraining_with_text_trains_the_projection_not_the_vectors(checkerboard) -> None:
    vectors = ItemTextVectors.encode(checkerboard, KeywordEncoder(),
                                     texts=parity_texts(checkerboard))
    config = TwoTowerConfig(embedding_dim=8, tower_layers=(16, 8), item_text="text")
    torch.manual_seed(0)
    untrained = TwoTower(config, checkerboard.user_vocab, checkerboard.item_vocab,
                         item_text=vectors)
    model, _ = pretrain(checkerboard, config, pretrain_config=PretrainConfig(
        epochs=2, batch_size=32, seed=0), progress=False, item_text=vectors)
    assert torch.equal(model.item_text.vectors, torch.from_numpy(vectors.vectors))
    assert not torch.equal(model.item_text.projection.weight, untrained.item_text.projection.weight)
    assert "item_text.vectors" not in dict(model.named_parameters())
    builder = BatchBuilder.for_model(model, checkerboard, batch_size=8)
    batch = next(builder.batches(epoch=0, seed=0))
    user_emb, item_emb = model(batch.user_features, batch.item_features)
    assert user_emb.shape == item_emb.shape == (8, 8)


def test_config_and_vectors_must_agree(checkerboard) -> None:
    vectors = ItemTextVectors.encode(checkerboard, KeywordEncoder(),
                                     texts=parity_texts(checkerboard))
    users, items = checkerboard.user_vocab, checkerboard.item_vocab
    with pytest.raises(ConfigError, match="item_text='none'"):
        TwoTower(TwoTowerConfig(), users, items, item_text=vectors)
    with pytest.raises(ConfigError, match="needs the items' text vectors"):
        TwoTower(TwoTowerConfig(item_text="text"), users, items)
    with pytest.raises(ConfigError, match="item_text must be one of"):
        TwoTowerConfig(item_text="title")
    short = ItemTextVectors(vectors.vectors[:5], "keywords", "1")
    with pytest.raises(DataError, match="5 item text vectors for 20 items"):
        TwoTower(TwoTowerConfig(item_text="text"), users, items, item_text=short)
    with pytest.raises(ConfigError, match="text_encoder='other'"):
        TwoTower(TwoTowerConfig(item_text="text", text_encoder="other"), users, items,
                 item_text=vectors)


def test_the_recorded_encoder_is_required_to_encode_new_text(checkerboard, tmp_path) -> None:
    model = text_model(checkerboard, "text")
    assert isinstance(checkpoint_encoder(model), KeywordEncoder)  # kept in memory
    model.save_pretrained(tmp_path / "ckpt")
    loaded = load_pretrained(tmp_path / "ckpt")
    with pytest.raises(EncoderNotAvailableError) as error:
        checkpoint_encoder(loaded)
    message = str(error.value)
    assert "'keywords' (version 1)" in message and "\n" not in message
    assert isinstance(checkpoint_encoder(loaded, KeywordEncoder()), KeywordEncoder)
    stale = KeywordEncoder()
    stale.version = "2"
    with pytest.raises(RecftError, match="given is 'keywords' \\(version 2\\)"):
        checkpoint_encoder(loaded, stale)
    with pytest.raises(RecftError, match="no text path"):
        checkpoint_encoder(tiny_two_tower(checkerboard))


def test_a_missing_pretrained_encoder_is_named_with_its_version(checkerboard, tmp_path) -> None:
    model = text_model(checkerboard, "text")
    model.config.text_encoder, model.config.text_encoder_version = "all-MiniLM-L6-v2", "0.0-gone"
    model.save_pretrained(tmp_path / "ckpt")
    loaded = load_pretrained(tmp_path / "ckpt")  # scoring stored vectors needs no encoder
    assert loaded.score_users(np.arange(3), checkerboard).shape == (3, 20)
    with pytest.raises(EncoderNotAvailableError, match="'all-MiniLM-L6-v2' \\(version 0.0-gone\\)"):
        checkpoint_encoder(loaded)


def test_fine_tuned_models_keep_the_text_path_through_a_checkpoint(checkerboard,
                                                                   tmp_path) -> None:
    model = attach_heads(text_model(checkerboard, "id+text"), ["retrieval"]).eval()
    assert model.item_text is not None and model.text_encoder is not None
    with torch.no_grad():
        for parameter in model.heads.parameters():
            parameter.normal_()
    model.save_pretrained(tmp_path / "tuned")
    again = load_pretrained(tmp_path / "tuned")
    users = np.arange(5)
    assert torch.equal(again.score_users(users, checkerboard),
                       model.score_users(users, checkerboard))


def test_growing_the_vocabulary_encodes_the_new_items_with_the_same_encoder() -> None:
    pair = synthetic("movies", size="tiny", seed=0)
    source, target = pair.source, pair.target
    texts = {"source": ["comedy" if n % 2 else "drama" for n in range(len(source.item_vocab))],
             "target": ["jazz rock"] * len(target.item_vocab)}
    encoder = KeywordEncoder()
    model = text_model(source, "id+text", texts=texts["source"], encoder=encoder)
    pretrained = model.item_text.vectors.clone()
    target_vectors = ItemTextVectors.encode(target, encoder, texts=texts["target"])
    alignment = align_vocabulary(model, target, item_text=target_vectors)
    new = alignment.counts["items"]["new"]
    assert new > 0 and alignment.counts["item_text"]["new"] == new
    assert model.item_text.vectors.shape == (len(source.item_vocab) + new, KeywordEncoder.dim)
    assert torch.equal(model.item_text.vectors[:len(pretrained)], pretrained)  # bit-for-bit
    jazz_rock = torch.from_numpy(encoder.encode(["jazz rock"])[0])
    assert torch.equal(model.item_text.vectors[-1], jazz_rock)
    assert model.config.num_items == len(model.item_vocab) == len(model.item_text.vectors)


def test_growing_without_vectors_encodes_the_targets_item_texts() -> None:
    pair = synthetic("music", size="tiny", seed=0)
    encoder = KeywordEncoder()
    model = text_model(pair.source, "text", texts=["rock"] * len(pair.source.item_vocab),
                       encoder=encoder)
    alignment = align_vocabulary(model, pair.target)  # texts from the target's own features
    from recft.text import item_texts

    texts = item_texts(pair.target).texts
    new_ids = model.item_vocab.ids[len(pair.source.item_vocab):]
    rows = pair.target.item_vocab.encode(new_ids)
    expected = encoder.encode([texts[r] for r in rows])
    assert alignment.counts["items"]["new"] == len(new_ids) > 0
    np.testing.assert_array_equal(model.item_text.vectors[-len(new_ids):].numpy(), expected)


def test_pretrain_command_reads_item_text(tmp_path, capsys) -> None:
    from recft.cli import main

    out = tmp_path / "base"
    assert main(["pretrain", "--dataset", "synthetic:tiny", "--epochs", "1", "--item-text",
                 "id+text", "--text-encoder", "tfidf", "--out", str(out), "--quiet"]) == 0
    architecture = json.loads((out / "config.json").read_text())["architecture"]
    assert architecture["item_text"] == "id+text" and architecture["text_encoder"] == "tfidf"
    model = load_pretrained(out)
    assert model.item_text.vectors.abs().sum() > 0  # every synthetic item has a text
    assert json.loads(capsys.readouterr().out)["checkpoint"] == str(out)
