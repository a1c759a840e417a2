"""Draw who interacted with what, and when, from the planted scores (Gumbel top-k)."""

from __future__ import annotations

import numpy as np

DAY = 86_400
YEAR = 365 * DAY
START = 1_420_070_400  # 2015-01-01 00:00 UTC
SOURCE_PERIOD = (START, START + 5 * YEAR)
TARGET_PERIOD = (START + 2 * YEAR, START + 7 * YEAR)  # later: new items appear in it


def activity_windows(count: int, period: tuple[int, int],
                     rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(count,) start and end times of each user's active stretch inside ``period``."""
    first, last = period
    span = last - first
    length = rng.uniform(0.1, 0.6, count) * span
    start = first + rng.uniform(0.0, 1.0, count) * (span - 0.1 * span)
    return start, np.minimum(start + length, last)


def sample_interactions(
    user_factors: np.ndarray,
    item_factors: np.ndarray,
    item_bias: np.ndarray,
    preference_scale: float,
    activity: np.ndarray,
    release: np.ndarray,
    window: tuple[np.ndarray, np.ndarray],
    rng: np.random.Generator,
    chunk_cells: int = 4_000_000,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Draw each user's items without replacement with probability ~ exp(planted score).

    The planted score of (u, i) is ``preference_scale * <user u, item i> + item_bias[i]``;
    items released after the user's active window are unavailable. Adding Gumbel noise
    and keeping each row's top ``activity[u]`` is exact sampling without replacement, one
    vectorised pass per chunk of users.

    Args:
        user_factors: (U, K) unit user tastes.
        item_factors: (I, K) unit item factors.
        item_bias: (I,) log-popularity.
        preference_scale: weight of taste against popularity.
        activity: (U,) interactions wanted per user.
        release: (I,) release time per item (-inf: always available).
        window: ``(start, end)``, each (U,), the users' active stretch.
        rng: the generator.
        chunk_cells: users are processed in chunks of about this many (user, item) cells.

    Returns:
        ``(user_index, item_index, timestamp)``, each (N,), grouped by user.
    """
    start, end = window
    num_users, num_items = len(user_factors), len(item_factors)
    chunk = max(1, chunk_cells // max(num_items, 1))
    users, items = [], []
    for first in range(0, num_users, chunk):
        rows = np.arange(first, min(first + chunk, num_users))
        # float32 halves the time of the (users x items) passes, which dominate at scale
        logits = (preference_scale * (user_factors[rows] @ item_factors.T)
                  + item_bias).astype(np.float32)
        logits[release[None, :] > end[rows, None]] = -np.inf
        available = np.isfinite(logits).sum(axis=1)
        wanted = np.minimum(activity[rows], available)
        top = int(wanted.max()) if len(rows) else 0
        if top == 0:
            continue
        uniform = rng.random(logits.shape, dtype=np.float32)
        # Gumbel(0, 1) noise; the clip keeps log() finite when a draw is exactly 0
        perturbed = logits - np.log(-np.log(np.clip(uniform, 1e-12, None)))
        best = np.argpartition(-perturbed, top - 1, axis=1)[:, :top]
        # order the candidates so the first wanted[u] of row u are its top draws
        ranked = np.argsort(-np.take_along_axis(perturbed, best, axis=1), axis=1)
        best = np.take_along_axis(best, ranked, axis=1)
        keep = np.arange(top)[None, :] < wanted[:, None]
        users.append(np.repeat(rows, wanted))
        items.append(best[keep])
    user_index = np.concatenate(users) if users else np.zeros(0, np.int64)
    item_index = np.concatenate(items) if items else np.zeros(0, np.int64)
    # an interaction happens while the user is active and after the item came out
    earliest = np.maximum(start[user_index], release[item_index])
    moment = earliest + rng.uniform(0.0, 1.0, len(user_index)) * (end[user_index] - earliest)
    return user_index.astype(np.int64), item_index.astype(np.int64), moment.astype(np.int64)


def star_ratings(affinity: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(N,) 1-5 stars rising with the standardised taste match, MovieLens-like mean ~3.6."""
    z = (affinity - affinity.mean()) / max(float(affinity.std()), 1e-9)
    return np.clip(np.round(3.6 + 0.9 * z + 0.6 * rng.standard_normal(len(z))), 1, 5)


def play_counts(affinity: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(N,) long-tailed play counts (>= 1) whose mean grows with the taste match."""
    z = (affinity - affinity.mean()) / max(float(affinity.std()), 1e-9)
    return 1 + np.floor(rng.exponential(np.exp(1.5 + 0.8 * z)))
