"""Flags shared by several commands: dataset source, split and seed; JSON and other results."""

from __future__ import annotations

import argparse


DEFAULT_SPLIT = "random:0.8,0.1,0.1"


def add_dataset_args(parser: argparse.ArgumentParser, *, required: bool = True) -> None:
    """``--dataset NAME|PATH`` with ``--data-dir`` and column-name flags for files."""
    group = parser.add_argument_group("data")
    group.add_argument(
        "--dataset",
        required=required,
        metavar="NAME|PATH",
        help="dataset name (ml-100k, lastfm-2k, synthetic, ... see `recft data describe --help`) "
        "or a CSV/TSV/Parquet file with user_id,item_id[,rating][,timestamp] columns",
    )
    group.add_argument("--data-dir", metavar="DIR", help="dataset cache root (default: $RECFT_DATA_DIR or data/)")
    group.add_argument("--user-col", metavar="COL", help="user column of a file (default user_id)")
    group.add_argument("--item-col", metavar="COL", help="item column of a file (default item_id)")
    group.add_argument("--rating-col", metavar="COL", help="rating/count column of a file (default rating, if present)")
    group.add_argument("--timestamp-col", metavar="COL", help="timestamp column of a file (default timestamp, if present)")


def load_dataset(args: argparse.Namespace, source: str | None = None):
    """The Interactions named by ``--dataset`` (or ``source``) and the column flags."""
    from recft.data.registry import load

    return load(
        source or args.dataset,
        data_dir=args.data_dir,
        user=args.user_col,
        item=args.item_col,
        rating=args.rating_col,
        timestamp=args.timestamp_col,
    )


def add_split_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("protocol")
    group.add_argument(
        "--split",
        default=DEFAULT_SPLIT,
        metavar="SPEC",
        help="random:0.8,0.1,0.1 | temporal:0.8,0.1,0.1 | leave-last-out | cold-user:0.1,0.1 | "
        f"cold-item:0.1 (default {DEFAULT_SPLIT})",
    )
    group.add_argument("--seed", type=int, default=0, help="seed of the split and training (default 0)")


def print_json(values: object) -> None:
    """Print a command's JSON result (the only thing on stdout; see ``recft.cli.streams``)."""
    import json

    print_result(json.dumps(values, indent=2, sort_keys=False, default=_json_default))


def print_result(text: str) -> None:
    """Print a command's result to stdout, even while other output is diverted to stderr."""
    from recft.cli.streams import result_stream

    print(text, file=result_stream())


def _json_default(value: object) -> object:
    import numpy as np

    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)
