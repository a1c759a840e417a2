"""Shared fixtures: small inputs whose right answers are known, and a small synthetic pair."""

from __future__ import annotations

import numpy as np
import pytest

from recft.data import DomainPair, Interactions, synthetic


def build_checkerboard(size: int = 20) -> Interactions:
    """Users and items ``0..size-1``; user ``u`` interacted with every item of its parity
    except item ``u`` itself (implicit's checkerboard).

    The known answer: item ``u`` is the best unseen item for user ``u`` (it co-occurs with
    everything ``u`` saw), and no item of the other parity should rank above it.
    Timestamps increase with the row, and ratings are 5 for even users and 1 for odd ones.
    """
    users, items = [], []
    for user in range(size):
        for item in range(user % 2, size, 2):
            if item != user:
                users.append(user)
                items.append(item)
    users_array = np.asarray(users, dtype=np.int64)
    return Interactions.from_raw(
        users_array,
        np.asarray(items, dtype=np.int64),
        ratings=np.where(users_array % 2 == 0, 5.0, 1.0),
        timestamps=1_600_000_000 + 3600 * np.arange(len(users), dtype=np.int64),
        name="checkerboard",
    )


@pytest.fixture
def checkerboard() -> Interactions:
    """A 20 x 20 checkerboard (see ``build_checkerboard``); cheap, so built per test."""
    return build_checkerboard(20)


@pytest.fixture(scope="session")
def synthetic_pair() -> DomainPair:
    """A small movies-flavoured source/target pair (1,000 + 400 users, 600 items; built
    once per session in well under a second)."""
    return synthetic("movies", size="small", seed=0)


@pytest.fixture(scope="session")
def synthetic_music_pair() -> DomainPair:
    """A small music-flavoured source/target pair (play counts, tags and artists)."""
    return synthetic("music", size="small", seed=0)


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread() -> None:
    """Tests use tiny models, and on a 2-core machine with another busy process two threads
    are several times slower than one (benchmarks/threads.py: 3.4x per pretraining epoch)."""
    import torch

    torch.set_num_threads(1)
