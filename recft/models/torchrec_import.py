"""Import a state dict of torchrec's examples/retrieval TwoTower into recft's TwoTower."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from recft.data.vocabulary import Vocabulary
from recft.errors import CheckpointError

TABLE_INDEXES = ("raw_id", "row")
# torchrec's MLP is a Sequential of Perceptrons: <tower>_proj._mlp.<i>._linear.{weight,bias}
_LINEAR_KEY = re.compile(r"^(?:.*\.)?(query|candidate)_proj\._mlp\.(\d+)\._linear\.(weight|bias)$")


def import_torchrec_state_dict(
    state_dict: Mapping[str, torch.Tensor] | str | Path,
    user_vocab: Vocabulary | None = None,
    item_vocab: Vocabulary | None = None,
    *,
    query_table: str = "t_userId",
    candidate_table: str = "t_movieId",
    table_index: str = "raw_id",
) -> Any:
    """A recft ``TwoTower`` that scores exactly like a torchrec retrieval-example TwoTower.

    The example's layout is ``ebc.embedding_bags.<table>.weight`` for both tables and
    ``query_proj`` / ``candidate_proj`` MLPs (Linear + ReLU per layer, ReLU on the output
    too), possibly under a wrapper prefix (``two_tower.`` from ``TwoTowerTrainTask``);
    ``query_ebc``/``candidate_ebc`` (``TwoTowerRetrieval``) also work. The query table and
    projection become the user id table and user tower, the candidate ones the item side;
    scoring is the plain dot product (no normalisation, temperature 1, no history).

    Args:
        state_dict: the state dict, or a ``.pt`` file holding one (read with
            ``torch.load(weights_only=True)``, which refuses arbitrary pickled objects).
        user_vocab: raw user ids to keep, in recft row order; None keeps every table row
            (raw id k = row k).
        item_vocab: the same for items.
        query_table: the example's user table name (``t_<user column>``).
        candidate_table: the example's item table name.
        table_index: ``"raw_id"``: torchrec row k embeds raw id k (the example feeds
            MovieLens ids straight into its tables); ``"row"``: torchrec row k embeds
            vocabulary row k, and table and vocabulary sizes must agree.

    Returns:
        A ``TwoTower`` in eval mode.

    Example::

        model = import_torchrec_state_dict("model.pt", train.user_vocab, train.item_vocab)
    """
    from recft.models.two_tower import TwoTower, TwoTowerConfig

    if table_index not in TABLE_INDEXES:
        raise ValueError(f"table_index must be one of {TABLE_INDEXES}, got {table_index!r}")
    tensors = _read_state_dict(state_dict)
    user_table = _table(tensors, query_table)
    item_table = _table(tensors, candidate_table)
    if user_table.shape[1] != item_table.shape[1]:
        raise CheckpointError(f"tables {query_table!r} and {candidate_table!r} have different "
                              f"widths ({user_table.shape[1]} vs {item_table.shape[1]})")
    user_layers = _mlp_layers(tensors, "query", user_table.shape[1])
    item_layers = _mlp_layers(tensors, "candidate", item_table.shape[1])
    sizes = [w.shape[0] for w, _ in user_layers]
    if sizes != [w.shape[0] for w, _ in item_layers]:
        raise CheckpointError(f"query_proj layer sizes {sizes} differ from candidate_proj's "
                              f"{[w.shape[0] for w, _ in item_layers]}; recft towers share sizes")
    user_vocab = _vocab(user_vocab, user_table.shape[0], "user")
    item_vocab = _vocab(item_vocab, item_table.shape[0], "item")
    config = TwoTowerConfig(
        num_users=len(user_vocab), num_items=len(item_vocab), embedding_dim=user_table.shape[1],
        tower_layers=tuple(sizes), dropout=0.0, normalize=False, temperature=1.0,
        use_history=False, output_activation="relu",  # torchrec's MLP ends in a ReLU too
    )
    mapped = {
        "user_ebc.embedding_bags.user_id.weight":
            _rows(user_table, user_vocab, table_index, query_table),
        "item_ebc.embedding_bags.item_id.weight":
            _rows(item_table, item_vocab, table_index, candidate_table),
    }
    model = TwoTower(config, user_vocab, item_vocab)
    for tower, layers in (("user_tower", user_layers), ("item_tower", item_layers)):
        linears = [name for name, module in getattr(model, tower).named_children()
                   if isinstance(module, nn.Linear)]
        for name, (weight, bias) in zip(linears, layers, strict=True):
            mapped[f"{tower}.{name}.weight"] = weight
            # torchrec's MLP(bias=False) has none; recft's Linear layers always do
            mapped[f"{tower}.{name}.bias"] = torch.zeros(weight.shape[0]) if bias is None else bias
    state = {key: value.to(torch.float32).contiguous() for key, value in mapped.items()}
    model.load_state_dict(state, strict=True)
    return model.eval()


def _read_state_dict(source: Mapping[str, torch.Tensor] | str | Path) -> dict[str, torch.Tensor]:
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.is_file():
            raise CheckpointError(f"{path}: no such state-dict file")
        try:
            # weights_only: tensors and containers only, so a foreign file cannot run code
            loaded = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as error:  # torch raises UnpicklingError, RuntimeError, EOFError...
            raise CheckpointError(f"{path}: cannot read as a weights-only state dict: "
                                  f"{error}") from None
        if isinstance(loaded, Mapping) and isinstance(loaded.get("state_dict"), Mapping):
            loaded = loaded["state_dict"]
        source = loaded
    if not isinstance(source, Mapping):
        raise CheckpointError("expected a state dict (name -> tensor), got "
                              f"{type(source).__name__}")
    return {str(k): v for k, v in source.items() if isinstance(v, torch.Tensor)}


def _table(tensors: dict[str, torch.Tensor], table: str) -> torch.Tensor:
    suffix = f"ebc.embedding_bags.{table}.weight"
    found = [key for key in tensors if key.endswith(suffix)]
    if len(found) != 1:
        available = sorted({m.group(1) for key in tensors
                            if (m := re.search(r"ebc\.embedding_bags\.([^.]+)\.weight$", key))})
        problem = "no" if not found else f"{len(found)} ({found})"
        raise CheckpointError(f"state dict has {problem} '*{suffix}' tensor; "
                              f"tables found: {available}")
    weight = tensors[found[0]]
    if weight.dim() != 2 or not weight.is_floating_point():
        raise CheckpointError(f"{found[0]} is a {weight.dtype} tensor of shape "
                              f"{tuple(weight.shape)}; expected float rows (export the state "
                              "dict before quantize_embeddings)")
    return weight


def _mlp_layers(tensors: dict[str, torch.Tensor], tower: str,
                in_size: int) -> list[tuple[torch.Tensor, torch.Tensor | None]]:
    layers: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        match = _LINEAR_KEY.match(key)
        if match and match.group(1) == tower:
            layers.setdefault(int(match.group(2)), {})[match.group(3)] = value
    if not layers:
        raise CheckpointError(f"state dict has no {tower}_proj._mlp.<i>._linear.weight tensors")
    if sorted(layers) != list(range(len(layers))):
        raise CheckpointError(f"{tower}_proj layers are not numbered 0..n-1: {sorted(layers)}")
    result = []
    for index in range(len(layers)):
        weight = layers[index].get("weight")
        if weight is None or weight.dim() != 2 or weight.shape[1] != in_size:
            found = None if weight is None else tuple(weight.shape)
            raise CheckpointError(f"{tower}_proj._mlp.{index}._linear.weight: expected shape "
                                  f"(*, {in_size}), found {found}")
        result.append((weight, layers[index].get("bias")))
        in_size = weight.shape[0]
    return result


def _vocab(vocab: Vocabulary | None, rows: int, what: str) -> Vocabulary:
    return Vocabulary(np.arange(rows, dtype=np.int64), name=what) if vocab is None else vocab


def _rows(table: torch.Tensor, vocab: Vocabulary, table_index: str, name: str) -> torch.Tensor:
    if table_index == "row":
        if len(vocab) != table.shape[0]:
            raise CheckpointError(f"table {name!r} has {table.shape[0]} rows but the vocabulary "
                                  f"has {len(vocab)} ids; use table_index='raw_id' if rows are "
                                  "raw ids")
        return table
    if not vocab.is_integer:
        raise CheckpointError(f"table_index='raw_id' needs integer ids; the {vocab.name} "
                              "vocabulary holds strings (use table_index='row')")
    ids = vocab.ids
    outside = ids[(ids < 0) | (ids >= table.shape[0])]
    if len(outside):
        raise CheckpointError(f"{len(outside)} {vocab.name} id(s) have no row in table {name!r} "
                              f"({table.shape[0]} rows), e.g. {outside[:5].tolist()}")
    return table[torch.from_numpy(ids)]
