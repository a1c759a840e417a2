"""The package's layering: lower layers never import fine-tuning, and no import cycles."""

from __future__ import annotations

import ast
from pathlib import Path

import recft

ROOT = Path(recft.__file__).parent
# layers below fine-tuning: models are models, serving serves any model, the engine trains
# any setup, evaluation ranks any scorer
BELOW_FINETUNE = ("recft.data", "recft.models", "recft.serving", "recft.train", "recft.evaluate",
                  "recft.text")


def _modules() -> dict[str, Path]:
    modules = {}
    for path in ROOT.rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        parts = parts[:-1] if parts[-1] == "__init__" else parts
        modules[".".join(("recft", *parts))] = path
    return modules


def _imports(path: Path, name: str, known: set[str], *, top_level_only: bool) -> set[str]:
    """recft modules ``path`` imports (module level only, or anywhere)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join([*base, module] if module else base)
            for alias in node.names:
                full = f"{module}.{alias.name}"
                found.add(full if full in known else module)
    return {m for m in found if m in known and m != name}


def test_lower_layers_never_import_finetune() -> None:
    modules = _modules()
    offenders = []
    for name, path in modules.items():
        if name.startswith(BELOW_FINETUNE):
            imported = _imports(path, name, set(modules), top_level_only=False)
            offenders += [f"{name} -> {m}" for m in imported if m.startswith("recft.finetune")]
    assert not offenders, offenders


def test_no_module_level_import_cycle() -> None:
    modules = _modules()
    graph = {name: _imports(path, name, set(modules), top_level_only=True)
             for name, path in modules.items()}
    assert "recft.train.fit" in graph["recft.train.pretrain"]  # the walk sees imports

    done: set[str] = set()

    def cycle_from(start: str, trail: tuple[str, ...]) -> tuple[str, ...] | None:
        for follower in sorted(graph[start]):
            if follower in trail:
                return (*trail[trail.index(follower):], follower)
            if follower in done:
                continue
            if (found := cycle_from(follower, (*trail, follower))) is not None:
                return found
        done.add(start)
        return None

    for name in sorted(graph):
        assert cycle_from(name, (name,)) is None
