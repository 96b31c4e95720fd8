"""MonitorConfig validation, its compatibility with the service's settings, and the package's purity."""

from __future__ import annotations

import ast
import sys
from dataclasses import fields
from pathlib import Path

import pytest

from detectors.monitor import MonitorConfig

PACKAGE = Path(__file__).resolve().parents[3] / "detectors"


def test_built_from_the_settings_fields() -> None:
    from driftwarden.config import MonitorSettings

    settings = MonitorSettings()
    names = {f.name for f in fields(MonitorConfig)}
    values = {k: getattr(settings, k) for k in settings.__struct_fields__ if k in names}
    assert set(values) == set(settings.__struct_fields__), "every MonitorSettings field is a MonitorConfig field"
    config = MonitorConfig(**values)
    assert (config.reference_size, config.window_size, config.n_bins, config.top_k) == (2000, 1000, 20, 100)
    assert (config.psi_warning, config.psi_threshold) == (0.1, 0.2)


@pytest.mark.parametrize("bad", [
    {"window_size": 0}, {"reference_size": -1}, {"n_bins": 1.5}, {"top_k": True},
    {"psi_warning": 0.3, "psi_threshold": 0.2}, {"psi_epsilon": 0}, {"js_threshold": float("nan")},
    {"p_value": 0}, {"p_value": 1.5}, {"p_value_correction": "sidak"}, {"drift_signals": ("psi", "mmd")},
    {"window_seconds": 0}, {"window_seconds": float("inf")}, {"missing_share_threshold": 0},
    {"task": "ranking"}, {"concept_confirmation": 0}, {"concept_cooldown": -1},
    {"concept_detectors": ({"kind": "ADWIN"}, {"kind": "adwin"})},
])
def test_invalid_configuration_is_rejected(bad: dict) -> None:
    with pytest.raises(ValueError):
        MonitorConfig(**bad)


def test_the_package_imports_only_numpy_scipy_river_and_the_standard_library() -> None:
    allowed = {"numpy", "scipy", "river", "detectors", "__future__"} | set(sys.stdlib_module_names)
    imported = set()
    for path in PACKAGE.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                imported.add(node.module.split(".")[0])
    assert imported - allowed == set()
    assert {"numpy", "scipy", "river"} <= imported
