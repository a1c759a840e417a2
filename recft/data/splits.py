"""Train/valid/test splits: random, temporal, leave-last-out, cold-user and cold-item."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from recft.data.grouping import group_order, positions_within_groups, rank_at_least, ratio_counts
from recft.data.interactions import Interactions
from recft.errors import DataError

SPLIT_KINDS = ("random", "temporal", "leave-last-out", "cold-user", "cold-item")
VALID_FORMS = (
    "random:TRAIN,VALID,TEST or random:TRAIN,TEST (e.g. random:0.8,0.1,0.1)",
    "temporal:TRAIN,VALID,TEST or temporal:TRAIN,TEST (e.g. temporal:0.8,0.1,0.1)",
    "leave-last-out",
    "cold-user:TEST[,VALID] (shares of users, e.g. cold-user:0.1,0.1)",
    "cold-item:TEST[,VALID] (shares of items, e.g. cold-item:0.1)",
)
_DEFAULTS = {"random": (0.8, 0.1, 0.1), "temporal": (0.8, 0.1, 0.1),
             "leave-last-out": (), "cold-user": (0.1, 0.1), "cold-item": (0.1,)}


@dataclass(frozen=True)
class SplitSpec:
    """A parsed ``--split`` value.

    Attributes:
        kind: one of ``SPLIT_KINDS``.
        fractions: ``(train, valid, test)`` or ``(train, test)`` ratios for random/temporal;
            ``(test, valid)`` or ``(test,)`` shares of users/items for cold-user/cold-item;
            empty for leave-last-out.
    """

    kind: str
    fractions: tuple[float, ...] = ()

    def __str__(self) -> str:
        if not self.fractions:
            return self.kind
        return f"{self.kind}:" + ",".join(f"{value:g}" for value in self.fractions)


def parse_split(spec: str | SplitSpec) -> SplitSpec:
    """Parse ``"random:0.8,0.1,0.1"``-style strings; a bare kind takes its default fractions.

    A ``SplitSpec`` is validated the same way, so the split functions share the checks.

    Raises:
        DataError: unknown kind or malformed fractions; the message lists the valid forms.
    """
    if isinstance(spec, SplitSpec):
        kind, values = spec.kind, tuple(float(v) for v in spec.fractions)
    else:
        kind, _, rest = str(spec).strip().lower().partition(":")
        kind = kind.strip()
        values = ()
        if rest.strip():
            try:
                values = tuple(float(v) for v in re.split(r"\s*,\s*", rest.strip()))
            except ValueError:
                _invalid(spec, "fractions must be numbers separated by commas")
    if kind not in SPLIT_KINDS:
        _invalid(spec, f"unknown kind {kind!r}")
    if not values:
        return SplitSpec(kind, _DEFAULTS[kind])
    if kind == "leave-last-out":
        _invalid(spec, "leave-last-out takes no fractions")
    if any(not np.isfinite(v) or v < 0 or v > 1 for v in values):
        _invalid(spec, "every fraction must be in [0, 1]")
    if kind in ("random", "temporal"):
        if len(values) not in (2, 3) or abs(sum(values) - 1.0) > 1e-6:
            _invalid(spec, "give 2 or 3 ratios (train, [valid,] test) that sum to 1")
        if values[0] <= 0 or values[-1] <= 0:
            _invalid(spec, "train and test ratios must be positive")
        if len(values) == 3 and values[1] == 0:
            values = (values[0], values[2])  # an empty valid part means no valid part
    else:
        if len(values) not in (1, 2) or values[0] <= 0 or sum(values) >= 1:
            _invalid(spec, "give a positive test share and optional valid share, summing below 1")
        if len(values) == 2 and values[1] == 0:
            values = values[:1]
    return SplitSpec(kind, values)


def _invalid(spec: object, reason: str) -> None:
    raise DataError(
        f"invalid split {str(spec)!r}: {reason}; valid forms: " + "; ".join(VALID_FORMS),
        field="split",
    )


@dataclass(frozen=True)
class Split:
    """The parts of one split; every part shares the original vocabularies.

    ``test_history`` / ``valid_history`` are what a model may know about the evaluated
    users: the interactions used as their history (to build the user representation) and
    excluded from ranking. For warm splits they are ``train``. For cold-user splits the
    held-out users never appear in ``train``; each one's interactions are cut in two, the
    earliest ``history_fraction`` (by time, else at random) revealed as ``test_history``
    and the rest kept as ``test``, the targets to predict.

    Attributes:
        train: training interactions.
        valid: validation interactions, or None when the spec has no valid part.
        test: interactions to predict.
        spec: canonical spec string, e.g. ``"random:0.8,0.1,0.1"``.
        seed: the seed used.
        test_history: history of test users (train unless cold-user).
        valid_history: history of valid users (train unless cold-user; None without valid).
    """

    train: Interactions
    valid: Interactions | None
    test: Interactions
    spec: str
    seed: int
    test_history: Interactions | None = None
    valid_history: Interactions | None = None

    def __post_init__(self) -> None:
        # frozen dataclass: the defaults depend on train, so set them once here
        if self.test_history is None:
            object.__setattr__(self, "test_history", self.train)
        if self.valid_history is None and self.valid is not None:
            object.__setattr__(self, "valid_history", self.train)

    @property
    def kind(self) -> str:
        return self.spec.partition(":")[0]

    def known(self, part: str = "test") -> Interactions:
        """What a model may know when ``part`` is evaluated, also excluded from its ranking:
        train (plus valid for test), plus the revealed history of cold users."""
        if part not in ("test", "valid"):
            raise ValueError(f"part must be 'test' or 'valid', got {part!r}")
        known = self.train
        cold = self.kind == "cold-user"
        if part == "valid":
            return known.concat(self.valid_history) if cold and self.valid_history else known
        if self.valid is not None:
            known = known.concat(self.valid)
        if cold:
            known = known.concat(self.test_history)
            if self.valid_history is not None:
                known = known.concat(self.valid_history)
        return known

    def protocol(self) -> dict[str, Any]:
        """The split's description, stamped next to every number measured on it."""
        parts = {"train": self.train, "valid": self.valid, "test": self.test}
        if self.kind == "cold-user":
            parts.update(test_history=self.test_history, valid_history=self.valid_history)
        return {
            "spec": self.spec,
            "seed": self.seed,
            "kind": self.kind,
            "sizes": {name: (0 if part is None else len(part)) for name, part in parts.items()},
            "users": {name: (0 if part is None else part.num_users)
                      for name, part in parts.items()},
        }


def split(x: Interactions, spec: str | SplitSpec, seed: int = 0) -> Split:
    """Split ``x`` by a spec string (see ``VALID_FORMS``), deterministically for ``seed``.

    Example::

        parts = split(interactions, "random:0.8,0.1,0.1", seed=0)
        parts.protocol()["sizes"]      # {"train": ..., "valid": ..., "test": ...}
    """
    parsed = parse_split(spec)
    values = parsed.fractions
    if parsed.kind == "random":
        return random_split(x, values, seed)
    if parsed.kind == "temporal":
        return temporal_split(x, values, seed=seed)
    if parsed.kind == "leave-last-out":
        return leave_last_out(x, seed=seed)
    valid_share = values[1] if len(values) > 1 else 0.0
    if parsed.kind == "cold-user":
        return cold_user_split(x, values[0], valid_share, seed)
    return cold_item_split(x, values[0], seed, valid_share=valid_share)


# ---------------------------------------------------------------------- warm splits
def random_split(x: Interactions, ratios: tuple[float, ...] | list[float], seed: int = 0) -> Split:
    """Per-user random ratio split (RecBole's ``RS`` in spirit).

    Each user's interactions are shuffled and cut by ``ratios`` (``(train, valid, test)`` or
    ``(train, test)``); a part whose share rounds to zero still gets one interaction while
    the user keeps at least one in train, so a user with 3+ interactions has all parts.
    """
    ratios = parse_split(SplitSpec("random", tuple(ratios))).fractions
    spec = str(SplitSpec("random", tuple(ratios)))
    rng = np.random.default_rng(seed)
    order = group_order(x.user_ids, rng.integers(0, 2**31, len(x), dtype=np.int64))
    position, _ = positions_within_groups(x.user_ids, order)
    # cut points per user, then per row: one boundary at a time keeps memory at O(N)
    bounds = np.cumsum(ratio_counts(x.user_activity(), ratios), axis=1)
    part = np.zeros(len(x), dtype=np.int8)
    for boundary in range(len(ratios) - 1):
        part += position >= bounds[x.user_ids, boundary]
    return _from_parts(x, part, len(ratios), spec, seed)


def temporal_split(
    x: Interactions, ratios: tuple[float, ...] | list[float], seed: int = 0
) -> Split:
    """Global time cut: the earliest ``ratios[0]`` of all interactions train, then valid, test.

    Rows are ordered by timestamp (ties by row order), so ``max(train) <= min(test)``.
    ``seed`` is only stamped on the result.
    """
    ratios = parse_split(SplitSpec("temporal", tuple(ratios))).fractions
    timestamps = _require_timestamps(x, "temporal")
    cuts = np.round(np.cumsum(ratios)[:-1] * len(x)).astype(np.int64)
    part = np.zeros(len(x), dtype=np.int8)
    for cut in cuts:
        part += rank_at_least(timestamps, int(cut))
    return _from_parts(x, part, len(ratios), str(SplitSpec("temporal", tuple(ratios))), seed)


def leave_last_out(x: Interactions, seed: int = 0) -> Split:
    """Per user, the latest interaction is test and the one before it valid.

    Users with fewer than 3 interactions keep everything in train. Ties in time are broken
    by row order (the later row counts as later).
    """
    timestamps = _require_timestamps(x, "leave-last-out")
    order = group_order(x.user_ids, timestamps)
    position, size = positions_within_groups(x.user_ids, order)
    from_end = size - 1 - position
    part = np.where(size < 3, 0, np.select([from_end == 0, from_end == 1], [2, 1], 0))
    return _from_parts(x, part, 3, "leave-last-out", seed)


# ---------------------------------------------------------------------- cold splits
def cold_user_split(
    x: Interactions,
    test_share: float,
    valid_share: float = 0.0,
    seed: int = 0,
    history_fraction: float = 0.5,
) -> Split:
    """Hold out a share of users entirely; reveal part of each one's interactions as history.

    Args:
        x: interactions.
        test_share: share of users held out for test.
        valid_share: share of (other) users held out for valid; 0 for none.
        seed: chooses the users, and the history when there are no timestamps.
        history_fraction: share of each held-out user's interactions revealed as history
            (the earliest by time when timestamps exist); at least one interaction is
            history and at least one target whenever the user has two or more.

    Returns:
        A Split whose ``test_history``/``valid_history`` hold the revealed interactions and
        ``test``/``valid`` the rest; none of these users has a row in ``train``.
    """
    shares = (test_share, valid_share) if valid_share else (test_share,)
    spec = parse_split(SplitSpec("cold-user", shares))
    if not 0 < history_fraction < 1:
        raise DataError(f"history_fraction must be in (0, 1), got {history_fraction}")
    rng = np.random.default_rng(seed)
    group = _held_out_groups(x.user_ids, test_share, valid_share, rng)  # 0 train, 1 valid, 2 test
    keys = x.timestamps if x.timestamps is not None else rng.integers(0, 2**31, len(x))
    position, size = positions_within_groups(x.user_ids, group_order(x.user_ids, keys))
    history_count = np.where(size >= 2, np.clip(np.floor(history_fraction * size), 1, size - 1), 0)
    is_history = position < history_count
    parts = {name: x.subset(np.flatnonzero((group == code) & (is_history == history)))
             for name, code, history in (("valid_history", 1, True), ("valid", 1, False),
                                         ("test_history", 2, True), ("test", 2, False))}
    has_valid = valid_share > 0
    return Split(
        train=x.subset(np.flatnonzero(group == 0)),
        valid=parts["valid"] if has_valid else None,
        test=parts["test"],
        spec=str(spec),
        seed=seed,
        test_history=parts["test_history"],
        valid_history=parts["valid_history"] if has_valid else None,
    )


def cold_item_split(
    x: Interactions, share: float, seed: int = 0, valid_share: float = 0.0
) -> Split:
    """Hold out a share of the items that occur in ``x``: their interactions go to test only.

    With ``valid_share`` another share of items goes to valid. Users keep their other
    interactions in train, which is their history.
    """
    spec = parse_split(SplitSpec("cold-item", (share, valid_share) if valid_share else (share,)))
    rng = np.random.default_rng(seed)
    part = _held_out_groups(x.item_ids, share, valid_share, rng)
    return _from_parts(x, part, 3 if valid_share else 2, str(spec), seed)


# ---------------------------------------------------------------------- vectorised helpers
def _require_timestamps(x: Interactions, kind: str) -> np.ndarray:
    if x.timestamps is None:
        raise DataError(
            f"a {kind} split needs timestamps and {x.name or 'these interactions'} have none",
            field="timestamp",
            hint="use --split random:0.8,0.1,0.1 or cold-user/cold-item instead",
        )
    return x.timestamps


def _held_out_groups(ids: np.ndarray, test_share: float, valid_share: float,
                     rng: np.random.Generator) -> np.ndarray:
    """Per row: 0 train, 1 valid, 2 test, by holding out shares of the distinct ``ids``."""
    present = np.unique(ids)
    shuffled = rng.permutation(present)
    num_test = max(1, round(test_share * len(present)))
    num_valid = max(1, round(valid_share * len(present))) if valid_share > 0 else 0
    if num_test + num_valid >= len(present):
        raise DataError(f"cannot hold out {num_test + num_valid} of only {len(present)} ids")
    code = np.zeros(int(ids.max()) + 1 if len(ids) else 0, dtype=np.int64)
    code[shuffled[:num_test]] = 2
    code[shuffled[num_test:num_test + num_valid]] = 1
    return code[ids]


def _from_parts(x: Interactions, part: np.ndarray, num_parts: int, spec: str, seed: int) -> Split:
    """Build a Split from per-row part codes (0 train, then valid if 3 parts, last test)."""
    if num_parts == 2:
        part = np.where(part == 1, 2, part)
    train, valid, test = (x.subset(np.flatnonzero(part == code)) for code in (0, 1, 2))
    return Split(train, valid if num_parts == 3 else None, test, spec, seed)
