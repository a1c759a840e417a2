"""Portable checkpoints: atomic save_pretrained and validated, pickle-free load_pretrained."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from torch import nn

from recft._version import __version__
from recft.errors import CheckpointError
from recft.io import atomic_directory, recover_directory
from recft.models import checkpoint_checks as checks
from recft.models import checkpoint_io as cio
from recft.models.checkpoint_checks import CheckpointParts
from recft.models.checkpoint_io import (
    CARD_NAME,
    CHECKSUMS_NAME,
    CONFIG_NAME,
    ITEM_ATTRIBUTES_NAME,
    ITEM_FEATURES_STEM,
    ITEMS_NAME,
    TRAINING_NAME,
    USER_FEATURES_STEM,
    USERS_NAME,
    WEIGHTS_NAME,
)
from recft.models.model_card import render_model_card
from recft.models.text_path import load_text_encoder, save_text_encoder

FORMAT_VERSION = 1  # bump on a change old readers would misread; they then refuse it clearly

M = TypeVar("M", bound=nn.Module)

_MODEL_TYPES: dict[str, type[nn.Module]] = {}
# Built-in types, imported on first load so that loading needs no import by the caller.
_BUILTIN = {"two_tower": ("recft.models.two_tower", "TwoTower"),
            "two_tower_finetuned": ("recft.models.finetuned", "FineTunedTwoTower")}


def register_model(model_type: str) -> Callable[[type[M]], type[M]]:
    """Class decorator: make ``model_type`` in ``config.json`` load into this class."""

    def decorate(cls: type[M]) -> type[M]:
        cls.model_type = model_type  # type: ignore[attr-defined]
        _MODEL_TYPES[model_type] = cls
        return cls

    return decorate


def model_class_for(model_type: str) -> type[nn.Module]:
    """The class registered for ``model_type`` (importing built-in model modules on demand)."""
    if model_type not in _MODEL_TYPES and model_type in _BUILTIN:
        module_name, class_name = _BUILTIN[model_type]
        # importing registers a PretrainedMixin subclass; a plain class is registered here
        cls = getattr(importlib.import_module(module_name), class_name)
        _MODEL_TYPES.setdefault(model_type, cls)
    if model_type not in _MODEL_TYPES:
        known = sorted(set(_MODEL_TYPES) | set(_BUILTIN))
        raise CheckpointError(f"unknown model_type {model_type!r}; known types: {known}")
    return _MODEL_TYPES[model_type]


class PretrainedMixin:
    """``save_pretrained`` / ``from_pretrained`` for a module with config, vocabs and features.

    A subclass sets ``model_type`` (registered automatically; a wrapper that adds heads or
    adapters must set its own, or it saves and reloads as its base class) and optionally
    ``config_class``; a wrapper whose constructor differs overrides ``from_checkpoint_parts``.

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

    def save_pretrained(self, directory: str | Path,
                        training: dict[str, Any] | None = None) -> Path:
        """Write this model to ``directory`` atomically; see :func:`save_pretrained`."""
        return save_pretrained(self, directory, training=training)  # type: ignore[arg-type]

    @classmethod
    def from_pretrained(cls, directory: str | Path, *, verify_checksums: bool = True) -> Any:
        """Load a checkpoint directory written by ``save_pretrained``; never unpickles."""
        return load_pretrained(directory, cls,  # type: ignore[arg-type]
                               verify_checksums=verify_checksums)

    @classmethod
    def from_checkpoint_parts(cls, parts: CheckpointParts) -> nn.Module:
        """The model, with fresh weights, for a checkpoint's config, vocabs and features."""
        return checks.construct(cls, parts)  # type: ignore[arg-type]


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
            attributes.reset_index(drop=True).to_parquet(staging / ITEM_ATTRIBUTES_NAME,
                                                         index=False)
        save_text_encoder(model, staging)  # a fitted (TF-IDF) encoder for new items' texts
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
    recover_directory(directory)  # a save killed between two renames (no atomic swap here)
    if not directory.is_dir():
        raise CheckpointError(f"{directory}: not a checkpoint directory (it does not exist)")
    meta = cio.read_json(directory / CONFIG_NAME, directory)
    if not isinstance(meta, dict) or "format_version" not in meta or "model_type" not in meta:
        raise CheckpointError(f"{directory}: {CONFIG_NAME} lacks format_version/model_type; "
                              "it is not a recft checkpoint")
    found = meta["format_version"]
    if not isinstance(found, int) or found < 1:
        raise CheckpointError(f"{directory}: {CONFIG_NAME} has invalid format_version "
                              f"{found!r}")
    if found > FORMAT_VERSION:
        raise CheckpointError(
            f"{directory}: checkpoint format {found} was written by recft "
            f"{meta.get('recft_version', '(unknown version)')}; this recft {__version__} reads "
            f"formats up to {FORMAT_VERSION}. Upgrade recft (pip install --upgrade recft) "
            "to load it."
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
    checksums = checks.read_checksums(directory, (WEIGHTS_NAME, USERS_NAME, ITEMS_NAME))
    cls = _resolve_class(meta["model_type"], model_class)
    parts = checks.read_parts(directory, meta, cls)
    tensors = cio.load_tensors(directory / WEIGHTS_NAME, directory)
    if verify_checksums:
        checks.verify_checksums(directory, checksums)
    checks.check_finite(f"{directory}: {WEIGHTS_NAME}", tensors)
    checks.check_manifest(directory, meta.get("tensors", {}), tensors)
    builder = getattr(cls, "from_checkpoint_parts", None)
    model = builder(parts) if builder is not None else checks.construct(cls, parts)
    checks.check_against_model(directory, model, tensors)
    model.load_state_dict(tensors, strict=True)
    load_text_encoder(model, directory)
    return model.eval()  # type: ignore[return-value]


def _model_type_of(model: nn.Module) -> str:
    model_type = getattr(type(model), "model_type", "")
    if not model_type:
        for name, cls in _MODEL_TYPES.items():
            if cls is type(model):
                return name
        raise CheckpointError(f"{type(model).__name__} has no model_type; inherit "
                              "PretrainedMixin with model_type set, or decorate it with "
                              "@register_model(name)")
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


__all__ = [
    "CHECKSUMS_NAME", "CONFIG_NAME", "FORMAT_VERSION", "WEIGHTS_NAME", "CheckpointParts",
    "PretrainedMixin", "load_pretrained", "model_class_for", "read_checkpoint_config",
    "register_model", "save_pretrained",
]
