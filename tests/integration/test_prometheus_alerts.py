"""deploy/prometheus/alerts.yml on a real Prometheus that scrapes both workers (as real processes) while a
drifting stream runs: the drift alert fires in ``/api/v1/alerts`` and reaches a real Alertmanager.

The rules are the shipped ones with each ``for:`` cut to at most 2 s, and Prometheus scrapes and evaluates
every second, so the test takes seconds instead of the minutes production waits."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from monitoring_support import Alertmanager, Prometheus, wait_until

from driftwarden.contract.kafka import ensure_topics
from driftwarden.contract.settings import load_settings
from driftwarden.devtools.demo import Workers, isolated_env, produce_traffic
from driftwarden.devtools.devstack import free_port
from driftwarden.devtools.traffic import SHIFTED_FEATURE, TrafficSpec

pytestmark = pytest.mark.services

ALERTS = Path(__file__).resolve().parents[2] / "deploy" / "prometheus" / "alerts.yml"


def seconds(duration: str) -> float:
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
    return sum(float(n) * units[u] for n, u in re.findall(r"(\d+)(ms|s|m|h|d)", duration))


def fast_rules(folder: Path) -> Path:
    rules = yaml.safe_load(ALERTS.read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            rule["for"] = f"{min(seconds(str(rule.get('for', '0s'))), 2):g}s"
    path = folder / "alerts.yml"
    path.write_text(yaml.safe_dump(rules))
    return path


def test_prometheus_scrapes_both_workers_and_the_drift_alert_fires_into_alertmanager(
        stack_env: dict[str, str], unique: str, tmp_path: Path) -> None:
    stream_port, retrain_port = free_port(), free_port()
    env = isolated_env(stack_env, unique) | {
        "DRIFTWARDEN__STREAM__WEB_PORT": str(stream_port),
        "DRIFTWARDEN__RETRAIN__METRICS_PORT": str(retrain_port),
        "DRIFTWARDEN__MONITOR__REFERENCE_SIZE": "1000",
        "DRIFTWARDEN__MONITOR__WINDOW_SIZE": "500",
        "DRIFTWARDEN__STREAM__DATA_DIR": str(tmp_path / "faust"),
    }
    settings = load_settings(env=env)
    ensure_topics(settings)
    am = Alertmanager(tmp_path / "alertmanager")
    prometheus = Prometheus(tmp_path / "prometheus",
                            {"driftwarden-stream": [f"127.0.0.1:{stream_port}"],
                             "driftwarden-retrain": [f"127.0.0.1:{retrain_port}"]},
                            fast_rules(tmp_path), am.url)
    workers = Workers(env, tmp_path / "workers")
    model = f"prom-{unique}"

    def logs() -> str:
        return "\n".join([prometheus.log(), am.log(), *(p.read_text(errors="replace")[-2000:]
                                                       for p in workers.folder.glob("*.log"))])

    try:
        workers.start("stream", "stream")
        workers.start("retrain-worker", "retrain-worker")
        wait_until(lambda: {(r["metric"]["job"], r["value"][1]) for r in prometheus.query("up")}
                   == {("driftwarden-stream", "1"), ("driftwarden-retrain", "1")}, 60, "both workers scraped", logs)
        assert not [a for a in prometheus.alerts() if a["labels"]["alertname"] == "DriftwardenCriticalDrift"]

        spec = TrafficSpec(model=model, total=4000, shift_at=2000)
        assert produce_traffic(settings, spec) == spec.total

        def firing() -> list[dict[str, object]]:
            return [a for a in prometheus.alerts() if a["labels"]["alertname"] == "DriftwardenCriticalDrift"
                    and a["state"] == "firing" and a["labels"].get("model") == model]

        wait_until(lambda: bool(firing()), 90, "DriftwardenCriticalDrift firing in Prometheus", logs)
        assert {a["labels"]["kind"] for a in firing()} >= {"data_drift"}
        scores = prometheus.query(f'driftwarden_drift_score{{model="{model}",feature="{SHIFTED_FEATURE}"}}')
        assert scores, "the stream's drift scores are scraped"

        def received() -> list[dict[str, object]]:
            return [a for a in am.alerts() if a["labels"].get("alertname") == "DriftwardenCriticalDrift"
                    and a["labels"].get("model") == model]

        wait_until(lambda: bool(received()), 30, "the alert in Alertmanager (amtool)", logs)
        [got] = [a for a in received() if a["labels"]["kind"] == "data_drift"]
        assert got["labels"]["severity"] == "critical" and got["status"]["state"] == "active"
        assert got["annotations"]["summary"] == f"Critical data_drift on model {model}"
    finally:
        # The drift alert also starts a retrain; the retrain worker finishes it before it exits on SIGTERM, which
        # takes more than the default 20 s on a loaded machine (seen: 25 s with the stream and four suites running).
        codes = workers.stop(timeout=90)
        prometheus.stop()
        am.stop()
    assert all(code in (0, -15) for code in codes.values()), (codes, logs())
