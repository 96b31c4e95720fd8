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
    from driftwarden.contract.settings import STREAM_MONITOR_FIELDS, MonitorSettings

    settings = MonitorSettings()
    names = {f.name for f in fields(MonitorConfig)}
    values = {k: getattr(settings, k) for k in settings.__struct_fields__ if k in names}
    assert set(values) == set(settings.__struct_fields__) - STREAM_MONITOR_FIELDS, "a settings field the config lacks"
    assert set(values) == names, "every MonitorConfig field can be set in config/*.yaml"
    config = MonitorConfig(**values)
    assert config == MonitorConfig(), "the settings' defaults are the config's"
    assert (config.reference_size, config.window_size, config.n_bins, config.top_k) == (2000, 1000, 20, 10_000)
    # the documented defaults (docs/detectors.md gives their measured false-alarm rates and power)
    assert (config.false_alarm_rate, config.warning_rate) == (0.001, 0.01)
    assert (config.psi_floor, config.js_floor, config.wasserstein_floor) == (0.03, 0.04, 0.1)
    assert config.alert_after_windows == (1, 1)
    assert config.drift_signals == ("psi", "js", "wasserstein"), "distance-based decisions by default"
    assert config.concept_detectors == ({"kind": "ADWIN", "params": {"delta": 0.002, "clock": 16}},), (
        "the budget's defaults (docs/detectors.md, bench/bench_concept.py)")


def test_detectors_and_thresholds_are_selectable_in_the_yaml(tmp_path: Path) -> None:
    from driftwarden.contract.settings import load_settings

    path = tmp_path / "driftwarden.yaml"
    path.write_text(
        "monitor:\n"
        "  psi_floor: 0.25\n"
        "  window_seconds: 300\n"
        "  drift_signals: [psi, ks, chi2]\n"
        "  concept_detectors:\n"
        "    - {kind: EDDM, params: {alpha: 0.9, beta: 0.8}}\n"
        "    - {kind: hddm_w, params: {lambda_val: 0.1}}\n"
        "    - {kind: KSWIN, params: {alpha: 0.01, window_size: 200, stat_size: 50}}\n"
        "models:\n"
        "  fraud: {concept_detectors: [{kind: PageHinkley, params: {threshold: 20}}]}\n"
    )
    settings = load_settings(path, env={"DRIFTWARDEN__MONITOR__SNAPSHOT_KEY": "s3cret"})
    monitor = settings.monitor
    accepted = {f.name for f in fields(MonitorConfig)}
    config = MonitorConfig(**{k: getattr(monitor, k) for k in monitor.__struct_fields__ if k in accepted})
    assert (config.psi_floor, config.window_seconds, config.drift_signals) == (0.25, 300, ("psi", "ks", "chi2"))
    assert [(s["kind"], s["params"].get("alpha")) for s in config.concept_detectors] == [
        ("EDDM", 0.9), ("HDDM_W", None), ("KSWIN", 0.01)]
    fraud = settings.monitor_for("fraud")
    assert [s["kind"] for s in MonitorConfig(concept_detectors=fraud.concept_detectors).concept_detectors] == [
        "PageHinkley"]
    assert monitor.snapshot_key == "s3cret" and settings.masked()["monitor"]["snapshot_key"] == "***"


@pytest.mark.parametrize("bad", [
    {"window_size": 0}, {"reference_size": -1}, {"n_bins": 1.5}, {"top_k": True},
    {"false_alarm_rate": 0.02, "warning_rate": 0.01}, {"psi_epsilon": 0}, {"js_floor": float("nan")},
    {"false_alarm_rate": 0}, {"false_alarm_rate": 1.5}, {"wasserstein_floor": -0.1}, {"drift_signals": ("psi", "mmd")},
    {"alert_after_windows": (3, 2)}, {"alert_after_windows": (0, 1)}, {"alert_after_windows": (1,)},
    {"window_seconds": 0}, {"window_seconds": float("inf")}, {"missing_share_threshold": 0},
    {"task": "ranking"}, {"concept_confirmation": 0}, {"concept_cooldown": -1},
    {"concept_detectors": ({"kind": "ADWIN"}, {"kind": "adwin"})},
])
def test_invalid_configuration_is_rejected(bad: dict) -> None:
    with pytest.raises(ValueError):
        MonitorConfig(**bad)


def test_the_package_imports_only_numpy_scipy_river_numba_and_the_standard_library() -> None:
    allowed = {"numpy", "scipy", "river", "numba", "detectors", "__future__"} | set(sys.stdlib_module_names)
    imported = set()
    for path in PACKAGE.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                imported.add(node.module.split(".")[0])
    assert imported - allowed == set()
    assert {"numpy", "scipy", "river"} <= imported
