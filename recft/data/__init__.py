"""recft.data: the ``Interactions`` type, dataset loaders, splits and the embedded default.

Modules:
    interactions  Interactions (the one data type every stage speaks)
    vocabulary    Vocabulary: raw ids <-> contiguous rows
    features      CategoricalFeature / EntityFeatures: genres, tags, artists, titles
    movielens     load_movielens: ml-100k ... ml-32m, ml-latest(-small)
    lastfm        load_lastfm: lastfm-2k (HetRec 2011), lastfm-1k, lastfm-360k
    tabular       read_interactions / from_pandas: the user's own CSV, TSV, Parquet
    releases      Release metadata (URLs, checksums, files) and the cache folder rules
    registry      load(name_or_path): one entry point for every named dataset or file
    download      download(name, data_dir): checksummed fetch and safe extraction
    transforms    implicit-feedback helpers: thresholds, log1p weights, k-core, dedup
    splits        random / temporal / leave-last-out / cold-user / cold-item splits
    synthetic     the embedded default: a source and a shifted target domain
    describe      dataset statistics for ``recft data describe``
"""

from __future__ import annotations

import importlib
from typing import Any

from recft.data.features import CategoricalFeature, EntityFeatures
from recft.data.interactions import Interactions
from recft.data.vocabulary import Vocabulary

# Bound eagerly (cheap: numpy only): the function shares its module's name, and a lazy
# lookup never runs once ``import recft.data.synthetic`` has set the attribute to the module.
from recft.data.synthetic import DomainPair, synthetic

# Same reason: `describe` and `download` are functions named like their modules (stdlib,
# numpy and pandas imports only).
from recft.data.describe import describe
from recft.data.download import download

_LAZY = {
    "load_movielens": "movielens",
    "MOVIELENS_RELEASES": "releases",
    "load_lastfm": "lastfm",
    "LASTFM_RELEASES": "releases",
    "read_interactions": "tabular",
    "from_pandas": "tabular",
    "load": "registry",
    "dataset_names": "registry",
    "default_data_dir": "releases",
    "binarize": "transforms",
    "log1p_weights": "transforms",
    "kcore_filter": "transforms",
    "deduplicate": "transforms",
    "Split": "splits",
    "SplitSpec": "splits",
    "parse_split": "splits",
    "split": "splits",
    "random_split": "splits",
    "temporal_split": "splits",
    "leave_last_out": "splits",
    "cold_user_split": "splits",
    "cold_item_split": "splits",
}

__all__ = ["CategoricalFeature", "DomainPair", "EntityFeatures", "Interactions", "Vocabulary",
           "describe", "download", "synthetic", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module = importlib.import_module(f"recft.data.{_LAZY[name]}")
        return getattr(module, name)
    raise AttributeError(f"module 'recft.data' has no attribute {name!r}")
