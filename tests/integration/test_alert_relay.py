"""``driftwarden alert-relay`` as a real process between the real broker, a real Alertmanager (read back with
``amtool alert query``) and a local JSON webhook receiver that is down for a while, with a kill -9 of the
relay in the middle of that outage: every alert reaches both, in order, firing and resolved kept apart."""

from __future__ import annotations

import os
import signal
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from monitoring_support import Alertmanager, WebhookReceiver, wait_until

from driftwarden.contract.alerts import RECEIVER
from driftwarden.contract.events import AlertAnnotations, AlertLabels, DriftAlert, encode, iso
from driftwarden.contract.kafka import client_config, ensure_topics
from driftwarden.contract.settings import Settings, load_settings
from driftwarden.devtools.demo import Workers, isolated_env
from driftwarden.devtools.devstack import free_port
from stream.alerts import fingerprint

pytestmark = pytest.mark.services

MODEL = "churn"
HOLD_S = 3600.0


def alert(feature: str, status: str, started: float, ended: float | None = None) -> DriftAlert:
    return DriftAlert(
        status="firing" if status == "firing" else "resolved",
        labels=AlertLabels(alertname="DriftwardenDrift", model=MODEL, kind="data_drift", feature=feature,
                           severity="critical"),
        annotations=AlertAnnotations(summary=f"{MODEL}: data drift on feature {feature} (critical)",
                                     description="psi=0.3100 against threshold 0.2000"),
        startsAt=iso(started), endsAt=iso(ended) if ended is not None else "0001-01-01T00:00:00Z",
        fingerprint=fingerprint(MODEL, "data_drift", feature), drift_id=f"drift-{feature}")


def publish(settings: Settings, *values: bytes) -> None:
    producer = Producer(client_config(settings))
    for value in values:  # one key: one partition, so the relay sees them in this order
        producer.produce(settings.kafka.topics.drift_alerts, key=MODEL.encode(), value=value)
    assert producer.flush(10) == 0


def committed(settings: Settings) -> int:
    """Offsets the relay's group committed on drift-alerts, summed over partitions."""
    consumer = Consumer(client_config(settings, **{"group.id": settings.alert_relay.group_id}))
    try:
        parts = [TopicPartition(settings.kafka.topics.drift_alerts, p) for p in range(settings.kafka.partitions)]
        return sum(max(tp.offset, 0) for tp in consumer.committed(parts, timeout=10))
    finally:
        consumer.close()


def metric(port: int, line_start: str) -> float:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
            text = r.read().decode()
    except OSError:
        return -1.0
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(line_start))


def test_relay_delivers_every_alert_to_alertmanager_and_a_webhook_through_an_outage_and_a_kill(
        stack_env: dict[str, str], unique: str, tmp_path: Path) -> None:
    webhook = WebhookReceiver()  # down: nothing listens on its port yet
    am = Alertmanager(tmp_path / "alertmanager")
    metrics_port = free_port()
    env = isolated_env(stack_env, unique) | {
        "DRIFTWARDEN__ALERT_RELAY__GROUP_ID": f"relay-{unique}",
        "DRIFTWARDEN__ALERT_RELAY__ALERTMANAGER_URL": am.url,
        "DRIFTWARDEN__ALERT_RELAY__WEBHOOK_URL": webhook.url,
        "DRIFTWARDEN__ALERT_RELAY__RETRY_INITIAL_S": "0.2",
        "DRIFTWARDEN__ALERT_RELAY__RETRY_MAX_S": "1",
        "DRIFTWARDEN__ALERT_RELAY__FIRING_HOLD_S": str(HOLD_S),
        "DRIFTWARDEN__ALERT_RELAY__METRICS_PORT": str(metrics_port),
    }
    settings = load_settings(env=env)
    ensure_topics(settings)
    workers = Workers(env, tmp_path / "workers")
    now = time.time()
    income_firing, age_firing = alert("income", "firing", now - 120), alert("age", "firing", now - 60)
    income_resolved, debt_firing = alert("income", "resolved", now - 120, now - 10), alert("debt", "firing", now)
    try:
        publish(settings, b"not an alert", encode(income_firing), encode(age_firing))
        workers.start("relay", "alert-relay")

        def active() -> dict[str, dict[str, object]]:
            return {a["labels"]["feature"]: a for a in am.alerts()}

        # Alertmanager has the first alert although the webhook is down; the relay holds on to it (in order,
        # uncommitted past the dead letter at offset 0) until the webhook has it too.
        wait_until(lambda: set(active()) == {"income"}, 30, "the first alert in Alertmanager", workers_log(workers))
        wait_until(lambda: metric(metrics_port, "driftwarden_relay_delivery_failures_total") >= 3, 30,
                   "retries against the down webhook", workers_log(workers))
        assert committed(settings) == 1
        assert metric(metrics_port, 'driftwarden_relay_dead_letters_total{reason="invalid_json"}') == 1
        ends = active()["income"]["endsAt"]
        assert isinstance(ends, str) and ends > iso(now + HOLD_S - 60)  # held open, not Alertmanager's 5 min

        os.killpg(workers.procs["relay"].pid, signal.SIGKILL)  # mid-outage: alerts in hand, none committed
        assert workers.procs["relay"].wait(10) == -9
        publish(settings, encode(income_resolved), encode(debt_firing))
        webhook.up()
        workers.start("relay-restarted", "alert-relay")
        wait_until(lambda: committed(settings) == 5, 60, "every alert committed", workers_log(workers))
        # Alertmanager: the resolved alert is gone, the two still firing are there (amtool's view).
        wait_until(lambda: set(active()) == {"age", "debt"}, 10, "income resolved in Alertmanager")
    finally:
        codes = workers.stop()
        webhook.down()
        am.stop()
    assert codes["relay-restarted"] == 0, workers_log(workers)()

    received = [(b["alerts"][0]["labels"]["feature"], b["status"]) for b in webhook.bodies]
    first_seen = list(dict.fromkeys(received))
    assert first_seen == [("income", "firing"), ("age", "firing"), ("income", "resolved"), ("debt", "firing")]
    assert all(b["receiver"] == RECEIVER and b["version"] == "4" for b in webhook.bodies)
    resolved = next(b["alerts"][0] for b in webhook.bodies if b["status"] == "resolved")
    assert (resolved["startsAt"], resolved["endsAt"]) == (income_resolved.startsAt, income_resolved.endsAt)


def workers_log(workers: Workers) -> Callable[[], str]:
    def text() -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-2500:]}"
                         for p in sorted(workers.folder.glob("*.log")))
    return text
