"""Multiclass performance estimation end to end on the real Redis and broker: a three-class model's per-class
scores through the stream's batch step (in-process, as in test_stream_batches.py), its estimates, signal and
metrics read back; bad per-class scores go to the dead-letter topic and nothing else is lost."""

from __future__ import annotations

import numpy as np
import pytest
from msgspec.structs import replace
from test_stream_batches import Feed, read_topic, tuned

from driftwarden.contract.columnar import encode_arrow
from driftwarden.contract.events import DeadLetter, DriftEvent, Label, PerformanceEstimate, Prediction, decode, encode
from driftwarden.contract.settings import Settings
from stream.status import model_status

pytestmark = pytest.mark.services

MODEL = "species"
CLASSES = ("cat", "dog", "fox")
WEIGHTS = np.array([[2.0, 0.0], [-1.0, 1.7], [-1.0, -1.7]])


def traffic(rng: np.random.Generator, start: int, n: int, t0: float,
            scale: float = 1.0) -> tuple[list[Prediction], list[Label]]:
    """A calibrated three-class model (its scores are the true P(class | x)); ``scale`` < 1 moves the rows towards
    the decision boundaries, so accuracy falls while what a score means stays."""
    x = rng.normal(0.0, 1.0, (n, 2)) * scale
    logits = x @ WEIGHTS.T
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    y = (rng.random(n)[:, None] > np.cumsum(p, axis=1)).sum(axis=1)
    preds = [Prediction(event_id=f"e{start + i}", model=MODEL, timestamp=t0 + i,
                        features={"a": float(x[i, 0]), "b": float(x[i, 1])}, prediction=CLASSES[p[i].argmax()],
                        model_version="1", scores={c: float(p[i, k]) for k, c in enumerate(CLASSES)})
             for i in range(n)]
    labels = [Label(event_id=f"e{start + i}", model=MODEL, label=CLASSES[y[i]], timestamp=t0 + i + 0.5)
              for i in range(n)]
    return preds, labels


def test_multiclass_estimates_signal_and_dead_letters_on_the_real_services(settings: Settings) -> None:
    s = tuned(settings, monitor={"reference_size": 600, "window_size": 300, "performance_reference_size": 600})
    t = s.kafka.topics
    feed = Feed(s)
    rng = np.random.default_rng(11)
    preds, labels = traffic(rng, 0, 600, 0.0)
    feed.process(feed.predictions(preds))
    feed.process(feed.labels(labels))  # the reference's 600 labelled predictions calibrate each class
    # bad per-class scores, each its own message: not summing to 1, a prediction outside them, a NaN (in Arrow;
    # JSON has no NaN, so there a string where a number belongs)
    good = traffic(rng, 900, 1, 5_000.0)[0][0]
    bad = [
        encode([Prediction(event_id="bad-sum", model=MODEL, timestamp=5_001.0, features=good.features,
                           prediction="cat", scores={"cat": 0.9, "dog": 0.9, "fox": 0.1})]),
        encode([Prediction(event_id="bad-class", model=MODEL, timestamp=5_002.0, features=good.features,
                           prediction="cow", scores={"cat": 0.2, "dog": 0.3, "fox": 0.5})]),
        encode([good]).replace(b'"scores":{"cat":', b'"scores":{"cat":"NaN","x":'),
    ]
    nan = Prediction(event_id="bad-nan", model=MODEL, timestamp=5_003.0, features=good.features, prediction="cat",
                     scores={"cat": float("nan"), "dog": 0.5, "fox": 0.5})
    records = [feed.record(t.predictions, value, partition=1) for value in bad]
    records.append(replace(feed.record(t.predictions, encode_arrow([nan]), partition=1), wire_format="arrow"))
    report = feed.process(records)
    assert (report.processed, report.dead_letters) == (0, len(records))
    letters = [decode(DeadLetter, v) for v in read_topic(s, t.dead_letters, len(records))]
    assert sorted(d.error.split(":")[0] for d in letters) == ["invalid_field", *["invalid_scores"] * 3]
    assert any("sum to 1.9" in d.error for d in letters) and any("'cow'" in d.error for d in letters)
    assert any("score of class 'cat' is nan" in d.error for d in letters)

    scales = (1.0, 1.0, 0.5, 0.3, 0.2)
    for k, scale in enumerate(scales):
        preds, labels = traffic(rng, 1000 * (k + 1), 300, 10_000.0 * (k + 1), scale=scale)
        feed.process(feed.predictions(preds))
        feed.process(feed.labels(labels))

    estimates = [decode(PerformanceEstimate, v) for v in read_topic(s, t.performance_estimates, len(scales))]
    assert [e.window.index for e in estimates] == list(range(len(scales)))
    assert all(e.n_scored == 300 and e.unscored == 0 and e.classes == list(CLASSES) for e in estimates)
    for e in estimates:
        confusion = np.array(e.confusion)
        assert confusion.shape == (3, 3) and confusion.sum() == pytest.approx(300, abs=1e-3)
        assert e.estimated["accuracy"] == pytest.approx(np.trace(confusion) / 300, abs=1e-6)
    first, last = estimates[0].estimated["accuracy"], estimates[-1].estimated["accuracy"]
    assert first is not None and last is not None and last < first - 0.15

    events = [decode(DriftEvent, v) for v in read_topic(s, t.drift_events, 3)]
    performance = [e for e in events if e.kind == "performance" and e.severity == "critical"]
    assert performance and {e.window.index for e in performance} <= {2, 3, 4}
    assert feed.metric("driftwarden_performance_estimate", model=MODEL, metric="accuracy") == pytest.approx(last)
    assert feed.metric("driftwarden_performance_estimate", model=MODEL, metric="f1") > 0
    realised = feed.metric("driftwarden_performance_realised", model=MODEL, metric="accuracy")
    error = feed.metric("driftwarden_performance_estimation_error", model=MODEL)
    assert error == pytest.approx(abs(last - realised)) and error < 0.1

    status = model_status(feed.redis, feed.keys, MODEL, feed.processor.snapshot_key)
    performance_status = status["monitor"]["performance"]
    assert performance_status["calibration"]["classes"] == list(CLASSES)
    assert [w["realised_n"] for w in performance_status["windows"]] == [300] * len(scales)
    assert feed.counters(MODEL)["predictions"] == 600 + 300 * len(scales)  # the dead letters counted nowhere
