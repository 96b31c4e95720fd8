"""Helpers for the retrain worker's integration tests (no tests here): a realistic drifting data set,
seeding it the way the stream does, drift events, reading ``model-updates`` back, a slow trainer."""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import yaml
from confluent_kafka import Consumer, TopicPartition

from driftwarden.contract.events import DriftEvent, ModelUpdate, WindowSpan, decode, drift_id, encode
from driftwarden.contract.kafka import make_consumer, make_producer
from driftwarden.contract.settings import Settings
from driftwarden.contract.storage import Keys, connect
from retrain_worker.dataset import Dataset
from retrain_worker.trainer import train_default

START = 1_790_000_000.0


def samples(n: int, regime: str, seed: int, start: float = START,
            missing: float = 0.05) -> list[dict[str, Any]]:
    """Card transactions. In regime ``old`` fraud is large web payments; in ``new`` (the concept drift)
    it is young customers paying in the app, whatever the amount."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        amount = float(rng.lognormal(3.5, 1.0))
        age = float(rng.integers(18, 80))
        channel = str(rng.choice(["web", "app", "store"], p=[0.4, 0.4, 0.2]))
        country = None if rng.random() < missing else str(rng.choice(["fr", "de", "es", "it"]))
        old_rule = amount > 60 and channel == "web"
        fraud = old_rule if regime == "old" else (age < 35 and channel == "app")
        if rng.random() < 0.03:  # label noise
            fraud = not fraud
        rows.append({
            "event_id": f"{regime}-{seed}-{i}", "timestamp": start + i * 5.0,
            "features": {"amount": round(amount, 2), "age": None if rng.random() < missing else age,
                         "channel": channel, "country": country},
            "prediction": 0, "label": int(fraud), "model_version": "1",
        })
    return rows


def seed_samples(settings: Settings, model: str, rows: list[dict[str, Any]], replace: bool = True) -> None:
    """Write joined samples the way the stream does: JSON objects, oldest first."""
    client = connect(settings.redis.url, settings.redis.cluster)
    keys = Keys(settings.redis.key_prefix, settings.redis.cluster)
    key = keys.samples(model)
    if replace:
        client.delete(key)
    client.rpush(key, *[json.dumps(r) for r in rows])
    client.sadd(keys.all_models(), model)


def drift_event(model: str, kind: str = "concept_drift", feature: str | None = None, window: int = 3,
                severity: str = "critical") -> DriftEvent:
    signal = "adwin" if kind == "concept_drift" else "psi"
    return DriftEvent(
        drift_id=drift_id(model, "1", kind, signal, feature, window), model=model, model_version="1",
        kind=kind, signal=signal, feature=feature, score=0.4, threshold=0.2,  # type: ignore[arg-type]
        severity=severity,  # type: ignore[arg-type]
        window=WindowSpan(index=window, start=START, end=START + 1000, n=1000), detected_at=time.time())


def produce(settings: Settings, *payloads: DriftEvent | bytes) -> None:
    producer = make_producer(settings)
    for payload in payloads:
        if isinstance(payload, bytes):
            producer.produce(settings.kafka.topics.drift_events, key=b"garbage", value=payload)
        else:
            producer.produce(settings.kafka.topics.drift_events, key=payload.model.encode(),
                             value=encode(payload))
    assert producer.flush(15) == 0


class TopicReader:
    """Reads a topic from the beginning (its own consumer group)."""

    def __init__(self, settings: Settings, topic: str) -> None:
        self.consumer: Consumer = make_consumer(settings, f"reader-{uuid.uuid4().hex[:8]}")
        self.consumer.subscribe([topic])

    def read(self, count: int, timeout: float = 60.0) -> list[bytes]:
        out: list[bytes] = []
        deadline = time.monotonic() + timeout
        while len(out) < count and time.monotonic() < deadline:
            msg = self.consumer.poll(0.5)
            if msg is not None and not msg.error():
                out.append(msg.value())
        return out

    def updates(self, count: int, timeout: float = 60.0) -> list[ModelUpdate]:
        return [decode(ModelUpdate, v) for v in self.read(count, timeout)]

    def close(self) -> None:
        self.consumer.close()


def slow_trainer(dataset: Dataset, params: Mapping[str, Any]) -> Any:
    """Counts its calls in ``params['calls']``; the first call announces itself and sleeps long."""
    calls = Path(params["calls"])
    with calls.open("a") as f:
        f.write(f"{os.getpid()}\n")
    if len(calls.read_text().split()) == 1:
        time.sleep(float(params.get("sleep_s", 120)))
    return train_default(dataset, {})


def failing_trainer(dataset: Dataset, params: Mapping[str, Any]) -> Any:
    raise RuntimeError("the feature store is down")


def with_retrain(settings: Settings, **fields: Any) -> Settings:
    """``settings`` with retrain fields replaced (the worker tests never serve /metrics by default)."""
    return msgspec.structs.replace(settings, retrain=msgspec.structs.replace(
        settings.retrain, **({"metrics_port": 0} | fields)))


def committed(settings: Settings) -> int:
    """Sum of the retrain group's committed offsets on drift-events (what a restart resumes from)."""
    consumer = make_consumer(settings, settings.retrain.group_id)
    try:
        topic = settings.kafka.topics.drift_events
        parts = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        offsets = consumer.committed([TopicPartition(topic, p) for p in parts], timeout=10)
        return sum(max(tp.offset, 0) for tp in offsets)
    finally:
        consumer.close()


def write_config(settings: Settings, path: Path) -> Path:
    path.write_text(yaml.safe_dump(msgspec.to_builtins(settings)))
    return path


def clean_env(**extra: str) -> dict[str, str]:
    """The environment for a child process: no service addresses leaking in from the caller."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("KAFKA_BOOTSTRAP_SERVERS", "REDIS_URL", "MLFLOW_TRACKING_URI", "DRIFTWARDEN_CONFIG")
           and not k.startswith("DRIFTWARDEN__")}
    return env | extra


class FakeClock:
    def __init__(self, now: float = START) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now
