"""Concept drift of a binary classifier, through the stream's batch step on the real Redis and broker."""

from __future__ import annotations

import numpy as np
import pytest
from test_stream_batches import Feed, read_topic, tuned

from detectors.monitor import ModelMonitor
from driftwarden.contract.events import DriftEvent, Label, Prediction, decode, encode
from driftwarden.contract.settings import Settings

pytestmark = pytest.mark.services

SWITCH, AFTER, NOISE = 3000, 600, 0.05


def binary_stream(model: str, seed: int, integer_labels: bool) -> tuple[list[Prediction], list[Label]]:
    """A model that predicts ``x0 > 0``; labels follow that concept with 5% noise until SWITCH, then
    ``x1 > 0`` (independent of x0), so the model's error jumps from 5% to 50%."""
    rng = np.random.default_rng(seed)
    n = SWITCH + AFTER
    x = rng.normal(size=(n, 2))
    truth = np.where(np.arange(n) < SWITCH, x[:, 0] > 0, x[:, 1] > 0) ^ (rng.random(n) < NOISE)
    preds = [Prediction(event_id=f"{model}-{i}", model=model, timestamp=float(i),
                        features={"x0": float(x[i, 0]), "x1": float(x[i, 1])},
                        prediction=float(x[i, 0] > 0), model_version="1") for i in range(n)]
    labels = [Label(event_id=f"{model}-{i}", model=model, timestamp=float(i) + 0.5,
                    label=int(truth[i]) if integer_labels else float(truth[i])) for i in range(n)]
    return preds, labels


@pytest.mark.parametrize("spelling", ["int", "float"])
def test_a_binary_classifiers_concept_switch_raises_ddm_in_the_stream(settings: Settings, spelling: str) -> None:
    """Labels sent as JSON ``1`` (and as ``1.0``, the same class) make the model a classifier, so DDM
    watches its 0/1 errors and fires after the switch. Before the labels decoded as ints, this model
    was a regression and DDM never saw an outcome. The default detector (ADWIN) runs beside it and
    catches the switch within 100 labelled outcomes, with no alarm before it."""
    [default] = settings.monitor.concept_detectors
    s = tuned(settings, {"reference_size": 500, "concept_detectors": (default, {"kind": "DDM", "params": {}}),
                         "concept_cooldown": 0})
    feed = Feed(s)
    m = f"binary-{spelling}"
    preds, labels = binary_stream(m, seed=11, integer_labels=spelling == "int")
    assert (b'"label":1.0' in encode(labels)) is (spelling == "float")  # what the producer sent
    events: list[DriftEvent] = []
    for start in range(0, len(preds), 1200):
        report = feed.process(feed.predictions(preds[start:start + 1200], per_message=200)
                              + feed.labels(labels[start:start + 1200]))
        events += [e for e in report.drift_events if e.kind == "concept_drift"]

    monitor = ModelMonitor.from_bytes(feed.state(m).monitor)
    ddm = monitor.status()["concept"]["detectors"][1]
    assert monitor.status()["concept"]["task"] == "classification"
    assert (ddm["kind"], ddm["active"], ddm["n"]) == ("DDM", True, len(labels))
    critical = [e.details["outcome_index"] for e in events if e.severity == "critical" and e.signal == "ddm"]
    after = [i for i in critical if i >= SWITCH]
    assert after and after[0] < SWITCH + 400, critical
    adwin = [e.details["outcome_index"] for e in events if e.severity == "critical" and e.signal == "adwin"]
    assert adwin and SWITCH <= adwin[0] <= SWITCH + 100, adwin
    # the status reports accuracy, by the same rule (not a mean absolute error of 0/1 values)
    perf = feed.state(m).performance["1"]
    right = sum(float(p.prediction) == float(y.label) for p, y in zip(preds, labels, strict=True))
    assert (perf.metric, perf.n, perf.total) == ("accuracy", len(labels), float(right))
    published = [decode(DriftEvent, v) for v in read_topic(s, s.kafka.topics.drift_events, len(events))]
    assert {e.drift_id for e in published if e.kind == "concept_drift"} == {e.drift_id for e in events}
