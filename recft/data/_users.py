"""MovieLens user profiles (ml-100k u.user, ml-1m users.dat) as user side features."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from recft.data._catalog import catalog_vocabulary, jagged_feature
from recft.data._parsing import Column, read_table
from recft.data.features import EntityFeatures
from recft.data.vocabulary import Vocabulary
from recft.errors import DataError

# ml-1m's age groups (its README); ml-100k's exact ages are bucketed the same way so the
# two releases share one ``age`` feature vocabulary.
AGE_GROUPS = {1: "Under 18", 18: "18-24", 25: "25-34", 35: "35-44", 45: "45-49",
              50: "50-55", 56: "56+"}
# ml-1m's occupation codes (its README)
ML1M_OCCUPATIONS = (
    "other", "academic/educator", "artist", "clerical/admin", "college/grad student",
    "customer service", "doctor/health care", "executive/managerial", "farmer", "homemaker",
    "K-12 student", "lawyer", "programmer", "retired", "sales/marketing", "scientist",
    "self-employed", "technician/engineer", "tradesman/craftsman", "unemployed", "writer",
)


def age_group(ages: np.ndarray) -> np.ndarray:
    """ml-1m age-group labels for exact ages: (N,) int -> (N,) str."""
    bounds = np.asarray(sorted(AGE_GROUPS))
    index = np.searchsorted(bounds, np.asarray(ages), side="right") - 1
    labels = np.asarray([AGE_GROUPS[b] for b in bounds], dtype=object)
    return labels[np.clip(index, 0, len(bounds) - 1)]


def _features(vocab: Vocabulary, table: pd.DataFrame, groups: np.ndarray,
              ages: pd.Series) -> EntityFeatures:
    order = np.argsort(vocab.encode(table["user"].to_numpy()))
    table, groups, ages = table.iloc[order], groups[order], ages.iloc[order]
    rows = np.arange(len(vocab))
    categorical = {
        "age": jagged_feature(rows, groups, len(vocab), name="age"),
        "gender": jagged_feature(rows, table["gender"].to_numpy(), len(vocab), name="gender"),
        "occupation": jagged_feature(rows, table["occupation"].to_numpy(), len(vocab),
                                     name="occupation"),
    }
    attributes = pd.DataFrame({
        "age": ages.to_numpy(), "age_group": groups, "gender": table["gender"].to_numpy(),
        "occupation": table["occupation"].to_numpy(), "zip_code": table["zip_code"].to_numpy(),
    })
    return EntityFeatures(categorical, attributes)


def read_ml100k_users(path: Path) -> tuple[Vocabulary, EntityFeatures]:
    """``user|age|gender|occupation|zip`` -> the user catalog and its features."""
    table = read_table(path, [Column("user", "int"), Column("age", "int"), Column("gender"),
                              Column("occupation"), Column("zip_code", optional=True)],
                       sep="|", encoding="latin-1")
    vocab = catalog_vocabulary(table["user"], path, 1, "user", "user")
    groups = age_group(table["age"].to_numpy())
    return vocab, _features(vocab, table, groups, table["age"].astype("Int64"))


def read_ml1m_users(path: Path) -> tuple[Vocabulary, EntityFeatures]:
    """``UserID::Gender::Age::Occupation::Zip-code`` -> the user catalog and its features."""
    table = read_table(path, [Column("user", "int"), Column("gender"), Column("age", "int"),
                              Column("occupation", "int"), Column("zip_code", optional=True)],
                       sep="::", encoding="latin-1")
    vocab = catalog_vocabulary(table["user"], path, 1, "user", "user")
    codes = table["age"].to_numpy()
    bad = ~np.isin(codes, list(AGE_GROUPS))
    if bad.any():
        row = int(np.argmax(bad))
        raise DataError(f"age group {codes[row]} is not one of {sorted(AGE_GROUPS)}",
                        path=path, line=row + 1, field="age")
    occupations = table["occupation"].to_numpy()
    bad = (occupations < 0) | (occupations >= len(ML1M_OCCUPATIONS))
    if bad.any():
        row = int(np.argmax(bad))
        raise DataError(f"occupation code {occupations[row]} is outside 0..20",
                        path=path, line=row + 1, field="occupation")
    table = table.assign(occupation=np.asarray(ML1M_OCCUPATIONS, dtype=object)[occupations])
    groups = np.asarray([AGE_GROUPS[c] for c in codes.tolist()], dtype=object)
    return vocab, _features(vocab, table, groups, pd.Series(pd.NA, index=table.index,
                                                             dtype="Int64"))
