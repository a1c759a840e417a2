"""TwoTower: torchrec embedding-bag collections + MLP towers, scored by a (cosine) dot product."""

from __future__ import annotations

import weakref
from typing import Any

import numpy as np
import torch
from torch import nn
from torchrec.modules.embedding_configs import EmbeddingBagConfig, PoolingType
from torchrec.modules.embedding_modules import EmbeddingBagCollection
from torchrec.sparse.jagged_tensor import KeyedJaggedTensor

from recft.config import ConfigError
from recft.data.features import CategoricalFeature
from recft.data.interactions import Interactions
from recft.data.vocabulary import Vocabulary
from recft.errors import DataError
from recft.models.architecture import TwoTowerConfig, sized_config
from recft.models.checkpoint import PretrainedMixin
from recft.models.history_pooling import (
    history_pooler,
    is_sharded,
    lookup_history_rows,
    padded_history,
    pool_history,
)
from recft.models.inputs import (
    ITEM_HISTORY,
    ITEM_ID,
    USER_ID,
    UserHistories,
    item_features_kjt,
    user_features_kjt,
)
from recft.models.text_path import ItemTextPath, ItemTextVectors, configure_text


def _tower(in_size: int, layers: tuple[int, ...], dropout: float,
           output_activation: str = "none") -> nn.Sequential:
    """Dropout -> [Linear -> ReLU -> Dropout]* -> Linear; no activation on the output by
    default, which must be free to take any sign for dot-product scoring."""
    modules: list[nn.Module] = [nn.Dropout(dropout)] if dropout else []
    for size in layers[:-1]:
        modules += [nn.Linear(in_size, size), nn.ReLU()]
        modules += [nn.Dropout(dropout)] if dropout else []
        in_size = size
    modules.append(nn.Linear(in_size, layers[-1]))
    if output_activation == "relu":
        modules.append(nn.ReLU())
    return nn.Sequential(*modules)


class TwoTower(PretrainedMixin, nn.Module):
    """User tower (id + pooled recent items + user features) and item tower (id + item
    features), each an MLP over pooled torchrec embedding bags; optionally items read as
    text too (``config.item_text``, see ``recft.models.text_path``).

    Tables live in two ``EmbeddingBagCollection``s: ``user_ebc`` holds ``user_id`` and one
    table per user feature; ``item_ebc`` holds ``item_id`` and one table per item feature.
    A user's history is pooled from the ``item_id`` table itself (feature ``item_history``):
    history and candidates then share one embedding space, every item row is trained by
    both roles, and a user who is only known by a history (id unknown to the vocabulary:
    an empty ``user_id`` bag, i.e. a zero vector) is served without retraining.

    With a text path (``item_text="id+text"`` or ``"text"``) each item row has a frozen text
    vector (buffer ``item_text.vectors``, saved with the weights) whose projection joins
    the item tower's blocks; the user tower pools the projected text of the history items
    too. In ``"text"`` mode neither tower reads item ids (the ``item_id`` table is kept,
    unused, so that every table-level tool sees the usual layout), and an item the model
    never trained on is scored from its text alone. The item rows of a batch are read
    from the ``item_id`` bags (length 0 or 1), the history from the ``item_history`` bags.

    ``forward`` returns embeddings; losses live in ``recft.train.losses``.

    Example::

        model = TwoTower(TwoTowerConfig(), train.user_vocab, train.item_vocab)
        scores = model.score_users(np.array([0, 1]), history=train)   # (2, catalog)
    """

    model_type = "two_tower"  # the checkpoint registry's name for this class
    config_class = TwoTowerConfig

    def __init__(
        self,
        config: TwoTowerConfig,
        user_vocab: Vocabulary,
        item_vocab: Vocabulary,
        item_features: dict[str, CategoricalFeature] | None = None,
        user_features: dict[str, CategoricalFeature] | None = None,
        item_text: ItemTextVectors | None = None,
    ) -> None:
        super().__init__()
        self.item_features: dict[str, CategoricalFeature] = dict(item_features or {})
        self.user_features: dict[str, CategoricalFeature] = dict(user_features or {})
        config = configure_text(config, item_text, len(item_vocab))
        self.config = sized_config(config, user_vocab, item_vocab, self.item_features,
                                   self.user_features)
        self.user_vocab = user_vocab
        self.item_vocab = item_vocab
        # display columns (title, year, artist) aligned to item rows; saved with checkpoints
        self.item_attributes: Any = None
        config = self.config
        dim = config.embedding_dim

        def table(name: str, rows: int, features: list[str]) -> EmbeddingBagConfig:
            return EmbeddingBagConfig(
                name=name, embedding_dim=dim, num_embeddings=rows, feature_names=features,
                pooling=PoolingType.MEAN, weight_init_min=-config.init_scale,
                weight_init_max=config.init_scale,
            )

        item_id_features = [ITEM_ID, ITEM_HISTORY] if config.use_history else [ITEM_ID]
        self.user_ebc = EmbeddingBagCollection(
            [table(USER_ID, config.num_users, [USER_ID])]
            + [table(n, s, [n]) for n, s in config.user_feature_sizes.items()]
        )
        self.item_ebc = EmbeddingBagCollection(
            [table(ITEM_ID, config.num_items, item_id_features)]
            + [table(n, s, [n]) for n, s in config.item_feature_sizes.items()]
        )
        # frozen text vectors + projection; None without a text path (old layouts unchanged)
        self.item_text: ItemTextPath | None = None
        # the encoder object behind the vectors, in memory only (see text_path.checkpoint_encoder)
        self.text_encoder: Any = None if item_text is None else item_text.encoder
        if config.item_text != "none":
            self.item_text = ItemTextPath(config.num_items, config.text_dim, dim)
            if item_text is not None:
                self.item_text.vectors.copy_(torch.from_numpy(item_text.vectors))
        self.user_tower = _tower(self.user_base_dim, config.tower_layers, config.dropout,
                                 config.output_activation)
        self.item_tower = _tower(self.item_base_dim, config.tower_layers, config.dropout,
                                 config.output_activation)
        # learned history pooling (dense layers); None in "mean" mode, the MEAN bag pools
        self.history_pooler = history_pooler(config.history_pooling, dim, config.max_history,
                                             config.dropout)
        # (weakref to history, item vocab, histories): see _histories
        self._history_cache: tuple[Any, Vocabulary, UserHistories] | None = None

    # ------------------------------------------------------------------ sizes
    @property
    def reads_item_ids(self) -> bool:
        """False in ``"text"`` mode: items are known by their text and features only."""
        return self.config.item_text != "text"

    @property
    def user_base_dim(self) -> int:
        """Width of ``user_base``: user id + history (ids, text) + one block per user feature."""
        config = self.config
        history = int(self.reads_item_ids) + int(self.item_text is not None)
        blocks = 1 + history * int(config.use_history) + len(config.user_feature_sizes)
        return blocks * config.embedding_dim

    @property
    def item_base_dim(self) -> int:
        """Width of ``item_base``: item id, text, one block per item feature."""
        blocks = int(self.reads_item_ids) + int(self.item_text is not None)
        return (blocks + len(self.config.item_feature_sizes)) * self.config.embedding_dim

    @property
    def catalog_size(self) -> int:
        return len(self.item_vocab)

    @property
    def device(self) -> torch.device:
        return next(self.user_tower.parameters()).device

    # ------------------------------------------------------------------ representations
    def base_representations(
        self, user_features: KeyedJaggedTensor, item_features: KeyedJaggedTensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Pooled embeddings before the towers, for stacking new layers on pretrained tables.

        Args:
            user_features: KJT with ``user_id`` and user features, stride B.
            item_features: KJT with ``item_id``, item features and ``item_history``, stride B.

        Returns:
            ``user_base`` (B, user_base_dim) and ``item_base`` (B, item_base_dim).
        """
        users = self.user_ebc(user_features).to_dict()
        if self.history_pooler is None:
            items = self.item_ebc(item_features).to_dict()
        else:
            items = self._learned_history(users[USER_ID], item_features)
        user_blocks = [users[USER_ID]]
        if self.config.use_history:
            if self.reads_item_ids:
                user_blocks.append(items[ITEM_HISTORY])
            if self.item_text is not None:
                history = item_features[ITEM_HISTORY]
                user_blocks.append(self.item_text.pool(history.lengths(), history.values()))
        user_blocks += [users[name] for name in self.config.user_feature_sizes]
        return torch.cat(user_blocks, dim=1), self._item_blocks(items, item_features)

    def _learned_history(self, user_ids: torch.Tensor,
                         item_features: KeyedJaggedTensor) -> dict[str, torch.Tensor]:
        """The item collection's pooled bags, with ``item_history`` pooled by the learned
        ``history_pooler`` from the history items' own rows instead of a MEAN bag."""
        if is_sharded(self.item_ebc):
            raise ConfigError(f"history_pooling={self.config.history_pooling!r} does not run "
                              "in sharded training (--nproc, torchrun); use 'mean' there")
        items, rows = lookup_history_rows(self.item_ebc, item_features)
        padded, mask, recency = padded_history(rows, item_features[ITEM_HISTORY].lengths())
        items[ITEM_HISTORY] = pool_history(self.history_pooler, padded, mask, recency, user_ids)
        return items

    def _item_blocks(self, items: dict[str, torch.Tensor],
                     item_features: KeyedJaggedTensor) -> torch.Tensor:
        """``item_base`` from the item collection's pooled outputs: id, text, features."""
        blocks = [items[ITEM_ID]] if self.reads_item_ids else []
        if self.item_text is not None:
            rows = item_features[ITEM_ID]
            blocks.append(self.item_text.pool(rows.lengths(), rows.values()))
        blocks += [items[name] for name in self.config.item_feature_sizes]
        return torch.cat(blocks, dim=1)

    def _item_base(self, item_features: KeyedJaggedTensor) -> torch.Tensor:
        """(B, item_base_dim) from an item-side KJT (history bags ignored)."""
        return self._item_blocks(self.item_ebc(item_features).to_dict(), item_features)

    def _finish(self, embeddings: torch.Tensor) -> torch.Tensor:
        return nn.functional.normalize(embeddings, dim=-1) if self.config.normalize else embeddings

    def forward(
        self, user_features: KeyedJaggedTensor, item_features: KeyedJaggedTensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Tower outputs for a batch of (user, item) rows.

        Returns:
            ``user_emb`` (B, D) and ``item_emb`` (B, D), L2-normalised when
            ``config.normalize``; rows whose item bags are empty give meaningless item rows.
        """
        user_base, item_base = self.base_representations(user_features, item_features)
        return self._finish(self.user_tower(user_base)), self._finish(self.item_tower(item_base))

    def encode_item_features(self, item_features: KeyedJaggedTensor) -> torch.Tensor:
        """(B, D) item embeddings from an item-side KJT (history bags ignored)."""
        return self._finish(self.item_tower(self._item_base(item_features)))

    def encode_user_features(
        self, user_features: KeyedJaggedTensor, item_features: KeyedJaggedTensor
    ) -> torch.Tensor:
        """(B, D) user embeddings from a user-side KJT and a history-carrying item KJT."""
        user_base, _ = self.base_representations(user_features, item_features)
        return self._finish(self.user_tower(user_base))

    # ------------------------------------------------------------------ public encoders
    def encode_users(self, users: np.ndarray, history: Interactions | None = None) -> torch.Tensor:
        """Embed users from their ids and their most recent ``config.max_history`` items.

        Runs in the current mode and with gradients if enabled (fine-tuning may need them);
        ``score_users`` is the inference entry point.

        Args:
            users: (B,) rows of ``history.user_vocab`` (of the model's vocabulary when
                ``history`` is None). Users unknown to the model's vocabulary get an empty
                id bag (a zero block) and are represented by history and features only.
            history: interactions to take each user's history from (train, or a cold
                user's revealed items); None for id-only embeddings.

        Returns:
            (B, D) user embeddings.
        """
        users = np.asarray(users, dtype=np.int64)
        model_rows = users if history is None else self._model_user_rows(users, history)
        pooled = None
        if history is not None and self.config.use_history:
            pooled = self._histories(history).gather(users, self.config.max_history)
        user_kjt = user_features_kjt(model_rows, self.user_features)
        item_kjt = item_features_kjt(None, self.item_features, pooled, batch_size=len(users))
        return self.encode_user_features(user_kjt.to(self.device), item_kjt.to(self.device))

    def encode_items(self, items: np.ndarray | None = None, chunk_size: int = 8192) -> torch.Tensor:
        """Embed items by row; None embeds the whole catalog in chunks.

        Returns:
            (I, D) item embeddings in the order of ``items`` (catalog order for None).
        """
        rows = np.arange(self.catalog_size) if items is None else np.asarray(items, np.int64)
        if len(rows) and (rows.min() < 0 or rows.max() >= self.catalog_size):
            raise DataError(f"item rows outside the catalog [0, {self.catalog_size})")
        chunks = [
            self.encode_item_features(
                item_features_kjt(rows[i : i + chunk_size], self.item_features).to(self.device)
            )
            for i in range(0, len(rows), chunk_size)
        ]
        if not chunks:
            return torch.zeros(0, self.config.output_dim, device=self.device)
        return torch.cat(chunks)

    def score(self, user_emb: torch.Tensor, item_emb: torch.Tensor) -> torch.Tensor:
        """(B, I) scores: ``user_emb @ item_emb.T / temperature``."""
        return user_emb @ item_emb.T / self.config.temperature

    @torch.no_grad()
    def score_users(self, users: np.ndarray, history: Interactions) -> torch.Tensor:
        """Scores of the whole catalog for ``users`` (the ``recft.evaluate.Scorer`` contract).

        Always in eval mode (no dropout), restoring the previous mode afterwards.

        Args:
            users: (B,) rows of ``history.user_vocab``.
            history: what the model may know about the users (train, or revealed history).

        Returns:
            (B, catalog_size) float32 scores on the model's device.
        """
        was_training = self.training
        self.eval()
        try:
            return self.score(self.encode_users(users, history), self.encode_items())
        finally:
            self.train(was_training)

    # ------------------------------------------------------------------ vocab alignment
    def _model_user_rows(self, users: np.ndarray, history: Interactions) -> np.ndarray:
        if history.user_vocab is self.user_vocab:
            return users
        if history.user_vocab == self.user_vocab:
            return users
        raw = history.user_vocab.decode(users)
        return self.user_vocab.encode(raw, unknown="mark")

    def _histories(self, history: Interactions) -> UserHistories:
        """Histories of ``history``'s users in model item rows, cached for the last object
        seen with the current item vocabulary: evaluation calls ``score_users`` once per
        chunk of users with the same history."""
        cached = self._history_cache
        if cached is not None and cached[0]() is history and cached[1] is self.item_vocab:
            return cached[2]
        item_rows = None
        if history.item_vocab is not self.item_vocab and history.item_vocab != self.item_vocab:
            # items unknown to the model cannot be pooled: they are left out of histories
            item_rows = self.item_vocab.encode(history.item_vocab.ids, unknown="mark")
        histories = UserHistories.from_interactions(history, item_rows)
        self._history_cache = (weakref.ref(history), self.item_vocab, histories)
        return histories

    def extra_repr(self) -> str:
        c = self.config
        text = "" if c.item_text == "none" else \
            f", item_text={c.item_text} ({c.text_encoder}, {c.text_dim})"
        return (f"users={c.num_users:,}, items={c.num_items:,}, dim={c.embedding_dim}, "
                f"towers={c.tower_layers}, history={c.max_history if c.use_history else 0}"
                f"{'' if c.history_pooling == 'mean' else ' (' + c.history_pooling + ')'}{text}")
