"""Read a notebook's ``parameters`` cell, and parse parameter values given on a command line."""

from __future__ import annotations

import ast
import io
import json
import re
import tokenize
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from recft.errors import RecftError
from recft.notebooks.layout import notebooks_dir

_NUMBER = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$")


@dataclass(frozen=True)
class Parameter:
    """One assignment in a parameters cell.

    Attributes:
        name: the variable, e.g. ``EPOCHS``.
        default: the right-hand side as written, e.g. ``"3"`` or ``'"movielens-100k"'``.
        comment: the comment on that line (or the comment lines just above), without ``#``.
        line: 1-based line in the cell.
    """

    name: str
    default: str
    comment: str = ""
    line: int = 0

    @property
    def value(self) -> Any:
        """The default as a Python value when it is a literal, else the source text."""
        try:
            return ast.literal_eval(self.default)
        except (ValueError, SyntaxError):
            return self.default


@dataclass(frozen=True)
class NotebookInfo:
    """A notebook's name, title, kernel and parameters, read without executing it."""

    name: str
    path: Path
    title: str = ""
    kernel: str | None = None
    parameters: list[Parameter] = field(default_factory=list)
    has_parameters_cell: bool = False

    def defaults(self) -> dict[str, Any]:
        return {p.name: p.value for p in self.parameters}


def read_notebook_info(path: str | Path) -> NotebookInfo:
    """Parse a notebook's first markdown title and its ``parameters``-tagged cell.

    Raises:
        RecftError: the file is not a notebook, or the parameters cell is not valid Python.
    """
    path = Path(path)
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
        cells = document["cells"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise RecftError(f"{path}: not a readable notebook ({error})") from None
    title, source, found = "", None, False
    for cell in cells:
        text = _source(cell)
        if not title and cell.get("cell_type") == "markdown":
            heading = re.search(r"^#\s+(.+)$", text, re.MULTILINE)
            title = heading.group(1).strip() if heading else ""
        if not found and cell.get("cell_type") == "code" and "parameters" in cell.get(
                "metadata", {}).get("tags", []):
            source, found = text, True
    kernel = document.get("metadata", {}).get("kernelspec", {}).get("name")
    parameters = parse_parameters_cell(source, origin=path) if source is not None else []
    return NotebookInfo(path.stem, path, title, kernel, parameters, found)


def list_notebooks(directory: str | Path | None = None) -> list[NotebookInfo]:
    """Every ``*.ipynb`` in ``directory`` (default: the repository's ``notebooks/``), by name."""
    directory = Path(directory) if directory is not None else notebooks_dir()
    if not directory.is_dir():
        return []
    return [read_notebook_info(p) for p in sorted(directory.glob("*.ipynb"))]


def parse_parameters_cell(source: str, origin: object = "parameters cell") -> list[Parameter]:
    """The top-level ``NAME = value`` / ``NAME: type = value`` statements of a cell, in order."""
    try:
        tree = ast.parse(source)
    except SyntaxError as error:
        raise RecftError(f"{origin}: parameters cell line {error.lineno}: {error.msg}") from None
    comments = _comments_by_line(source)
    lines = source.splitlines()
    parameters = []
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target, value = node.targets[0], node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            target, value = node.target, node.value
        else:
            continue
        if not isinstance(target, ast.Name):
            continue
        default = ast.get_source_segment(source, value) or ""
        comment = comments.get(node.end_lineno, "") or comments.get(node.lineno, "")
        if not comment:
            comment = _comment_block_above(lines, comments, node.lineno)
        parameters.append(Parameter(target.id, default, comment, node.lineno))
    return parameters


def _source(cell: dict) -> str:
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else source


def _comments_by_line(source: str) -> dict[int, str]:
    comments: dict[int, str] = {}
    try:
        for token in tokenize.generate_tokens(io.StringIO(source).readline):
            if token.type == tokenize.COMMENT:
                comments[token.start[0]] = token.string.lstrip("#").strip()
    except (tokenize.TokenError, SyntaxError):
        pass  # ast already accepted the cell; a tokenizer hiccup only loses comments
    return comments


def _comment_block_above(lines: list[str], comments: dict[int, str], lineno: int) -> str:
    """recommenders style puts the comment on its own line(s) above the assignment."""
    block: list[str] = []
    line = lineno - 1
    while line >= 1 and lines[line - 1].lstrip().startswith("#"):
        block.insert(0, comments.get(line, ""))
        line -= 1
    return " ".join(text for text in block if text)


def parse_value(text: str) -> Any:
    """A command-line value as a YAML scalar: ``3`` -> 3, ``true`` -> True, ``1e-3`` -> 0.001.

    PyYAML reads ``1e-3`` as a string (YAML 1.1 wants a dot), so numbers are retried.
    An empty value is the empty string, not None (write ``null`` for None).
    """
    import yaml

    if text == "":
        return ""
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    if isinstance(value, str) and _NUMBER.match(text.strip()):  # unquoted only: '3' stays a str
        return float(value)
    return value


def parse_assignments(items: list[str] | None) -> dict[str, Any]:
    """``["EPOCHS=3", "NAME=x"]`` -> ``{"EPOCHS": 3, "NAME": "x"}``.

    Raises:
        RecftError: an item has no ``=`` or an empty name.
    """
    result: dict[str, Any] = {}
    for item in items or []:
        name, sep, text = item.partition("=")
        if not sep or not name.strip():
            raise RecftError(f"expected KEY=VALUE, got {item!r}")
        result[name.strip()] = parse_value(text)
    return result


def load_parameter_file(path: str | Path) -> dict[str, Any]:
    """A YAML (or JSON) mapping of parameter names to values."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise RecftError(f"parameters file not found: {path}")
    try:
        values = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise RecftError(f"{path}: not valid YAML: {error}") from None
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise RecftError(f"{path}: expected a mapping of parameter names to values")
    return {str(key): value for key, value in values.items()}


def check_parameters(info: NotebookInfo, parameters: dict[str, Any]) -> None:
    """Refuse names the parameters cell does not define: papermill would inject them silently.

    Raises:
        RecftError: unknown names (the message lists the valid ones), or no parameters cell.
    """
    if not parameters:
        return
    if not info.has_parameters_cell:
        raise RecftError(f"notebook {info.name!r} has no cell tagged 'parameters'; "
                         f"cannot set {', '.join(sorted(parameters))}")
    known = {p.name for p in info.parameters}
    unknown = sorted(set(parameters) - known)
    if unknown:
        raise RecftError(f"unknown parameter(s) {', '.join(unknown)} for notebook {info.name!r}; "
                         f"valid: {', '.join(sorted(known)) or 'none'}")
