"""The planted latent model of the synthetic domains: factors, popularity and the domain shift."""

from __future__ import annotations

import numpy as np


def unit_rows(matrix: np.ndarray) -> np.ndarray:
    """(N, K) rows scaled to unit length (zero rows stay zero)."""
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix / np.where(norms > 0, norms, 1.0)


def direction_vectors(count: int, num_topics: int, rng: np.random.Generator) -> np.ndarray:
    """(count, K) random unit directions: one per genre, tag or decade."""
    return unit_rows(rng.standard_normal((count, num_topics)))


def smooth_directions(count: int, num_topics: int, rng: np.random.Generator,
                      persistence: float = 0.8) -> np.ndarray:
    """(count, K) unit directions that drift slowly from one to the next (decades, eras)."""
    steps = rng.standard_normal((count, num_topics))
    walk = np.empty_like(steps)
    walk[0] = steps[0]
    for index in range(1, count):
        walk[index] = persistence * walk[index - 1] + np.sqrt(1 - persistence**2) * steps[index]
    return unit_rows(walk)


def mixture_factors(
    membership: np.ndarray, directions: np.ndarray, noise: float, rng: np.random.Generator
) -> np.ndarray:
    """(N, K) unit factors: each row's weighted mix of ``directions`` plus Gaussian noise.

    Args:
        membership: (N, D) non-negative weights of each entity on each direction.
        directions: (D, K) unit directions (genres, tags).
        noise: standard deviation of the per-coordinate noise; the noise norm is about
            ``noise * sqrt(K)``, so it sets how much of a factor the features explain.
    """
    weights = membership / np.maximum(membership.sum(axis=1, keepdims=True), 1e-12)
    mixed = unit_rows(weights @ directions)
    return unit_rows(mixed + noise * rng.standard_normal(mixed.shape))


def user_factors(
    count: int,
    prior: np.ndarray,
    directions: np.ndarray,
    rng: np.random.Generator,
    concentration: float = 2.0,
    noise: float = 0.15,
) -> np.ndarray:
    """(count, K) user tastes: a sparse Dirichlet mix of genre/tag directions plus noise.

    Args:
        prior: (D,) how common each direction is among these users' tastes (sums to 1).
        concentration: total Dirichlet concentration; small values give users one to
            three favourite genres, as real users have.
    """
    alpha = np.maximum(concentration * prior, 1e-3)
    membership = rng.dirichlet(alpha, size=count)
    return mixture_factors(membership, directions, noise, rng)


def shifted_prior(prior: np.ndarray, shift: float, rng: np.random.Generator) -> np.ndarray:
    """A second domain's direction prior: the first one reweighted by log-normal noise."""
    weights = prior * np.exp(1.5 * shift * rng.standard_normal(len(prior)))
    return weights / weights.sum()


def partial_rotation(num_topics: int, shift: float, rng: np.random.Generator) -> np.ndarray:
    """(K, K) orthogonal matrix rotating half of the latent space by ``shift * 60`` degrees.

    Applied to the target's user factors: target users weigh some item aspects differently
    from source users, so a source-trained model is useful but not already right.
    """
    basis, _ = np.linalg.qr(rng.standard_normal((num_topics, num_topics)))
    angle = shift * np.pi / 3
    block = np.eye(num_topics)
    for plane in range(num_topics // 4):  # rotate K/4 planes = half of the dimensions
        a, b = 2 * plane, 2 * plane + 1
        block[a, a] = block[b, b] = np.cos(angle)
        block[a, b], block[b, a] = -np.sin(angle), np.sin(angle)
    return basis @ block @ basis.T


def zipf_bias(count: int, exponent: float, rng: np.random.Generator) -> np.ndarray:
    """(count,) log-popularity ``-exponent * log(rank)`` over a random ranking of items."""
    ranks = rng.permutation(count) + 1
    return -exponent * np.log(ranks)


def reranked_bias(bias: np.ndarray, exponent: float, shift: float,
                  rng: np.random.Generator) -> np.ndarray:
    """(N,) a second Zipf popularity whose ranking is correlated with ``bias``'s ranking.

    Items keep roughly their place in the popularity order, moved by noise growing with
    ``shift``, and the curve's steepness becomes ``exponent``.
    """
    scale = np.std(bias) if np.std(bias) > 0 else 1.0
    noisy = bias / scale + 2.0 * shift * rng.standard_normal(len(bias))
    ranks = np.empty(len(bias), dtype=np.int64)
    ranks[np.argsort(-noisy, kind="stable")] = np.arange(1, len(bias) + 1)
    return -exponent * np.log(ranks)


def activity_counts(count: int, mean: float, minimum: int, maximum: int,
                    rng: np.random.Generator, spread: float = 0.9) -> np.ndarray:
    """(count,) long-tailed (log-normal) interactions per user with the given mean."""
    raw = rng.lognormal(np.log(mean) - spread**2 / 2, spread, size=count)
    return np.clip(np.round(raw), minimum, maximum).astype(np.int64)
