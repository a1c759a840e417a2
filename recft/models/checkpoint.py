"""Portable checkpoints: atomic save_pretrained and validated, pickle-free load_pretrained."""

from __future__ import annotations

import importlib
import typing
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import pandas as pd
from torch import nn

from recft._version import __version__
from recft.config import ConfigError
from recft.data.features import CategoricalFeature
from recft.data.vocabulary import Vocabulary
from recft.errors import CheckpointError, DataError
from recft.io import atomic_directory
from recft.models import checkpoint_io as cio
from recft.models.model_card import render_model_card

FORMAT_VERSION = 1  # bump on a change old readers would misread; they then refuse it clearly
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
TRAINING_NAME = "training.json"
CARD_NAME = "README.md"
CHECKSUMS_NAME = "checksums.json"  # written last: its presence marks a complete checkpoint
USERS_NAME = "vocab/users.json"
ITEMS_NAME = "vocab/items.json"
ITEM_FEATURES_STEM = "vocab/item_features"
USER_FEATURES_STEM = "vocab/user_features"
ITEM_ATTRIBUTES_NAME = "vocab/item_attributes.parquet"

M = TypeVar("M", bound=nn.Module)

_MODEL_TYPES: dict[str, type[nn.Module]] = {}
# Built-in types register on import; loading imports the module so users need not.
_BUILTIN_MODULES = {"two_tower": "recft.models.two_tower"}


def register_model(model_type: str) -> Callable[[type[M]], type[M]]:
    """Class decorator: make ``model_type`` in ``config.json`` load into this class."""

    def decorate(cls: type[M]) -> type[M]:
        cls.model_type = model_type  # type: ignore[attr-defined]
        _MODEL_TYPES[model_type] = cls
        return cls

    return decorate


def model_class_for(model_type: str) -> type[nn.Module]:
    """The class registered for ``model_type`` (importing built-in model modules on demand)."""
    if model_type not in _MODEL_TYPES and model_type in _BUILTIN_MODULES:
        module = importlib.import_module(_BUILTIN_MODULES[model_type])
        # a built-in class that does not inherit PretrainedMixin is registered here
        for value in vars(module).values():
            if isinstance(value, type) and getattr(value, "model_type", None) == model_type:
                _MODEL_TYPES.setdefault(model_type, value)
        if model_type == "two_tower" and model_type not in _MODEL_TYPES:
            _MODEL_TYPES[model_type] = module.TwoTower
    if model_type not in _MODEL_TYPES:
        known = sorted(set(_MODEL_TYPES) | set(_BUILTIN_MODULES))
        raise CheckpointError(f"unknown model_type {model_type!r}; known types: {known}")
    return _MODEL_TYPES[model_type]


@dataclass(frozen=True)
class CheckpointParts:
    """Everything but the weights: what a model class needs to rebuild its architecture."""

    config: Any
    user_vocab: Vocabulary
    item_vocab: Vocabulary
    item_features: dict[str, CategoricalFeature] | None
    user_features: dict[str, CategoricalFeature] | None
    item_attributes: pd.DataFrame | None


class PretrainedMixin:
    """``save_pretrained`` / ``from_pretrained`` for a module with config, vocabs and features.

    A subclass sets ``model_type`` (registered automatically) and optionally ``config_class``;
    wrappers whose constructor differs override ``from_checkpoint_parts``.

    Example::

        model.save_pretrained("runs/base", training={"dataset": "ml-1m", "seed": 0})
        same = TwoTower.from_pretrained("runs/base")
    """

    model_type: ClassVar[str] = ""
    config_class: ClassVar[type | None] = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.__dict__.get("model_type"):
            _MODEL_TYPES[cls.model_type] = cls  # type: ignore[assignment]

    def save_pretrained(self, directory: str | Path, training: dict[str, Any] | None = None) -> Path:
        """Write this model to ``directory`` atomically; see :func:`save_pretrained`."""
        return save_pretrained(self, directory, training=training)  # type: ignore[arg-type]

    @classmethod
    def from_pretrained(cls, directory: str | Path, *, verify_checksums: bool = True) -> Any:
        """Load a checkpoint directory written by ``save_pretrained``; never unpickles."""
        return load_pretrained(directory, cls, verify_checksums=verify_checksums)  # type: ignore[arg-type]

    @classmethod
    def from_checkpoint_parts(cls, parts: CheckpointParts) -> nn.Module:
        return _construct(cls, parts)  # type: ignore[arg-type]


def save_pretrained(model: nn.Module, directory: str | Path, *,
                    training: dict[str, Any] | None = None) -> Path:
    """Write ``model`` as a self-describing checkpoint directory, atomically.

    Everything is built in a temporary sibling directory that replaces ``directory`` in one
    rename, so a crash leaves either the previous checkpoint or none, never half of one.

    Args:
        model: a module with ``config`` (a ConfigMixin dataclass), ``user_vocab``,
            ``item_vocab``, optional ``item_features``/``user_features`` and
            ``item_attributes``, whose class is registered (``model_type``).
        directory: the checkpoint directory; an existing one is replaced.
        training: the run's record (dataset, split, seed, metrics, wall time...) for
            ``training.json`` and the model card; versions and a timestamp are added.

    Returns:
        The checkpoint directory.
    """
    directory = Path(directory)
    blocker = getattr(model, "checkpoint_blocker", None)
    if blocker:
        raise CheckpointError(f"{type(model).__name__} cannot be saved faithfully: {blocker}")
    model_type = _model_type_of(model)
    config = getattr(model, "config", None)
    if config is None or not hasattr(config, "to_dict"):
        raise CheckpointError(f"{type(model).__name__}.config must be a ConfigMixin dataclass")
    user_vocab, item_vocab = model.user_vocab, model.item_vocab
    item_features = getattr(model, "item_features", None) or {}
    user_features = getattr(model, "user_features", None) or {}
    attributes = getattr(model, "item_attributes", None)
    tensors = cio.state_tensors(model)
    info = cio.stamp_training(training)
    meta = {
        "model_type": model_type,
        "model_class": f"{type(model).__module__}.{type(model).__qualname__}",
        "format_version": FORMAT_VERSION,
        "recft_version": __version__,
        "architecture": config.to_dict(),
        "sizes": {
            "num_users": len(user_vocab),
            "num_items": len(item_vocab),
            "item_features": {name: len(f.vocab) for name, f in item_features.items()},
            "user_features": {name: len(f.vocab) for name, f in user_features.items()},
            "num_parameters": sum(t.numel() for t in tensors.values()),
        },
        "tensors": cio.tensor_manifest(tensors),
    }
    with atomic_directory(directory) as staging:
        cio.save_tensors(tensors, staging / WEIGHTS_NAME)
        cio.write_json(staging / USERS_NAME, user_vocab.to_dict())
        cio.write_json(staging / ITEMS_NAME, item_vocab.to_dict())
        if item_features:
            cio.write_features(item_features, staging / ITEM_FEATURES_STEM)
        if user_features:
            cio.write_features(user_features, staging / USER_FEATURES_STEM)
        if attributes is not None:
            attributes.reset_index(drop=True).to_parquet(staging / ITEM_ATTRIBUTES_NAME, index=False)
        cio.write_json(staging / CONFIG_NAME, meta)
        # caller's key order kept (metrics tables read in the order they were reported)
        cio.write_json(staging / TRAINING_NAME, info, sort_keys=False)
        # the card renders what training.json holds, numpy scalars already converted
        info = cio.read_json(staging / TRAINING_NAME, staging)
        files = sorted([*cio.file_checksums(staging), CARD_NAME, CHECKSUMS_NAME])
        (staging / CARD_NAME).write_text(render_model_card(meta, info, files), encoding="utf-8")
        cio.write_json(staging / CHECKSUMS_NAME,
                       {"algorithm": "sha256", "files": cio.file_checksums(staging)})
    return directory


def read_checkpoint_config(directory: str | Path) -> dict[str, Any]:
    """``config.json`` of a checkpoint after the format-version check (no weights read)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise CheckpointError(f"{directory}: not a checkpoint directory (it does not exist)")
    meta = cio.read_json(directory / CONFIG_NAME, directory)
    if not isinstance(meta, dict) or "format_version" not in meta or "model_type" not in meta:
        raise CheckpointError(f"{directory}: {CONFIG_NAME} lacks format_version/model_type; "
                              "it is not a recft checkpoint")
    found = meta["format_version"]
    if not isinstance(found, int) or found < 1:
        raise CheckpointError(f"{directory}: {CONFIG_NAME} has invalid format_version {found!r}")
    if found > FORMAT_VERSION:
        raise CheckpointError(
            f"{directory}: checkpoint format {found} was written by recft "
            f"{meta.get('recft_version', '(unknown version)')}; this recft {__version__} reads "
            f"formats up to {FORMAT_VERSION}. Upgrade recft (pip install --upgrade recft) to load it."
        )
    return meta


def load_pretrained(directory: str | Path, model_class: type[M] | None = None, *,
                    verify_checksums: bool = True) -> M:
    """Load a checkpoint directory, validating it before any weight reaches the model.

    Checks, each failing with a CheckpointError that names the file or tensor: the format
    version, the completion marker, every file's presence and integrity (safetensors parse,
    sha256), the tensor manifest, vocabulary sizes and every tensor's shape against the
    architecture rebuilt from ``config.json``. Weights are read with safetensors only.

    Args:
        directory: a directory written by :func:`save_pretrained`.
        model_class: the class to load into; by default the class registered for the
            checkpoint's ``model_type``. A registered subclass of it is preferred.
        verify_checksums: compare every file's sha256 with ``checksums.json``.

    Returns:
        The model in eval mode, with bit-identical weights.
    """
    directory = Path(directory)
    meta = read_checkpoint_config(directory)
    if not (directory / CHECKSUMS_NAME).is_file():
        raise CheckpointError(
            f"{directory}: incomplete checkpoint ({CHECKSUMS_NAME}, written last, is missing): "
            "the save was interrupted or the copy is partial; save or copy it again"
        )
    checksums = cio.read_json(directory / CHECKSUMS_NAME, directory).get("files", {})
    for name in (WEIGHTS_NAME, USERS_NAME, ITEMS_NAME, *checksums):
        if not (directory / name).is_file():
            raise CheckpointError(f"{directory}: checkpoint file {name} is missing")
    cls = _resolve_class(meta["model_type"], model_class)
    parts = _read_parts(directory, meta, cls)
    tensors = cio.load_tensors(directory / WEIGHTS_NAME, directory)
    if verify_checksums:
        for name, expected in checksums.items():
            if cio.sha256_file(directory / name) != expected:
                raise CheckpointError(f"{directory}: checksum mismatch for {name}: the file changed "
                                      "after saving or is corrupt")
    _check_manifest(directory, meta.get("tensors", {}), tensors)
    builder = getattr(cls, "from_checkpoint_parts", None)
    model = builder(parts) if builder is not None else _construct(cls, parts)
    _check_against_model(directory, model, tensors)
    model.load_state_dict(tensors, strict=True)
    return model.eval()  # type: ignore[return-value]


def _model_type_of(model: nn.Module) -> str:
    model_type = getattr(type(model), "model_type", "")
    if not model_type:
        for name, cls in _MODEL_TYPES.items():
            if cls is type(model):
                return name
        raise CheckpointError(f"{type(model).__name__} has no model_type; inherit PretrainedMixin "
                              "with model_type set, or decorate it with @register_model(name)")
    return model_type


def _resolve_class(model_type: str, model_class: type[M] | None) -> type[M]:
    if model_class is None:
        return model_class_for(model_type)  # type: ignore[return-value]
    if getattr(model_class, "model_type", None) == model_type:
        return model_class
    try:
        stored = model_class_for(model_type)
    except CheckpointError:
        stored = None
    if stored is not None and issubclass(stored, model_class):
        return stored  # type: ignore[return-value]
    raise CheckpointError(f"checkpoint holds a {model_type!r} model, which "
                          f"{model_class.__name__} cannot load")


def _config_class(cls: type) -> type:
    config_class = getattr(cls, "config_class", None)
    if config_class is None:
        try:
            config_class = typing.get_type_hints(cls.__init__).get("config")
        except Exception:  # unresolved forward references: fall through to the error
            config_class = None
    if not (isinstance(config_class, type) and hasattr(config_class, "from_dict")):
        raise CheckpointError(f"{cls.__name__} needs a config_class (a ConfigMixin dataclass)")
    return config_class


def _read_parts(directory: Path, meta: dict[str, Any], cls: type) -> CheckpointParts:
    try:
        config = _config_class(cls).from_dict(meta.get("architecture", {}),
                                              source=f"{directory / CONFIG_NAME} architecture")
    except (ConfigError, DataError, TypeError, ValueError) as error:
        raise CheckpointError(f"{directory}: invalid architecture in {CONFIG_NAME}: {error}") from None
    vocabs = []
    for name in (USERS_NAME, ITEMS_NAME):
        try:
            vocabs.append(Vocabulary.from_dict(cio.read_json(directory / name, directory),
                                               source=str(directory / name)))
        except DataError as error:
            raise CheckpointError(f"{directory}: {name} is invalid: {error}") from None
    user_vocab, item_vocab = vocabs
    sizes = meta.get("sizes", {})
    for key, name, vocab in (("num_users", USERS_NAME, user_vocab), ("num_items", ITEMS_NAME, item_vocab)):
        if key in sizes and sizes[key] != len(vocab):
            raise CheckpointError(f"{directory}: {CONFIG_NAME} records {key}={sizes[key]} "
                                  f"but {name} has {len(vocab)} ids")
    features = []
    for stem, what, vocab in ((ITEM_FEATURES_STEM, "item", item_vocab),
                              (USER_FEATURES_STEM, "user", user_vocab)):
        if not sizes.get(f"{what}_features") and not (directory / f"{stem}.json").exists():
            features.append(None)
            continue
        loaded = cio.read_features(directory / stem, directory)
        for fname, feature in loaded.items():
            if feature.num_entities != len(vocab):
                raise CheckpointError(f"{directory}: {stem}.safetensors feature {fname!r} has "
                                      f"{feature.num_entities} rows, the {what} vocabulary {len(vocab)}")
            recorded = sizes.get(f"{what}_features", {}).get(fname)
            if recorded is not None and recorded != len(feature.vocab):
                raise CheckpointError(f"{directory}: {CONFIG_NAME} records {recorded} values for "
                                      f"{what} feature {fname!r}, {stem}.json has {len(feature.vocab)}")
        features.append(loaded)
    attributes = None
    if (directory / ITEM_ATTRIBUTES_NAME).is_file():
        try:
            attributes = pd.read_parquet(directory / ITEM_ATTRIBUTES_NAME)
        except Exception as error:  # pyarrow raises several unrelated types on bad bytes
            raise CheckpointError(f"{directory}: {ITEM_ATTRIBUTES_NAME} is corrupt: {error}") from None
        if len(attributes) != len(item_vocab):
            raise CheckpointError(f"{directory}: {ITEM_ATTRIBUTES_NAME} has {len(attributes)} rows, "
                                  f"the item vocabulary {len(item_vocab)}")
    return CheckpointParts(config, user_vocab, item_vocab, features[0], features[1], attributes)


def _construct(cls: type[M], parts: CheckpointParts) -> M:
    model = cls(parts.config, parts.user_vocab, parts.item_vocab,  # type: ignore[call-arg]
                item_features=parts.item_features, user_features=parts.user_features)
    if parts.item_attributes is not None:
        model.item_attributes = parts.item_attributes
    return model


def _check_manifest(directory: Path, manifest: dict[str, Any], tensors: dict[str, Any]) -> None:
    missing = sorted(set(manifest) - set(tensors))
    if missing:
        raise CheckpointError(f"{directory}: {WEIGHTS_NAME} lacks tensors listed in "
                              f"{CONFIG_NAME}: {missing[:5]}")
    for name, tensor in tensors.items():
        entry = manifest.get(name)
        if entry is None:
            raise CheckpointError(f"{directory}: {WEIGHTS_NAME} has tensor {name!r} that "
                                  f"{CONFIG_NAME} does not list")
        found = (list(tensor.shape), cio.dtype_name(tensor.dtype))
        if found != (entry["shape"], entry["dtype"]):
            raise CheckpointError(
                f"{directory}: tensor {name!r}: {CONFIG_NAME} lists shape {tuple(entry['shape'])} "
                f"{entry['dtype']}, {WEIGHTS_NAME} has {tuple(found[0])} {found[1]}"
            )


def _check_against_model(directory: Path, model: nn.Module, tensors: dict[str, Any]) -> None:
    """Every tensor must fit the architecture rebuilt from config and vocab sizes."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    if missing or unexpected:
        raise CheckpointError(f"{directory}: {WEIGHTS_NAME} does not match {type(model).__name__}: "
                              f"missing tensors {missing[:5]}, unexpected tensors {unexpected[:5]}")
    for name, tensor in tensors.items():
        want = expected[name]
        if tuple(want.shape) != tuple(tensor.shape) or want.dtype != tensor.dtype:
            raise CheckpointError(
                f"{directory}: tensor {name!r}: expected shape {tuple(want.shape)} "
                f"{cio.dtype_name(want.dtype)} (from {CONFIG_NAME} and vocab/), found "
                f"{tuple(tensor.shape)} {cio.dtype_name(tensor.dtype)} in {WEIGHTS_NAME}"
            )


__all__ = [
    "FORMAT_VERSION", "CheckpointParts", "PretrainedMixin", "load_pretrained", "model_class_for",
    "read_checkpoint_config", "register_model", "save_pretrained",
]
