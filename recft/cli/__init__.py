"""The ``recft`` command: argument parsing, config files, and one-line errors.

Each command group lives in its own module exposing ``register(subparsers)``; handlers
take the parsed ``argparse.Namespace`` and return an exit code.

Exit codes:
    0  success
    1  a run failed (training diverged, a notebook cell raised, a check did not pass)
    2  bad input or usage (missing file, malformed data, unknown dataset, bad flag)
    130 interrupted (Ctrl-C); resumable commands continue where they stopped when rerun
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from recft._version import __version__
from recft.cli.config_file import expand_config
from recft.cli.streams import command_streams
from recft.errors import RecftError

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130

# (module, stage) in the order `recft --help` lists them
COMMAND_MODULES: tuple[tuple[str, str], ...] = (
    ("recft.cli.demo", "getting started"),
    ("recft.cli.data", "data"),
    ("recft.cli.pretrain", "pretraining"),
    ("recft.cli.evaluate", "evaluation"),
    ("recft.cli.finetune", "fine-tuning"),
    ("recft.cli.rank", "fine-tuning"),
    ("recft.cli.notebooks", "notebooks and reports"),
    ("recft.cli.serving", "production"),
)

EPILOG = """examples:
  recft demo                                   synthetic data -> pretrain -> fine-tune -> report
  recft data describe ml-100k --data-dir data  counts, sparsity, time range, feature coverage
  recft pretrain --dataset ml-100k --split random:0.8,0.1,0.1 --seed 0 --out runs/base
  recft evaluate --checkpoint runs/base --dataset ml-100k --split random:0.8,0.1,0.1 --json
  recft finetune --checkpoint runs/base --dataset my.csv --split random:0.8,0.1,0.1 --out runs/ft
  recft recommend --checkpoint runs/ft --users users.parquet --k 100 --out recs.parquet

every command also reads flags from a YAML file: --config FILE (flags on the line win).
exit codes: 0 ok, 1 run failed, 2 bad input or usage, 130 interrupted.
"""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse's default prints the usage too: one line
        print(f"recft: error: {message} (see '{self.prog} --help')", file=sys.stderr)
        raise SystemExit(EXIT_USAGE)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="recft",
        description="Fine-tune pretrained torchrec recommenders.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"recft {__version__}")
    subparsers = parser.add_subparsers(
        dest="command", metavar="COMMAND", parser_class=_Parser, help="one of the commands above"
    )
    stages: dict[str, list[str]] = {}
    for module_name, stage in COMMAND_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as error:
            if error.name == module_name:
                continue  # command group not built yet
            raise
        before = set(subparsers.choices)
        module.register(subparsers)
        stages.setdefault(stage, []).extend(sorted(set(subparsers.choices) - before))
    for name, sub in subparsers.choices.items():
        _add_common_flags(sub)
    lines = []
    helps = {a.dest: a.help for a in subparsers._choices_actions}
    subparsers._choices_actions = []  # listed once, grouped by stage, in the description
    for stage, names in stages.items():
        lines.append(f"  {stage}:")
        lines += [f"    {n:<12} {helps.get(n) or ''}" for n in names]
    parser.description = "Fine-tune pretrained torchrec recommenders.\n\ncommands:\n" + "\n".join(lines)
    return parser


def _add_common_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("common options")
    group.add_argument("--config", metavar="FILE", help="YAML file of flag values (keys = flag names)")
    verbosity = group.add_mutually_exclusive_group()
    verbosity.add_argument("-v", "--verbose", action="store_true", help="debug logging, with the libraries' messages and warnings")
    verbosity.add_argument("-q", "--quiet", action="store_true", help="no progress bars, warnings only")
    if parser._subparsers is not None:  # nested groups (`recft data describe`) get them too
        for action in parser._subparsers._group_actions:
            for sub in getattr(action, "choices", {}).values():
                _add_common_flags(sub)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = parser.parse_args(expand_config(parser, argv))
    except RecftError as error:
        return _report(error)
    if not getattr(args, "command", None) or not hasattr(args, "handler"):
        parser.print_help()
        return EXIT_USAGE if not argv else EXIT_OK
    if args.quiet:
        import os

        os.environ["TQDM_DISABLE"] = "1"
    json_stdout = bool(getattr(args, "json", False) or getattr(args, "json_stdout", False))
    try:
        with command_streams(verbose=args.verbose, quiet=args.quiet, json_stdout=json_stdout):
            return int(args.handler(args) or EXIT_OK)
    except RecftError as error:
        if args.verbose:
            raise
        return _report(error)
    except KeyboardInterrupt:
        print("recft: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # `recft ... | head`: the reader left; no traceback for that
        _silence_stdout()
        return EXIT_FAILED


def _silence_stdout() -> None:
    """Point stdout at /dev/null so that Python's final flush does not fail again."""
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # not a real file (captured in tests): nothing to flush
        pass


def _report(error: RecftError) -> int:
    from recft.errors import TrainingError

    message = " ".join(str(error).split())
    if error.hint:  # on the same line: a script reading stderr gets one line per failure
        message += "; hint: " + " ".join(str(error.hint).split())
    print(f"recft: error: {message}", file=sys.stderr)
    return EXIT_FAILED if isinstance(error, TrainingError) else EXIT_USAGE
