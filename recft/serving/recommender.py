"""Recommender: a trained model, its vocabularies and the users' histories, served by raw id."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from recft.data.interactions import Interactions
from recft.data.vocabulary import Vocabulary
from recft.errors import DataError
from recft.serving.history import HistoryLike, HistoryTable, gather_histories
from recft.serving.ids import ItemFilter, ServingWarning, allowed_mask, coerce_ids, known_items
from recft.serving.ranking import positions_within, top_k

COLUMNS = ("user", "rank", "item", "score")
SIMILAR_COLUMNS = ("item", "rank", "similar_item", "score")
BLOCK_BYTES = 128 * 2**20  # one (users x catalog) float32 score block; bounds peak memory


@dataclass
class Request:
    """What one ``recommend`` call (or one batch job) serves with, resolved once.

    Attributes:
        histories: per-call histories (they replace the Recommender's for those users).
        allowed: (I,) bool mask of recommendable items, or None for all.
        fallback: the popularity fallback list ``(items, scores)``, filled on first use.
    """

    histories: HistoryTable | None
    allowed: np.ndarray | None
    fallback: tuple[np.ndarray, np.ndarray] | None = field(default=None, repr=False)


class Recommender:
    """Top-k recommendations, similar items and embeddings in raw ids, batch-first.

    Scores are the model's own: ``model.score(model.encode_users(...), item embeddings)``,
    the computation ``model.score_users`` (and so ``recft.evaluate``) ranks, with the item
    embeddings computed once and cached (call ``refresh()`` after changing the weights).

    A user is represented by their id embedding (if the model knows the id) and their
    most recent history items, so a user unknown to the vocabulary but given a history is
    served without retraining. A user with neither gets the **popularity fallback**: items
    ranked by interaction count in the Recommender's history (else in the call's
    histories); with no history at all, by the model's own prior, i.e. the scores the
    user tower gives a user it knows nothing about (no id, no history, no features). Their
    ``score`` is then the count (or that prior score). One ``ServingWarning`` per call
    counts such users.

    Example::

        rec = Recommender.from_pretrained("runs/base", history=train)
        rec.recommend(["u1", "u2"], k=10)                       # user, rank, item, score
        rec.recommend(["new"], histories={"new": ["i3", "i9"]})   # cold user, no retraining
        rec.similar_items(["i3"], k=5)
        rec.add_items({"i999": "A new film. Genres: Comedy"})    # cold item, from its text

    A model with a text path (``TwoTowerConfig(item_text=...)``) also serves items it was
    never trained on: ``add_items`` encodes their texts with the model's own encoder and
    appends them to the catalog (zero id row, no features), so they are ranked, found by
    ``similar_items`` and exported like any other item.
    """

    def __init__(self, model: nn.Module, history: HistoryLike | None = None) -> None:
        for attribute in ("user_vocab", "item_vocab", "encode_users", "encode_items", "score"):
            if not hasattr(model, attribute):
                raise TypeError(f"{type(model).__name__} lacks {attribute!r}: a Recommender "
                                "serves a TwoTower (or a fine-tuned one)")
        self.model = model
        self.history = None if history is None else self._table(history, "history")
        self.checkpoint: Path | None = None
        self.added_items: dict[Any, str] = {}  # raw id -> text, in the order added
        self._item_embeddings: torch.Tensor | None = None

    @classmethod
    def from_pretrained(cls, directory: str | Path, history: HistoryLike | None = None, *,
                        verify_checksums: bool = True) -> Recommender:
        """Load a checkpoint (``TwoTower`` or ``FineTunedTwoTower``) and wrap it.

        Args:
            directory: a checkpoint directory (``save_pretrained`` / ``recft pretrain``).
            history: the users' histories (training interactions, a DataFrame with
                ``user_id``, ``item_id`` [, ``timestamp``], a mapping user -> items, or a
                file): a checkpoint holds no interactions, and histories feed both the
                user tower and ``exclude_seen``.
            verify_checksums: compare every file's sha256 with the checkpoint's record.
        """
        from recft.models.checkpoint import load_pretrained

        recommender = cls(load_pretrained(directory, verify_checksums=verify_checksums), history)
        recommender.checkpoint = Path(directory)
        return recommender

    @property
    def user_vocab(self) -> Vocabulary:
        return self.model.user_vocab

    @property
    def item_vocab(self) -> Vocabulary:
        return self.model.item_vocab

    def refresh(self) -> None:
        """Forget cached item embeddings (after the model's weights changed)."""
        self._item_embeddings = None

    # ------------------------------------------------------------------ recommend
    def recommend(self, users: Iterable[Any] | None = None, histories: HistoryLike | None = None,
                  k: int = 10, exclude_seen: bool = True, filter_items: ItemFilter | None = None,
                  batch_size: int | None = None) -> pd.DataFrame:
        """Top-``k`` items for each user.

        Args:
            users: raw user ids (duplicates served once); None = every user with a history
                (the Recommender's, then the call's).
            histories: per-call histories (see ``HistoryLike``); for the users they cover
                they replace the Recommender's history. Unknown items are ignored with one
                ``ServingWarning`` counting them.
            k: list length per user.
            exclude_seen: never recommend an item in the user's history.
            filter_items: allow-list of raw item ids, or a callable returning a mask.
            batch_size: users per scoring block; default keeps a block near 128 MB.

        Returns:
            DataFrame with columns user, rank (1 = best), item, score, in raw ids, users in
            the order given; equal scores are ordered by item row (deterministic).
        """
        request = self.prepare(histories, filter_items)
        user_ids = self.user_ids(users, request)
        frames, fallbacks = [], 0
        for chunk in self._chunks(user_ids, batch_size):
            frame, fallback_count = self.recommend_chunk(chunk, request, k, exclude_seen)
            frames.append(frame)
            fallbacks += fallback_count
        self.warn_fallback(fallbacks, request)
        if not frames:
            return self._frame(user_ids[:0], np.zeros(0, np.int64), np.zeros(0, np.int64),
                               np.zeros(0, np.float32))
        return pd.concat(frames, ignore_index=True)

    def prepare(self, histories: HistoryLike | None, filter_items: ItemFilter | None) -> Request:
        """Resolve a call's histories and item filter once (also used by batch jobs)."""
        table = None if histories is None else self._table(histories, "histories")
        return Request(table, allowed_mask(filter_items, self.item_vocab))

    def user_ids(self, users: Iterable[Any] | None, request: Request) -> np.ndarray:
        """Normalised, de-duplicated raw user ids (first occurrence order)."""
        if users is None:
            parts = [t.users.ids for t in (self.history, request.histories) if t is not None]
            if not parts:
                raise DataError("users=None means every user with a history, but no history "
                                "was given; pass users or histories")
            users = np.concatenate([coerce_ids(p, self.user_vocab) for p in parts])
        elif isinstance(users, (str, bytes, int, np.integer)):
            users = [users]
        ids = coerce_ids(users, self.user_vocab)
        return np.asarray(pd.unique(ids)) if ids.dtype.kind in "iu" else \
            np.asarray(pd.unique(ids), dtype=object)

    def recommend_chunk(self, users: np.ndarray, request: Request, k: int,
                        exclude_seen: bool) -> tuple[pd.DataFrame, int]:
        """One block of ``recommend``: (frame, number of fallback users)."""
        if int(k) < 1:
            raise DataError(f"k must be >= 1, got {k}")
        # a call's history replaces the stored one for the users it covers
        lengths, locals_, items, stamps = gather_histories(users, request.histories,
                                                           self.history)
        model_rows = self.user_vocab.encode(users, unknown="mark")
        fallback = (model_rows < 0) & (lengths == 0)
        served = np.flatnonzero(~fallback)
        counts = np.zeros(len(users), dtype=np.int64)
        if len(served):
            keep = ~fallback[locals_]
            position = np.full(len(users), -1, dtype=np.int64)
            position[served] = np.arange(len(served))
            rows, hist_items = position[locals_[keep]], items[keep]
            scores = self._scores(users[served], rows, hist_items, stamps[keep])
            if request.allowed is not None:
                scores[:, torch.from_numpy(~request.allowed)] = float("-inf")
            if exclude_seen and len(rows):
                # exclude seen items: a recommendation the user already consumed is no use
                scores[torch.from_numpy(rows), torch.from_numpy(hist_items)] = float("-inf")
            served_counts, served_items, served_values = top_k(scores, k)
            counts[served] = served_counts
            del scores
        if fallback.any():
            fallback_items, fallback_values = self._fallback(request, k)
            counts[fallback] = len(fallback_items)
        # reassemble in the users' order from the served and fallback lists
        starts = np.cumsum(counts) - counts
        total = int(counts.sum())
        out_items = np.zeros(total, dtype=np.int64)
        out_values = np.zeros(total, dtype=np.float32)
        if len(served):
            index = np.repeat(starts[served], served_counts) + positions_within(served_counts)
            out_items[index], out_values[index] = served_items, served_values
        for user in np.flatnonzero(fallback):
            span = slice(starts[user], starts[user] + counts[user])
            out_items[span], out_values[span] = fallback_items, fallback_values
        return self._frame(np.repeat(users, counts), positions_within(counts) + 1, out_items,
                           out_values), int(fallback.sum())

    def warn_fallback(self, count: int, request: Request) -> None:
        if count:
            warnings.warn(f"{count:,} user(s) unknown to the model and without history got "
                          f"the fallback list ({self._fallback_source(request)[1]})",
                          ServingWarning, stacklevel=3)

    # ------------------------------------------------------------------ cold items
    def add_items(self, items: Mapping[Any, str] | Iterable[Any],
                  texts: Sequence[str] | None = None, *, encoder: Any = None) -> np.ndarray:
        """Serve items from their text: new ids join the catalog, known ones get a new text.

        See ``recft.serving.cold_items.add_items`` (the model is grown in place).

        Returns:
            The items' rows (``item_vocab`` positions), in the order given.
        """
        from recft.serving.cold_items import add_items

        rows = add_items(self, items, texts, encoder=encoder)
        self.refresh()
        return rows

    def add_items_from_file(self, path: str | Path, item: str = "item_id", text: str = "text",
                            *, encoder: Any = None) -> np.ndarray:
        """``add_items`` from a CSV/TSV/Parquet file of item ids and texts
        (``recft.text.read_item_texts``: bad lines are named by file, line and field)."""
        from recft.text import read_item_texts

        return self.add_items(read_item_texts(path, item=item, text=text), encoder=encoder)

    # ------------------------------------------------------------------ similar / embed
    def similar_items(self, items: Iterable[Any], k: int = 10,
                      metric: str = "cosine") -> pd.DataFrame:
        """The ``k`` items nearest to each of ``items`` by item-tower embedding.

        Args:
            items: raw item ids; unknown ones are skipped with a ``ServingWarning``.
            k: neighbours per item (the item itself excluded).
            metric: ``"cosine"`` or ``"dot"`` (equal rankings when the model normalises).

        Returns:
            DataFrame with columns item, rank, similar_item, score.
        """
        if metric not in ("cosine", "dot"):
            raise DataError(f"metric must be 'cosine' or 'dot', got {metric!r}")
        ids, rows = known_items(items, self.item_vocab, "similar_items")
        catalog = self._items()
        if metric == "cosine":
            catalog = nn.functional.normalize(catalog, dim=-1)
        frames = []
        size = max(1, BLOCK_BYTES // (4 * max(len(catalog), 1)))
        for start in range(0, len(rows), size):
            block = rows[start:start + size]
            scores = catalog[torch.from_numpy(block)] @ catalog.T
            scores[torch.arange(len(block)), torch.from_numpy(block)] = float("-inf")
            counts, found, values = top_k(scores, k)
            frames.append(pd.DataFrame({
                "item": np.repeat(ids[start:start + len(block)], counts),
                "rank": positions_within(counts) + 1,
                "similar_item": self.item_vocab.ids[found],
                "score": values,
            }))
        return pd.concat(frames, ignore_index=True) if frames else \
            pd.DataFrame({c: [] for c in SIMILAR_COLUMNS})

    def embed_users(self, users: Iterable[Any] | None = None,
                    histories: HistoryLike | None = None) -> tuple[np.ndarray, np.ndarray]:
        """User-tower embeddings: ``(raw ids (B,), (B, D) float32)``.

        A user unknown to the model and without history gets the embedding of an empty
        input (the one ``recommend`` replaces with the fallback list).
        """
        request = self.prepare(histories, None)
        user_ids = self.user_ids(users, request)
        blocks = []
        for chunk in self._chunks(user_ids, None):
            _, locals_, items, stamps = gather_histories(chunk, request.histories, self.history)
            blocks.append(self._user_embeddings(chunk, locals_, items, stamps).cpu().numpy())
        dim = self._items().shape[1]
        return user_ids, np.concatenate(blocks) if blocks else np.zeros((0, dim), np.float32)

    def embed_items(self, items: Iterable[Any] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Item-tower embeddings: ``(raw ids (I,), (I, D) float32)``, the catalog by default."""
        if items is None:
            return self.item_vocab.ids, self._items().cpu().numpy()
        ids, rows = known_items(items, self.item_vocab, "embed_items")
        return ids, self._items()[torch.from_numpy(rows)].cpu().numpy()

    # ------------------------------------------------------------------ internals
    def _table(self, source: HistoryLike, label: str) -> HistoryTable:
        return HistoryTable.build(source, self.item_vocab, self.user_vocab, label)

    def _chunks(self, users: np.ndarray, batch_size: int | None) -> Iterator[np.ndarray]:
        size = batch_size or max(1, BLOCK_BYTES // (4 * max(len(self.item_vocab), 1)))
        for start in range(0, len(users), size):
            yield users[start:start + size]

    def _user_embeddings(self, users: np.ndarray, rows: np.ndarray, items: np.ndarray,
                         stamps: np.ndarray) -> torch.Tensor:
        # a small Interactions over these users only: the model pools and orders it exactly
        # as it does the full training history in score_users
        vocab = Vocabulary(users, name="user")
        known = Interactions(user_ids=rows, item_ids=items, user_vocab=vocab,
                             item_vocab=self.item_vocab, timestamps=stamps)
        with _inference(self.model):
            return self.model.encode_users(np.arange(len(users)), known)

    def _scores(self, users: np.ndarray, rows: np.ndarray, items: np.ndarray,
                stamps: np.ndarray) -> torch.Tensor:
        embeddings = self._user_embeddings(users, rows, items, stamps)
        with _inference(self.model):
            return self.model.score(embeddings, self._items()).float()

    def _items(self) -> torch.Tensor:
        if self._item_embeddings is None:
            with _inference(self.model):
                self._item_embeddings = self.model.encode_items()
        return self._item_embeddings

    def _fallback(self, request: Request, k: int) -> tuple[np.ndarray, np.ndarray]:
        if request.fallback is None or len(request.fallback[0]) < min(k, len(self.item_vocab)):
            table, _ = self._fallback_source(request)
            if table is not None:
                counts = table.popularity(len(self.item_vocab)).astype(np.float32)
                scores = torch.from_numpy(counts)[None]
            else:  # the model's prior: the user tower with nothing known about the user
                with _inference(self.model):
                    empty = self.model.encode_users(np.array([-1]), None)
                    scores = self.model.score(empty, self._items()).float()
            if request.allowed is not None:
                scores[:, torch.from_numpy(~request.allowed)] = float("-inf")
            _, items, values = top_k(scores, k)
            request.fallback = (items, values)
        items, values = request.fallback
        return items[:k], values[:k]

    def _fallback_source(self, request: Request) -> tuple[HistoryTable | None, str]:
        if self.history is not None and len(self.history):
            return self.history, "most popular in the Recommender's history"
        if request.histories is not None and len(request.histories):
            return request.histories, "most popular in the given histories"
        return None, "the model's prior for a user it knows nothing about"

    def _frame(self, users: np.ndarray, ranks: np.ndarray, items: np.ndarray,
               values: np.ndarray) -> pd.DataFrame:
        return pd.DataFrame({"user": users, "rank": ranks.astype(np.int64),
                             "item": self.item_vocab.ids[items],
                             "score": values.astype(np.float32)})

    def __repr__(self) -> str:
        history = "" if self.history is None else \
            f", history={len(self.history):,} interactions"
        return (f"Recommender({type(self.model).__name__}, users={len(self.user_vocab):,}, "
                f"items={len(self.item_vocab):,}{history})")


@contextlib.contextmanager
def _inference(model: nn.Module) -> Iterator[None]:
    """Eval mode (no dropout) without gradients, restoring the model's mode afterwards."""
    was_training = model.training
    if was_training:
        model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        if was_training:
            model.train()
