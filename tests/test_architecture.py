"""The imports of src/mitobench follow the diagram of docs/architecture.md, and no module imports
itself back.

The allowed imports are read from the diagram itself (its mermaid block: node ids, arrows, and
the modules each node's label names on its first line), so the picture and the rule cannot drift
apart. Walks every import (deferred ones inside functions included) and fails on one the arrows
do not allow, or on any cycle between modules.
"""

from __future__ import annotations

import ast
import re
from functools import cache
from pathlib import Path

from tests.conftest import REPO

SRC = REPO / "src" / "mitobench"
DOC = REPO / "docs" / "architecture.md"

_NODE = re.compile(r'(\w+)\["([^"]*)"\]')
_EDGE = re.compile(r"(\w+)(?:\[\"[^\"]*\"\])?\s*-->\s*(\w+)")


def parse_diagram(text: str) -> tuple[dict[str, str], dict[str, set[str]]]:
    """(module or package -> node id, node id -> the node ids it may import, transitively)."""
    block = text.split("```mermaid", 1)[1].split("```", 1)[0]
    owner: dict[str, str] = {}
    for node, label in _NODE.findall(block):
        for token in re.split(r"[,\s]+", label.split("<br/>")[0]):
            name = token.strip().rstrip("/").removesuffix(".py")
            if name:
                owner["mitobench" if name == "__init__" else name] = node
    direct: dict[str, set[str]] = {n: set() for n in owner.values()}
    for src, dst in _EDGE.findall(block):
        direct.setdefault(src, set()).add(dst)
        direct.setdefault(dst, set())
    allowed = {}
    for node in direct:
        seen, todo = {node}, [node]
        while todo:
            for nxt in direct[todo.pop()]:
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        allowed[node] = seen
    return owner, allowed


@cache
def _diagram() -> tuple[dict[str, str], dict[str, set[str]]]:
    return parse_diagram(DOC.read_text())


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


def _node(module: str) -> str:
    parts = module.split(".")
    top = parts[1] if len(parts) > 1 else "mitobench"
    owner, _ = _diagram()
    if top == "__main__":
        top = "cli"
    assert top in owner, f"{module}: {top!r} is in no node of the diagram in docs/architecture.md"
    return owner[top]


def test_imports_follow_the_diagram() -> None:
    _, allowed = _diagram()
    wrong = [
        f"{src} -> {dst}"
        for src, targets in _graph().items()
        for dst in targets
        if _node(dst) not in allowed[_node(src)]
    ]
    assert not wrong, "imports the diagram does not allow:\n" + "\n".join(sorted(wrong))


def test_every_package_is_drawn() -> None:
    owner, _ = _diagram()
    tops = {p.name for p in SRC.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    tops |= {p.stem for p in SRC.glob("*.py") if p.stem not in {"__init__", "__main__"}}
    assert tops - set(owner) == set(), f"not in the diagram: {sorted(tops - set(owner))}"


def test_the_rule_read_from_the_diagram_catches_a_sideways_and_an_upward_import() -> None:
    """The parser itself: evaluate may not import slides (siblings), train may not import
    inference (up), report may import data (down, transitively)."""
    owner, allowed = _diagram()
    assert owner["console"] == "cli" and owner["metrics"] == owner["errors"] == "leaves"
    assert "slides" not in allowed["evaluate"] and "inference" not in allowed["train"]
    assert {"data", "leaves", "runs"} <= allowed["report"] and "cli" not in allowed["report"]
    toy_owner, toy_allowed = parse_diagram('```mermaid\na["a.py<br/>x"] --> b\nb["b/, c.py"]\n```')
    assert toy_owner == {"a": "a", "b": "b", "c": "b"} and toy_allowed == {"a": {"a", "b"}, "b": {"b"}}


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
