"""The layout docs/architecture.md describes: module-level imports form no circle, and the package's top level
stays small (one concept per module; related modules live in subpackages)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "gadbench"


def _module(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """gadbench modules imported at module level (imports inside functions run later and form no circle)."""
    found = set()
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
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


def test_module_level_imports_form_no_circle():
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


def test_the_worked_example_of_a_new_variant_needs_one_record_and_a_yaml_entry(tmp_path, monkeypatch):
    """docs/architecture.md's example, as written there: a Method record and a suite entry are all it takes
    for the dry run, training and the budget counters."""
    import gadbench.methods as methods
    from gadbench.config import get_suite, runs_of
    from gadbench.runner import plan
    from gadbench.trainer import Trainer

    def _gad_d_first_stages(spec, steps: int) -> list:
        return [(methods.D_FIT, spec.train.d_only_steps)] + methods._gad_stages(spec, steps)

    monkeypatch.setitem(methods.METHODS, "gad-d-first", methods.Method("gad-d-first", _gad_d_first_stages,
                                                                       lambda m: True))
    monkeypatch.setenv("GADBENCH_CACHE", str(PACKAGE.parent / "results" / "cache"))
    names = [m for m in get_suite("smoke").methods]
    suite = get_suite("smoke", [*(f"methods.{m}=null" for m in names),
                                "methods.gad-d-first={kind: gad-d-first, description: D first}",
                                "train.steps=4", "train.warmup_steps=2", "train.d_only_steps=1", "train.batch_size=4",
                                "train.group_size=2", "train.max_response_tokens=12", "data.train.limit=8",
                                "data.validation_size=0", "train.checkpoint_every=100"])
    assert plan(suite)["runs"][0]["stages"] == "d-fit 1 + warmup 2 + adversarial 2"
    (spec,) = runs_of(suite)
    from gadbench.rundata import load_run_data, run_teacher

    meter = Trainer(spec, tmp_path / "run", load_run_data(spec, run_teacher(spec)), progress=False).train()
    assert meter.per_stage["d-fit"].d_optimizer_steps == 1 and meter.per_stage["d-fit"].g_optimizer_steps == 0
    assert meter.totals.steps == 5
