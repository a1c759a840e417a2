"""``recft finetune`` and ``recft compare``: fine-tune a checkpoint; prove when it helps."""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

from recft.cli.common import add_dataset_args, add_split_args, load_dataset, print_json
from recft.cli.launch import add_launch_args, dispatch
from recft.locks import locks_outputs

PRESETS = ("default", "frozen-only", "adapters")


def register(subparsers: argparse._SubParsersAction) -> None:
    tune = subparsers.add_parser(
        "finetune",
        help="fine-tune a checkpoint on a dataset: frozen stage, then full (or a recipe file)",
        description="Align the dataset's ids with the checkpoint (tables grow for new users and "
        "items, pretrained rows kept bit-for-bit), attach new task towers, run the recipe's "
        "stages, evaluate on the test part and save a checkpoint that records its base and recipe. "
        "A killed run resumes from <out>.resume when started again with the same flags.",
        epilog="example: recft finetune --checkpoint runs/base --dataset lastfm-2k "
        "--split random:0.8,0.1,0.1 --recipe recipe.yaml --out runs/lastfm",
    )
    tune.add_argument("--checkpoint", required=True, metavar="DIR", help="base checkpoint")
    add_dataset_args(tune)
    add_split_args(tune)
    tune.add_argument("--recipe", metavar="FILE", help="recipe YAML/JSON (recft.finetune.Recipe)")
    tune.add_argument("--preset", choices=PRESETS, default="default",
                      help="recipe preset when no --recipe is given (default: frozen -> full)")
    tune.add_argument("--out", required=True, metavar="DIR", help="fine-tuned checkpoint to write")
    add_launch_args(tune)
    tune.set_defaults(handler=_run_finetune, json_stdout=True)  # the JSON summary is all of stdout

    compare = subparsers.add_parser(
        "compare",
        help="baselines (popularity, EASE, item-kNN) and fine-tuning strategies across data "
        "fractions, with 95%% intervals",
        description="On one split of the target per seed, fit the baselines (popularity, ease, "
        "itemknn on the target fraction; ease-source, itemknn-source on source + target fraction "
        "when the source is known) and train recft's strategies (scratch, zero-shot, frozen, "
        "frozen+full, adapters, and blend: frozen+full mixed with the item-item baseline that "
        "scored best on valid) at several fractions of the target's training data. Writes "
        "comparison.json (test metrics, 95% bootstrap intervals over test users, the paired "
        "verdict against the best baseline, compute per row), comparison_protocol.json and "
        "comparison.md. Either give --checkpoint and --dataset (and --source for the "
        "source-fitted baselines), or --scenario to pretrain the preset's base model first.",
        epilog="examples:\n  recft compare --checkpoint runs/base --dataset my.csv --source "
        "source.csv --seeds 0,1,2 --fractions 0.05,0.1,0.25,0.5,1.0 --out runs/compare\n"
        "  recft compare --scenario music --data-dir ../shared/data --out runs/music",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    source = compare.add_mutually_exclusive_group(required=True)
    source.add_argument("--checkpoint", metavar="DIR", help="base checkpoint (with --dataset)")
    source.add_argument("--scenario", metavar="NAME",
                        help="preset: synthetic, movies, movies-temporal, music")
    add_dataset_args(compare, required=False)
    add_split_args(compare)
    compare.add_argument("--source", metavar="NAME|PATH",
                         help="with --checkpoint: the source domain's interactions (name or "
                         "file), for the ease-source and itemknn-source baselines")
    compare.add_argument("--seeds", metavar="S,S",
                         help="several seeds (split, fractions, training; with --scenario also "
                         "the cohort): means, spreads and intervals over all of them "
                         "(default: --seed; movies, movies-temporal, music: 0,1,2)")
    compare.add_argument("--fractions", default="0.05,0.1,0.25,0.5,1.0", metavar="F,F",
                         help="fractions of the target's training interactions")
    compare.add_argument("--strategies", metavar="S,S",
                         help="subset of popularity,ease,itemknn,ease-source,itemknn-source,"
                         "scratch,zero-shot,frozen,frozen+full,adapters,blend")
    compare.add_argument("--ease-max-items", type=int, metavar="N",
                         help="refuse EASE rows fitted on more items than this (dense N x N "
                         "matrices, 4 N^2 bytes each; default 30000)")
    compare.add_argument("--pretrain-epochs", type=int, default=10, help="with --scenario")
    compare.add_argument("--size", default="demo", help="synthetic scenario size preset")
    compare.add_argument("--out", required=True, metavar="DIR")
    # no --seed means the preset's seeds (or 0), so its default is None here
    compare.set_defaults(handler=_compare, seed=None)


def _run_finetune(args: argparse.Namespace) -> int:
    return dispatch(args, _finetune_locked, _finetune)  # --nproc / torchrun: sharded (launch.py)


@locks_outputs("out", resume=True)  # one writer per --out and <out>.resume (rank 0's)
def _finetune_locked(args: argparse.Namespace) -> int:
    return _finetune(args)


def _finetune(args: argparse.Namespace) -> int:
    from recft.data import split as make_split
    from recft.evaluate import evaluate
    from recft.finetune import finetune
    from recft.models.checkpoint import load_pretrained
    from recft.run_record import training_record
    from recft.train.sharding import parse_sharding

    context = args.distributed
    started = time.time()
    recipe = _recipe(args)
    model = load_pretrained(args.checkpoint)
    interactions = load_dataset(args)
    parts = make_split(interactions, args.split, seed=args.seed)
    out = Path(args.out)
    # a sibling of --out (like `recft pretrain`): a killed run resumes from it when rerun
    resume_dir = out.with_name(out.name + ".resume")
    result = finetune(model, parts.train, recipe, valid=parts.valid,
                      valid_history=parts.known("valid"), base=args.checkpoint,
                      progress=not args.quiet, verbose=not args.quiet,
                      resume_dir=resume_dir,  # sharded: a DCP state the same --nproc resumes
                      distributed=context, sharding=parse_sharding(args.sharding))
    known = parts.known("test")  # every rank ranks the catalog for its share of test users
    metrics = evaluate(result.scorer(), parts.test, exclude=known, history=known, segments=True,
                       distributed=context)
    if context is not None and not context.is_main:
        return 0  # rank 0 writes the (gathered, portable) checkpoint
    extra = {} if context is None else {"distributed": context.record()}
    training = training_record(args.dataset, parts, metrics, finetune=result.to_dict(),
                               wall_time_s=round(time.time() - started, 2), **extra)
    result.save(args.out, training=training)
    shutil.rmtree(resume_dir, ignore_errors=True)  # the checkpoint supersedes the resume state
    alignment = result.alignment.to_dict()
    print_json({"checkpoint": args.out, "base": args.checkpoint, "alignment": alignment,
                "protocol": training["protocol"], "metrics": training["metrics"],
                "compute": result.to_dict()["compute"]})
    return 0


def _recipe(args: argparse.Namespace):
    from recft.finetune import Recipe

    if args.recipe:
        return Recipe.load(args.recipe)
    return {"default": Recipe.default, "frozen-only": Recipe.frozen_only,
            "adapters": Recipe.adapters}[args.preset](seed=args.seed)


@locks_outputs("out")
def _compare(args: argparse.Namespace) -> int:
    from recft.errors import DataError
    from recft.finetune.compare import compare, default_strategies
    from recft.finetune.comparison_table import comparison_markdown
    from recft.models.baselines import EASE_MAX_ITEMS

    fractions = _floats(args.fractions, "--fractions")
    has_source = bool(args.scenario or args.source)
    strategies = (tuple(args.strategies.split(",")) if args.strategies
                  else default_strategies(has_source))
    max_items = args.ease_max_items or EASE_MAX_ITEMS
    log = None if args.quiet else print
    if args.scenario:
        from recft.finetune.scenario_run import run_scenario
        from recft.finetune.scenarios import DEFAULT_SEEDS, scenario_draws

        draws = scenario_draws(args.scenario, data_dir=args.data_dir, size=args.size)
        seeds = _seeds(args, DEFAULT_SEEDS[args.scenario])
        rows = run_scenario(draws, args.out, seeds=seeds, fractions=fractions,
                            strategies=strategies, pretrain_epochs=args.pretrain_epochs,
                            ease_max_items=max_items, progress=not args.quiet, log=log)
    else:
        if not args.dataset:
            raise DataError("--checkpoint needs --dataset (a name or a file of the target domain)")
        target = load_dataset(args)
        source = load_dataset(args, args.source) if args.source else None
        rows = compare(args.checkpoint, target, args.split, fractions=fractions,
                       strategies=strategies, out=args.out, source=source,
                       seeds=_seeds(args, (0,)), ease_max_items=max_items,
                       title=f"{args.dataset} from {args.checkpoint}",
                       progress=not args.quiet, log=log)
    print(comparison_markdown(rows))
    print(f"wrote {Path(args.out) / 'comparison.json'}")
    return 0


def _seeds(args: argparse.Namespace, default: tuple[int, ...]) -> tuple[int, ...]:
    """--seeds, else an explicit --seed, else ``default``."""
    from recft.errors import DataError

    if args.seeds:
        try:
            return tuple(int(v) for v in args.seeds.split(","))
        except ValueError:
            raise DataError(f"--seeds must be comma-separated integers, got {args.seeds!r}") from None
    return (args.seed,) if args.seed is not None else default


def _floats(text: str, flag: str) -> tuple[float, ...]:
    from recft.errors import DataError

    try:
        values = tuple(float(v) for v in str(text).split(","))
    except ValueError:
        raise DataError(f"{flag} must be comma-separated numbers, got {text!r}") from None
    if not all(0 < v <= 1 for v in values):
        raise DataError(f"{flag} values must be in (0, 1], got {text!r}")
    return values
