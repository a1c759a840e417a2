"""Initial values for the table rows of ids a pretrained checkpoint has not seen."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import scipy.sparse as sp
import torch

from recft.data.features import CategoricalFeature
from recft.errors import DataError
from recft.finetune.recipe import NEW_ID_INITS


def new_rows(weight: torch.Tensor, count: int, init: str, *,
             generator: torch.Generator | None = None,
             features: Mapping[str, CategoricalFeature] | None = None) -> torch.Tensor:
    """(count, dim) initial rows for ids a table has not seen.

    Args:
        weight: (rows, dim) the pretrained table.
        init: ``zeros``; ``mean`` of the pretrained rows; ``random`` normal with the
            pretrained rows' per-dimension std; ``feature_mean``: for a new item, the mean
            of pretrained item rows sharing any of its feature values (genre, tag, artist),
            averaged over its values, falling back to ``mean`` without shared values.
        features: for ``feature_mean``, the item features of the grown catalog: its first
            ``len(weight)`` rows are the pretrained items, the next ``count`` the new ones.

    Returns:
        (count, dim) rows in the table's dtype.
    """
    dim = weight.shape[1]
    mean = weight.mean(dim=0) if weight.shape[0] else torch.zeros(dim, dtype=weight.dtype)
    if init == "zeros" or count == 0:
        return torch.zeros(count, dim, dtype=weight.dtype)
    if init == "mean":
        return mean.expand(count, dim).clone()
    if init == "random":
        std = weight.std(dim=0) if weight.shape[0] > 1 else torch.ones(dim, dtype=weight.dtype)
        noise = torch.randn(count, dim, generator=generator, dtype=weight.dtype)
        return noise * std
    if init != "feature_mean":
        raise DataError(f"new-row init must be one of {NEW_ID_INITS}, got {init!r}")
    if not features:
        return mean.expand(count, dim).clone()
    old_items = weight.shape[0]
    sums = torch.zeros(count, dim, dtype=torch.float64)
    hits = torch.zeros(count, dtype=torch.float64)
    table = weight.double()
    for feature in features.values():
        # items x values incidence, old (pretrained) and new rows separately
        matrix = _incidence(feature)
        old, fresh = matrix[:old_items], matrix[old_items:old_items + count]
        per_value = old.sum(axis=0).A1
        value_means = (old.T @ table.numpy()) / np.maximum(per_value, 1)[:, None]
        usable = sp.csr_matrix(fresh.multiply(per_value[None, :] > 0))
        sums += torch.from_numpy(usable @ value_means)
        hits += torch.from_numpy(usable.sum(axis=1).A1.astype(np.float64))
    rows = sums / hits.clamp(min=1)[:, None]
    rows[hits == 0] = mean.double()
    return rows.to(weight.dtype)


def _incidence(feature: CategoricalFeature) -> sp.csr_matrix:
    data = np.ones(len(feature.values), dtype=np.float64)
    return sp.csr_matrix((data, feature.values, feature.offsets),
                         shape=(feature.num_entities, len(feature.vocab)))
