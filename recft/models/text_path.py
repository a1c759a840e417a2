"""The item tower's text path: frozen text vectors per item row, read through a trained projection.

An item's text vector (from ``recft.text``: unit norm, or zero for an item without text) is
stored in the model as a buffer, so it is saved in ``model.safetensors`` with the weights
and never trained. A bias-free ``Linear`` projects it to the tables' width; the projected
block joins the item tower's id and feature blocks, and the user tower mean-pools the
projected text of the user's history items the way it pools their id rows. Without a bias
an item without text contributes a zero block, like an empty embedding bag.

The encoder that made the vectors is recorded in the config (name and version): scoring
the stored vectors needs no encoder, encoding new text (cold items, a target's new items)
needs that very encoder, and ``checkpoint_encoder`` says which one is missing if it is not
installed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from recft.config import ConfigError
from recft.data.interactions import Interactions
from recft.errors import DataError, RecftError

ITEM_TEXT_MODES = ("none", "id+text", "text")
"""``none``: ids and features only; ``id+text``: the text block joins them; ``text``: no
id block at all (items are what they say), for domains whose ids share nothing."""


@dataclass(frozen=True)
class ItemTextVectors:
    """Text vectors aligned with an item vocabulary, and the encoder that made them.

    Attributes:
        vectors: (items, dim) float32, one row per item-vocabulary row (zero: no text).
        encoder_name / encoder_version: recorded in the model's config and checkpoint.
        encoder: the encoder object itself, kept in memory (not saved) so that new items
            can be encoded later in the same process, even with a fitted TF-IDF encoder.

    Example::

        vectors = ItemTextVectors.encode(train, text_encoder("minilm"))
        model = TwoTower(TwoTowerConfig(item_text="id+text"), train.user_vocab,
                         train.item_vocab, item_text=vectors)
    """

    vectors: np.ndarray
    encoder_name: str
    encoder_version: str
    encoder: Any = None

    def __post_init__(self) -> None:
        vectors = np.asarray(self.vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[1] < 1:
            raise DataError(f"item text vectors must be (items, dim), got shape {vectors.shape}")
        if not np.isfinite(vectors).all():
            raise DataError("item text vectors hold NaN or inf values")
        object.__setattr__(self, "vectors", np.ascontiguousarray(vectors))

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    @classmethod
    def encode(cls, data: Interactions, encoder: Any, texts: Any = None,
               cache_dir: str | Path | None = None, progress: bool = False) -> ItemTextVectors:
        """Encode one text per row of ``data.item_vocab`` (cached on disk).

        Args:
            data: the dataset whose catalog is encoded (any split part: they share it).
            encoder: a ``recft.text.TextEncoder``.
            texts: ``ItemTexts`` or strings aligned with the vocabulary; default
                ``recft.text.item_texts(data)`` (title, genres, tags, artist...).
        """
        from recft.text import encode_cached, item_texts

        texts = item_texts(data) if texts is None else texts
        if len(texts) != len(data.item_vocab):
            raise DataError(f"{len(texts)} item texts for a catalog of {len(data.item_vocab)}")
        vectors = encode_cached(encoder, texts, cache_dir=cache_dir, progress=progress)
        return cls(vectors, encoder.name, encoder.version, encoder)


def check_text_config(item_text: str, text_dim: int | None) -> None:
    """Validate the text fields of a TwoTowerConfig (see ``ITEM_TEXT_MODES``)."""
    if item_text not in ITEM_TEXT_MODES:
        raise ConfigError(f"item_text must be one of {ITEM_TEXT_MODES}, got {item_text!r}")
    if text_dim is not None and text_dim < 1:
        raise ConfigError(f"text_dim must be >= 1, got {text_dim}")


class ItemTextPath(nn.Module):
    """Frozen per-item text vectors (buffer ``vectors``) and their trained ``projection``.

    Args:
        num_items: rows (the item vocabulary's size).
        text_dim: width of the stored vectors (the encoder's).
        out_dim: width of the projected block (the tables' embedding_dim).
    """

    def __init__(self, num_items: int, text_dim: int, out_dim: int) -> None:
        super().__init__()
        self.register_buffer("vectors", torch.zeros(num_items, text_dim))
        self.projection = nn.Linear(text_dim, out_dim, bias=False)

    @property
    def out_dim(self) -> int:
        return int(self.projection.out_features)

    def pool(self, lengths: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
        """(B, out_dim) mean of the projected text of each bag's items (zero for an empty
        bag), the layout of a torchrec bag: ``lengths`` (B,), ``values`` (sum(lengths),).

        Each distinct item is projected once per call: a batch's histories repeat items.
        """
        offsets = torch.zeros(len(lengths) + 1, dtype=torch.int64, device=lengths.device)
        torch.cumsum(lengths.to(torch.int64), dim=0, out=offsets[1:])
        if values.numel() == 0:
            return self.projection.weight.new_zeros(len(lengths), self.out_dim)
        unique, inverse = torch.unique(values, return_inverse=True)
        projected = self.projection(self.vectors[unique])
        return F.embedding_bag(inverse, projected, offsets, mode="mean",
                               include_last_offset=True)

    def projected_table(self) -> torch.Tensor:
        """(num_items, out_dim) the projected text of every item (for export)."""
        return self.projection(self.vectors)

    def grown(self, new_vectors: torch.Tensor | np.ndarray) -> ItemTextPath:
        """A copy with ``new_vectors`` appended as rows for new items (old rows exact)."""
        new_vectors = torch.as_tensor(np.asarray(new_vectors, dtype=np.float32))
        if new_vectors.ndim != 2 or new_vectors.shape[1] != self.vectors.shape[1]:
            raise DataError(f"new item text vectors have shape {tuple(new_vectors.shape)}, "
                            f"the model's are {self.vectors.shape[1]} wide")
        grown = ItemTextPath(self.vectors.shape[0] + len(new_vectors), self.vectors.shape[1],
                             self.out_dim).to(self.vectors.device)
        grown.projection = self.projection  # shared: the projection is the same parameter
        with torch.no_grad():
            grown.vectors.copy_(torch.cat([self.vectors, new_vectors.to(self.vectors)]))
        return grown.train(self.training)

    def set_rows(self, rows: np.ndarray, vectors: np.ndarray) -> None:
        """Replace the text vectors of existing ``rows`` (an item's text changed)."""
        with torch.no_grad():
            self.vectors[torch.as_tensor(rows, dtype=torch.int64)] = torch.as_tensor(
                np.asarray(vectors, dtype=np.float32)).to(self.vectors)


# ---------------------------------------------------------------------- the encoder
def checkpoint_encoder(model: nn.Module, encoder: Any = None) -> Any:
    """The text encoder that made ``model``'s vectors, to encode new items' texts.

    Args:
        model: a TwoTower (or fine-tuned one) with a text path.
        encoder: an encoder to use instead of looking one up (needed for a TF-IDF model
            from a checkpoint saved before checkpoints stored the fitted encoder); its name
            and version must be the recorded ones.

    Raises:
        RecftError: the model has no text path, or the encoder given is another one.
        EncoderNotAvailableError: the recorded encoder is not installed here; one line
            naming it and its version.
    """
    from recft.text import EncoderNotAvailableError, text_encoder

    config = model.config
    if getattr(config, "item_text", "none") == "none":
        raise RecftError("the model has no text path (item_text='none'); it cannot encode "
                         "item texts")
    name, version = config.text_encoder, config.text_encoder_version
    wanted = f"text encoder {name!r} (version {version})"
    candidate = encoder if encoder is not None else getattr(model, "text_encoder", None)
    if candidate is not None:
        if (candidate.name, candidate.version) != (name, version):
            raise RecftError(f"the model's item texts were encoded by {wanted}; the encoder "
                             f"given is {candidate.name!r} (version {candidate.version})")
        return candidate
    if name is None:
        raise EncoderNotAvailableError("the model records no text encoder; pass encoder=")
    if name == "tfidf":
        raise EncoderNotAvailableError(
            f"the model's item texts were encoded by {wanted}, which is fitted on a catalog "
            "and this checkpoint does not hold it (saved before recft stored it); pass the "
            "fitted encoder (encoder=...)")
    try:
        found = text_encoder(name)
    except EncoderNotAvailableError as error:
        raise EncoderNotAvailableError(f"the model's item texts were encoded by {wanted}, "
                                       f"which is not available here: {error}") from None
    except RecftError as error:
        raise EncoderNotAvailableError(f"the model's item texts were encoded by {wanted}, "
                                       f"which this recft does not know: {error}") from None
    if found.version != version:
        raise EncoderNotAvailableError(
            f"the model's item texts were encoded by {wanted}; the installed one is version "
            f"{found.version}, whose vectors would not match; install {version}")
    return found


def save_text_encoder(model: nn.Module, folder: Path) -> None:
    """Write a fitted encoder the model needs and no package can bring back (TF-IDF: its
    vocabulary, idf and SVD components) into the checkpoint folder ``folder``.

    A pretrained encoder (all-MiniLM-L6-v2) installs from its package and is only named
    in the config; a model without a text path, or whose encoder object is not in memory,
    writes nothing."""
    encoder = getattr(model, "text_encoder", None)
    if getattr(model.config, "item_text", "none") == "none" or encoder is None:
        return
    if (encoder.name, encoder.version) != (model.config.text_encoder,
                                           model.config.text_encoder_version):
        return  # not the encoder the vectors came from: saving it would mislead
    if hasattr(encoder, "save") and hasattr(type(encoder), "load"):
        encoder.save(folder)


def load_text_encoder(model: nn.Module, folder: Path) -> None:
    """Give a loaded model back the fitted encoder ``save_text_encoder`` wrote (if any)."""
    from recft.text.encoders import TFIDF_NAME
    from recft.text.tfidf import STATE_JSON, TfidfEncoder

    if getattr(model.config, "item_text", "none") == "none" or \
            model.config.text_encoder != TFIDF_NAME or \
            not (Path(folder) / STATE_JSON).is_file():
        return
    encoder = TfidfEncoder.load(folder)
    if encoder.version != model.config.text_encoder_version:
        raise RecftError(f"{Path(folder) / STATE_JSON}: the tfidf encoder saved here is version "
                         f"{encoder.version}, the model's vectors are "
                         f"{model.config.text_encoder_version}")
    model.text_encoder = encoder


def encode_texts(model: nn.Module, texts: Sequence[str], encoder: Any = None,
                 cache_dir: str | Path | None = None, progress: bool = False) -> np.ndarray:
    """(len(texts), text_dim) vectors of ``texts`` by the model's own encoder (cached)."""
    from recft.text import encode_cached

    found = checkpoint_encoder(model, encoder)
    if not texts:
        return np.zeros((0, model.config.text_dim), dtype=np.float32)
    vectors = encode_cached(found, list(texts), cache_dir=cache_dir, progress=progress)
    if vectors.shape[1] != model.config.text_dim:
        raise RecftError(f"encoder {found.name!r} gives {vectors.shape[1]}-wide vectors, the "
                         f"model stores {model.config.text_dim}")
    return vectors


def configure_text(config: Any, item_text: ItemTextVectors | None, num_items: int) -> Any:
    """``config`` with its text fields filled from ``item_text`` (None: as they are).

    Raises:
        ConfigError: vectors for a config without a text path, a text path without vectors
            or a recorded width, or vectors whose width or encoder disagree with the config.
        DataError: not one vector per item.
    """
    import dataclasses

    if item_text is None:
        if config.item_text != "none" and config.text_dim is None:
            raise ConfigError(f"item_text={config.item_text!r} needs the items' text vectors: "
                              "pass item_text=ItemTextVectors(...)")
        return config
    if config.item_text == "none":
        raise ConfigError("item text vectors were given but the config has item_text='none'; "
                          "use TwoTowerConfig(item_text='id+text') or 'text'")
    if len(item_text.vectors) != num_items:
        raise DataError(f"{len(item_text.vectors)} item text vectors for "
                        f"{num_items} items: one per item-vocabulary row is needed")
    recorded = (config.text_dim, config.text_encoder, config.text_encoder_version)
    given = (item_text.dim, item_text.encoder_name, item_text.encoder_version)
    for name, mine, theirs in zip(("text_dim", "text_encoder", "text_encoder_version"),
                                  recorded, given):
        if mine is not None and mine != theirs:
            raise ConfigError(f"TwoTowerConfig.{name}={mine!r} but the item text vectors "
                              f"have {theirs!r}")
    return dataclasses.replace(config, text_dim=item_text.dim,
                               text_encoder=item_text.encoder_name,
                               text_encoder_version=item_text.encoder_version)


def text_vectors_like(model: nn.Module, data: Interactions, encoder: Any = None,
                      progress: bool = False) -> ItemTextVectors:
    """``data``'s catalog encoded like ``model``'s items (its recorded encoder), e.g. to
    build a model of the same architecture over another catalog."""
    found = checkpoint_encoder(model, encoder)
    return ItemTextVectors.encode(data, found, progress=progress)


def catalog_text_vectors(data: Interactions, encoder: str = "all-MiniLM-L6-v2",
                         texts_file: str | Path | None = None, item_column: str = "item_id",
                         text_column: str = "text", progress: bool = False) -> ItemTextVectors:
    """The catalog's text vectors by the encoder called ``encoder`` (``recft.text``).

    Texts come from ``texts_file`` (a side file or the interactions file itself, with an
    item-id and a text column) when given, else from the dataset's own fields
    (``recft.text.item_texts``). A TF-IDF encoder is fitted on these texts.
    """
    from recft.text import item_texts, read_item_texts, text_encoder, texts_for_vocabulary

    if texts_file is not None:
        texts = texts_for_vocabulary(read_item_texts(texts_file, item=item_column,
                                                     text=text_column), data.item_vocab)
    else:
        texts = item_texts(data)
    found = text_encoder(encoder, fit_texts=texts.texts)
    return ItemTextVectors.encode(data, found, texts=texts, progress=progress)
