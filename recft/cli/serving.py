"""``recft recommend`` / ``export`` / ``similar``: serving a checkpoint in production."""

from __future__ import annotations

import argparse
import os
import signal
from typing import Any

from recft.cli.common import print_result
from recft.cli.launch import add_launch_args, dispatch
from recft.locks import locks_outputs

FAIL_AFTER_ENV = "RECFT_TEST_FAIL_AFTER_CHUNKS"  # tests: SIGKILL itself after N chunks


def register(subparsers: argparse._SubParsersAction) -> None:
    _register_recommend(subparsers)
    _register_export(subparsers)
    _register_similar(subparsers)


def _register_recommend(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "recommend",
        help="top-k lists for a file of users, written to Parquet (resumable)",
        description="Score users in chunks (memory bounded by one chunk x catalog block) and "
        "write user, rank, item, score rows to a Parquet file. Finished chunks are kept in "
        "<out>.parts/ with a manifest: rerunning the same command after a crash or a kill "
        "resumes without losing or duplicating users. Users unknown to the model are served "
        "from their --histories rows; with no history they get the most popular items.",
        epilog="examples:\n"
        "  recft recommend --checkpoint runs/base --users users.csv --histories train.csv "
        "--k 100 --out recs.parquet\n"
        "  recft recommend --checkpoint runs/base --users users.parquet --out recs.parquet "
        "--chunk-size 4096 --restart\n"
        "  recft recommend --checkpoint runs/base --histories train.csv --out recs.parquet "
        "--nproc 2   # chunks split over 2 processes",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--checkpoint", required=True, metavar="DIR", help="checkpoint directory")
    parser.add_argument("--users", metavar="FILE",
                        help="CSV/Parquet of users (column user_id, user, or the only column); "
                        "default: every user in --histories")
    parser.add_argument("--user-col", metavar="COL", help="user column of --users")
    parser.add_argument("--histories", metavar="FILE",
                        help="CSV/TSV/Parquet with user_id,item_id[,timestamp]: what users "
                        "interacted with (pooled by the user tower, excluded from lists)")
    parser.add_argument("--k", type=int, default=100, help="items per user (default 100)")
    parser.add_argument("--out", required=True, metavar="FILE", help="output .parquet file")
    parser.add_argument("--chunk-size", type=int, metavar="N",
                        help="users per chunk (default: a score block of about 128 MB)")
    parser.add_argument("--items", metavar="FILE",
                        help="allow-list: only recommend the items of this file (item_id column)")
    parser.add_argument("--include-seen", action="store_true",
                        help="allow items already in a user's history")
    parser.add_argument("--restart", action="store_true",
                        help="discard the state of an unfinished earlier run for --out")
    _add_item_texts_flag(parser)
    add_launch_args(parser, tables=False)
    parser.set_defaults(handler=_run_recommend)


def _register_export(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "export",
        help="item embeddings, a faiss index and an exported user tower for serving",
        description="Write a directory that serves the model with torch and faiss only: "
        "user_tower.pt2 (torch.export), index.faiss (inner product; exact, or IVF with its "
        "recall@10/@100 against exact search measured on real users), item_embeddings.npy, "
        "items.parquet, users.json, items.json and manifest.json (versions, dims, how to "
        "call the user tower, sha256 of every file).",
        epilog="examples:\n"
        "  recft export --checkpoint runs/base --out serving/base\n"
        "  recft export --checkpoint runs/base --out serving/base --index ivf --nlist 1024 "
        "--histories train.csv",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--checkpoint", required=True, metavar="DIR", help="checkpoint directory")
    parser.add_argument("--out", required=True, metavar="DIR", help="bundle directory (replaced)")
    parser.add_argument("--index", choices=["exact", "ivf", "auto"], default="auto",
                        help="exact (IndexFlatIP), ivf (IndexIVFFlat), or auto: IVF above "
                        "50,000 items (default)")
    parser.add_argument("--nlist", type=int, metavar="N", help="IVF lists (default ~4 sqrt(items))")
    parser.add_argument("--nprobe", type=int, metavar="N", help="IVF lists searched per query "
                        "(default nlist / 8)")
    parser.add_argument("--histories", metavar="FILE",
                        help="users' histories (user_id,item_id[,timestamp]): recall is then "
                        "measured on real users' id + history queries")
    parser.add_argument("--queries", type=int, default=1000, metavar="N",
                        help="users sampled to measure recall (default 1000)")
    _add_item_texts_flag(parser)
    parser.set_defaults(handler=_export)


def _add_item_texts_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--item-texts", metavar="FILE",
                        help="CSV/TSV/Parquet with item_id,text: items to serve from their text "
                        "(new ids join the catalog: cold items); needs a checkpoint with a "
                        "text path and its text encoder installed")


def _recommender(args: argparse.Namespace) -> Any:
    """The checkpoint's Recommender, with --item-texts added to its catalog."""
    from recft.serving.recommender import Recommender

    rec = Recommender.from_pretrained(args.checkpoint)
    if getattr(args, "item_texts", None):
        rec.add_items_from_file(args.item_texts)
    return rec


def _register_similar(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "similar",
        help="nearest items by item-tower embedding",
        description="For each given item, the k most similar catalog items by cosine (or dot) "
        "similarity of item-tower embeddings.",
        epilog="examples:\n"
        "  recft similar --checkpoint runs/base --items 50,181 --k 10\n"
        "  recft similar --checkpoint runs/base --items i00003 --metric dot --json",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--checkpoint", required=True, metavar="DIR", help="checkpoint directory")
    parser.add_argument("--items", required=True, metavar="ID,ID",
                        help="comma-separated raw item ids")
    parser.add_argument("--k", type=int, default=10, help="neighbours per item (default 10)")
    parser.add_argument("--metric", choices=["cosine", "dot"], default="cosine")
    parser.add_argument("--json", action="store_true", help="print JSON records")
    parser.set_defaults(handler=_similar)


def _run_recommend(args: argparse.Namespace) -> int:
    # --nproc / torchrun: the chunks are split over the ranks (launch.py); rank 0 holds the lock
    return dispatch(args, _recommend_locked, _recommend)


@locks_outputs("out")  # one writer per output file (and its .parts/)
def _recommend_locked(args: argparse.Namespace) -> int:
    return _recommend(args)


def _recommend(args: argparse.Namespace) -> int:
    from recft.errors import DataError
    from recft.serving.batch import read_users, recommend_batch

    if args.users is None and args.histories is None:
        raise DataError("give --users, or --histories to serve every user in it")
    rec = _recommender(args)
    histories = _read_histories(args.histories)
    users: Any = read_users(args.users, args.user_col) if args.users else None
    allowed = read_users(args.items, label="item") if args.items else None
    out = recommend_batch(rec, users, args.out, k=args.k, chunk_size=args.chunk_size,
                          histories=histories, exclude_seen=not args.include_seen,
                          filter_items=allowed, restart=args.restart,
                          progress=not args.quiet, on_chunk=_fail_hook(),
                          distributed=args.distributed)
    if args.distributed is not None and not args.distributed.is_main:
        return 0  # rank 0 assembled the file and reports it
    import pyarrow.parquet as pq

    meta = pq.read_metadata(out)
    print(f"wrote {meta.num_rows:,} recommendations to {out}")
    return 0


@locks_outputs("out")
def _export(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from recft.serving.export import MANIFEST, export

    source = _recommender(args) if args.item_texts else args.checkpoint
    out = export(source, args.out, index=args.index, nlist=args.nlist,
                 nprobe=args.nprobe, history=_read_histories(args.histories),
                 num_queries=args.queries)
    info = json.loads((Path(out) / MANIFEST).read_text(encoding="utf-8"))["index"]
    recall = ", ".join(f"{k} {v:.3f}" for k, v in info.items() if k.startswith("recall@"))
    print(f"exported to {out}: {info['faiss_class']} index ({recall} vs exact search on "
          f"{info['recall_queries']:,} users)")
    return 0


def _similar(args: argparse.Namespace) -> int:
    from recft.serving.recommender import Recommender

    rec = Recommender.from_pretrained(args.checkpoint)
    items = [item.strip() for item in str(args.items).split(",") if item.strip()]
    frame = rec.similar_items(items, k=args.k, metric=args.metric)
    if args.json:
        print_result(frame.to_json(orient="records"))
    else:
        print(frame.to_string(index=False))
    return 0


def _read_histories(path: str | None) -> Any:
    if path is None:
        return None
    from recft.data.tabular import read_interactions

    return read_interactions(path)


def _fail_hook() -> Any:
    """Kill this process (SIGKILL, like an OOM killer) after N chunks when the test
    environment variable asks for it; otherwise no hook."""
    value = os.environ.get(FAIL_AFTER_ENV)
    if not value:
        return None
    remaining = [int(value)]

    def hook(index: int) -> None:
        remaining[0] -= 1
        if remaining[0] <= 0:
            os.kill(os.getpid(), signal.SIGKILL)

    return hook
