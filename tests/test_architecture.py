"""The house's shape: imports only point down the layers, and no import circle.

Every import of a ``benchmark`` module counts, the lazy ones inside functions too; only
imports under ``if TYPE_CHECKING:`` (type hints, never run) do not. A submodule that
imports its own package (``from . import Name`` where Name is not a submodule, or
``import benchmark`` from inside it) is a circle as well: the package imports it back.
The layers are those of docs/architecture.md, lowest first.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
from conftest import REPO

PACKAGE = REPO / "benchmark"

#: Lowest first; a module belongs to the first layer with a prefix that matches it.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("foundations", ("benchmark.version", "benchmark.units", "benchmark.fsutil", "benchmark.logs",
                     "benchmark.resources", "benchmark.torch_parts", "benchmark.reference")),
    ("data contract", ("benchmark.protocol",)),
    ("data", ("benchmark.data",)),
    ("evaluation and the epoch loop", ("benchmark.evaluate", "benchmark.beyond",
                                       "benchmark.options", "benchmark.training")),
    ("model contract", ("benchmark.cost", "benchmark.sources", "benchmark.registry",
                        "benchmark.persist", "benchmark.recommend", "benchmark.model")),
    ("models", ("benchmark.models",)),
    ("results and report", ("benchmark.results", "benchmark.report")),
    ("planning, running and tuning", ("benchmark.plan", "benchmark.jobs", "benchmark.cluster", "benchmark.predict", "benchmark.runner",
                                      "benchmark.tuning", "benchmark.checks",
                                      "benchmark.experiment", "benchmark.tracking",
                                      "benchmark.summary", "benchmark.api", "benchmark.testing")),
    ("front doors", ("benchmark.cli", "benchmark.__main__", "benchmark")),
]


def _modules() -> dict[str, Path]:
    mods = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(REPO).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        mods[".".join(parts)] = path
    return mods


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip.update(id(n) for n in ast.walk(node))
    return skip


def import_graph() -> dict[str, set[str]]:
    """module -> the ``benchmark`` modules it imports (anywhere but under TYPE_CHECKING)."""
    mods = _modules()

    def owner(name: str) -> str:
        while name not in mods and "." in name:
            name = name.rsplit(".", 1)[0]
        return name

    graph: dict[str, set[str]] = {m: set() for m in mods}
    for mod, path in mods.items():
        tree = ast.parse(path.read_text(), str(path))
        skip = _type_checking_nodes(tree)
        package = mod if path.name == "__init__.py" else mod.rsplit(".", 1)[0]
        for node in ast.walk(tree):
            if id(node) in skip:
                continue
            targets = []
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")
                    base = base[: len(base) - (node.level - 1)]
                    name = ".".join(base + ([node.module] if node.module else []))
                else:
                    name = node.module or ""
                for alias in node.names:
                    full = f"{name}.{alias.name}"
                    targets.append(full if full in mods else name)
                if node.level and not node.module:  # `from . import x` runs the package first
                    targets.append(name)
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            for t in targets:
                if t == "benchmark" or t.startswith("benchmark."):
                    t = owner(t)
                    if t != mod:
                        graph[mod].add(t)
    return graph


def layer_of(module: str) -> int:
    for i, (_, prefixes) in enumerate(LAYERS):
        if any(module == p or module.startswith(p + ".") for p in prefixes if p != "benchmark"):
            return i
    if module == "benchmark":
        return len(LAYERS) - 1
    raise AssertionError(f"{module} is in no layer: add it to LAYERS and docs/architecture.md")


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_every_module_has_a_layer():
    for module in _modules():
        layer_of(module)


def test_imports_only_point_down_the_layers():
    graph = import_graph()
    up = [f"{a} ({LAYERS[layer_of(a)][0]}) imports {b} ({LAYERS[layer_of(b)][0]})"
          for a, targets in sorted(graph.items()) for b in sorted(targets)
          if layer_of(b) > layer_of(a)]
    assert not up, "imports pointing up a layer:\n" + "\n".join(up)


def test_no_import_circle():
    found = circles(import_graph())
    assert not found, "import circles: " + "; ".join(" <-> ".join(c) for c in found)


def test_no_submodule_imports_its_own_package():
    graph = import_graph()
    bad = [f"{m} imports its package {p}" for m, targets in graph.items() for p in targets
           if m.startswith(p + ".") and p != "benchmark"]
    assert not bad, "\n".join(bad)


def test_the_checker_sees_a_circle_and_an_upward_import():
    """The checks above can fail: a made-up graph with both defects is caught."""
    graph = {"benchmark.protocol": {"benchmark.model"}, "benchmark.model": {"benchmark.protocol"}}
    assert circles(graph) == [["benchmark.model", "benchmark.protocol"]]
    assert layer_of("benchmark.model") > layer_of("benchmark.protocol")


_CONTRACT = r"(Recommender|FitOptions|IterativeRecommender|EpochReport)"


@pytest.mark.parametrize("folder", ["benchmark", "tests", "docs", "models", "benchmarks"])
def test_the_model_contract_is_never_imported_from_protocol(folder):
    """``from benchmark.protocol import ...`` of a contract name, on one line or in
    parentheses, in code and in docs alike (the contract lives in benchmark.model)."""
    pattern = re.compile(r"from\s+(?:benchmark\.|\.+)protocol\s+import\s+(\([^)]*\)|[^\n]*)")
    bad = []
    for path in (REPO / folder).rglob("*"):
        if path.suffix not in (".py", ".md") or path == Path(__file__):
            continue
        for m in pattern.finditer(path.read_text(errors="replace")):
            if re.search(rf"\b{_CONTRACT}\b", m.group(1)):
                bad.append(f"{path.relative_to(REPO)}: {m.group(0)[:80]}")
    assert not bad, "\n".join(bad)


def test_no_file_over_450_lines():
    long = [f"{p.relative_to(REPO)}: {n}" for p in [*PACKAGE.rglob("*.py"), *(REPO / "models").glob("*.py")]
            if (n := len(p.read_text().splitlines())) > 450]
    assert not long, "\n".join(long)


def test_the_front_door_is_thin():
    cli = list((PACKAGE / "cli").glob("*.py"))
    commands = (PACKAGE / "cli" / "parser.py").read_text().count("set_defaults(func=")
    assert sum(len(p.read_text().splitlines()) for p in cli) < 70 * commands  # per subcommand
    for path in [*cli, PACKAGE / "runner.py"]:
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef) and (path.parent.name == "cli" or node.name == "run"):
                length = node.end_lineno - node.lineno + 1
                assert length < 60, f"{path.name}:{node.name} is {length} lines"
