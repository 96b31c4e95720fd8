"""One classification/regression rule (``detectors.task``) for the stream, the retrain worker and the status.

A binary model's label may reach the stream as ``1`` or ``1.0`` (JSON has one number type; a pandas column of
classes is written ``1.0``). The label goes the stream's way here without Redis: decoded by the contract, stored and
read back as the pending-label struct, joined into an ``Outcome`` as ``stream.joins`` does, then fed to the monitor.
Whichever way it is written, DDM (a binary-error detector) stays on, and the retrain worker and the status agree.
"""

from __future__ import annotations

import json

import msgspec
import pytest

from detectors.monitor import ModelMonitor, MonitorConfig, Outcome
from driftwarden.contract.events import Label, decode_batch
from retrain_worker.dataset import build_dataset
from stream.model_events import record_performance
from stream.state import ModelState, PendingLabel, PendingPrediction, decode_pending_label, decode_pending_prediction

N = 40


def label_message(labels: list[str]) -> bytes:
    """A labels message as a producer writes it, each label's JSON text given verbatim."""
    items = [f'{{"event_id": "e{i}", "model": "m", "timestamp": {1_700_000_100 + i}, "label": {text}}}'
             for i, text in enumerate(labels)]
    return ("[" + ", ".join(items) + "]").encode()


def joined(labels: list[str], predictions: list[float]) -> list[Outcome]:
    """The stream's path: decode, keep as pending label and prediction (msgpack), join into outcomes."""
    encoder = msgspec.msgpack.Encoder()
    out = []
    for i, label in enumerate(decode_batch(Label, label_message(labels))):
        stored = decode_pending_label(encoder.encode(PendingLabel(label.timestamp, label.label)))
        pred = decode_pending_prediction(encoder.encode(PendingPrediction(1_700_000_000.0 + i, predictions[i],
                                                                           0.5, "1")))
        out.append(Outcome(stored.timestamp, pred.prediction, stored.label, pred.score, pred.timestamp))
    return out


def concept(monitor: ModelMonitor) -> dict[str, object]:
    status = monitor.status()["concept"]
    return {"task": status["task"], **{d["kind"]: (d["active"], d["n"]) for d in status["detectors"]}}


@pytest.mark.parametrize("written", ["int", "float"])
def test_an_integer_label_written_as_a_float_keeps_ddm_on_for_a_binary_model(written: str) -> None:
    truth = [i % 2 for i in range(N)]
    texts = [str(y) if written == "int" else f"{y:.1f}" for y in truth]
    outcomes = joined(texts, [float((i // 2) % 2) for i in range(N)])
    assert {type(o.label) for o in outcomes} == ({int} if written == "int" else {float})  # as the wire said
    monitor = ModelMonitor(MonitorConfig(concept_detectors=({"kind": "ADWIN"}, {"kind": "DDM"})))
    monitor.update_outcomes(outcomes)
    assert concept(monitor) == {"task": "classification", "ADWIN": (True, N), "DDM": (True, N)}

    state = ModelState(monitor=b"")
    record_performance(state, ["1"] * N, outcomes, monitor.status()["concept"]["task"])
    assert state.performance["1"].metric == "accuracy"
    record_performance(state, ["2"] * N, outcomes)  # no task given: the same rule on the first label
    assert state.performance["2"].metric == "accuracy"

    samples = [json.dumps({"event_id": f"e{i}", "timestamp": float(i), "features": {"x": float(i)},
                           "label": json.loads(text)}).encode() for i, text in enumerate(texts)]
    assert build_dataset("m", samples, min_samples=10, holdout_fraction=0.2).task == "classification"


def test_a_fractional_label_makes_a_regression_everywhere() -> None:
    texts = [f"{0.25 * (i % 5):.2f}" for i in range(N)]
    outcomes = joined(texts, [0.5] * N)
    monitor = ModelMonitor(MonitorConfig(concept_detectors=({"kind": "ADWIN"}, {"kind": "DDM"})))
    monitor.update_outcomes(outcomes)
    assert concept(monitor)["task"] == "regression" and concept(monitor)["DDM"] == (False, 0)
    state = ModelState(monitor=b"")
    record_performance(state, ["1"] * N, outcomes, monitor.status()["concept"]["task"])
    assert state.performance["1"].metric == "mae"
    samples = [json.dumps({"event_id": f"e{i}", "timestamp": float(i), "features": {"x": float(i)},
                           "label": json.loads(text)}).encode() for i, text in enumerate(texts)]
    assert build_dataset("m", samples, min_samples=10, holdout_fraction=0.2).task == "regression"
