"""Faults mid-stream on a stack of this module's own (stopping its services cannot disturb other tests):
Redis stopped for 20 s and restarted on its data, the Kafka broker restarted, MLflow stopped during a
retrain and started again. The workers are real processes and nobody restarts them: afterwards every
count is exact (nothing lost, nothing applied twice) and the drift decisions equal an undisturbed run's."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from mlflow import MlflowClient
from test_retrain_support import TopicReader, committed, drift_event, produce, samples, seed_samples
from test_stream_workers import Run, Traffic, comparable, drift_ids_published, expected_drift_ids, spec_of, wait_for

from detectors.monitor import ModelMonitor
from driftwarden.contract.kafka import ensure_topics
from driftwarden.contract.settings import load_settings
from driftwarden.devtools.demo import Workers, isolated_env
from driftwarden.devtools.devstack import Stack
from stream.state import decode_state

pytestmark = pytest.mark.services
TESTS = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def fault_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    stack = Stack(tmp_path_factory.mktemp("fault-stack"))
    stack.up(log=lambda line: print(f"[fault-stack] {line}"))
    yield stack
    stack.down(log=lambda line: None)


@pytest.fixture
def fault_run(fault_stack: Stack, unique: str, tmp_path: Path) -> Iterator[Run]:
    env = isolated_env(fault_stack.up(log=lambda line: None), unique)
    env.update({
        "DRIFTWARDEN__KAFKA__PARTITIONS": "4",
        "DRIFTWARDEN__STREAM__BATCH_SIZE": "20",
        "DRIFTWARDEN__STREAM__BATCH_TIMEOUT_S": "0.05",
        "DRIFTWARDEN__STREAM__DATA_DIR": str(tmp_path / "faust"),
        "DRIFTWARDEN__MONITOR__REFERENCE_SIZE": "500",
        "DRIFTWARDEN__MONITOR__WINDOW_SIZE": "250",
    })
    settings = load_settings(env=env)
    ensure_topics(settings)
    run = Run(settings, env, Workers(env, tmp_path / "workers"), {})
    yield run
    run.workers.stop()


def check_exact(run: Run, specs: list, worker: str) -> None:  # type: ignore[type-arg]
    """Every event applied once and the drift decisions of an undisturbed run."""
    models = [s.model for s in specs]
    totals = {s.model: (s.total, s.total) for s in specs}
    wait_for(lambda: run.counters(models) == totals, 120, "every event applied", run)
    time.sleep(3)  # a batch applied twice would show up here
    assert run.counters(models) == totals
    assert run.workers.procs[worker].poll() is None, "the worker recovered by itself"
    for spec in specs:
        state = decode_state(run.redis.get(run.keys.state(spec.model)))
        ids, last_scores = expected_drift_ids(run.settings, spec)
        assert ids and drift_ids_published(run.settings, ids) >= ids
        assert state.observations == state.outcomes == spec.total
        assert comparable(ModelMonitor.from_bytes(state.monitor).last_scores) == last_scores
        assert run.redis.llen(run.keys.samples(spec.model)) == spec.total


def test_redis_down_for_20_s_mid_stream_then_back_with_its_data(fault_stack: Stack, fault_run: Run) -> None:
    run = fault_run
    specs = [spec_of("alpha", 3000), spec_of("beta", 2000)]
    run.start("stream")
    traffic = Traffic(run.settings, specs)
    traffic.start()
    wait_for(lambda: sum(p for p, _ in run.counters([s.model for s in specs]).values()) >= 1000, 90,
             "a fifth applied", run)
    applied_before = sum(p for p, _ in run.counters([s.model for s in specs]).values())
    fault_stack._stop_one("redis")  # SIGTERM: Redis writes its append-only file and exits
    stopped = time.monotonic()
    # mid-stream: the stream has applied part of the traffic (on a loaded machine the producer may be done)
    assert applied_before < 5000, "Redis must go away while the stream still applies"
    time.sleep(20)
    assert run.workers.procs["stream"].poll() is None, "the stream waits for Redis instead of dying"
    assert fault_stack.status()["redis"] is False
    fault_stack.up(log=lambda line: None)  # same port, same folder: the state comes back from disk
    assert time.monotonic() - stopped >= 20
    check_exact(run, specs, "stream")
    metrics = (run.get("stream", "/metrics") or b"").decode()
    errors = [line for line in metrics.splitlines() if line.startswith("driftwarden_state_write_errors_total")]
    assert errors and float(errors[0].split()[-1]) > 0, "the outage was seen and retried"


def test_kafka_broker_restarted_mid_stream(fault_stack: Stack, fault_run: Run) -> None:
    run = fault_run
    specs = [spec_of("alpha", 3000), spec_of("beta", 2000)]
    run.start("stream")
    traffic = Traffic(run.settings, specs)
    traffic.start()
    wait_for(lambda: sum(p for p, _ in run.counters([s.model for s in specs]).values()) >= 1000, 90,
             "a fifth applied", run)
    applied_before = sum(p for p, _ in run.counters([s.model for s in specs]).values())
    fault_stack._stop_one("kafka")
    assert fault_stack.status()["kafka"] is False
    assert applied_before < 5000, "the broker must go away while the stream still applies"
    fault_stack.up(log=lambda line: None)  # same port, same log folder
    check_exact(run, specs, "stream")


def test_mlflow_down_during_a_retrain_then_back(fault_stack: Stack, unique: str, tmp_path: Path) -> None:
    env = isolated_env(fault_stack.up(log=lambda line: None), unique)
    calls = tmp_path / "trainer-calls"
    calls.touch()
    env.update({
        "PYTHONPATH": str(TESTS),
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
        "DRIFTWARDEN__RETRAIN__METRICS_PORT": "0",
        "DRIFTWARDEN__RETRAIN__COOLDOWN_S": "0",
        "DRIFTWARDEN__RETRAIN__RETRY_BACKOFF_S": "1",
        "DRIFTWARDEN__RETRAIN__TRAINER": "test_retrain_support:slow_trainer",
        "DRIFTWARDEN__RETRAIN__TRAINER_PARAMS": f"{{calls: '{calls}', sleep_s: 3}}",
    })
    settings = load_settings(env=env)
    model = f"mlflow-down-{unique}"
    seed_samples(settings, model, samples(800, "new", seed=5))
    produce(settings, drift_event(model))
    updates = TopicReader(settings, settings.kafka.topics.model_updates)
    workers = Workers(env, tmp_path / "workers")
    log = tmp_path / "workers" / "retrain.log"
    try:
        workers.start("retrain", "retrain-worker")
        deadline = time.monotonic() + 60
        while calls.read_text().count("\n") < 1:  # the first training is under way (it sleeps 3 s)
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.1)
        fault_stack._stop_one("mlflow")
        time.sleep(8)  # the training ends with MLflow gone; the event is retried every second meanwhile
        assert committed(settings) == 0, "the drift event stays uncommitted while MLflow is down"
        assert workers.procs["retrain"].poll() is None
        fault_stack.up(log=lambda line: None)
        published: list = []  # type: ignore[type-arg]
        deadline = time.monotonic() + 90
        while not any(u.promoted for u in published) and time.monotonic() < deadline:
            published += updates.updates(1, timeout=2)
        promoted = [u for u in published if u.promoted]
        assert [u.reason.split(":")[0] for u in published if not u.promoted] in ([], ["mlflow_unavailable"])
        assert len(promoted) == 1 and promoted[0].version == "1", (published, log.read_text()[-3000:])
        deadline = time.monotonic() + 30
        while committed(settings) != 1:
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.2)
        assert updates.read(1, timeout=3) == []  # one outage notice at most, one decision
        client = MlflowClient(tracking_uri=settings.mlflow.tracking_uri)
        assert [v.version for v in client.search_model_versions(f"name = '{model}'")] == ["1"]
        assert client.get_model_version_by_alias(model, "champion").version == "1"
        assert workers.procs["retrain"].poll() is None, "the worker recovered by itself"
    finally:
        workers.stop()
        updates.close()
