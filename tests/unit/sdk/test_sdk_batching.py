"""The producer SDK's batching, validation and delivery accounting, against an autospec'd Producer."""

from __future__ import annotations

import threading
import time
from typing import Any
from unittest.mock import create_autospec

import numpy as np
import pytest
from confluent_kafka import KafkaError, Message, Producer

from driftwarden.contract.events import ContractError, Label, Prediction, decode_batch
from driftwarden.contract.settings import Settings
from driftwarden.sdk.producer import DeliveryReport, DriftwardenProducer, ProducerClosedError


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def kafka() -> Any:
    producer = create_autospec(Producer, instance=True)
    producer.flush.return_value = 0
    return producer


def make(kafka: Any, **kwargs: Any) -> DriftwardenProducer:
    kwargs.setdefault("background", False)
    return DriftwardenProducer(Settings(), producer=kafka, **kwargs)


def sent(kafka: Any) -> list[tuple[str, bytes, bytes]]:
    """(topic, key, value) of every produce call, in order."""
    return [(c.args[0], c.kwargs["key"], c.kwargs["value"]) for c in kafka.produce.call_args_list]


def test_a_full_batch_is_sent_as_one_json_array_keyed_by_model(kafka: Any) -> None:
    dw = make(kafka, max_batch_size=3, linger_s=60)
    ids = [dw.log_prediction("churn", {"x": float(i)}, i % 2, timestamp=float(i)) for i in range(7)]

    messages = sent(kafka)
    assert len(messages) == 2
    assert dw.buffered == 1
    for n, (topic, key, value) in enumerate(messages):
        assert topic == "predictions"
        assert key == b"churn"
        events = decode_batch(Prediction, value)
        assert [e.event_id for e in events] == ids[3 * n: 3 * n + 3]
        assert [e.features["x"] for e in events] == [float(i) for i in range(3 * n, 3 * n + 3)]

    assert dw.flush() == 0
    assert len(sent(kafka)) == 3
    assert [e.event_id for e in decode_batch(Prediction, sent(kafka)[2][2])] == ids[6:]
    assert dw.buffered == 0
    kafka.flush.assert_called_once()


def test_models_are_batched_apart(kafka: Any) -> None:
    dw = make(kafka, max_batch_size=2, linger_s=60)
    for i in range(4):
        dw.log_prediction("a" if i % 2 == 0 else "b", {"x": 1.0}, 0.5, event_id=f"e{i}")
    dw.flush()

    by_key = {key: [e.event_id for e in decode_batch(Prediction, value)] for _, key, value in sent(kafka)}
    assert by_key == {b"a": ["e0", "e2"], b"b": ["e1", "e3"]}


def test_labels_go_to_the_labels_topic(kafka: Any) -> None:
    dw = make(kafka, linger_s=60)
    dw.log_label("churn", "e1", "yes", timestamp="2024-05-01T10:00:00Z")
    dw.flush()

    [(topic, key, value)] = sent(kafka)
    assert (topic, key) == ("labels", b"churn")
    assert decode_batch(Label, value) == [Label(event_id="e1", model="churn", label="yes",
                                                timestamp="2024-05-01T10:00:00Z")]


def test_a_batch_older_than_linger_is_sent_on_the_next_call(kafka: Any) -> None:
    clock = FakeClock()
    dw = make(kafka, max_batch_size=100, linger_s=2.0, clock=clock)
    dw.log_prediction("a", {"x": 1.0}, 1.0)
    clock.now += 1.0
    dw.log_prediction("b", {"x": 1.0}, 1.0)
    assert sent(kafka) == []

    clock.now += 1.0  # a's batch is now 2 s old, b's only 1 s
    dw.poll()
    assert [key for _, key, _ in sent(kafka)] == [b"a"]
    clock.now += 1.0
    dw.poll()
    assert [key for _, key, _ in sent(kafka)] == [b"a", b"b"]


def test_the_background_thread_sends_lingering_batches(kafka: Any) -> None:
    dw = make(kafka, linger_s=0.05, background=True)
    dw.log_prediction("a", {"x": 1.0}, 1.0)
    deadline = time.monotonic() + 5
    while not kafka.produce.called and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(sent(kafka)) == 1
    dw.close()


def test_a_batch_never_exceeds_max_batch_bytes(kafka: Any) -> None:
    dw = make(kafka, max_batch_size=1000, max_batch_bytes=600, linger_s=60)
    for i in range(20):
        dw.log_prediction("m", {"text": "x" * 50}, 1.0, event_id=f"id-{i}")
    dw.flush()

    values = [v for _, _, v in sent(kafka)]
    assert len(values) > 1
    assert all(len(v) <= 600 for v in values)
    assert [e.event_id for v in values for e in decode_batch(Prediction, v)] == [f"id-{i}" for i in range(20)]


@pytest.mark.parametrize(("model", "features", "kwargs"), [
    ("", {"x": 1.0}, {}),                                   # empty model
    ("m", {"x": 1.0}, {"timestamp": "yesterday"}),          # not ISO-8601
    ("m", {"x": [1, 2]}, {}),                               # a list is not a feature value
    ("m", {"x": object()}, {}),                             # not JSON at all
    ("m", {"x": 1.0}, {"event_id": ""}),                    # an explicit empty id
    ("m", {"x": 1.0}, {"score": "high"}),                   # score must be a number
])
def test_invalid_events_raise_before_anything_is_buffered(
        kafka: Any, model: str, features: dict[str, Any], kwargs: dict[str, Any]) -> None:
    dw = make(kafka, linger_s=60)
    with pytest.raises(ContractError):
        dw.log_prediction(model, features, 1.0, **kwargs)
    assert dw.buffered == 0


def test_numpy_scalars_are_accepted(kafka: Any) -> None:
    dw = make(kafka, linger_s=60)
    dw.log_prediction("m", {"n": np.int64(3), "f": np.float32(0.5), "b": np.bool_(True)}, np.int64(1),
                      score=np.float64(0.25), event_id="e")
    dw.flush()
    [event] = decode_batch(Prediction, sent(kafka)[0][2])
    assert event.features == {"n": 3, "f": 0.5, "b": True}
    assert (event.prediction, event.score) == (1, 0.25)


def test_generated_event_ids_are_unique_and_timestamps_default_to_now(kafka: Any) -> None:
    dw = make(kafka, linger_s=60)
    before = time.time()
    ids = {dw.log_prediction("m", {"x": 1.0}, 1.0) for _ in range(50)}
    dw.flush()
    assert len(ids) == 50
    events = decode_batch(Prediction, sent(kafka)[0][2])
    assert {e.event_id for e in events} == ids
    assert all(before <= float(e.timestamp) <= time.time() for e in events)


def test_delivery_reports_count_events_and_reach_the_user_callback(kafka: Any) -> None:
    reports: list[DeliveryReport] = []
    dw = make(kafka, max_batch_size=2, linger_s=60, on_delivery=reports.append)
    for _ in range(3):
        dw.log_prediction("m", {"x": 1.0}, 1.0)
    dw.flush()
    first, second = (c.kwargs["on_delivery"] for c in kafka.produce.call_args_list)

    msg = create_autospec(Message, instance=True)
    msg.partition.return_value = 1
    msg.offset.return_value = 42
    first(None, msg)
    second(KafkaError(KafkaError._MSG_TIMED_OUT), msg)

    assert (dw.delivered, dw.failed) == (2, 1)
    assert reports[0] == DeliveryReport("predictions", "m", 2, None, 1, 42)
    assert reports[0].ok
    assert not reports[1].ok and reports[1].count == 1 and reports[1].partition is None


def test_a_full_local_queue_is_drained_and_retried(kafka: Any) -> None:
    kafka.produce.side_effect = [BufferError("queue full"), None]
    dw = make(kafka, max_batch_size=1)
    dw.log_prediction("m", {"x": 1.0}, 1.0)
    assert kafka.produce.call_count == 2
    kafka.poll.assert_any_call(0.1)


def test_close_flushes_and_unregisters_from_atexit(kafka: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    registered: list[Any] = []
    monkeypatch.setattr("driftwarden.sdk.producer.atexit.register", registered.append)
    monkeypatch.setattr("driftwarden.sdk.producer.atexit.unregister", registered.remove)
    with make(kafka, linger_s=60) as dw:
        assert registered == [dw.close]
        dw.log_prediction("m", {"x": 1.0}, 1.0)
        assert sent(kafka) == []
    assert len(sent(kafka)) == 1
    kafka.flush.assert_called_once()
    assert registered == []
    assert dw.close() == 0  # idempotent
    with pytest.raises(ProducerClosedError):
        dw.log_label("m", "e", 1.0)


def test_concurrent_logging_loses_nothing(kafka: Any) -> None:
    dw = make(kafka, max_batch_size=7, linger_s=60)

    def work(n: int) -> None:
        for i in range(200):
            dw.log_prediction("m", {"x": 1.0}, 1.0, event_id=f"{n}-{i}")

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    dw.flush()
    ids = [e.event_id for _, _, v in sent(kafka) for e in decode_batch(Prediction, v)]
    assert sorted(ids) == sorted(f"{n}-{i}" for n in range(4) for i in range(200))


@pytest.mark.parametrize("kwargs", [{"max_batch_size": 0}, {"linger_s": -1}, {"max_batch_bytes": 10}])
def test_invalid_parameters_are_rejected(kafka: Any, kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        make(kafka, **kwargs)
