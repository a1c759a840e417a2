"""TwoTowerConfig: a TwoTower's architecture, with table sizes checked against the data."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from recft.config import ConfigError, ConfigMixin
from recft.data.features import CategoricalFeature
from recft.data.interactions import Interactions
from recft.data.vocabulary import Vocabulary
from recft.errors import DataError
from recft.models.history_pooling import HISTORY_POOLINGS
from recft.models.inputs import RESERVED_FEATURES
from recft.models.text_path import check_text_config


OUTPUT_ACTIVATIONS = ("none", "relu")
TEXT_FIELDS = ("item_text", "text_dim", "text_encoder", "text_encoder_version")


@dataclass
class TwoTowerConfig(ConfigMixin):
    """Architecture of a ``TwoTower``; table sizes make a checkpoint's shapes checkable.

    Sizes left as None are filled from the vocabularies and features the model is built
    with (``TwoTowerConfig.for_data`` does the same from an ``Interactions``).

    Example::

        config = TwoTowerConfig(embedding_dim=32, tower_layers=(64, 32))
        model = TwoTower(config, train.user_vocab, train.item_vocab)
    """

    num_users: int | None = None  # rows of the user_id table (= len(user_vocab))
    num_items: int | None = None  # rows of the item_id table (= len(item_vocab))
    item_feature_sizes: dict[str, int] = field(default_factory=dict)  # name -> vocab size
    user_feature_sizes: dict[str, int] = field(default_factory=dict)
    embedding_dim: int = 64  # every table's width
    tower_layers: tuple[int, ...] = (128, 64)  # hidden sizes..., output size
    dropout: float = 0.1  # on tower inputs and hidden activations, training only
    normalize: bool = True  # L2-normalise tower outputs: scores are cosines / temperature
    temperature: float = 0.03  # benchmarks/explore_ml100k.py: +2% valid NDCG@10 over 0.1 on 3 seeds
    use_history: bool = True  # pool the user's recent items into the user tower
    max_history: int = 50  # most recent items pooled per user (training and serving)
    # how the history is pooled: "mean" (a MEAN bag), or learned (recft.models.history_pooling):
    # "attention" (queried by the user) or "transformer" (one encoder layer, then attention)
    history_pooling: str = "mean"
    init_scale: float = 0.1  # tables start uniform in [-init_scale, init_scale]
    # "relu" reproduces towers imported from torchrec, whose MLP ends in a ReLU; recft's own
    # towers end linear so that dot products can take either sign
    output_activation: str = "none"
    # items described by text (recft.models.text_path): "none", "id+text" or "text" (no id
    # block); text_dim and the encoder are filled from the vectors the model is built with
    item_text: str = "none"
    text_dim: int | None = None  # width of the stored text vectors
    text_encoder: str | None = None  # the encoder's name and version, recorded so that
    text_encoder_version: str | None = None  # new texts are encoded into the same space

    def __post_init__(self) -> None:
        self.tower_layers = tuple(int(size) for size in self.tower_layers)
        if self.embedding_dim < 1 or not self.tower_layers or min(self.tower_layers) < 1:
            raise ConfigError("embedding_dim and every tower layer size must be >= 1")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.temperature <= 0:
            raise ConfigError(f"temperature must be > 0, got {self.temperature}")
        if self.output_activation not in OUTPUT_ACTIVATIONS:
            raise ConfigError(f"output_activation must be one of {OUTPUT_ACTIVATIONS}, "
                              f"got {self.output_activation!r}")
        if self.max_history < 1:
            raise ConfigError(f"max_history must be >= 1, got {self.max_history}")
        for name in (*self.item_feature_sizes, *self.user_feature_sizes):
            if name in RESERVED_FEATURES:
                raise ConfigError(f"feature name {name!r} is reserved ({RESERVED_FEATURES})")
        check_text_config(self.item_text, self.text_dim)
        if self.history_pooling not in HISTORY_POOLINGS:
            raise ConfigError(f"history_pooling must be one of {HISTORY_POOLINGS}, "
                              f"got {self.history_pooling!r}")
        if self.history_pooling != "mean" and (not self.use_history or self.item_text != "none"):
            raise ConfigError(f"history_pooling={self.history_pooling!r} needs use_history "
                              "and no item text (item_text='none'); use 'mean'")

    def to_dict(self) -> dict[str, Any]:
        """Field values; a model without text leaves the text fields out, so its config
        (and its checkpoints' config.json) reads exactly as before text existed; so does
        ``history_pooling`` when it is ``"mean"`` (a config without it loads as ``"mean"``)."""
        values = super().to_dict()
        if self.item_text == "none":
            for name in TEXT_FIELDS:
                values.pop(name, None)
        if self.history_pooling == "mean":
            values.pop("history_pooling", None)
        return values

    @classmethod
    def for_data(cls, interactions: Interactions, **overrides: Any) -> TwoTowerConfig:
        """A config sized for ``interactions``' vocabularies and categorical features."""
        item, user = interactions.item_features, interactions.user_features
        sizes = {
            "num_users": len(interactions.user_vocab),
            "num_items": len(interactions.item_vocab),
            "item_feature_sizes": {n: len(f.vocab) for n, f in item.categorical.items()}
            if item is not None else {},
            "user_feature_sizes": {n: len(f.vocab) for n, f in user.categorical.items()}
            if user is not None else {},
        }
        return cls(**{**sizes, **overrides})

    @property
    def output_dim(self) -> int:
        return self.tower_layers[-1]


def sized_config(
    config: TwoTowerConfig,
    user_vocab: Vocabulary,
    item_vocab: Vocabulary,
    item_features: dict[str, CategoricalFeature],
    user_features: dict[str, CategoricalFeature],
) -> TwoTowerConfig:
    """Fill unset sizes from the data; a size that disagrees with it is an error."""
    expected = {
        "num_users": len(user_vocab),
        "num_items": len(item_vocab),
        "item_feature_sizes": {n: len(f.vocab) for n, f in item_features.items()},
        "user_feature_sizes": {n: len(f.vocab) for n, f in user_features.items()},
    }
    fill = {}
    for key, value in expected.items():
        current = getattr(config, key)
        if current is None or (isinstance(current, dict) and not current and value):
            fill[key] = value
        elif current != value:
            raise DataError(f"TwoTowerConfig.{key}={current} does not match the data ({value})")
    for name, feature in item_features.items():
        feature_size = feature.num_entities
        if feature_size != len(item_vocab):
            raise DataError(f"item feature {name!r} has {feature_size} rows, "
                            f"the item vocabulary {len(item_vocab)}")
    for name, feature in user_features.items():
        if feature.num_entities != len(user_vocab):
            raise DataError(f"user feature {name!r} has {feature.num_entities} rows, "
                            f"the user vocabulary {len(user_vocab)}")
    return dataclasses.replace(config, **fill) if fill else config
