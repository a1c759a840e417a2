"""``recft rank-checkpoints``: which base checkpoint to fine-tune on a target, quickly."""

from __future__ import annotations

import argparse
import sys
import time

from recft.cli.common import add_dataset_args, load_dataset, print_json, print_result


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "rank-checkpoints",
        help="rank candidate base checkpoints for a target before fine-tuning any",
        description="Score every base on one seeded sample of the target's users: zero-shot "
        "NDCG@10 and the share of the sample's interactions whose item the base can read "
        "(by id, text or a known feature value), optionally NDCG@10 after a short frozen "
        "stage (--probe-epochs); print the bases ranked, with the time taken "
        "(recft.finetune.checkpoint_choice).",
        epilog="example: recft rank-checkpoints --checkpoints runs/movies runs/music "
        "runs/synthetic --dataset lastfm-2k --users 500",
    )
    parser.add_argument("--checkpoints", nargs="+", required=True, metavar="DIR",
                        help="candidate base checkpoint directories")
    add_dataset_args(parser)
    parser.add_argument("--users", type=int, default=300, metavar="N",
                        help="target users in the sample (default 300)")
    parser.add_argument("--probe-epochs", type=int, default=0, metavar="N",
                        help="epochs of a frozen probe stage per base (default 0: none; it "
                        "costs about a fine-tuning's fixed overheads)")
    parser.add_argument("--weighting", choices=["none", "log1p"], default="none",
                        help="example weights of the probe (log1p for play counts)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the sample and probe")
    parser.add_argument("--json", action="store_true", help="print the ranking as JSON")
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from recft.finetune.checkpoint_choice import rank_checkpoints, ranking_table

    target = load_dataset(args)
    started = time.perf_counter()
    log = None if args.quiet or args.json else (lambda line: print(line, file=sys.stderr))
    scores = rank_checkpoints(args.checkpoints, target, max_users=args.users,
                              probe_epochs=args.probe_epochs, seed=args.seed,
                              sample_weighting=args.weighting, log=log)
    seconds = time.perf_counter() - started
    if args.json:
        print_json({"dataset": args.dataset, "users": args.users, "seed": args.seed,
                    "seconds": round(seconds, 2), "ranking": [s.to_dict() for s in scores]})
    else:
        print_result(f"{ranking_table(scores)}\nranked {len(scores)} checkpoints on "
                     f"{args.dataset} in {seconds:.1f} s")
    return 0
