"""The layers of docs/architecture.md as a test: no module imports upward or sideways.

An AST scan of every module of the four packages, so an import inside a function (a lazy one) counts as much as
one at the top, and so does ``importlib.import_module("...")`` with a literal name.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("detectors", "driftwarden", "stream", "retrain_worker")

# Each unit and the units it may import (besides itself). ``driftwarden`` alone is the package's __init__: its
# version, which anything may read.
ALLOWED: dict[str, frozenset[str]] = {
    "detectors": frozenset(),
    "driftwarden.contract": frozenset({"detectors"}),
    "driftwarden.sdk": frozenset({"driftwarden.contract"}),
    "stream": frozenset({"detectors", "driftwarden.contract"}),
    "retrain_worker": frozenset({"detectors", "driftwarden.contract"}),
    "driftwarden.report": frozenset({"detectors", "driftwarden.contract"}),
    "driftwarden.ops": frozenset({"detectors", "driftwarden.contract"}),
    "driftwarden.devtools": frozenset({"detectors", "driftwarden.contract", "driftwarden.sdk",
                                       "driftwarden.report", "driftwarden.ops"}),
    "driftwarden.cli": frozenset({"detectors", "driftwarden.contract", "driftwarden.sdk", "stream",
                                  "retrain_worker", "driftwarden.report", "driftwarden.ops",
                                  "driftwarden.devtools"}),
}
EVERYWHERE = frozenset({"driftwarden"})

# Known upward imports waiting for a move that another change makes, each with its reason. The test fails when one
# of them is gone, so the entry is removed with the move.
PENDING: dict[tuple[str, str], str] = {}


def unit_of(module: str) -> str | None:
    """The unit (a key of ALLOWED, or ``driftwarden`` for the package root) a dotted name belongs to."""
    if module == "driftwarden":
        return "driftwarden"
    for unit in sorted(ALLOWED, key=len, reverse=True):
        if module == unit or module.startswith(unit + "."):
            return unit
    return None


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> list[Path]:
    return sorted(p for package in PACKAGES for p in (ROOT / package).rglob("*.py"))


def is_module(name: str) -> bool:
    path = ROOT.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def imported(name: str, source: str, is_package: bool = False) -> set[str]:
    """Every project module the module ``name`` (of text ``source``) imports, at any depth of the file."""
    package = name.split(".") if is_package else name.split(".")[:-1]
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = ".".join(package[: len(package) - node.level + 1]) if node.level else ""
            module = ".".join(p for p in (base, node.module or "") if p)
            # ``from stream import watch`` imports the module stream.watch; ``from stream.state import Keys`` not
            targets = [module] + [f"{module}.{a.name}" for a in node.names if is_module(f"{module}.{a.name}")]
        elif (isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", None))
              == "import_module" and node.args and isinstance(node.args[0], ast.Constant)
              and isinstance(node.args[0].value, str)):
            targets = [node.args[0].value]
        found.update(t for t in targets if t.split(".")[0] in PACKAGES)
    return found


def violations() -> set[tuple[str, str]]:
    """(module, imported module) for every import the layers do not allow."""
    found = set()
    for path in modules():
        name = module_name(path)
        unit = unit_of(name)
        assert unit is not None, f"{name} belongs to no layer: place it in a package of docs/architecture.md"
        if unit == "driftwarden":
            continue
        for target in imported(name, path.read_text(encoding="utf-8"), path.name == "__init__.py"):
            other = unit_of(target)
            if other != unit and other not in EVERYWHERE and other not in ALLOWED[unit]:
                found.add((name, target))
    return found


def test_no_module_imports_upward_or_sideways() -> None:
    found = violations()
    unexpected = sorted(edge for edge in found if edge not in PENDING)
    assert not unexpected, "imports against the layers of docs/architecture.md:\n" + "\n".join(
        f"  {m} imports {t}" for m, t in unexpected)


def test_pending_exceptions_still_exist() -> None:
    gone = sorted(edge for edge in PENDING if edge not in violations())
    assert not gone, "no longer imported, remove from PENDING: " + ", ".join(f"{m} -> {t}" for m, t in gone)


def test_the_scan_sees_lazy_relative_and_dynamic_imports() -> None:
    source = ("import detectors.monitor\n"
              "def f():\n    from retrain_worker import worker\n    from . import state\n"
              "    from .processor import BatchProcessor\n    importlib.import_module('driftwarden.cli')\n")
    assert imported("stream.app", source) == {"detectors.monitor", "retrain_worker", "retrain_worker.worker",
                                              "stream", "stream.state", "stream.processor", "driftwarden.cli"}
    assert unit_of("driftwarden.contract.events") == "driftwarden.contract"
    assert unit_of("driftwarden.cli") == "driftwarden.cli" and unit_of("driftwarden") == "driftwarden"
    assert unit_of("driftwarden.onboard") is None


def test_no_import_cycle_between_modules() -> None:
    """Within a package too: two modules importing each other (even lazily) are one module split badly."""
    graph = {module_name(p): imported(module_name(p), p.read_text(encoding="utf-8"), p.name == "__init__.py")
             for p in modules()}
    graph = {m: {t for t in targets if t in graph and t != m and not m.startswith(t + ".")}
             for m, targets in graph.items()}  # a module importing its own package's __init__ is no cycle
    cycles = [sorted(c) for c in strongly_connected(graph) if len(c) > 1]
    assert not cycles, f"modules importing each other: {cycles}"


def strongly_connected(graph: dict[str, set[str]]) -> list[set[str]]:
    """Tarjan's strongly connected components, iteratively."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[set[str]] = []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                out.append(component)
    return out


def test_the_cycle_finder() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert sorted(sorted(c) for c in strongly_connected(graph) if len(c) > 1) == [["a", "b", "c"]]
