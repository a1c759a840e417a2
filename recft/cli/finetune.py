"""``recft finetune`` and ``recft compare``: fine-tune a checkpoint; prove when it helps."""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

from recft.cli.common import add_dataset_args, add_split_args, load_dataset, print_json
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
    tune.set_defaults(handler=_finetune, json_stdout=True)  # the JSON summary is all of stdout

    compare = subparsers.add_parser(
        "compare",
        help="popularity / scratch / zero-shot / frozen / frozen+full / adapters across data fractions",
        description="On one split of the target, train every strategy at several fractions of the "
        "target's training data and write comparison.json (test metrics and compute per row) "
        "and comparison.md. Either give --checkpoint and --dataset, or --scenario to pretrain "
        "the preset's base model first.",
        epilog="examples:\n  recft compare --checkpoint runs/base --dataset my.csv --split random:0.8,0.1,0.1 "
        "--seed 0 --fractions 0.05,0.1,0.25,0.5,1.0 --out runs/compare\n"
        "  recft compare --scenario music --data-dir ../shared/data --out runs/music",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    source = compare.add_mutually_exclusive_group(required=True)
    source.add_argument("--checkpoint", metavar="DIR", help="base checkpoint (with --dataset)")
    source.add_argument("--scenario", metavar="NAME",
                        help="preset: synthetic, movies, movies-temporal, music")
    add_dataset_args(compare, required=False)
    add_split_args(compare)
    compare.add_argument("--fractions", default="0.05,0.1,0.25,0.5,1.0", metavar="F,F",
                         help="fractions of the target's training interactions")
    compare.add_argument("--strategies", metavar="S,S",
                         help="subset of popularity,scratch,zero-shot,frozen,frozen+full,adapters")
    compare.add_argument("--pretrain-epochs", type=int, default=10, help="with --scenario")
    compare.add_argument("--size", default="demo", help="synthetic scenario size preset")
    compare.add_argument("--out", required=True, metavar="DIR")
    compare.set_defaults(handler=_compare)


@locks_outputs("out", resume=True)  # one writer per --out and <out>.resume
def _finetune(args: argparse.Namespace) -> int:
    from recft.data import split as make_split
    from recft.evaluate import evaluate
    from recft.finetune import finetune
    from recft.models.checkpoint import load_pretrained
    from recft.run_record import training_record

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
                      progress=not args.quiet, verbose=not args.quiet, resume_dir=resume_dir)
    known = parts.known("test")
    metrics = evaluate(result.scorer(), parts.test, exclude=known, history=known, segments=True)
    training = training_record(args.dataset, parts, metrics, finetune=result.to_dict(),
                               wall_time_s=round(time.time() - started, 2))
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
    from recft.finetune import STRATEGIES, compare
    from recft.finetune.comparison_table import comparison_markdown

    fractions = _floats(args.fractions, "--fractions")
    strategies = tuple(args.strategies.split(",")) if args.strategies else STRATEGIES
    if args.scenario:
        from recft.finetune.scenario_run import run_scenario
        from recft.finetune.scenarios import make_scenario

        scenario = make_scenario(args.scenario, data_dir=args.data_dir, seed=args.seed,
                                 size=args.size)
        rows = run_scenario(scenario, args.out, seed=args.seed, fractions=fractions,
                            strategies=strategies, pretrain_epochs=args.pretrain_epochs,
                            progress=not args.quiet, log=None if args.quiet else print)
    else:
        if not args.dataset:
            raise DataError("--checkpoint needs --dataset (a name or a file of the target domain)")
        target = load_dataset(args)
        rows = compare(args.checkpoint, target, args.split, seed=args.seed, fractions=fractions,
                       strategies=strategies, out=args.out, progress=not args.quiet,
                       log=None if args.quiet else print)
        from recft.io import atomic_write_text

        atomic_write_text(Path(args.out) / "comparison.md",
                          f"# {args.dataset} from {args.checkpoint}\n\n{comparison_markdown(rows)}")
    print(comparison_markdown(rows))
    print(f"wrote {Path(args.out) / 'comparison.json'}")
    return 0


def _floats(text: str, flag: str) -> tuple[float, ...]:
    from recft.errors import DataError

    try:
        values = tuple(float(v) for v in str(text).split(","))
    except ValueError:
        raise DataError(f"{flag} must be comma-separated numbers, got {text!r}") from None
    if not all(0 < v <= 1 for v in values):
        raise DataError(f"{flag} values must be in (0, 1], got {text!r}")
    return values
