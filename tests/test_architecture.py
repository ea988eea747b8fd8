"""The layout docs/architecture.md describes: imports form no circle (those inside functions included), nothing
imports the command line, and the package's top level stays small (one concept per module; related modules live in
subpackages)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "gadbench"


def _module(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """gadbench modules imported anywhere in the file, at module level or inside functions."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
    return {m for m in found if m.startswith("gadbench")}


def _graph() -> dict[str, set[str]]:
    modules = {_module(p): p for p in PACKAGE.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        targets = set()
        for imp in _imports(path):
            while imp not in modules and "." in imp:
                imp = imp.rsplit(".", 1)[0]  # `from gadbench.x import name`: the module is gadbench.x
            if imp in modules and imp != name:
                targets.add(imp)
        graph[name] = targets
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1 on the stack, 2 done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_imports_form_no_circle():
    graph = _graph()
    assert graph["gadbench.trainer"]  # the walk sees imports
    # a package's __init__ importing its own submodules is how packages export; only real cycles count
    inner = {m: {t for t in ts if not (m.count(".") == 1 and t.startswith(m + "."))} for m, ts in graph.items()}
    cycle = _cycle(inner)
    assert cycle is None, "import circle: " + " -> ".join(cycle)


def test_the_detector_finds_a_circle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_fewer_than_15_top_level_modules():
    top = sorted(p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__")
    assert len(top) < 15, top


def test_nothing_imports_the_command_line():
    graph = _graph()
    assert not [m for m, targets in graph.items() if "gadbench.cli" in targets]
    commands = [m for m in graph if m.startswith("gadbench.commands.")]
    assert not [m for m, targets in graph.items() if set(commands) & targets and not m.startswith("gadbench.commands")
                and m != "gadbench.cli"]
