"""Vectorised per-group ordering: rank rows within users (or items) without Python loops."""

from __future__ import annotations

import numpy as np


def group_order(groups: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """Row order sorted by group, then key, then row position (a stable sort).

    Args:
        groups: (N,) non-negative int group ids (user or item rows).
        keys: (N,) int keys ordering rows inside a group (timestamps, random draws).

    Returns:
        (N,) int64 permutation of row positions.
    """
    groups = np.asarray(groups, dtype=np.int64)
    keys = np.asarray(keys, dtype=np.int64)
    if not len(groups):
        return np.zeros(0, dtype=np.int64)
    keys = keys - keys.min()
    key_bits = int(keys.max()).bit_length()
    group_bits = int(groups.max()).bit_length()
    if key_bits + group_bits <= 62:
        # one stable sort of packed (group, key) int64s is ~3x faster than np.lexsort,
        # which matters at 25M rows
        return np.argsort((groups << key_bits) | keys, kind="stable")
    return np.lexsort((keys, groups))


def positions_within_groups(
    groups: np.ndarray, order: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Each row's 0-based rank inside its group under ``order``, and its group's size.

    Args:
        groups: (N,) non-negative int group ids.
        order: (N,) a permutation that lists rows group by group (``group_order``).

    Returns:
        ``(position, size)``, both (N,) int64 and aligned with the original rows.
    """
    groups = np.asarray(groups, dtype=np.int64)
    if not len(groups):
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty
    size = np.bincount(groups)[groups]
    sorted_groups = groups[order]
    starts = np.flatnonzero(np.r_[True, sorted_groups[1:] != sorted_groups[:-1]])
    run_lengths = np.diff(np.r_[starts, len(order)])
    position = np.empty(len(order), dtype=np.int64)
    position[order] = np.arange(len(order)) - np.repeat(starts, run_lengths)
    return position, size
