"""``--config FILE``: a YAML file of flag values, expanded into flags before parsing.

Expanding (rather than setting parser defaults after a first parse) lets the file supply
required flags such as ``--dataset`` or ``--out``; values are inserted right after the
command's name, so flags written on the command line come later and win.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from recft.errors import DataError

NOT_FROM_FILES = ("help", "config", "version")


def config_path(argv: Sequence[str]) -> str | None:
    """The value of ``--config`` in ``argv`` (``--config F`` or ``--config=F``), if any."""
    for index, token in enumerate(argv):
        if token == "--":
            return None
        if token == "--config":
            if index + 1 >= len(argv):
                raise DataError("--config needs a file name")
            return argv[index + 1]
        if token.startswith("--config="):
            return token.split("=", 1)[1]
    return None


def read_config(path: str) -> dict[str, Any]:
    """The mapping in a YAML (or JSON) file; errors name the file."""
    import yaml

    file = Path(path)
    if not file.is_file():
        raise DataError("config file not found", path=file)
    try:
        values = yaml.safe_load(file.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as error:
        raise DataError(f"not valid YAML: {' '.join(str(error).split())}", path=file) from None
    if not isinstance(values, dict):
        raise DataError("expected a mapping of flag names to values", path=file)
    return values


def expand_config(parser: argparse.ArgumentParser, argv: Sequence[str]) -> list[str]:
    """``argv`` with the config file's values inserted as flags after the command name."""
    argv = list(argv)
    path = config_path(argv)
    if path is None:
        return argv
    values = read_config(path)
    command, depth = _command_parser(parser, argv)
    if command is parser:
        raise DataError("--config applies to a command, e.g. `recft pretrain --config run.yaml`")
    options = {a.dest: a for a in command._actions
               if a.option_strings and a.dest not in NOT_FROM_FILES}
    tokens: list[str] = []
    for key, value in values.items():
        action = options.get(str(key).replace("-", "_"))
        if action is None:
            raise DataError(f"unknown option {key!r} for `recft {' '.join(argv[:depth])}`; "
                            f"valid: {', '.join(sorted(options))}", path=path)
        tokens += _flag_tokens(action, value)
    return argv[:depth] + tokens + argv[depth:]


def _command_parser(parser: argparse.ArgumentParser,
                    argv: list[str]) -> tuple[argparse.ArgumentParser, int]:
    """The (sub)parser named by argv's leading command words, and how many words that is."""
    current, depth = parser, 0
    while depth < len(argv) and current._subparsers is not None:
        choices: dict[str, argparse.ArgumentParser] = {}
        for action in current._subparsers._group_actions:
            choices.update(getattr(action, "choices", {}) or {})
        if argv[depth] not in choices:
            break
        current = choices[argv[depth]]
        depth += 1
    return current, depth


def _flag_tokens(action: argparse.Action, value: Any) -> list[str]:
    flag = max(action.option_strings, key=len)
    if value is None:
        return []
    if isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction)):
        wanted = isinstance(action, argparse._StoreTrueAction)
        return [flag] if bool(value) == wanted else []
    if isinstance(value, (list, tuple)):
        if isinstance(action, argparse._AppendAction):
            return [token for item in value for token in (flag, _text(item))]
        if action.nargs in ("+", "*") or isinstance(action.nargs, int):
            return [flag, *(_text(item) for item in value)]
        return [flag, ",".join(_text(item) for item in value)]  # e.g. fractions: [0.1, 0.5]
    return [flag, _text(value)]


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
