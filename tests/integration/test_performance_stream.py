"""Performance estimation, multivariate drift and the ranking end to end on the real Redis and broker: the
stream's batch step driven in-process (as in test_stream_batches.py), what it publishes read back from Kafka."""

from __future__ import annotations

import io

import numpy as np
import pytest
from rich.console import Console
from test_stream_batches import Feed, read_topic, tuned

from driftwarden.contract.events import DriftAlert, DriftEvent, Label, PerformanceEstimate, Prediction, decode
from driftwarden.contract.settings import Settings
from driftwarden.devtools.status_view import status_table
from stream.status import model_status

pytestmark = pytest.mark.services

MODEL = "scored"


def traffic(rng: np.random.Generator, start: int, n: int, t0: float, scale0: float = 1.0, shift3: float = 0.0,
            flip: bool = False) -> tuple[list[Prediction], list[Label]]:
    """A calibrated binary model (its score is the true P(y=1 | x)) on five numeric features; f1 follows f0."""
    x = rng.normal(0.0, 1.0, (n, 5))
    x[:, 0] *= scale0
    x[:, 1] = (-0.8 if flip else 0.8) * x[:, 0] / scale0 + 0.6 * rng.normal(0.0, 1.0, n)
    x[:, 3] += shift3
    p = 1.0 / (1.0 + np.exp(-(2.0 * x[:, 0] - x[:, 2])))
    y = (rng.random(n) < p).astype(int)
    preds = [Prediction(event_id=f"e{start + i}", model=MODEL, timestamp=t0 + i,
                        features={f"f{j}": float(x[i, j]) for j in range(5)}, prediction=int(p[i] > 0.5),
                        model_version="1", score=float(p[i])) for i in range(n)]
    labels = [Label(event_id=f"e{start + i}", model=MODEL, label=int(y[i]), timestamp=t0 + i + 0.5)
              for i in range(n)]
    return preds, labels


def test_estimates_multivariate_drift_and_ranked_alerts_on_the_real_services(settings: Settings) -> None:
    s = tuned(settings, monitor={"reference_size": 600, "window_size": 300, "performance_reference_size": 400})
    feed = Feed(s)
    rng = np.random.default_rng(7)
    preds, labels = traffic(rng, 0, 600, 0.0)
    feed.process(feed.predictions(preds))
    feed.process(feed.labels(labels[:400]))  # the first 400 labelled predictions calibrate the scores
    # two quiet windows, one where f0 and f1 swap the sign of their correlation, then f3 moves far (the model
    # ignores it) while f0, the model's main input, narrows towards the decision boundary: accuracy falls
    phases = [{}, {}, {"flip": True}, *({"scale0": s0, "shift3": 2.0} for s0 in (0.5, 0.3, 0.2, 0.15))]
    reports = []
    for k, phase in enumerate(phases):
        preds, labels = traffic(rng, 1000 * (k + 1), 300, 10_000.0 * (k + 1), **phase)
        reports.append(feed.process(feed.predictions(preds)))
        feed.process(feed.labels(labels))

    t = s.kafka.topics
    estimates = [decode(PerformanceEstimate, v) for v in read_topic(s, t.performance_estimates, len(phases))]
    assert [e.window.index for e in estimates] == list(range(len(phases)))
    assert all(e.n_scored == 300 and e.calibration in ("binned", "isotonic") for e in estimates)
    first, last = estimates[0].estimated["accuracy"], estimates[-1].estimated["accuracy"]
    assert first is not None and last is not None and last < first - 0.1
    assert estimates[-1].accuracy_drop == pytest.approx(estimates[-1].reference_accuracy - last)

    events = [decode(DriftEvent, v) for v in read_topic(s, t.drift_events, 10)]
    flipped = [e for e in events if e.window.index == 2 and e.kind == "data_drift"]
    assert [(e.signal, e.feature) for e in flipped] == [("multivariate", None)]  # no marginal moved
    performance = [e for e in events if e.kind == "performance" and e.severity == "critical"]
    assert performance and performance[0].signal == "accuracy_estimate"
    assert performance[-1].details["ranking"][0]["feature"] == "f0"
    alerts = [decode(DriftAlert, v) for v in read_topic(s, t.drift_alerts, 3)]
    fired = [a for a in alerts if a.labels.kind == "performance" and a.status == "firing"]
    assert fired and "top drifted features: " in fired[0].annotations.summary
    assert fired[0].annotations.summary.split("top drifted features: ")[1].split(", ")[0] in ("f0", "f3")

    estimated = feed.metric("driftwarden_performance_estimate", model=MODEL, metric="accuracy")
    assert estimated == pytest.approx(last)
    realised = feed.metric("driftwarden_performance_realised", model=MODEL, metric="accuracy")
    error = feed.metric("driftwarden_performance_estimation_error", model=MODEL)
    assert 0.3 < realised < 0.9 and error == pytest.approx(abs(last - realised))
    assert feed.metric("driftwarden_drift_score", model=MODEL, feature="multivariate", signal="multivariate") > 0
    assert feed.metric("driftwarden_drift_events_total", model=MODEL, kind="performance", severity="critical") >= 1

    status = model_status(feed.redis, feed.keys, MODEL, feed.processor.snapshot_key)
    windows = status["monitor"]["performance"]["windows"]
    assert windows[-1]["realised_n"] == 300 and windows[-1]["estimation_error"] == pytest.approx(error)
    assert status["monitor"]["ranking"][0]["feature"] == "f0"
    out = io.StringIO()
    Console(file=out, width=250).print(status_table({"models": {MODEL: status}}))
    assert "1. f0 effect" in out.getvalue() and "est. acc" in out.getvalue()
