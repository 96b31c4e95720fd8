"""The benchmarks are not run by the suite, so a move of a project module must not break them unseen: every name a
``bench/`` script imports from the project exists (a module moved by the package layout once broke bench_stream)."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
PROJECT = {"detectors", "driftwarden", "stream", "retrain_worker"}


def project_imports(path: Path) -> list[tuple[str, str]]:
    """(module, name) of every ``from <project module> import name`` in a script, lazy ones included."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return [(node.module, alias.name) for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in PROJECT
            for alias in node.names]


@pytest.mark.parametrize("script", sorted(BENCH.glob("*.py")), ids=lambda p: p.name)
def test_every_project_name_a_benchmark_imports_exists(script: Path) -> None:
    missing = []
    for module_name, name in project_imports(script):
        module = importlib.import_module(module_name)
        if not hasattr(module, name):
            try:
                importlib.import_module(f"{module_name}.{name}")
            except ModuleNotFoundError:
                missing.append(f"{module_name}.{name}")
    assert not missing, f"{script.name} imports names that no longer exist: {missing}"


def test_the_scan_finds_a_missing_name(tmp_path: Path) -> None:
    script = tmp_path / "bench_x.py"
    script.write_text("def main():\n    from driftwarden.contract.events import decode_message, Prediction\n")
    assert project_imports(script) == [("driftwarden.contract.events", "decode_message"),
                                       ("driftwarden.contract.events", "Prediction")]
    module = importlib.import_module("driftwarden.contract.events")
    assert not hasattr(module, "decode_message") and hasattr(module, "Prediction")
