"""``recft evaluate``: full-ranking evaluation of a checkpoint (or a baseline) on a split."""

from __future__ import annotations

import argparse
import logging

from recft.cli.common import add_dataset_args, add_split_args, load_dataset, print_json
from recft.cli.launch import add_launch_args, dispatch

BASELINES = ("popularity", "ease", "itemknn")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "evaluate",
        help="full-ranking top-k metrics of a checkpoint or a baseline on a split",
        description="Rank the whole catalog for every evaluated user, excluding the items the "
        "model already knows for that user, and report hit/recall/precision/ndcg/mrr/map@k, "
        "coverage and popularity (RecBole's definitions).",
        epilog="examples:\n"
        "  recft evaluate --checkpoint runs/ml100k --dataset ml-100k "
        "--split random:0.8,0.1,0.1 --seed 0 --json\n"
        "  recft evaluate --checkpoint runs/ml100k --dataset ml-100k "
        "--split random:0.8,0.1,0.1 --seed 0 --nproc 2   # users split over 2 processes",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--checkpoint", metavar="DIR", help="checkpoint directory (recft pretrain/finetune)")
    source.add_argument("--baseline", choices=BASELINES, help="fit a baseline on the train part instead")
    add_dataset_args(parser)
    add_split_args(parser)
    parser.add_argument("--part", choices=["test", "valid"], default="test")
    parser.add_argument("--k", default="10,20", metavar="K,K", help="cut-offs (default 10,20)")
    parser.add_argument("--segments", action="store_true", help="also report user-activity and head/tail segments")
    parser.add_argument("--json", action="store_true", help="print JSON only")
    add_launch_args(parser, tables=False)
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    # --nproc / torchrun: each rank ranks its share of the users (launch.py); nothing to lock
    return dispatch(args, _evaluate, _evaluate)


def _evaluate(args: argparse.Namespace) -> int:
    from recft.data import split as make_split
    from recft.errors import DataError
    from recft.evaluate import evaluate

    try:
        ks = tuple(int(k) for k in str(args.k).split(","))
    except ValueError:
        raise DataError(f"--k must be comma-separated integers, got {args.k!r}") from None
    interactions = load_dataset(args)
    parts = make_split(interactions, args.split, seed=args.seed)
    target = parts.test if args.part == "test" else parts.valid
    if target is None:
        raise DataError(f"split {args.split!r} has no {args.part} part")
    known = parts.known(args.part)
    model = _load_model(args, parts.train, interactions)
    context = args.distributed
    metrics = evaluate(model, target, exclude=known, history=known, ks=ks, segments=args.segments,
                       progress=not (args.quiet or args.json), distributed=context)
    if context is not None and not context.is_main:
        return 0  # every rank holds the result; rank 0 prints it
    result = {
        "model": args.checkpoint or args.baseline,
        "dataset": args.dataset,
        "protocol": {**parts.protocol(), "part": args.part, "ranking": "full", "exclude_seen": True},
        "metrics": metrics,
    }
    if args.json:
        print_json(result)
    else:
        _print_table(result)
    return 0


def _load_model(args: argparse.Namespace, train, interactions):
    if args.baseline:
        from recft.models.baselines import EASE, ItemKNN, MostPopular

        factory = {"popularity": MostPopular, "ease": EASE, "itemknn": ItemKNN}[args.baseline]
        return factory().fit(train)
    from recft.models.checkpoint import load_pretrained

    model = load_pretrained(args.checkpoint)
    if model.item_vocab == interactions.item_vocab and model.user_vocab == interactions.user_vocab:
        return model
    # A fine-tuned checkpoint holds the base's ids plus the target's; another dataset may
    # hold ids the checkpoint never saw. Align by raw id and rank the dataset's catalog.
    from recft.finetune import target_scorer

    scorer = target_scorer(model, interactions)
    counts = scorer.alignment.to_dict()["counts"]
    new_users, new_items = counts["users"]["new"], counts["items"]["new"]
    if new_users or new_items:
        logging.getLogger("recft").warning(
            "%s: %d users and %d items of %s are unknown to the checkpoint; users are served "
            "by their history, items by rows initialised from their features",
            args.checkpoint, new_users, new_items, args.dataset)
    return scorer


def _print_table(result: dict) -> None:
    metrics = result["metrics"]
    print(f"{result['model']} on {result['dataset']} ({result['protocol']['spec']}, "
          f"seed {result['protocol']['seed']}, {result['protocol']['part']}, full ranking)")
    for key, value in metrics.items():
        if isinstance(value, float):
            print(f"  {key:<18} {value:.4f}")
        elif not isinstance(value, dict):
            print(f"  {key:<18} {value}")
