"""The import graph, read from the source: layers stack one way and no module imports itself through others.

``core`` < ``datasets`` < ``impls`` < ``eval`` < ``reports``; inside ``eval`` the pure scoring functions and the
typed profile sit below the timing tools, the harness below the gates, and the command line above all. Every
import counts, also one inside a function: a lazy import still runs back up at run time.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("core", "datasets", "impls", "eval", "reports")
# (prefix, rank): the longest matching prefix decides; an import may go to the same rank or below, never above.
RANKS = (
    ("core", 0),
    ("datasets", 1),
    ("impls", 2),
    ("eval", 3),
    ("eval.scoring", 3),
    ("eval.config", 4),
    ("eval.environment", 4),
    ("eval.timing", 5),
    ("eval.contract", 5),  # what crosses a process: the task and its rows
    ("eval.models", 6),  # one plug-in per model, below the model-blind bench
    ("eval.bench", 7),
    ("eval.gates", 8),
    ("eval.history", 7),  # beside the bench: it keeps finished runs (the bench records each one)
    ("eval.__main__", 9),
    ("reports", 10),
)


def rank(module: str) -> int:
    found = [(len(prefix), r) for prefix, r in RANKS if module == prefix or module.startswith(prefix + ".")]
    return max(found)[1]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def resolve(name: str) -> str | None:
    """The project module an import names (a submodule if it is one, else its package); None outside the project."""
    if name.split(".")[0] not in PACKAGES:
        return None
    while name:
        base = ROOT.joinpath(*name.split("."))
        if base.with_suffix(".py").is_file() or (base / "__init__.py").is_file():
            return name
        name = name.rpartition(".")[0]
    return None


def graph() -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if "example" in path.parts or "runs" in path.parts:
                continue
            name = module_name(path)
            found = set()
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                targets = []
                if isinstance(node, ast.Import):
                    targets = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    targets = [f"{node.module}.{alias.name}" for alias in node.names]
                for target in targets:
                    module = resolve(target)
                    if module and module != name:
                        found.add(module)
            edges[name] = found
    return edges


def cycle(edges: dict[str, set[str]]) -> list[str]:
    """One import circle (as a path of modules), or [] if there is none."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return []

    for node in sorted(edges):
        if node not in state and (found := visit(node)):
            return found
    return []


def test_the_graph_is_read_from_every_layer():
    edges = graph()
    assert {m.split(".")[0] for m in edges} == set(PACKAGES)
    assert "impls.catalogue" in edges["impls"] and "core.typed" in edges["eval.config"]  # the reader sees imports


def test_no_import_circle():
    assert cycle(graph()) == []


def test_no_arrow_runs_back_up():
    upward = [
        f"{source} -> {target}"
        for source, targets in graph().items()
        for target in targets
        if rank(target) > rank(source)
    ]
    assert upward == []


def test_the_checks_catch_a_circle_and_an_upward_arrow():
    assert cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert cycle({"a": {"b"}, "b": set()}) == []
    assert rank("datasets.windows") < rank("eval.bench.worker") < rank("reports.render")


@pytest.mark.parametrize(("framework", "short"), [("torch", "torch"), ("tensorflow", "tf"), ("jax", "jax")])
def test_no_framework_is_imported_outside_its_own_file(framework, short):
    """Only ``impls/backends/<framework>.py`` and each model's ``impls/<model>/<framework>.py`` import it."""
    outside = []
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            if package == "impls" and path.stem == short and path.parent.parent == ROOT / "impls":
                continue
            for node in ast.walk(ast.parse(path.read_text())):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
                if isinstance(node, ast.ImportFrom) and node.module:
                    names = [node.module]
                if any(n == framework or n.startswith(framework + ".") for n in names):
                    outside.append(str(path.relative_to(ROOT)))
    assert outside == []


def test_no_function_in_eval_is_over_60_lines():
    """Each of eval/'s functions reads in one sitting (decorators aside): a longer one is split into named steps."""
    longer = []
    for path in (ROOT / "eval").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.end_lineno - node.lineno >= 60:
                longer.append(
                    f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({node.end_lineno - node.lineno + 1})"
                )
    assert longer == []
