"""Silent producers and collapsing label coverage, on the real Redis and broker with the stream's batch
step and its idle timer driven in-process on an injected wall clock."""

from __future__ import annotations

import time
from itertools import count

import msgspec
import pytest
from confluent_kafka import Consumer
from prometheus_client import CollectorRegistry

from driftwarden.contract.events import DriftAlert, Label, Prediction, decode, encode
from driftwarden.contract.kafka import client_config, ensure_topics
from driftwarden.contract.settings import Settings
from driftwarden.contract.storage import connect
from stream.metrics import build_metrics
from stream.processor import BatchProcessor
from stream.publisher import KafkaPublisher
from stream.records import RawRecord
from stream.state import Keys
from stream.status import model_status

pytestmark = pytest.mark.services
BUCKET = 60.0


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


class Watched:
    def __init__(self, settings: Settings) -> None:
        ensure_topics(settings)
        self.settings = settings
        self.clock = Clock()
        self.start = self.clock.now
        self.registry = CollectorRegistry()
        self.redis = connect(settings.redis.url, settings.redis.cluster)
        self.processor = BatchProcessor(settings, self.redis, KafkaPublisher(settings), build_metrics(self.registry),
                                        clock=self.clock)
        self.offsets = count()
        self.ids = count()

    def at(self, t: float, n: int, labelled: bool = True, model: str = "watched") -> list[tuple[str, str, str]]:
        """Send ``n`` predictions (and their labels 12 s later in event time) at wall time start + t."""
        self.clock.now = self.start + t
        preds = [Prediction(event_id=f"{model}-{i}", model=model, timestamp=self.clock.now, features={"x": 1.0},
                            prediction=1, model_version="1") for i in (next(self.ids) for _ in range(n))]
        topics = self.settings.kafka.topics
        records = [RawRecord(topics.predictions, 0, next(self.offsets), model.encode(), encode(preds))]
        if labelled:
            labels = [Label(event_id=p.event_id, model=model, label=1, timestamp=self.clock.now + 12.0) for p in preds]
            records.append(RawRecord(topics.labels, 0, next(self.offsets), model.encode(), encode(labels)))
        return _alerts(self.processor.process(records).alerts)

    def tick(self, t: float) -> list[tuple[str, str, str]]:
        self.clock.now = self.start + t
        return _alerts(self.processor.tick({0}).alerts)

    def metric(self, name: str, **labels: str) -> float | None:
        return self.registry.get_sample_value(name, labels)


def _alerts(alerts: list[DriftAlert]) -> list[tuple[str, str, str]]:
    return [(a.status, a.labels.kind, a.labels.severity) for a in alerts]


def watched_settings(settings: Settings) -> Settings:
    monitor = msgspec.structs.replace(settings.monitor, silence_seconds=BUCKET, traffic_drop_share=0.1,
                                      label_coverage_drop_share=0.5, reference_size=100)
    return msgspec.structs.replace(settings, monitor=monitor)


@pytest.mark.parametrize("redis_mode", ["single", "cluster"])  # cluster: the timer reads every model's shard
def test_silence_fires_once_and_resolves_when_predictions_return_and_a_rate_drop_alerts(settings: Settings) -> None:
    w = Watched(watched_settings(settings))
    for t in range(0, 301, 30):  # five full buckets of 200 predictions a minute: the usual rate
        assert w.at(t, 100) == []
    assert w.tick(300 + BUCKET - 1) == []  # quiet, but not for silence_seconds yet
    assert w.tick(300 + BUCKET + 1) == [("firing", "traffic", "critical")]
    assert w.tick(300 + BUCKET + 30) == []  # one alert per silence, not one per tick
    assert w.metric("driftwarden_alerts_active", model="watched", kind="traffic", severity="critical") == 1
    assert w.at(400, 100) == [("resolved", "traffic", "critical")]  # traffic is back

    assert w.at(430, 100) == []
    assert w.at(460, 5) == []  # completes [400, 460): 200 predictions, healthy
    assert w.at(490, 5) == []
    assert w.at(520, 100) == [("firing", "traffic", "warning")]  # [460, 520) carried 10: under 10 % of usual
    assert w.at(550, 100) == []
    assert w.at(580, 100) == [("resolved", "traffic", "warning")]  # [520, 580) carried 200 again
    assert w.metric("driftwarden_prediction_rate", model="watched") == pytest.approx(200 / 60)

    # Every alert went out on drift-alerts, Alertmanager-shaped, once each.
    consumer = Consumer(client_config(w.settings, **{"group.id": f"watch-{time.monotonic_ns()}",
                                                     "auto.offset.reset": "earliest"}))
    consumer.subscribe([w.settings.kafka.topics.drift_alerts])
    seen: list[DriftAlert] = []
    deadline = time.monotonic() + 20
    while len(seen) < 4 and time.monotonic() < deadline:
        msg = consumer.poll(0.5)
        if msg is not None and not msg.error():
            seen.append(decode(DriftAlert, msg.value()))
    consumer.close()
    assert [(a.labels.alertname, a.status, a.annotations.summary) for a in seen] == [
        ("DriftwardenTraffic", "firing", "watched: traffic (critical)"),
        ("DriftwardenTraffic", "resolved", "watched: traffic (critical)"),
        ("DriftwardenTraffic", "firing", "watched: traffic (warning)"),
        ("DriftwardenTraffic", "resolved", "watched: traffic (warning)"),
    ]


def test_label_coverage_collapse_alerts_and_status_shows_coverage_and_delays(settings: Settings) -> None:
    w = Watched(watched_settings(settings))
    for t in range(0, 301, 30):
        assert w.at(t, 100) == []
    keys = Keys(w.settings.redis.key_prefix)
    status = model_status(w.redis, keys, "watched")
    assert status["labels"]["coverage"] == 1.0 and status["labels"]["recent_coverage"] == 1.0
    assert status["labels"]["delay_s"] == {"p50": 12.0, "p95": 12.0}
    assert status["traffic"]["rate_per_s"] == pytest.approx(200 / 60)

    assert w.at(330, 100, labelled=False) == []
    assert w.at(360, 100, labelled=False) == []  # completes [300, 360): half labelled, not yet a collapse
    assert w.at(390, 100, labelled=False) == []
    assert w.at(420, 100, labelled=False) == [("firing", "label_coverage", "warning")]  # [360, 420): none
    assert w.at(450, 100) == []
    assert w.at(480, 100) == [("resolved", "label_coverage", "warning")]
    status = model_status(w.redis, keys, "watched")
    assert status["labels"]["coverage"] == pytest.approx(1300 / 1700)
    assert w.metric("driftwarden_label_coverage", model="watched") == pytest.approx(1300 / 1700)
