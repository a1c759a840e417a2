"""``recft data``: describe a dataset or file, download a release."""

from __future__ import annotations

import argparse
import json

from recft.cli.common import print_result


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "data",
        help="describe datasets and download releases",
        description="Inspect a dataset (named release, synthetic, or your own file) or fetch "
        "a public release into the cache (--data-dir, $RECFT_DATA_DIR or data/).",
    )
    commands = parser.add_subparsers(dest="subcommand", metavar="SUBCOMMAND")

    describe = commands.add_parser(
        "describe",
        help="counts, sparsity, activity, rating distribution, time range, feature coverage",
        description="Print statistics of a dataset: a name (ml-100k, lastfm-2k, synthetic, "
        "...), a CSV/TSV/Parquet file, or a folder holding a release's files.",
    )
    describe.add_argument("source", metavar="SOURCE", help="dataset name or path")
    describe.add_argument("--data-dir", metavar="DIR",
                          help="dataset cache root (default: $RECFT_DATA_DIR or data/)")
    describe.add_argument("--user-col", metavar="COL",
                          help="user column of a file (default user_id)")
    describe.add_argument("--item-col", metavar="COL",
                          help="item column of a file (default item_id)")
    describe.add_argument("--rating-col", metavar="COL",
                          help="rating/count column of a file (default rating, if present)")
    describe.add_argument("--timestamp-col", metavar="COL",
                          help="timestamp column of a file (default timestamp, if present)")
    describe.add_argument("--json", action="store_true", help="print JSON instead of a table")
    describe.set_defaults(handler=run_describe)

    download = commands.add_parser(
        "download",
        help="fetch a public release (checksummed) into the cache",
        description="Download a MovieLens or Last.fm release, verify its checksum and "
        "extract it to DATA_DIR/NAME/.",
    )
    download.add_argument("name", metavar="NAME", help="release name, e.g. ml-100k, lastfm-2k")
    download.add_argument("--data-dir", metavar="DIR",
                          help="dataset cache root (default: $RECFT_DATA_DIR or data/)")
    download.add_argument("--url", metavar="URL", help="a mirror of the official archive")
    download.add_argument("--force", action="store_true",
                          help="download again even if the folder is complete")
    download.set_defaults(handler=run_download)
    parser.set_defaults(handler=lambda args: _usage(parser))


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def run_describe(args: argparse.Namespace) -> int:
    from recft.data.describe import describe, format_description
    from recft.data.registry import load

    data = load(args.source, data_dir=args.data_dir, user=args.user_col, item=args.item_col,
                rating=args.rating_col, timestamp=args.timestamp_col)
    summary = describe(data)
    print_result(json.dumps(summary, indent=2) if args.json else format_description(summary))
    return 0


def run_download(args: argparse.Namespace) -> int:
    from recft.data.download import download

    quiet = getattr(args, "quiet", False)
    folder = download(args.name, data_dir=args.data_dir, url=getattr(args, "url", None),
                      force=args.force, progress=not quiet)
    print(folder)
    return 0
