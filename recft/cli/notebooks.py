"""``recft notebooks list|run`` and ``recft report``: notebooks into reports/, and back out."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

EXIT_OK, EXIT_FAILED = 0, 1

RUN_EPILOG = """examples:
  recft notebooks run 03_finetune -p EPOCHS=3 -p SMALL=true
  recft notebooks run 03 -f params.yaml --out /tmp/reports --run-id try1
values are YAML scalars: 3 is an int, 0.5 and 1e-3 floats, true a bool, null None;
quote to keep a string: -p 'SEED_NAME="3"'.
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    notebooks = subparsers.add_parser(
        "notebooks",
        help="list notebooks and their parameters; run one into reports/",
        description="Notebooks in notebooks/ run with papermill; each run lands in "
        "reports/<notebook>/<run-id>/ (executed .ipynb, HTML, metrics.json, figures/).",
    )
    notebooks.set_defaults(handler=lambda args: _usage(notebooks))
    commands = notebooks.add_subparsers(dest="subcommand", metavar="SUBCOMMAND",
                                        parser_class=type(notebooks))

    listing = commands.add_parser("list", help="each notebook's parameters and defaults")
    listing.add_argument("--dir", metavar="DIR", help="notebooks directory (default notebooks/)")
    listing.set_defaults(handler=_list)

    running = commands.add_parser(
        "run", help="execute a notebook into reports/<notebook>/<run-id>/", epilog=RUN_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    running.add_argument("notebook", metavar="NAME",
                         help="03_finetune, a unique prefix (03), or a path")
    running.add_argument("-p", "--parameter", action="append", default=[], metavar="KEY=VALUE",
                         help="set a parameter of the notebook's parameters cell (repeatable)")
    running.add_argument("-f", "--parameters-file", metavar="FILE",
                         help="YAML mapping of parameters (-p wins over it)")
    running.add_argument("--out", metavar="DIR", help="reports root (default reports/)")
    running.add_argument("--run-id", metavar="ID",
                         help="run directory name (default: UTC time + parameters hash)")
    running.add_argument("--kernel", metavar="NAME",
                         help="Jupyter kernel (default: the notebook's, else recft, else python3)")
    running.add_argument("--timeout", type=float, metavar="SECONDS", help="limit per cell")
    running.set_defaults(handler=_run)

    report = subparsers.add_parser(
        "report",
        help="compare two runs, or regenerate reports/index.html",
        description="Read run directories written by `recft notebooks run`.",
    )
    action = report.add_mutually_exclusive_group(required=True)
    action.add_argument("--compare", nargs=2, metavar=("RUN_A", "RUN_B"),
                        help="side-by-side metrics of two runs "
                        "(run directory, notebook/run-id, or run id)")
    action.add_argument("--index", action="store_true", help="regenerate <reports>/index.html")
    report.add_argument("--html", metavar="FILE",
                        help="with --compare: also write the table as HTML")
    report.add_argument("--reports", metavar="DIR", help="reports root (default reports/)")
    report.set_defaults(handler=_report)


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


def _list(args: argparse.Namespace) -> int:
    from recft.notebooks import list_notebooks
    from recft.notebooks.layout import notebooks_dir

    infos = list_notebooks(args.dir)
    if not infos:
        print(f"no notebooks in {args.dir or notebooks_dir()}")
        return EXIT_OK
    for info in infos:
        title = f"  {info.title}" if info.title else ""
        print(f"{info.name}{title}")
        if not info.has_parameters_cell:
            print("    (no cell tagged 'parameters')")
        width = max((len(p.name) + len(p.default) for p in info.parameters), default=0) + 3
        for parameter in info.parameters:
            assignment = f"{parameter.name} = {parameter.default}"
            comment = f"  # {parameter.comment}" if parameter.comment else ""
            print(f"    {assignment:<{width}}{comment}".rstrip())
    return EXIT_OK


def _run(args: argparse.Namespace) -> int:
    from recft.notebooks import NotebookError, run
    from recft.notebooks.params import load_parameter_file, parse_assignments

    parameters = load_parameter_file(args.parameters_file) if args.parameters_file else {}
    parameters.update(parse_assignments(args.parameter))
    try:
        result = run(args.notebook, parameters, args.out, run_id=args.run_id, kernel=args.kernel,
                     timeout=args.timeout, progress=not args.quiet)
    except NotebookError as error:
        # a failed run is exit 1 (not a usage error), and the partial outputs are worth a look
        print(f"recft: error: {' '.join(str(error).split())}", file=sys.stderr)
        if error.run_dir is not None:
            print(f"recft: partial outputs: {error.run_dir}", file=sys.stderr)
        return EXIT_FAILED
    print(f"run:     {result.run_dir}")
    print(f"html:    {result.html_path}")
    print(f"wall:    {result.wall_time_s:.1f} s")
    from recft.notebooks.record import MetricsTable

    if result.metrics:
        print("metrics:")
        print("\n".join(f"  {line}" for line in repr(MetricsTable(result.metrics)).splitlines()))
    else:
        print("metrics: none recorded (the notebook did not call recft.notebooks.record)")
    return EXIT_OK


def _report(args: argparse.Namespace) -> int:
    from recft.errors import RecftError
    from recft.io import atomic_write_text
    from recft.notebooks.reports import compare_runs, write_index

    if args.index:
        if args.html:
            raise RecftError("--html goes with --compare")
        print(write_index(args.reports))
        return EXIT_OK
    comparison = compare_runs(*args.compare, root=args.reports)
    sys.stdout.write(comparison.to_text())
    if args.html:
        atomic_write_text(Path(args.html), comparison.to_html())
        print(f"html: {args.html}")
    return EXIT_OK
