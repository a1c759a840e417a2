"""Checkpoint save/load: round trip, atomicity, validation errors, no pickle, model card."""

from __future__ import annotations

import json
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import load_file, save_file
from torch import nn
from torchrec.modules.embedding_configs import EmbeddingBagConfig
from torchrec.modules.embedding_modules import EmbeddingBagCollection
from torchrec.sparse.jagged_tensor import KeyedJaggedTensor

from recft._version import __version__
from recft.config import ConfigMixin
from recft.data.features import CategoricalFeature
from recft.data.vocabulary import Vocabulary
from recft.errors import CheckpointError
from recft.models import checkpoint_io
from recft.models.checkpoint import (
    CHECKSUMS_NAME,
    PretrainedMixin,
    load_pretrained,
    register_model,
    save_pretrained,
)
from recft.models.model_card import metrics_table

PICKLE_HEADERS = [bytes([0x80, protocol]) for protocol in range(2, 6)]


@dataclass
class TinyConfig(ConfigMixin):
    embedding_dim: int = 4
    output_dim: int = 3


class TinyTwoTower(PretrainedMixin, nn.Module):
    """Stand-in honouring the TwoTower contract: EBC tables, vocabs, features, towers."""

    model_type = "tiny_two_tower"
    config_class = TinyConfig

    def __init__(self, config: TinyConfig, user_vocab: Vocabulary, item_vocab: Vocabulary,
                 item_features: dict[str, CategoricalFeature] | None = None,
                 user_features: dict[str, CategoricalFeature] | None = None) -> None:
        super().__init__()
        self.config, self.user_vocab, self.item_vocab = config, user_vocab, item_vocab
        self.item_features, self.user_features = item_features, user_features
        self.item_attributes: pd.DataFrame | None = None
        dim = config.embedding_dim
        def table(name: str, rows: int) -> EmbeddingBagConfig:
            return EmbeddingBagConfig(name=name, embedding_dim=dim, num_embeddings=rows,
                                      feature_names=[name])

        self.user_ebc = EmbeddingBagCollection(tables=[table("user_id", len(user_vocab))])
        item_tables = [table("item_id", len(item_vocab))]
        item_tables += [table(name, len(f.vocab)) for name, f in (item_features or {}).items()]
        self.item_ebc = EmbeddingBagCollection(tables=item_tables)
        self.user_tower = nn.Linear(dim, config.output_dim)
        self.item_tower = nn.Linear(dim * len(item_tables), config.output_dim)

    def encode_users(self, rows: torch.Tensor) -> torch.Tensor:
        kjt = KeyedJaggedTensor.from_lengths_sync(["user_id"], rows, torch.ones_like(rows))
        return self.user_tower(self.user_ebc(kjt)["user_id"])

    def encode_items(self) -> torch.Tensor:
        rows = np.arange(len(self.item_vocab))
        keys, values, lengths = ["item_id"], [rows], [np.ones_like(rows)]
        for name, feature in (self.item_features or {}).items():
            feature_lengths, feature_values, _ = feature.gather(rows)
            keys.append(name)
            values.append(feature_values)
            lengths.append(feature_lengths)
        kjt = KeyedJaggedTensor.from_lengths_sync(
            keys, torch.from_numpy(np.concatenate(values)),
            torch.from_numpy(np.concatenate(lengths)))
        pooled = self.item_ebc(kjt)
        return self.item_tower(torch.cat([pooled[k] for k in keys], dim=1))

    def scores(self) -> torch.Tensor:
        with torch.no_grad():
            return self.encode_users(torch.arange(len(self.user_vocab))) @ self.encode_items().T


@register_model("other_model")
class OtherModel(TinyTwoTower):
    pass


def make_model(seed: int = 0, num_users: int = 5) -> TinyTwoTower:
    torch.manual_seed(seed)
    genres = CategoricalFeature.from_lists(
        [["Drama"], [], ["Comedy", "Drama"], ["Horror"]], weights=[[1.0], [], [0.5, 0.5], [2.0]],
        name="genre")
    model = TinyTwoTower(TinyConfig(), Vocabulary([f"u{i}" for i in range(num_users)], name="user"),
                         Vocabulary([10, 20, 30, 40], name="item"), item_features={"genre": genres})
    model.item_attributes = pd.DataFrame({"title": ["A", "B", "C", "D"],
                                          "year": [1990, 1991, 1992, 1993]})
    return model


TRAINING = {"dataset": "synthetic-source",
            "split": {"kind": "random", "fractions": [0.8, 0.1, 0.1]}, "seed": 7,
            "protocol": {"ranking": "full", "exclude_seen": True},
            "metrics": {"recall@10": 0.123456, "ndcg@10": np.float32(0.25)}, "wall_time_s": 1.5}


Saved = tuple[TinyTwoTower, Path]


@pytest.fixture()
def saved(tmp_path: Path) -> Saved:
    model = make_model()
    return model, save_pretrained(model, tmp_path / "ckpt", training=TRAINING)


def reseal(directory: Path) -> None:
    """Recompute checksums after a deliberate edit so the check under test is reached."""
    files = checkpoint_io.file_checksums(directory)
    files.pop(CHECKSUMS_NAME)
    (directory / CHECKSUMS_NAME).write_text(json.dumps({"algorithm": "sha256", "files": files}))


def edit_json(path: Path, change) -> None:
    value = json.loads(path.read_text())
    change(value)
    path.write_text(json.dumps(value))


def test_round_trip_is_bit_identical(saved: Saved) -> None:
    model, directory = saved
    loaded = TinyTwoTower.from_pretrained(directory)
    assert type(loaded) is TinyTwoTower and loaded.config == model.config
    before, after = model.state_dict(), loaded.state_dict()
    assert list(before) == list(after)
    assert all(torch.equal(before[k], after[k]) and before[k].dtype == after[k].dtype
               for k in before)
    assert torch.equal(model.scores(), loaded.scores())
    assert loaded.user_vocab == model.user_vocab and loaded.item_vocab == model.item_vocab
    genre, loaded_genre = model.item_features["genre"], loaded.item_features["genre"]
    expected_genres = [["Drama"], [], ["Comedy", "Drama"], ["Horror"]]
    assert loaded_genre.as_lists() == genre.as_lists() == expected_genres
    assert np.array_equal(loaded_genre.weights, genre.weights) and loaded_genre.vocab == genre.vocab
    pd.testing.assert_frame_equal(loaded.item_attributes, model.item_attributes, check_dtype=False)
    assert loaded.user_features is None


def test_registry_loads_without_a_class(saved: Saved) -> None:
    model, directory = saved
    assert torch.equal(load_pretrained(directory).scores(), model.scores())


def test_directory_layout_and_metadata(saved: Saved) -> None:
    _, directory = saved
    files = sorted(p.relative_to(directory).as_posix() for p in directory.rglob("*") if p.is_file())
    assert files == ["README.md", "checksums.json", "config.json", "model.safetensors",
                     "training.json", "vocab/item_attributes.parquet", "vocab/item_features.json",
                     "vocab/item_features.safetensors", "vocab/items.json", "vocab/users.json"]
    config = json.loads((directory / "config.json").read_text())
    assert (config["model_type"], config["format_version"], config["recft_version"]) == (
        "tiny_two_tower", 1, __version__)
    assert config["architecture"] == {"embedding_dim": 4, "output_dim": 3}
    assert config["tensors"]["user_ebc.embedding_bags.user_id.weight"] == {
        "shape": [5, 4], "dtype": "float32"}
    assert config["sizes"]["num_users"] == 5 and config["sizes"]["item_features"] == {"genre": 3}
    training = json.loads((directory / "training.json").read_text())
    assert training["seed"] == 7 and training["metrics"]["ndcg@10"] == 0.25
    assert training["versions"]["torch"] == torch.__version__ and "torchrec" in training["versions"]
    assert "python" in training["versions"] and training["saved_at"] and training["hardware"]
    checksums = json.loads((directory / CHECKSUMS_NAME).read_text())["files"]
    assert set(checksums) == set(files) - {CHECKSUMS_NAME}


def test_no_pickle_written_or_read(saved: Saved, monkeypatch) -> None:
    _, directory = saved
    for path in directory.rglob("*"):
        if path.is_file():
            assert path.read_bytes()[:2] not in PICKLE_HEADERS, path

    def refuse(*args, **kwargs):
        raise AssertionError("checkpoint loading must not unpickle")

    monkeypatch.setattr(torch, "load", refuse)
    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(pickle, "Unpickler", refuse)
    TinyTwoTower.from_pretrained(directory)


def test_crash_mid_write_keeps_previous_checkpoint(saved: Saved, monkeypatch) -> None:
    old, directory = saved
    real_write = checkpoint_io.write_json

    def crash_on_training(path: Path, value, **kwargs) -> None:
        if path.name == "training.json":
            raise OSError("disk full")
        real_write(path, value, **kwargs)

    monkeypatch.setattr(checkpoint_io, "write_json", crash_on_training)
    with pytest.raises(OSError, match="disk full"):
        save_pretrained(make_model(seed=1), directory)
    assert [p.name for p in directory.parent.iterdir()] == ["ckpt"]  # no staging dir left
    assert torch.equal(TinyTwoTower.from_pretrained(directory).scores(), old.scores())
    with pytest.raises(OSError):
        save_pretrained(make_model(seed=1), directory.parent / "fresh")
    assert not (directory.parent / "fresh").exists()


def test_partial_directory_without_marker_fails(saved: Saved) -> None:
    _, directory = saved
    (directory / CHECKSUMS_NAME).unlink()
    with pytest.raises(CheckpointError, match="incomplete checkpoint.*checksums.json"):
        TinyTwoTower.from_pretrained(directory)


def test_newer_format_asks_to_upgrade(saved: Saved) -> None:
    _, directory = saved
    edit_json(directory / "config.json",
              lambda c: c.update(format_version=2, recft_version="9.1.0"))
    with pytest.raises(CheckpointError,
                       match=r"format 2 was written by recft 9\.1\.0.*Upgrade recft"):
        TinyTwoTower.from_pretrained(directory)


@pytest.mark.parametrize("name", ["config.json", "model.safetensors", "vocab/items.json",
                                  "vocab/item_features.json", "training.json"])
def test_missing_file_is_named(saved: Saved, name: str) -> None:
    _, directory = saved
    (directory / name).unlink()
    with pytest.raises(CheckpointError, match=f"{name} is missing"):
        TinyTwoTower.from_pretrained(directory)


@pytest.mark.parametrize("name", ["model.safetensors", "vocab/item_features.safetensors"])
def test_truncated_safetensors_is_named(saved: Saved, name: str) -> None:
    _, directory = saved
    data = (directory / name).read_bytes()
    (directory / name).write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=f"{name} is corrupt or truncated"):
        TinyTwoTower.from_pretrained(directory)


def test_checksum_mismatch(saved: Saved) -> None:
    _, directory = saved
    data = bytearray((directory / "model.safetensors").read_bytes())
    data[-1] ^= 0xFF  # a flipped bit in tensor data: still parses, only the checksum sees it
    (directory / "model.safetensors").write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="checksum mismatch for model.safetensors"):
        TinyTwoTower.from_pretrained(directory)
    assert TinyTwoTower.from_pretrained(directory, verify_checksums=False) is not None


def test_shape_mismatch_names_tensor(saved: Saved) -> None:
    _, directory = saved
    tensors = load_file(str(directory / "model.safetensors"))
    tensors["item_tower.weight"] = torch.zeros(3, 5)
    save_file(tensors, str(directory / "model.safetensors"))
    reseal(directory)
    with pytest.raises(CheckpointError,
                       match=r"'item_tower.weight': config.json lists shape \(3, 8\)"):
        TinyTwoTower.from_pretrained(directory)
    entry = {"shape": [3, 5], "dtype": "float32"}
    edit_json(directory / "config.json",
              lambda c: c["tensors"].update({"item_tower.weight": entry}))
    reseal(directory)
    with pytest.raises(CheckpointError,
                       match=r"'item_tower.weight': expected shape \(3, 8\) float32"
                             r".*found \(3, 5\)"):
        TinyTwoTower.from_pretrained(directory)


def test_vocab_size_must_match_table_rows(saved: Saved) -> None:
    _, directory = saved
    edit_json(directory / "vocab/users.json", lambda v: v["ids"].pop())
    reseal(directory)
    with pytest.raises(CheckpointError, match="num_users=5 but vocab/users.json has 4 ids"):
        TinyTwoTower.from_pretrained(directory)
    edit_json(directory / "config.json", lambda c: c["sizes"].update(num_users=4))
    reseal(directory)
    with pytest.raises(CheckpointError, match=r"'user_ebc.embedding_bags.user_id.weight': "
                                              r"expected shape \(4, 4\).*found \(5, 4\)"):
        TinyTwoTower.from_pretrained(directory)


def test_unknown_config_keys_warn_and_load(saved: Saved) -> None:
    model, directory = saved
    edit_json(directory / "config.json", lambda c: c["architecture"].update(future_knob=3))
    reseal(directory)
    with pytest.warns(UserWarning, match="future_knob"):
        loaded = TinyTwoTower.from_pretrained(directory)
    assert torch.equal(loaded.scores(), model.scores())


def test_unknown_model_type_and_wrong_class(saved: Saved, tmp_path: Path) -> None:
    _, directory = saved
    other_model = OtherModel(TinyConfig(), Vocabulary([1]), Vocabulary([1, 2]))
    other = save_pretrained(other_model, tmp_path / "o")
    assert type(TinyTwoTower.from_pretrained(other)) is OtherModel  # a registered subclass wins
    with pytest.raises(CheckpointError, match="holds a 'tiny_two_tower' model"):
        OtherModel.from_pretrained(directory)
    edit_json(directory / "config.json", lambda c: c.update(model_type="mystery"))
    with pytest.raises(CheckpointError, match="unknown model_type 'mystery'.*tiny_two_tower"):
        load_pretrained(directory)


def test_model_card(saved: Saved) -> None:
    _, directory = saved
    card = (directory / "README.md").read_text()
    table = "| Metric | Value |\n| --- | ---: |\n| recall@10 | 0.1235 |\n| ndcg@10 | 0.2500 |"
    assert table in card
    assert "full ranking over all 4 items" in card and "removed before ranking" in card
    assert "Seed: 7" in card and "synthetic-source" in card and "kind=random" in card
    assert "TinyTwoTower.from_pretrained(" in card
    for heading in ("## Intended use", "## Limitations", "## How to load", "## Files"):
        assert heading in card
    assert "| `model.safetensors` |" in card and "| `vocab/item_attributes.parquet` |" in card


def test_metrics_table_shapes() -> None:
    assert metrics_table({}) == "No metrics were recorded."
    nested = metrics_table({"valid": {"recall@10": 0.5}, "test": {"recall@10": 0.25, "ndcg@10": 1}})
    assert nested.splitlines() == ["| | recall@10 | ndcg@10 |", "| --- | ---: | ---: |",
                                   "| valid | 0.5000 | – |", "| test | 0.2500 | 1 |"]


def test_unserialisable_training_value_is_named(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="training.json.*object"):
        save_pretrained(make_model(), tmp_path / "c", training={"bad": object()})
    assert not (tmp_path / "c").exists()


def test_real_two_tower_round_trip(tmp_path: Path) -> None:
    from recft.data.interactions import Interactions
    from recft.models.two_tower import TwoTower, TwoTowerConfig

    torch.manual_seed(0)
    train = Interactions.from_raw(["a", "a", "b", "c"], [10, 20, 20, 30], timestamps=[1, 2, 3, 4])
    genres = CategoricalFeature.from_lists([["x"], ["x", "y"], []], name="genre")
    model = TwoTower(TwoTowerConfig(embedding_dim=4, tower_layers=(6, 3)), train.user_vocab,
                     train.item_vocab, item_features={"genre": genres})
    loaded = load_pretrained(save_pretrained(model, tmp_path / "ckpt"))
    assert type(loaded) is TwoTower and loaded.config == model.config
    users = np.arange(3)
    assert torch.equal(loaded.score_users(users, train), model.score_users(users, train))
