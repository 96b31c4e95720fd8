"""Every way a retrain can fail ends in a ``model-updates`` event with ``promoted: false`` and a reason;
bad messages go to the dead letters; an outage of MLflow or Redis loses no drift event."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import msgspec
import pytest
from mlflow import MlflowClient
from test_retrain_support import (
    TopicReader,
    committed,
    drift_event,
    produce,
    samples,
    seed_samples,
    with_retrain,
)

from driftwarden.contract.events import DeadLetter, decode
from driftwarden.contract.settings import Settings
from driftwarden.devtools.devstack import free_port
from retrain_worker.worker import RetrainWorker

pytestmark = pytest.mark.services


def poll_until(worker: RetrainWorker, done: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, "condition not reached"
        worker.poll_once(0.3)


def poll_n(worker: RetrainWorker, count: int, timeout: float = 60.0) -> None:
    taken, deadline = 0, time.monotonic() + timeout
    while taken < count:
        assert time.monotonic() < deadline, f"{taken} of {count} messages taken"
        taken += worker.poll_once(0.3)


def test_failed_retrains_are_published_committed_and_do_not_stop_the_worker(
        settings: Settings, start_worker: Callable[[Settings], RetrainWorker], unique: str) -> None:
    few, single, broken, good, misconfigured = (
        f"{name}-{unique}" for name in ("few", "single", "broken", "good", "misconfigured"))
    s = with_retrain(settings, cooldown_s=600, models={
        broken: {"trainer": "test_retrain_support:failing_trainer"},
        misconfigured: {"min_samples": "a few"}})
    seed_samples(s, few, samples(120, "old", seed=1))
    one_class = samples(900, "old", seed=2)
    for row in one_class[-200:]:  # the newest 200 (beyond the 180 of the holdout) are all legit
        row["label"] = 0
    seed_samples(s, single, one_class)
    seed_samples(s, broken, samples(900, "old", seed=3))
    seed_samples(s, good, samples(900, "old", seed=4))
    produce(s, drift_event(few), b"{this is not json", drift_event(single),
            b'{"drift_id": 42, "model": "x"}', drift_event(broken), drift_event(misconfigured),
            drift_event(good))
    worker = start_worker(s)
    poll_n(worker, 7)

    updates = {u.model: u for u in TopicReader(s, s.kafka.topics.model_updates).updates(4)}
    assert set(updates) == {few, single, broken, good}
    for model, prefix in ((few, "too_few_samples: "), (single, "single_class_holdout: "),
                          (broken, "trainer_failed: ")):
        assert updates[model].promoted is False, model
        assert updates[model].version is None
        assert updates[model].reason.startswith(prefix), updates[model].reason
        assert updates[model].drift_id == drift_event(model).drift_id
    assert "120 labelled samples, 500 needed" in updates[few].reason
    assert "RuntimeError: the feature store is down" in updates[broken].reason
    assert updates[good].promoted is True

    letters = {d.error.split(":")[0]: d for d in
               (decode(DeadLetter, v) for v in TopicReader(s, s.kafka.topics.dead_letters).read(3))}
    assert set(letters) == {"invalid_json", "invalid_field", "unhandled"}
    assert {d.source_topic for d in letters.values()} == {s.kafka.topics.drift_events}
    assert len({(d.partition, d.offset) for d in letters.values()}) == 3
    assert letters["invalid_json"].payload == "{this is not json"
    assert letters["invalid_field"].key == "garbage"
    assert "ConfigError" in letters["unhandled"].error and letters["unhandled"].key == misconfigured
    assert committed(s) == 7  # every message, the bad ones included, is committed past
    client = MlflowClient(tracking_uri=s.mlflow.tracking_uri)
    assert client.search_model_versions(f"name = '{broken}'") == []
    assert sample_count(worker, broken, "failed") == 1

    # Too few samples does not start the cooldown: once the data is there, the next drift retrains.
    seed_samples(s, few, samples(900, "old", seed=5))
    produce(s, drift_event(few, window=4))
    poll_n(worker, 1)
    for_few = [u for u in TopicReader(s, s.kafka.topics.model_updates).updates(5) if u.model == few]
    assert [(u.promoted, u.version) for u in for_few] == [(False, None), (True, "1")]


def sample_count(worker: RetrainWorker, model: str, outcome: str, trigger: str = "concept_drift") -> float:
    value = worker.metrics.registry.get_sample_value(
        "driftwarden_retrains_total", {"model": model, "trigger": trigger, "outcome": outcome})
    return value or 0.0


@pytest.mark.parametrize("service", ["mlflow", "redis"])
def test_an_unavailable_service_keeps_the_drift_event_until_it_is_back(
        settings: Settings, start_worker: Callable[[Settings], RetrainWorker], unique: str, service: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    model = f"outage-{unique}"
    s = with_retrain(settings, cooldown_s=0, retry_backoff_s=0.2)
    dead = f"http://127.0.0.1:{free_port()}" if service == "mlflow" else f"redis://127.0.0.1:{free_port()}/0"
    if service == "mlflow":
        broken = msgspec.structs.replace(s, mlflow=msgspec.structs.replace(s.mlflow, tracking_uri=dead))
    else:
        broken = msgspec.structs.replace(s, redis=msgspec.structs.replace(s.redis, url=dead))
    seed_samples(s, model, samples(800, "new", seed=7))
    produce(s, drift_event(model))
    updates = TopicReader(s, s.kafka.topics.model_updates)

    worker = start_worker(broken)
    for _ in range(8):  # the first attempt and a few retries
        worker.poll_once(0.5)
    [failure] = updates.updates(1)
    assert updates.read(1, timeout=2) == []  # an outage is announced once, not per retry
    assert failure.promoted is False and failure.version is None
    assert failure.reason.startswith(f"{service}_unavailable: ")
    assert failure.drift_id == drift_event(model).drift_id
    assert committed(s) == 0
    worker.close()

    recovered = start_worker(s)
    poll_until(recovered, lambda: committed(s) == 1)
    [update] = updates.updates(1)
    assert update.promoted and update.version == "1"
    client = MlflowClient(tracking_uri=s.mlflow.tracking_uri)
    assert [v.version for v in client.search_model_versions(f"name = '{model}'")] == ["1"]


def test_a_model_without_labels_gets_one_skipped_update_per_drift_incident(
        settings: Settings, start_worker: Callable[[Settings], RetrainWorker], unique: str,
        caplog: pytest.LogCaptureFixture) -> None:
    """Drift goes on for windows 3 to 6 (two features in window 4, and a concept detection in
    between): one incident, so one ``promoted: false`` update, at INFO. Window 10 comes after more
    than ``stream.alert_resolve_windows`` (3) clean windows: a new incident, a second update. Once the
    labels are there, the next drift event of the incident retrains."""
    model = f"unlabelled-{unique}"
    s = with_retrain(settings, cooldown_s=600)
    seed_samples(s, model, samples(40, "old", seed=11))
    incident = [drift_event(model, "data_drift", "amount", window=3),
                drift_event(model, "data_drift", "amount", window=4),
                drift_event(model, "data_drift", "age", window=4),
                drift_event(model, "data_drift", "amount", window=5),
                drift_event(model, "data_drift", "amount", window=6)]
    produce(s, *incident, drift_event(model, "data_drift", "amount", window=10))
    updates = TopicReader(s, s.kafka.topics.model_updates)
    worker = start_worker(s)
    with caplog.at_level(logging.INFO, logger="retrain_worker"):
        poll_n(worker, 6)

    first, second = updates.updates(2)
    assert updates.read(1, timeout=3) == []  # nothing for windows 4, 5 and 6
    assert [(u.promoted, u.version, u.drift_id) for u in (first, second)] == [
        (False, None, incident[0].drift_id), (False, None, drift_event(model, "data_drift", "amount", 10).drift_id)]
    assert first.reason == second.reason == f"too_few_samples: {model}: 40 labelled samples, 500 needed"
    worker_logs = [r for r in caplog.records if r.name.startswith("retrain_worker")]
    assert not [r for r in worker_logs if r.levelno >= logging.WARNING], [r.getMessage() for r in worker_logs]
    # every attempt (windows 3, 4, 5, 6, 10; the second event of window 4 joins its incident) at INFO
    assert sum("too_few_samples" in r.getMessage() for r in worker_logs) == 5
    assert sample_count(worker, model, "skipped", "data_drift") == 6  # 2 announced, 3 silent, 1 joined
    assert sample_count(worker, model, "failed", "data_drift") == 0  # no DriftwardenRetrainFailing page
    assert committed(s) == 6

    seed_samples(s, model, samples(900, "old", seed=12))  # the labels arrive while the drift goes on
    produce(s, drift_event(model, "data_drift", "amount", window=11))
    poll_n(worker, 1)
    [retrained] = updates.updates(1)
    assert (retrained.promoted, retrained.version) == (True, "1")
