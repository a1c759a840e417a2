"""Checkpoint validation: rebuild the non-weight parts and check every file and tensor."""

from __future__ import annotations

import json
import re
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from torch import nn

from recft.config import ConfigError
from recft.data.features import CategoricalFeature
from recft.data.vocabulary import Vocabulary
from recft.errors import CheckpointError, DataError
from recft.models import checkpoint_io as cio
from recft.models.checkpoint_io import (
    CHECKSUMS_NAME,
    CONFIG_NAME,
    ITEM_ATTRIBUTES_NAME,
    ITEM_FEATURES_STEM,
    ITEMS_NAME,
    USER_FEATURES_STEM,
    USERS_NAME,
    WEIGHTS_NAME,
)

_SHA256 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class CheckpointParts:
    """Everything but the weights: what a model class needs to rebuild its architecture."""

    config: Any
    user_vocab: Vocabulary
    item_vocab: Vocabulary
    item_features: dict[str, CategoricalFeature] | None
    user_features: dict[str, CategoricalFeature] | None
    item_attributes: pd.DataFrame | None


def config_class(cls: type) -> type:
    """``cls.config_class``, else the annotation of ``__init__``'s ``config`` argument."""
    found = getattr(cls, "config_class", None)
    if found is None:
        try:
            found = typing.get_type_hints(cls.__init__).get("config")
        except Exception:  # unresolved forward references: fall through to the error
            found = None
    if not (isinstance(found, type) and hasattr(found, "from_dict")):
        raise CheckpointError(f"{cls.__name__} needs a config_class (a ConfigMixin dataclass)")
    return found


def read_parts(directory: Path, meta: dict[str, Any], cls: type) -> CheckpointParts:
    """Config, vocabularies, features and attributes, each checked against ``config.json``."""
    source = f"{directory / CONFIG_NAME} architecture"
    try:
        config = config_class(cls).from_dict(meta.get("architecture", {}), source=source)
    except (ConfigError, DataError, TypeError, ValueError) as error:
        raise CheckpointError(f"{directory}: invalid architecture in {CONFIG_NAME}: "
                              f"{error}") from None
    sizes = meta.get("sizes", {})
    user_vocab = _read_vocab(directory, USERS_NAME, sizes.get("num_users"), "num_users")
    item_vocab = _read_vocab(directory, ITEMS_NAME, sizes.get("num_items"), "num_items")
    item_features = _read_features(directory, ITEM_FEATURES_STEM, "item", item_vocab, sizes)
    user_features = _read_features(directory, USER_FEATURES_STEM, "user", user_vocab, sizes)
    attributes = None
    if (directory / ITEM_ATTRIBUTES_NAME).is_file():
        try:
            attributes = pd.read_parquet(directory / ITEM_ATTRIBUTES_NAME)
        except Exception as error:  # pyarrow raises several unrelated types on bad bytes
            raise CheckpointError(f"{directory}: {ITEM_ATTRIBUTES_NAME} is corrupt: "
                                  f"{error}") from None
        if len(attributes) != len(item_vocab):
            raise CheckpointError(f"{directory}: {ITEM_ATTRIBUTES_NAME} has {len(attributes)} "
                                  f"rows, the item vocabulary {len(item_vocab)}")
    return CheckpointParts(config, user_vocab, item_vocab, item_features, user_features,
                           attributes)


def _read_vocab(directory: Path, name: str, recorded: int | None, key: str) -> Vocabulary:
    try:
        vocab = Vocabulary.from_dict(cio.read_json(directory / name, directory),
                                     source=str(directory / name))
    except DataError as error:
        raise CheckpointError(f"{directory}: {name} is invalid: {error}") from None
    if recorded is not None and recorded != len(vocab):
        raise CheckpointError(f"{directory}: {CONFIG_NAME} records {key}={recorded} "
                              f"but {name} has {len(vocab)} ids")
    return vocab


def _read_features(directory: Path, stem: str, what: str, vocab: Vocabulary,
                   sizes: dict[str, Any]) -> dict[str, CategoricalFeature] | None:
    recorded = sizes.get(f"{what}_features") or {}
    if not recorded and not (directory / f"{stem}.json").exists():
        return None
    features = cio.read_features(directory / stem, directory)
    for name, feature in features.items():
        if feature.num_entities != len(vocab):
            raise CheckpointError(f"{directory}: {stem}.safetensors feature {name!r} has "
                                  f"{feature.num_entities} rows, the {what} vocabulary "
                                  f"{len(vocab)}")
        if recorded.get(name, len(feature.vocab)) != len(feature.vocab):
            raise CheckpointError(f"{directory}: {CONFIG_NAME} records {recorded[name]} values "
                                  f"for {what} feature {name!r}, {stem}.json has "
                                  f"{len(feature.vocab)}")
    missing = sorted(set(recorded) - set(features))
    if missing:
        raise CheckpointError(f"{directory}: {stem}.json lacks {what} features {missing} "
                              f"that {CONFIG_NAME} records")
    return features


def construct(cls: type[nn.Module], parts: CheckpointParts) -> nn.Module:
    """The default builder: ``cls(config, user_vocab, item_vocab, item_features=...)``."""
    model = cls(parts.config, parts.user_vocab, parts.item_vocab,  # type: ignore[call-arg]
                item_features=parts.item_features, user_features=parts.user_features)
    if parts.item_attributes is not None:
        model.item_attributes = parts.item_attributes
    return model


def read_checksums(directory: Path, required: tuple[str, ...]) -> dict[str, str]:
    """``checksums.json``'s file table, after checking that it has the documented shape,
    that the ``required`` files exist and that it lists exactly the directory's files.

    The shape is ``{"algorithm": "sha256", "files": {relative path: hex digest}}``; any
    other shape (a list, ``{}``, a missing entry) is a corrupt checkpoint, never a reason to
    skip verification. Each error is one line naming the file at fault.
    """
    if not (directory / CHECKSUMS_NAME).is_file():
        raise CheckpointError(
            f"{directory}: incomplete checkpoint ({CHECKSUMS_NAME}, written last, is missing): "
            "the save was interrupted or the copy is partial; save or copy it again"
        )
    recorded = cio.read_json(directory / CHECKSUMS_NAME, directory)
    files = recorded.get("files") if isinstance(recorded, dict) else None
    if (not isinstance(recorded, dict) or recorded.get("algorithm") != "sha256"
            or not isinstance(files, dict) or not files):
        found = json.dumps(recorded)
        raise CheckpointError(
            f"{directory}: {CHECKSUMS_NAME} is corrupt: expected {{\"algorithm\": \"sha256\", "
            f"\"files\": {{path: digest, ...}}}}, found {found[:80]}"
            f"{'...' if len(found) > 80 else ''}"
        )
    for name, digest in files.items():
        if not isinstance(digest, str) or not _SHA256.fullmatch(digest):
            raise CheckpointError(f"{directory}: {CHECKSUMS_NAME} is corrupt: the entry for "
                                  f"{name} is {digest!r}, not a sha256 hex digest")
    present = set(cio.directory_files(directory)) - {CHECKSUMS_NAME}
    for name in (*required, *sorted(set(files) - present)):
        if not (directory / name).is_file():
            raise CheckpointError(f"{directory}: checkpoint file {name} is missing")
    unlisted = sorted(present - set(files))
    if unlisted:
        raise CheckpointError(
            f"{directory}: {unlisted[0]} is not listed in {CHECKSUMS_NAME} (the file was added "
            "after saving, or the list was edited); remove the file or save the checkpoint again"
        )
    return files


def check_finite(context: str, tensors: dict[str, Any]) -> None:
    """Refuse NaN or inf weights, naming the tensor (``context`` says where they came from)."""
    problem = cio.first_non_finite(tensors)
    if problem is not None:
        raise CheckpointError(f"{context}: {problem}")


def verify_checksums(directory: Path, checksums: dict[str, str]) -> None:
    for name, expected in checksums.items():
        if cio.sha256_file(directory / name) != expected:
            raise CheckpointError(f"{directory}: checksum mismatch for {name}: the file changed "
                                  "after saving or is corrupt")


def check_manifest(directory: Path, manifest: dict[str, Any], tensors: dict[str, Any]) -> None:
    """The weights file holds exactly the tensors ``config.json`` lists, shapes and dtypes."""
    missing = sorted(set(manifest) - set(tensors))
    if missing:
        raise CheckpointError(f"{directory}: {WEIGHTS_NAME} lacks tensors listed in "
                              f"{CONFIG_NAME}: {missing[:5]}")
    for name, tensor in tensors.items():
        entry = manifest.get(name)
        if entry is None:
            raise CheckpointError(f"{directory}: {WEIGHTS_NAME} has tensor {name!r} that "
                                  f"{CONFIG_NAME} does not list")
        shape, dtype = tuple(tensor.shape), cio.dtype_name(tensor.dtype)
        if (shape, dtype) != (tuple(entry["shape"]), entry["dtype"]):
            raise CheckpointError(
                f"{directory}: tensor {name!r}: {CONFIG_NAME} lists shape "
                f"{tuple(entry['shape'])} {entry['dtype']}, {WEIGHTS_NAME} has {shape} {dtype}"
            )


def check_against_model(directory: Path, model: nn.Module, tensors: dict[str, Any]) -> None:
    """Every tensor must fit the architecture rebuilt from config and vocabulary sizes."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    if missing or unexpected:
        raise CheckpointError(f"{directory}: {WEIGHTS_NAME} does not match "
                              f"{type(model).__name__}: missing tensors {missing[:5]}, "
                              f"unexpected tensors {unexpected[:5]}")
    for name, tensor in tensors.items():
        want = expected[name]
        if tuple(want.shape) != tuple(tensor.shape) or want.dtype != tensor.dtype:
            raise CheckpointError(
                f"{directory}: tensor {name!r}: expected shape {tuple(want.shape)} "
                f"{cio.dtype_name(want.dtype)} (from {CONFIG_NAME} and vocab/), found "
                f"{tuple(tensor.shape)} {cio.dtype_name(tensor.dtype)} in {WEIGHTS_NAME}"
            )
