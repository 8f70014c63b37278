"""The data's way through the packages only points down, and no module imports itself back.

Walks every import in src/mitobench (deferred ones inside functions included) and fails on an
import from a higher layer or on any cycle between modules. docs/architecture.md draws the same
layers.
"""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import REPO

SRC = REPO / "src" / "mitobench"

LAYERS: list[set[str]] = [
    {"mitobench", "errors", "paths", "progress", "config_file", "machine", "metrics", "reference", "configs"},
    {"data"},
    {"models"},
    {"train"},
    {"inference"},
    {"evaluate", "slides"},
    {"benchmark"},
    {"report"},
    {"console", "cli", "__main__"},
]
"""Lowest first: a package may import its own layer's leaves and anything below, never above."""


def _module_name(path: Path) -> str:
    rel = path.relative_to(SRC.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _imports(path: Path, name: str) -> set[str]:
    tree = ast.parse(path.read_text())
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("mitobench")}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join([*parts[: len(parts) - node.level + 1], base])
            if base.startswith("mitobench"):
                out.add(base)
                out |= {f"{base}.{a.name}" for a in node.names}
    return out


def _graph() -> dict[str, set[str]]:
    modules = {_module_name(p): p for p in SRC.rglob("*.py")}
    return {
        name: {m for m in _imports(path, name) if m in modules and m != name}
        for name, path in modules.items()
    }


def _layer(module: str) -> int:
    parts = module.split(".")
    top = parts[1] if len(parts) > 1 else "mitobench"
    for i, layer in enumerate(LAYERS):
        if top in layer:
            return i
    raise AssertionError(f"{module}: package {top!r} is in no layer of tests/test_architecture.py")


def test_imports_point_only_down() -> None:
    upward = [
        f"{src} -> {dst}" for src, targets in _graph().items() for dst in targets if _layer(dst) > _layer(src)
    ]
    assert not upward, "upward imports:\n" + "\n".join(sorted(upward))


def test_no_import_cycles() -> None:
    graph = _graph()
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append([*path[path.index(nxt) :], nxt] if nxt in path else [node, nxt])
            elif nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_the_metrics_package_is_a_leaf() -> None:
    graph = _graph()
    for module, targets in graph.items():
        if module.startswith("mitobench.metrics"):
            assert all(t.startswith("mitobench.metrics") for t in targets), (module, targets)
