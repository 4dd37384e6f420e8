"""The layer rules of docs/architecture.md, checked on the source.

Every module of ``meshflow_nb/`` is parsed with `ast`, and every import counts: at the
top, under ``if TYPE_CHECKING:`` and inside functions. Imports in a package's
``__init__.py`` are re-exports: they are no edges of their own, and a name imported
from a package is followed to the module that defines it.
"""

from __future__ import annotations

import ast
import builtins
import subprocess
import sys
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

ROOT = "meshflow_nb"
PACKAGE_DIR = Path(__file__).resolve().parents[1] / ROOT

BASE = frozenset({"errors", "events", "validation", "version"})
"""The bottom row of the table: every layer above it may import it."""

BELOW_ENGINE = BASE | {"hitl", "policy", "agents", "model", "ledger", "telemetry"}
MAY_IMPORT: dict[str, frozenset[str]] = {
    "errors": frozenset(),
    "events": frozenset(),
    "version": frozenset(),
    "validation": frozenset({"errors"}),
    "ledger": BASE,
    "localapi": BASE,
    "model": BASE,
    "telemetry": BASE | {"model"},
    "agents": BASE | {"model", "localapi", "telemetry"},
    "policy": BASE | {"agents", "model", "ledger.location"},
    "hitl": BASE | {"policy.config", "model", "ledger.location"},
    "engine": BELOW_ENGINE,
    "workflow": BELOW_ENGINE | {"engine"},
    "pipelines": BELOW_ENGINE | {"engine", "workflow"},
    "notebook": BELOW_ENGINE | {"engine", "workflow", "pipelines"},
    "cli": BELOW_ENGINE | {"engine", "workflow", "pipelines", "localapi"},
    "__main__": frozenset({"cli"}),
}
"""The table of docs/architecture.md: what each layer may import besides itself (a
layer, or one module of it such as ``ledger.location``)."""

HEAVY = ("pandas", "duckdb", "IPython", "ipywidgets", "graphviz", "anthropic", "opentelemetry")
"""What ``import meshflow_nb`` must not load: what the ledger, the notebook, live agents and
trace export need."""

BUILTIN_ERRORS = frozenset(
    n for n, v in vars(builtins).items() if isinstance(v, type) and issubclass(v, BaseException))

DRIVERS = frozenset({"duckdb", "psycopg"})
DRIVER_USERS = frozenset({"ledger.stores", "policy.learning"})
"""The only modules that talk to a database driver: the ledger's stores, and the
cross-run learning store (its own DuckDB file beside the ledger)."""


@dataclass(frozen=True)
class Import:
    """One edge of the import graph, with the line it comes from."""

    source: str
    target: str
    line: int

    def __str__(self) -> str:
        return f"{self.source} -> {self.target} (line {self.line})"


# --- the modules and their imports -------------------------------------------------


@cache
def modules() -> dict[str, Path]:
    """Every module of the package by dotted name; a package is named by its folder."""
    found = {}
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        parts = path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def is_package(name: str) -> bool:
    return modules()[name].name == "__init__.py"


@cache
def tree(name: str) -> ast.Module:
    return ast.parse(modules()[name].read_text(encoding="utf-8"), filename=str(modules()[name]))


def _base(name: str, node: ast.ImportFrom) -> str:
    """The absolute module an ``ImportFrom`` names, relative levels resolved."""
    if not node.level:
        return node.module or ""
    package = name if is_package(name) else name.rpartition(".")[0]
    parts = package.split(".")[: len(package.split(".")) - node.level + 1]
    return ".".join([*parts, *([node.module] if node.module else [])])


def _ours(name: str) -> str | None:
    """``name`` if it is one of our modules, else its nearest enclosing one of ours."""
    while name and name not in modules():
        name = name.rpartition(".")[0]
    return name or None


def _targets(name: str, node: ast.AST) -> Iterator[str]:
    """The modules of ours one import statement in module ``name`` brings in."""
    if isinstance(node, ast.Import):
        for alias in node.names:
            if alias.name.split(".")[0] == ROOT and (target := _ours(alias.name)):
                yield target
    elif isinstance(node, ast.ImportFrom):
        base = _base(name, node)
        if base.split(".")[0] != ROOT:
            return
        for alias in node.names:
            yield _from(base, alias.name)


def _from(base: str, name: str, seen: frozenset[str] = frozenset()) -> str:
    """The module ``from base import name`` depends on: a submodule, the module that
    defines a name a package re-exports, else the package itself."""
    if f"{base}.{name}" in modules():
        return f"{base}.{name}"
    target = _ours(base)
    if target is None or not is_package(target) or target in seen:
        return target or base
    return _reexported(target, name, seen | {target})


def _reexported(package: str, name: str, seen: frozenset[str]) -> str:
    """Follow a name through a package's ``__init__``: its import of the name, or the
    submodule a lazy table names for it (``{"ReplayLedger": "replay"}``), else the package."""
    for node in ast.walk(tree(package)):
        if isinstance(node, ast.ImportFrom):
            for alias in node.names:
                if (alias.asname or alias.name) == name:
                    return _from(_base(package, node), alias.name, seen)
        if isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values, strict=True):
                if _text(key) == name and f"{package}.{_text(value).lstrip('.')}" in modules():
                    return _from(f"{package}.{_text(value).lstrip('.')}", name, seen)
    return package


def _text(node: ast.AST | None) -> str:
    """The value of a string literal, else an empty string."""
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else ""


@cache
def import_graph() -> tuple[Import, ...]:
    """Every import between our modules; a package ``__init__`` is the source of none."""
    edges = set()
    for name in modules():
        if is_package(name):
            continue
        for node in ast.walk(tree(name)):
            for target in _targets(name, node):
                if target != name:
                    edges.add(Import(name, target, node.lineno))
    return tuple(sorted(edges, key=lambda e: (e.source, e.target, e.line)))


# --- cycles -------------------------------------------------------------------------


def knots(edges: tuple[Import, ...]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), sorted."""
    graph: dict[str, set[str]] = {}
    for edge in edges:
        graph.setdefault(edge.source, set()).add(edge.target)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for successor in sorted(graph.get(node, ())):
            if successor not in index:
                visit(successor)
                low[node] = min(low[node], low[successor])
            elif successor in stack:
                low[node] = min(low[node], index[successor])
        if low[node] == index[node]:
            component = []
            while (member := stack.pop()) != node:
                component.append(member)
            component.append(node)
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)


def a_cycle(knot: list[str], edges: tuple[Import, ...]) -> list[Import]:
    """The shortest cycle through the knot's first module, as the imports that make it."""
    inside = {(e.source, e.target): e for e in edges if e.source in knot and e.target in knot}
    start = knot[0]
    came: dict[str, Import] = {}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        for (source, target), edge in inside.items():
            if source != node or target in came:
                continue
            came[target] = edge
            if target == start:
                path = [edge]
                while path[0].source != start:
                    path.insert(0, came[path[0].source])
                return path
            queue.append(target)
    raise AssertionError(f"no cycle through {start} in its own knot")


def describe_knot(knot: list[str], edges: tuple[Import, ...]) -> str:
    cycle = a_cycle(knot, edges)
    within = [str(e) for e in edges if e.source in knot and e.target in knot]
    return (f"cycle: {' -> '.join([e.source for e in cycle] + [cycle[0].source])}\n"
            f"  modules in this knot: {', '.join(knot)}\n"
            "  imports inside it:\n    " + "\n    ".join(within))


# --- layers -------------------------------------------------------------------------


def layer_of(name: str) -> str:
    """``meshflow_nb.ledger.replay`` -> ``ledger``; the root package is ``meshflow_nb``."""
    return name.split(".")[1] if "." in name else name


def may_import(source: str, target: str) -> bool:
    """Whether the table lets module ``source`` import module ``target``."""
    layer = layer_of(source)
    if layer_of(target) == layer:
        return True
    relative = target.removeprefix(f"{ROOT}.")
    return any(relative == rule or relative.startswith(f"{rule}.") for rule in MAY_IMPORT[layer])


# --- the tests ----------------------------------------------------------------------


def test_the_graph_sees_every_kind_of_import() -> None:
    """Guards the checker itself: a relative, a TYPE_CHECKING and a function-level import
    are all edges, and a name from a package leads to the module that defines it."""
    targets = {(e.source, e.target) for e in import_graph()}
    assert ("meshflow_nb.notebook.runview", "meshflow_nb.notebook.drawing") in targets
    assert ("meshflow_nb.hitl.resolve", "meshflow_nb.policy.config") in targets  # TYPE_CHECKING
    assert ("meshflow_nb.cli.commands", "meshflow_nb.cli.resume") in targets  # in a function
    assert _from("meshflow_nb.hitl", "parse_verdict") == "meshflow_nb.hitl.requests"
    assert _from("meshflow_nb.ledger", "ReplayLedger") == "meshflow_nb.ledger.replay"  # lazy
    assert _from("meshflow_nb", "Role") == "meshflow_nb.model.roles"
    assert not any(is_package(e.source) for e in import_graph())


def test_every_module_belongs_to_a_layer_of_the_table() -> None:
    unknown = sorted({layer_of(n) for n in modules() if n != ROOT} - set(MAY_IMPORT))
    assert not unknown, f"add these to docs/architecture.md and MAY_IMPORT: {unknown}"


def test_there_are_no_import_cycles() -> None:
    edges = import_graph()
    found = knots(edges)
    assert not found, f"{len(found)} import knot(s):\n" + "\n".join(
        describe_knot(knot, edges) for knot in found)


def test_every_import_follows_the_layer_table() -> None:
    broken = [str(e) for e in import_graph() if not may_import(e.source, e.target)]
    assert not broken, ("imports the table of docs/architecture.md forbids:\n  "
                        + "\n  ".join(broken))


def test_a_layers_own_init_reexports_only_that_layer() -> None:
    """Package ``__init__`` files are no edges of the graph, so this keeps them honest:
    below the root package, one may only gather names of its own layer."""
    reaching = [f"{name} -> {target} (line {node.lineno})"
                for name in modules() if is_package(name) and name != ROOT
                for node in ast.walk(tree(name)) for target in _targets(name, node)
                if layer_of(target) != layer_of(name)]
    assert not reaching, "\n".join(reaching)


def test_nothing_outside_the_notebook_imports_it() -> None:
    outside = [str(e) for e in import_graph()
               if layer_of(e.target) == "notebook" and layer_of(e.source) != "notebook"]
    assert not outside, "\n".join(outside)


def test_database_drivers_are_imported_only_by_the_stores() -> None:
    users = []
    for name in modules():
        relative = name.removeprefix(f"{ROOT}.")
        if any(relative == u or relative.startswith(f"{u}.") for u in DRIVER_USERS):
            continue
        for node in ast.walk(tree(name)):
            imported = ([a.name for a in node.names] if isinstance(node, ast.Import)
                        else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            users += [f"{name} imports {m} (line {node.lineno})" for m in imported
                      if m.split(".")[0] in DRIVERS]
    assert not users, "\n".join(users)


ALLOWED_BUILTIN_RAISES = {
    ("meshflow_nb", "AttributeError"): "a module __getattr__ raises it for an unknown name",
    ("meshflow_nb.ledger", "AttributeError"): "the same, for the ledger's lazy names",
    ("meshflow_nb.telemetry", "AttributeError"): "the same, for trace export's lazy names",
    ("meshflow_nb.hitl.store", "FileExistsError"):
        "internal: caught by submit_decision, which answers with an ApprovalError",
}
"""The only builtin exceptions the package raises, each with why (module, class)."""


def test_the_package_raises_no_builtin_exception() -> None:
    """Every exception raised on purpose is a MeshflowError (the magics also raise
    IPython's UsageError, since IPython prints only that exact class in one line)."""
    raised = []
    for name in modules():
        for node in ast.walk(tree(name)):
            kind = _raised_name(node) if isinstance(node, ast.Raise) else ""
            if kind in BUILTIN_ERRORS and (name, kind) not in ALLOWED_BUILTIN_RAISES:
                raised.append(f"{name} line {node.lineno}: raise {kind}")
    assert not raised, "\n".join(raised)


def _raised_name(node: ast.Raise) -> str:
    """``X`` of ``raise X`` or ``raise X(...)``; empty for a re-raise or ``raise obj.X``."""
    exc = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
    return exc.id if isinstance(exc, ast.Name) else ""


def test_importing_the_package_loads_no_heavy_dependency() -> None:
    probe = ("import sys, meshflow_nb\n"
             f"print(sorted({{m.split('.')[0] for m in sys.modules}} & {set(HEAVY)!r}))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          cwd=PACKAGE_DIR.parent, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]", f"import meshflow_nb loaded {done.stdout.strip()}"
