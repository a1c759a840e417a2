"""``recft demo``: the main job on the embedded synthetic default, end to end."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="run the main job on the embedded synthetic data and print where the report is",
        description="Generate the synthetic source/target domains, pretrain a base model on the "
        "source, fine-tune it on the target, compare strategies, and write reports/.",
    )
    parser.add_argument("--out", default=None, metavar="DIR", help="runs directory (default runs/demo)")
    parser.add_argument("--reports", default=None, metavar="DIR", help="reports root (default reports/)")
    parser.add_argument("--small", action="store_true", help="tiny sizes that finish in seconds")
    parser.add_argument("--seed", type=int, default=0)
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from recft.demo import run_demo

    run_demo(out=args.out, reports=args.reports, small=args.small, seed=args.seed)
    return 0
