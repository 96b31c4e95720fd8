"""The producer SDK against the real broker: what it sends is what a consumer decodes back."""

from __future__ import annotations

import time
from collections import defaultdict

import pytest

from driftwarden.contract.events import Label, Prediction, decode_batch
from driftwarden.contract.kafka import ensure_topics, make_consumer
from driftwarden.contract.settings import Settings
from driftwarden.sdk.producer import DeliveryReport, DriftwardenProducer

pytestmark = pytest.mark.services


def consume(settings: Settings, topic: str, n_events: int, kind: type[Prediction] | type[Label],
            timeout: float = 30.0) -> list[tuple[bytes, int, list[Prediction] | list[Label]]]:
    """(key, partition, events) per message until ``n_events`` events have been read."""
    consumer = make_consumer(settings, f"sdk-test-{topic}")
    consumer.subscribe([topic])
    out: list[tuple[bytes, int, list[Prediction] | list[Label]]] = []
    deadline = time.monotonic() + timeout
    try:
        while sum(len(events) for _, _, events in out) < n_events and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None or msg.error():
                continue
            out.append((msg.key(), msg.partition(), decode_batch(kind, msg.value())))
    finally:
        consumer.close()
    return out


def test_predictions_and_labels_round_trip_through_kafka(settings: Settings) -> None:
    topics = settings.kafka.topics
    ensure_topics(settings, [topics.predictions, topics.labels])
    reports: list[DeliveryReport] = []
    expected: dict[str, list[str]] = defaultdict(list)
    labelled: dict[str, int] = {}
    with DriftwardenProducer(settings, max_batch_size=25, linger_s=0.2, on_delivery=reports.append) as dw:
        for i in range(120):
            model = ("churn", "fraud", "ltv")[i % 3]
            eid = dw.log_prediction(model, {"x": float(i), "plan": "pro" if i % 2 else "free"}, i % 2,
                                    score=i / 120, model_version="3", timestamp=1_700_000_000.0 + i)
            expected[model].append(eid)
            if i % 4 == 0:
                dw.log_label(model, eid, i % 2, timestamp=1_700_000_100.0 + i)
                labelled[eid] = i % 2
    assert (dw.delivered, dw.failed) == (120 + 30, 0)
    assert sum(r.count for r in reports if r.ok) == 150

    messages = consume(settings, topics.predictions, 120, Prediction)
    got: dict[str, list[str]] = defaultdict(list)
    partitions: dict[str, set[int]] = defaultdict(set)
    for key, partition, events in messages:
        assert {e.model for e in events} == {key.decode()}  # one model per message, keyed by it
        partitions[key.decode()].add(partition)
        got[key.decode()].extend(e.event_id for e in events)
    assert got == expected  # every event, once, in the order logged
    assert all(len(p) == 1 for p in partitions.values())
    assert max(len(events) for _, _, events in messages) == 25

    [event] = [e for _, _, events in messages for e in events if e.event_id == expected["fraud"][0]]
    assert event == Prediction(event_id=expected["fraud"][0], model="fraud", timestamp=1_700_000_001.0,
                               features={"x": 1.0, "plan": "pro"}, prediction=1, model_version="3",
                               score=1 / 120)

    labels = [e for _, _, events in consume(settings, topics.labels, 30, Label) for e in events]
    assert {lab.event_id: lab.label for lab in labels} == labelled
    assert len(labels) == 30
