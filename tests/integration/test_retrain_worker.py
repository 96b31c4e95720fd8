"""The retrain worker against real Kafka, Redis and MLflow: drift event → version with lineage →
champion alias; a worse challenger; redelivery; rollback; scheduled retrains."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import mlflow
import pytest
from click.testing import CliRunner
from mlflow import MlflowClient
from test_retrain_support import (
    START,
    FakeClock,
    TopicReader,
    drift_event,
    produce,
    samples,
    seed_samples,
    with_retrain,
    write_config,
)

import driftwarden
from driftwarden.cli import main
from driftwarden.contract.settings import Settings
from driftwarden.contract.storage import Keys, connect
from retrain_worker.rollback import rollback
from retrain_worker.worker import RetrainWorker

pytestmark = pytest.mark.services


@pytest.fixture
def model(unique: str) -> str:
    """Registered model names are global in MLflow: one per test."""
    return f"fraud-{unique}"


def process(worker: RetrainWorker, count: int, timeout: float = 60.0) -> None:
    """Poll until ``count`` messages were taken."""
    import time

    taken, deadline = 0, time.monotonic() + timeout
    while taken < count:
        assert time.monotonic() < deadline, f"only {taken} of {count} drift events arrived"
        taken += worker.poll_once(0.5)


def versions(settings: Settings, model: str) -> list[mlflow.entities.model_registry.ModelVersion]:
    client = MlflowClient(tracking_uri=settings.mlflow.tracking_uri)
    return sorted(client.search_model_versions(f"name = '{model}'"), key=lambda v: int(v.version))


def sample_value(worker: RetrainWorker, name: str, **labels: str) -> float:
    value = worker.metrics.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


@pytest.mark.parametrize("redis_mode", ["single", "cluster"])  # cluster: a real three-master Redis Cluster
def test_drift_retrains_registers_lineage_and_moves_the_champion(settings: Settings, start_worker,
                                                                 model: str) -> None:
    clock = FakeClock()
    s = with_retrain(settings, cooldown_s=600)
    worker = start_worker(s, clock)
    updates = TopicReader(s, s.kafka.topics.model_updates)
    r = connect(s.redis.url, s.redis.cluster)
    keys = Keys(s.redis.key_prefix, s.redis.cluster)

    # The first version: the old regime, nobody is champion yet.
    seed_samples(s, model, samples(1000, "old", seed=1))
    produce(s, drift_event(model, "concept_drift", window=1))
    process(worker, 1)
    [first] = updates.updates(1)
    assert (first.version, first.promoted, first.previous_version) == ("1", True, None)
    assert first.reason.startswith("no_champion")

    # The concept drifts: fraud is now young customers in the app. Four drift events arrive for the
    # change: three features of one prediction window, and the concept drift (within the cooldown).
    clock.now += 700
    new_rows = samples(300, "old", seed=2) + samples(1500, "new", seed=3, start=START + 2000)
    seed_samples(s, model, new_rows)
    concept = drift_event(model, "concept_drift", window=2)
    features = [drift_event(model, "data_drift", feature=f, window=5) for f in ("amount", "age", "channel")]
    produce(s, *features, concept)
    process(worker, 4)
    [second] = updates.updates(1)
    assert updates.read(1, timeout=3) == []  # one incident → one decision

    assert (second.version, second.promoted, second.previous_version) == ("2", True, "1")
    assert second.metrics["challenger_accuracy"] > second.metrics["champion_accuracy"] + 0.05
    assert second.reason.startswith("challenger_better: accuracy")
    client = MlflowClient(tracking_uri=s.mlflow.tracking_uri)
    assert [v.version for v in versions(s, model)] == ["1", "2"]
    assert client.get_model_version_by_alias(model, "champion").version == "2"
    assert client.get_model_version_by_alias(model, "previous").version == "1"

    # Lineage, on the version and on its run.
    v2 = client.get_model_version(model, "2")
    trigger_event = drift_event(model, "data_drift", feature="amount", window=5)
    raw = sorted(r.lrange(keys.samples(model), 0, -1),
                 key=lambda b: json.loads(b)["timestamp"])
    expected_sha = hashlib.sha256(b"\n".join(raw)).hexdigest()
    assert v2.tags["drift_id"] == trigger_event.drift_id == second.drift_id
    assert v2.tags["trigger"] == "data_drift"
    assert v2.tags["data_sha256"] == expected_sha
    assert v2.tags["sample_count"] == str(len(new_rows)) == "1800"
    assert (v2.tags["train_count"], v2.tags["holdout_count"]) == ("1440", "360")
    assert float(v2.tags["data_start_epoch"]) == START
    assert float(v2.tags["data_end_epoch"]) == START + 2000 + 1499 * 5.0
    assert v2.tags["code_version"].startswith(driftwarden.__version__)
    assert len(v2.tags["git_sha"]) == 40
    assert v2.tags["decision"] == "promoted"
    run = client.get_run(v2.run_id)
    assert run.data.tags["data_sha256"] == expected_sha
    assert run.data.tags["incident_id"] == v2.tags["incident_id"]
    assert run.data.params["metric"] == "accuracy" and run.data.params["task"] == "classification"
    logged = set(run.data.metrics)
    assert {"challenger_accuracy", "champion_accuracy", "challenger_roc_auc", "champion_f1"} <= logged
    info = mlflow.models.get_model_info(v2.source)
    assert info.signature is not None
    assert {c.name for c in info.signature.inputs} == {"amount", "age", "channel", "country"}
    assert info.saved_input_example_info is not None
    assert [a.path for a in client.list_artifacts(v2.run_id, "reference")]

    # Reference data for the stream, one per version.
    for version in ("1", "2"):
        assert r.exists(keys.reference(model, version))

    # The champion serves: it predicts the new regime.
    champion = mlflow.sklearn.load_model(f"models:/{model}@champion")
    assert champion.predict(__import__("pandas").DataFrame(
        [{"amount": 10.0, "age": 22.0, "channel": "app", "country": "fr"}]))[0] == 1

    assert sample_value(worker, "driftwarden_promotions_total", model=model) == 2
    assert sample_value(worker, "driftwarden_champion_version", model=model) == 2
    assert sample_value(worker, "driftwarden_retrains_total", model=model, trigger="data_drift",
                        outcome="promoted") == 1
    assert sample_value(worker, "driftwarden_retrains_total", model=model, trigger="concept_drift",
                        outcome="skipped") == 1  # the cooldown
    assert sample_value(worker, "driftwarden_training_seconds_count", model=model) == 2

    # Roll back: champion returns to 1, announced like a promotion.
    update = rollback(s, model)
    assert (update.version, update.previous_version, update.promoted) == ("1", "2", True)
    assert client.get_model_version_by_alias(model, "champion").version == "1"
    assert client.get_model_version_by_alias(model, "previous").version == "2"
    [announced] = updates.updates(1)
    assert announced == update and announced.reason.startswith("rollback")
    updates.close()


def test_a_worse_challenger_does_not_take_the_champion(settings: Settings, start_worker, model: str) -> None:
    s = with_retrain(settings, cooldown_s=0)
    seed_samples(s, model, samples(1200, "new", seed=4))
    worker = start_worker(s)
    produce(s, drift_event(model, "concept_drift", window=1))
    process(worker, 1)
    worker.close()

    # Same data, but a trainer that can only predict the majority class.
    weak = with_retrain(s, cooldown_s=0,
                        models={model: {"trainer_params": {"estimator": "linear", "C": 1e-6}}})
    worker = start_worker(weak)
    produce(s, drift_event(model, "concept_drift", window=2))
    process(worker, 1)
    first, second = TopicReader(s, s.kafka.topics.model_updates).updates(2)
    assert first.promoted and first.version == "1"
    assert (second.version, second.promoted, second.previous_version) == ("2", False, "1")
    assert second.metrics["challenger_accuracy"] < second.metrics["champion_accuracy"]
    assert second.reason.startswith("challenger_not_better: accuracy")
    client = MlflowClient(tracking_uri=s.mlflow.tracking_uri)
    assert client.get_model_version_by_alias(model, "champion").version == "1"
    rejected = client.get_model_version(model, "2")
    assert rejected.tags["decision"] == "rejected"
    assert rejected.tags["decision_reason"] == second.reason
    with pytest.raises(mlflow.exceptions.MlflowException):
        client.get_model_version_by_alias(model, "previous")


def test_a_redelivered_drift_event_does_not_retrain_twice(settings: Settings, start_worker,
                                                          model: str) -> None:
    s = with_retrain(settings, cooldown_s=0)
    seed_samples(s, model, samples(800, "new", seed=5))
    event = drift_event(model, "concept_drift", window=9)
    produce(s, event, event)  # the producer retried
    worker = start_worker(s)
    process(worker, 2)
    worker.close()
    # Everything is delivered again to a group that never committed (e.g. offsets were reset).
    again = with_retrain(s, cooldown_s=0, group_id=s.retrain.group_id + "-replay")
    replay = start_worker(again)
    process(replay, 2)
    assert [v.version for v in versions(s, model)] == ["1"]
    updates = TopicReader(s, s.kafka.topics.model_updates)
    assert len(updates.updates(1)) == 1
    assert updates.read(1, timeout=3) == []
    assert sample_value(replay, "driftwarden_retrains_total", model=model, trigger="concept_drift",
                        outcome="skipped") == 2


def test_scheduled_retrain_runs_once_per_slot(settings: Settings, start_worker, model: str) -> None:
    clock = FakeClock(START)
    s = with_retrain(settings, models={model: {"schedule_interval_s": 3600}})
    seed_samples(s, model, samples(700, "old", seed=6))
    worker = start_worker(s, clock)
    [outcome] = worker.run_scheduled()
    assert outcome.update is not None and outcome.update.promoted and outcome.update.drift_id is None
    clock.now += 10
    assert worker.run_scheduled() == []  # same slot
    clock.now += 3600
    [later] = worker.run_scheduled()
    assert later.update is not None and later.update.version == "2"
    tags = MlflowClient(tracking_uri=s.mlflow.tracking_uri).get_model_version(model, "1").tags
    assert (tags["trigger"], tags["drift_id"]) == ("schedule", "none")
    assert len(versions(s, model)) == 2


def test_rollback_command(settings: Settings, start_worker, model: str, tmp_path: Path) -> None:
    s = with_retrain(settings, cooldown_s=0)
    config = str(write_config(s, tmp_path / "driftwarden.yaml"))
    env = {name: None for name in ("KAFKA_BOOTSTRAP_SERVERS", "REDIS_URL", "MLFLOW_TRACKING_URI",
                                   "DRIFTWARDEN_CONFIG")}
    refused = CliRunner(env=env).invoke(main, ["--config", config, "rollback", model])
    assert refused.exit_code == 1 and "nothing to roll back" in refused.output

    seed_samples(s, model, samples(800, "old", seed=8))
    worker = start_worker(s)
    produce(s, drift_event(model, window=1))
    process(worker, 1)
    seed_samples(s, model, samples(1200, "new", seed=9, start=START + 5000))
    produce(s, drift_event(model, window=2))
    process(worker, 1)
    client = MlflowClient(tracking_uri=s.mlflow.tracking_uri)
    assert client.get_model_version_by_alias(model, "champion").version == "2"
    done = CliRunner(env=env).invoke(main, ["--config", config, "rollback", model])
    assert done.exit_code == 0, done.output
    assert "champion moved back from version 2 to 1" in done.output
    assert client.get_model_version_by_alias(model, "champion").version == "1"
    assert client.get_model_version(model, "2").tags["rolled_back"] == "true"
    last = TopicReader(s, s.kafka.topics.model_updates).updates(3)[-1]
    assert (last.version, last.previous_version, last.promoted) == ("1", "2", True)
