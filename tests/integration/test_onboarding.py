"""``driftwarden onboard`` on the real Redis, broker and MLflow, with the stream's batch step driven
in-process: a training file becomes the reference the stream compares the very first window with, its
origin shows in ``/status``, and a version's onboarded reference comes back with a rollback to it."""

from __future__ import annotations

import hashlib
import time
from itertools import count
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from confluent_kafka import Consumer
from prometheus_client import CollectorRegistry
from sklearn.linear_model import LogisticRegression

from detectors.monitor import ModelMonitor
from driftwarden.cli import main
from driftwarden.contract.events import ModelUpdate, Prediction, decode, encode
from driftwarden.contract.kafka import client_config, ensure_topics
from driftwarden.contract.settings import Settings
from driftwarden.contract.storage import Keys, connect
from retrain_worker.onboard import OnboardError, onboard
from retrain_worker.registry import ModelRegistry
from retrain_worker.rollback import rollback
from stream.app import StreamService
from stream.metrics import build_metrics
from stream.processor import BatchProcessor, BatchReport
from stream.publisher import KafkaPublisher
from stream.records import RawRecord
from stream.state import decode_state
from stream.status import model_status

pytestmark = pytest.mark.services

NUMERIC = {"a": (0.0, 1.0), "b": (5.0, 2.0), "c": (-1.0, 0.5)}
PLANS = ("basic", "plus", "pro")
PLAN_P = (0.5, 0.3, 0.2)


def rows(n: int, seed: int, shift_a: float = 0.0) -> pd.DataFrame:
    """Well-behaved features: three normals and a three-level categorical (plus an id and a label)."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({name: rng.normal(mu + (shift_a * sd if name == "a" else 0.0), sd, n)
                          for name, (mu, sd) in NUMERIC.items()})
    frame["plan"] = rng.choice(PLANS, size=n, p=PLAN_P)
    frame["id"] = np.arange(n)
    frame["label"] = (frame["a"] + rng.normal(0, 1, n) > 0).astype(int)
    return frame


class Stream:
    """The stream's batch step on the real services, fed like a consumer would feed it."""

    def __init__(self, settings: Settings) -> None:
        ensure_topics(settings)
        self.settings = settings
        self.redis = connect(settings.redis.url, settings.redis.cluster)
        self.keys = Keys(settings.redis.key_prefix, settings.redis.cluster)
        self.processor = BatchProcessor(settings, self.redis, KafkaPublisher(settings),
                                        build_metrics(CollectorRegistry()))
        self.offsets = count()
        self.events = count()

    def send(self, model: str, frame: pd.DataFrame, per_batch: int = 1000) -> list[BatchReport]:
        features = frame[[*NUMERIC, "plan"]].to_dict(orient="records")
        preds = [Prediction(event_id=f"{model}-{i}", model=model, timestamp=1_700_000_000.0 + i,
                            features=f, prediction=0.0, model_version="1")
                 for i, f in zip(self.events, features, strict=False)]
        topic = self.settings.kafka.topics.predictions
        return [self.processor.process([RawRecord(topic, 0, next(self.offsets), model.encode(),
                                                  encode(preds[i:i + per_batch]))])
                for i in range(0, len(preds), per_batch)]

    def status(self, model: str) -> dict:  # type: ignore[type-arg]
        return model_status(self.redis, self.keys, model, b"", self.settings.monitor.reference_size)

    def monitor(self, model: str) -> ModelMonitor:
        return ModelMonitor.from_bytes(decode_state(self.redis.get(self.keys.state(model))).monitor)


def write(frame: pd.DataFrame, path: Path) -> Path:
    if path.suffix == ".parquet":
        frame.to_parquet(path)
    else:
        frame.to_csv(path, index=False)
    return path


@pytest.mark.parametrize("redis_mode", ["single", "cluster"])  # cluster: onboard writes to the model's shard
def test_skewed_serving_traffic_drifts_in_window_0_against_the_training_file(settings: Settings,
                                                                              tmp_path: Path) -> None:
    stream = Stream(settings)
    model = "onboarded-skew"
    path = write(rows(3000, seed=1), tmp_path / "train.parquet")
    result = CliRunner().invoke(main, ["onboard", model, str(path), "--label", "label", "--ignore", "id"],
                                env={"REDIS_URL": settings.redis.url,
                                     "DRIFTWARDEN__REDIS__KEY_PREFIX": settings.redis.key_prefix,
                                     "DRIFTWARDEN__REDIS__CLUSTER": str(settings.redis.cluster).lower()})
    assert result.exit_code == 0, result.output
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    assert "train.parquet (3000 rows" in result.output and "features a, b, c, plan" in result.output
    # Before the first prediction /status already says where the reference will come from.
    pending = stream.status(model)["reference"]
    assert pending == pending | {"source": "training_file", "file": "train.parquet", "sha256": sha, "rows": 3000,
                                 "pending": True}

    reports = stream.send(model, rows(1000, seed=2, shift_a=1.0))
    drifted = {(e.feature, e.window.index) for r in reports for e in r.drift_events if e.kind == "data_drift"}
    assert ("a", 0) in drifted, drifted  # the first window, not after 2,000 predictions of collecting
    assert {f for f, _ in drifted} == {"a"}
    status = stream.status(model)
    assert status["windows_closed"] == 1 and status["monitor"]["phase"] == "monitoring"
    assert status["reference"] == {"source": "training_file", "version": None, "at": status["reference"]["at"],
                                   "file": "train.parquet", "sha256": sha, "rows": 3000}
    assert stream.redis.get(stream.keys.onboarding(model)) is None  # adopted, in the batch's transaction
    assert set(stream.monitor(model).reference.features) == {"a", "b", "c", "plan"}  # id and label left out


def test_serving_traffic_like_the_training_data_does_not_drift_in_30_windows(settings: Settings,
                                                                             tmp_path: Path) -> None:
    stream = Stream(settings)
    model = "onboarded-steady"
    onboard(settings, model, write(rows(5000, seed=3), tmp_path / "train.csv"), label="label", ignore=["id"])
    reports = stream.send(model, rows(30_000, seed=4))
    assert stream.status(model)["windows_closed"] == 30
    events = [(e.kind, e.signal, e.feature, e.window.index, round(e.score, 4))
              for r in reports for e in r.drift_events if e.severity == "critical"]
    # No critical drift (the budget is 0.001 per window); warnings are allowed at their rate, 0.01 per window.
    assert events == []


def test_onboarding_errors_are_clear(settings: Settings, tmp_path: Path) -> None:
    stream = Stream(settings)
    good = write(rows(100, seed=5), tmp_path / "train.csv")
    with pytest.raises(OnboardError, match="model must not be empty"):
        onboard(settings, "", good)
    with pytest.raises(OnboardError, match="no such file"):
        onboard(settings, "m", tmp_path / "missing.csv")
    (tmp_path / "broken.parquet").write_bytes(b"PAR1 not really")
    with pytest.raises(OnboardError, match="cannot read"):
        onboard(settings, "m", tmp_path / "broken.parquet")
    with pytest.raises(OnboardError, match="--prediction column 'score' is not in train.csv"):
        onboard(settings, "m", good, prediction="score")
    only_ids = write(pd.DataFrame({"id": [1, 2], "label": [0, 1]}), tmp_path / "ids.csv")
    with pytest.raises(OnboardError, match="no feature column left"):
        onboard(settings, "m", only_ids, label="label", ignore=["id"])
    # A model the stream already sees with other features: nothing in common is refused.
    stream.send("known", rows(50, seed=6))
    other = write(pd.DataFrame({"x": [1.0, 2.0], "y": ["p", "q"]}), tmp_path / "other.csv")
    with pytest.raises(OnboardError, match="no column in common with the features the stream sees for known"):
        onboard(settings, "known", other)
    assert stream.redis.get(stream.keys.onboarding("known")) is None
    result = CliRunner().invoke(main, ["onboard", "m", str(tmp_path / "missing.csv")],
                                env={"REDIS_URL": settings.redis.url})
    assert result.exit_code == 1 and "no such file" in result.output


def _register(registry: ModelRegistry, model: str, frame: pd.DataFrame) -> str:
    x = frame[list(NUMERIC)]
    fitted = LogisticRegression().fit(x, frame["label"])
    logged = registry.log_run(name=f"{model}-train", fitted=fitted, x_example=x, params={}, metrics={}, tags={},
                              artifacts={})
    return str(registry.register(model, logged, {}).version)


def test_a_rollback_restores_the_onboarded_reference_of_the_version(settings: Settings, unique: str,
                                                                    tmp_path: Path) -> None:
    stream = Stream(settings)
    model = f"onboarded-rollback-{unique}"
    registry = ModelRegistry(settings.mlflow.tracking_uri, settings.mlflow.experiment)
    registry.start()
    old, new = rows(2000, seed=7), rows(2000, seed=8, shift_a=1.0)
    v1 = _register(registry, model, old)
    registry.promote(model, v1)
    first = onboard(settings, model, write(old, tmp_path / "v1.csv"), label="label", ignore=["id"], version=v1)
    assert first.adopted
    v2 = _register(registry, model, new)
    second = onboard(settings, model, write(new, tmp_path / "v2.csv"), label="label", ignore=["id"], version=v2)
    assert not second.adopted and "the champion is version 1" in second.reason  # attached, not served yet
    tags = registry.client.get_model_version(model, v2).tags
    assert tags["reference_file"] == "v2.csv" and tags["reference_sha256"] == second.sha256
    v1_reference = stream.redis.get(stream.keys.reference(model, v1))

    stream.send(model, rows(1000, seed=9))
    assert stream.status(model)["reference"]["file"] == "v1.csv"

    service = StreamService(settings, CollectorRegistry())
    service.setup()
    registry.promote(model, v2)  # what the retrain worker does, then it announces it
    service.switch_reference(ModelUpdate(model=model, version=v2, previous_version=v1, alias="champion",
                                         promoted=True, run_id=None, drift_id=None, metrics={}, reason="test"))
    stream.send(model, rows(1000, seed=10, shift_a=1.0))
    assert stream.status(model)["reference"] | {"at": 0} == {"source": "training_file", "version": v2, "at": 0,
                                                              "file": "v2.csv", "sha256": second.sha256,
                                                              "rows": 2000}

    update = rollback(settings, model)  # real MLflow aliases, announced on the real model-updates topic
    consumer = Consumer(client_config(settings, **{"group.id": f"rb-{unique}", "auto.offset.reset": "earliest"}))
    consumer.subscribe([settings.kafka.topics.model_updates])
    announced = None
    deadline = time.monotonic() + 30
    while announced is None and time.monotonic() < deadline:
        msg = consumer.poll(0.5)
        if msg is not None and not msg.error():
            announced = decode(ModelUpdate, msg.value())
    consumer.close()
    assert announced == update and announced.version == v1
    service.switch_reference(announced)  # what the stream's model-updates agent does with it
    # No prediction comes after the rollback: the stream's timer adopts the switch all the same.
    assert model in stream.processor.tick({0}).switched
    assert stream.redis.get(stream.keys.reference_switch(model)) is None
    assert stream.processor.tick({0}).switched == []
    status = stream.status(model)
    assert status["reference"]["file"] == "v1.csv" and status["reference"]["sha256"] == first.sha256
    assert status["reference_version"] == v1
    assert stream.monitor(model).reference.to_bytes() == v1_reference
