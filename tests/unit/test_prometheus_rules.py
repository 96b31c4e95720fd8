"""deploy/prometheus checked by Prometheus's own tool: the config and rules load, and every alert rule is
unit-tested by ``promtool test rules`` (deploy/prometheus/alerts.test.yml) both firing and silent."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import yaml

PROMETHEUS = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"
PROMTOOL = shutil.which("promtool")


def promtool(*args: str) -> str:
    assert PROMTOOL is not None, "promtool is missing: scripts/bootstrap.sh installs Debian's prometheus"
    result = subprocess.run([PROMTOOL, *args], cwd=PROMETHEUS, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout + result.stderr


def test_promtool_accepts_the_config_and_its_rule_file() -> None:
    out = promtool("check", "config", "prometheus.yml")
    assert "SUCCESS: 1 rule files found" in out and "is valid prometheus config file" in out


def test_promtool_accepts_the_rules() -> None:
    rules = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())
    n = sum(len(group["rules"]) for group in rules["groups"])
    assert f"SUCCESS: {n} rules found" in promtool("check", "rules", "alerts.yml")


def test_every_alert_rule_has_a_firing_and_a_silent_case_that_pass() -> None:
    rules = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())
    alerts = {rule["alert"] for group in rules["groups"] for rule in group["rules"]}
    cases = yaml.safe_load((PROMETHEUS / "alerts.test.yml").read_text())
    fires: set[str] = set()
    silent: set[str] = set()
    for test in cases["tests"]:
        for case in test["alert_rule_test"]:
            (fires if case["exp_alerts"] else silent).add(case["alertname"])
    assert alerts - fires == set(), "alerts never shown firing"
    assert alerts - silent == set(), "alerts never shown staying silent"
    assert "SUCCESS" in promtool("test", "rules", "alerts.test.yml")


def test_amtool_accepts_the_alertmanager_config() -> None:
    amtool = shutil.which("amtool")
    assert amtool, "amtool is missing: scripts/bootstrap.sh installs Debian's prometheus-alertmanager"
    config = PROMETHEUS.parent / "alertmanager" / "alertmanager.yml"
    result = subprocess.run([amtool, "check-config", str(config)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "SUCCESS" in result.stdout, result.stdout + result.stderr
