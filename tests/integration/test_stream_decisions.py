"""Drift decisions of the batch code on one recorded stream, compared with what the code gave before the columnar
step (``tests/fixtures/recorded_decisions.json``, written by the earlier path; regenerate only on purpose with
``DRIFTWARDEN_RECORD_DECISIONS=1``).

The stream: several models in the same batches (a stationary one, one whose numeric and categorical features
shift, one with scores and labels whose error rate jumps, one closed by time), windows closing mid-batch and
across batches, labels before and after their predictions. Every drift event (id, kind, signal, feature, score,
threshold, severity, window), alert and performance estimate must be the same, and so must every closed window's
scores.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator
from itertools import count
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pytest
import redis
from prometheus_client import CollectorRegistry

from detectors.monitor import ModelMonitor
from driftwarden.contract.columnar import encode_arrow
from driftwarden.contract.events import ARROW_FORMAT, JSON_FORMAT, Label, Prediction, encode
from driftwarden.contract.settings import Settings
from stream.metrics import build_metrics
from stream.outbox import Outgoing
from stream.processor import BatchProcessor
from stream.records import RawRecord
from stream.state import Keys, decode_state

pytestmark = pytest.mark.services

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "recorded_decisions.json"
NOW = 1_800_000_000.0
MODELS = ("steady", "shifting", "labelled", "timed")


class Collect:
    """A publisher that keeps what it was given (the broker adds nothing to the decisions)."""

    def __init__(self) -> None:
        self.messages: list[Outgoing] = []

    def publish(self, messages: list[Outgoing]) -> None:
        self.messages.extend(messages)


def recorded_stream() -> Iterator[tuple[list[Prediction], list[Label]]]:
    """Batches of (predictions, labels), all models mixed, deterministic."""
    rng = np.random.default_rng(20261129)
    ids = {m: count() for m in MODELS}
    clock = {m: 1_000.0 for m in MODELS}
    waiting: list[Label] = []
    for b in range(24):
        preds: list[Prediction] = []
        for m in MODELS:
            n = int(rng.integers(150, 420)) if m != "timed" else int(rng.integers(20, 60))
            late = m == "shifting" and b >= 12
            for _ in range(n):
                i = next(ids[m])
                x = rng.normal(size=4)
                if late:
                    x[:2] += 1.0
                cat = rng.choice(["a", "b", "c", "d"], p=[0.1, 0.2, 0.3, 0.4] if late else [0.4, 0.3, 0.2, 0.1])
                features: dict[str, float | str | None] = {f"x{j}": round(float(v), 5) for j, v in enumerate(x)}
                features["k"] = str(cat)
                if rng.random() < 0.01:
                    features["x3"] = None  # a missing value now and then
                score = float(rng.random())
                prediction = int(score > 0.5)
                clock[m] += 1.0 if m != "timed" else 7.0
                preds.append(Prediction(event_id=f"{m}-{i}", model=m, timestamp=clock[m], features=features,
                                        prediction=prediction, score=score, model_version="1"))
                if m == "labelled":
                    wrong = rng.random() < (0.1 if b < 14 else 0.45)
                    label = prediction if not wrong else 1 - prediction
                    waiting.append(Label(event_id=f"{m}-{i}", model=m, label=label, timestamp=clock[m] + 3.0))
        rng.shuffle(preds)  # type: ignore[arg-type]
        # labels of about half the waiting predictions, some before the prediction arrived (the next batch's)
        cut = len(waiting) // 2
        labels, waiting = waiting[:cut], waiting[cut:]
        yield preds, labels


def outputs(settings: Settings, wire: str = JSON_FORMAT) -> dict[str, Any]:
    """Run the recorded stream through the batch code; every decision it published, and the windows' scores.
    ``wire``: the format of the messages (Arrow: each message's rows name several models, split by the stream)."""
    s = msgspec.structs.replace(
        settings,
        monitor=msgspec.structs.replace(settings.monitor, reference_size=600, window_size=400,
                                        performance_reference_size=300, performance_bins=5,
                                        drift_signals=("psi", "js", "wasserstein", "ks", "chi2")),
        models={"timed": {"window_seconds": 900.0, "window_size": 100_000}},
    )
    client = redis.Redis.from_url(s.redis.url)
    publisher = Collect()
    processor = BatchProcessor(s, client, publisher, build_metrics(CollectorRegistry()), clock=lambda: NOW)
    offsets = {s.kafka.topics.predictions: count(), s.kafka.topics.labels: count()}
    scores: dict[str, list[Any]] = {m: [] for m in MODELS}
    keys = Keys(s.redis.key_prefix)
    for preds, labels in recorded_stream():
        records = []
        for i in range(0, len(preds), 100):
            t = s.kafka.topics.predictions
            chunk = preds[i:i + 100]
            records.append(RawRecord(t, 0, next(offsets[t]), None, encode(chunk)) if wire == JSON_FORMAT else
                           RawRecord(t, 0, next(offsets[t]), None, encode_arrow(chunk), None, ARROW_FORMAT))
        if labels:
            t = s.kafka.topics.labels
            records.append(RawRecord(t, 0, next(offsets[t]), None, encode(labels)) if wire == JSON_FORMAT else
                           RawRecord(t, 0, next(offsets[t]), None, encode_arrow(labels), None, ARROW_FORMAT))
        before = {m: processor._cache[m][2].windows_closed if m in processor._cache else 0 for m in MODELS}  # noqa: SLF001
        processor.process(records)
        for m in MODELS:
            blob = client.get(keys.state(m))
            if blob is None:
                continue
            monitor = ModelMonitor.from_bytes(decode_state(blob).monitor, s.monitor.snapshot_key.encode())
            if monitor.windows_closed != before[m]:
                scores[m].append([monitor.windows_closed, monitor.last_window, monitor.last_scores])
    published = [[o.topic.rsplit("-", 1)[0], (o.key or b"").decode(), msgspec.json.decode(o.value)]
                 for o in publisher.messages]
    return {"published": published, "scores": scores}


def normalised(value: Any) -> Any:
    """JSON round trip (tuples to lists, NaN kept as a string)."""
    return json.loads(json.dumps(value, default=str, allow_nan=True),
                      parse_constant=lambda c: c)  # NaN/Infinity stay comparable strings


@pytest.mark.parametrize("wire", [JSON_FORMAT, ARROW_FORMAT])
def test_drift_decisions_equal_the_recorded_ones(settings: Settings, wire: str) -> None:
    got = normalised(outputs(settings, wire))
    if os.environ.get("DRIFTWARDEN_RECORD_DECISIONS") == "1" and wire == JSON_FORMAT:
        FIXTURE.parent.mkdir(parents=True, exist_ok=True)
        FIXTURE.write_text(json.dumps(got, allow_nan=True, sort_keys=True) + "\n")
    expected = json.loads(FIXTURE.read_text(), parse_constant=lambda c: c)
    kinds = {(p[0], p[2].get("kind"), p[2].get("signal")) for p in expected["published"]}
    # the recorded stream is worth comparing: it drifts, alerts and estimates
    assert {k[0] for k in kinds} >= {"drift-events", "drift-alerts", "performance-estimates"}
    assert {k[1] for k in kinds} >= {"data_drift", "concept_drift"}
    assert sum(len(v) for v in expected["scores"].values()) >= 20
    assert len(got["published"]) == len(expected["published"])
    for g, e in zip(got["published"], expected["published"], strict=True):
        assert g == e
    assert got["scores"] == expected["scores"]
    assert not any(isinstance(v, float) and math.isnan(v) for v in got["scores"].values())
