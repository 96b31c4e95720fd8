"""Multiclass performance estimation, one-vs-rest from per-class scores (pure, no services)."""

from __future__ import annotations

import functools
import math

import numpy as np
import pytest
from detector_streams import fingerprint
from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score, roc_auc_score

import detectors.reference as reference_module
from detectors.calibration import calibrate
from detectors.monitor import ModelMonitor, MonitorConfig, Observation, Outcome
from detectors.performance_multiclass import (
    UNIT,
    MulticlassCalibration,
    expected_confusion,
    expected_metrics,
    fit_multiclass,
    realise,
    realised_counts,
    realised_metrics,
    scored,
    window_counts,
)
from detectors.reference import Reference, build_reference

CLASSES = ("cat", "dog", "fox")
WEIGHTS = np.array([[2.0, 0.0, 0.5], [-1.0, 1.7, 0.0], [-1.0, -1.7, -0.5]])


@pytest.fixture
def fast_calibration(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(reference_module, "calibrate", functools.partial(calibrate, draws=2500))


def multiclass_stream(n: int, rng: np.random.Generator, t0: float = 0.0, scale: float = 1.0,
                      shift: float = 0.0, temperature: float = 1.0) -> tuple[list[Observation], list[Outcome]]:
    """Three features, a three-class model whose scores are the true P(class | x) (calibrated by construction;
    ``temperature`` > 1 makes them overconfident), its top class as prediction, and the labels. ``scale`` below 1
    moves the rows towards the decision boundaries (covariate shift: P(class | x) stays, accuracy falls)."""
    x = rng.normal(0.0, 1.0, (n, 3)) * scale + shift
    logits = x @ WEIGHTS.T
    truth = np.exp(logits - logits.max(axis=1, keepdims=True))
    truth /= truth.sum(axis=1, keepdims=True)
    sent = truth ** temperature
    sent /= sent.sum(axis=1, keepdims=True)
    labels = (rng.random(n)[:, None] > np.cumsum(truth, axis=1)).sum(axis=1)
    predicted = sent.argmax(axis=1)
    observations, outcomes = [], []
    for i in range(n):
        scores = {c: float(sent[i, k]) for k, c in enumerate(CLASSES)}
        observations.append(Observation(t0 + i, {f"f{j}": float(x[i, j]) for j in range(3)},
                                        CLASSES[predicted[i]], None, scores))
        outcomes.append(Outcome(t0 + i + 0.5, CLASSES[predicted[i]], CLASSES[labels[i]], None, t0 + i, scores))
    return observations, outcomes


def fitted(rng: np.random.Generator, n: int = 3000, temperature: float = 1.0) -> MulticlassCalibration:
    obs, out = multiclass_stream(n, rng, temperature=temperature)
    calibration = fit_multiclass([o.scores for o in obs], [o.prediction for o in obs], [o.label for o in out])
    assert isinstance(calibration, MulticlassCalibration), calibration
    return calibration


def test_expected_confusion_matrix_matches_a_direct_computation() -> None:
    rng = np.random.default_rng(0)
    calibration = fitted(rng, temperature=2.0)  # overconfident scores: the calibration has work to do
    obs, _ = multiclass_stream(700, rng, scale=0.6)
    scores, predictions = [o.scores for o in obs], [o.prediction for o in obs]
    counts, unscored = window_counts(calibration, scores, predictions)
    assert unscored == 0 and scored(counts) == 700
    # the direct computation: each row's step per class, its calibrated probabilities normalised, added to the
    # row of its predicted class
    k = len(CLASSES)
    loop = np.zeros((k, k))
    positives, negatives = np.zeros((k, calibration.steps)), np.zeros((k, calibration.steps))
    for row, predicted in zip(scores, predictions, strict=True):
        assert row is not None
        steps = [int(np.searchsorted(calibration.edges[c], row[name], side="left"))
                 for c, name in enumerate(CLASSES)]
        p = np.array([calibration.probabilities[c][steps[c]] for c in range(k)])
        p /= p.sum()
        loop[CLASSES.index(str(predicted))] += p
        for c in range(k):
            positives[c, steps[c]] += p[c]
            negatives[c, steps[c]] += 1 - p[c]
    assert expected_confusion(counts) == pytest.approx(loop, abs=k * 700 / UNIT)
    assert loop.sum() == pytest.approx(700)
    got = expected_metrics(counts)
    tp = np.diag(loop)
    precision, recall = tp / loop.sum(axis=1), tp / loop.sum(axis=0)
    assert got["accuracy"] == pytest.approx(tp.sum() / 700)
    assert got["precision"] == pytest.approx(precision.mean())
    assert got["recall"] == pytest.approx(recall.mean())
    assert got["f1"] == pytest.approx(np.mean(2 * precision * recall / (precision + recall)))
    # one-vs-rest binned AUC: each row a positive of class c with weight p_c and a negative with 1 - p_c
    aucs = []
    for c in range(k):
        step = np.repeat(np.arange(calibration.steps), 2).astype(float)
        truth = np.tile([1, 0], calibration.steps)
        weights = np.stack([positives[c], negatives[c]], axis=1).ravel()
        live = weights > 0
        aucs.append(roc_auc_score(truth[live], step[live], sample_weight=weights[live]))
    assert got["roc_auc"] == pytest.approx(np.mean(aucs))
    # fixed point: the same rows in other batches add up to the same integers
    parts = [window_counts(calibration, scores[a:b], predictions[a:b])[0] for a, b in ((0, 1), (1, 333), (333, 700))]
    assert np.array_equal(sum(parts[1:], parts[0]), counts)


def test_realised_metrics_are_scikit_learns() -> None:
    rng = np.random.default_rng(1)
    calibration = fitted(rng)
    obs, out = multiclass_stream(900, rng)
    counts = realised_counts(calibration)
    for o in out:
        assert realise(calibration, counts, o.scores, o.prediction, o.label)
    assert not realise(calibration, counts, {"cat": 0.5, "cow": 0.5}, "cat", "cat")  # a class it was not fitted on
    y, p = [o.label for o in out], [o.prediction for o in out]
    got = realised_metrics(counts)
    assert scored(counts) == 900
    assert got["accuracy"] == pytest.approx(accuracy_score(y, p))
    assert got["precision"] == pytest.approx(precision_score(y, p, average="macro"))
    assert got["recall"] == pytest.approx(recall_score(y, p, average="macro"))
    assert got["f1"] == pytest.approx(f1_score(y, p, average="macro"))
    # binned: each row's step of the class's calibration stands for its score
    steps = np.array([[np.searchsorted(calibration.edges[c], o.scores[name], side="left")  # type: ignore[index]
                       for c, name in enumerate(CLASSES)] for o in out])
    aucs = [roc_auc_score([label == name for label in y], steps[:, c]) for c, name in enumerate(CLASSES)]
    assert got["roc_auc"] == pytest.approx(np.mean(aucs))


def test_rows_with_unknown_classes_are_not_estimated_and_too_few_or_too_many_classes_are_refused() -> None:
    rng = np.random.default_rng(2)
    calibration = fitted(rng)
    rows = [{"cat": 0.2, "dog": 0.3, "fox": 0.5}, {"cat": 0.2, "dog": 0.3, "cow": 0.5},
            {"cat": 0.5, "dog": 0.5}, None, {"cat": 0.2, "dog": 0.3, "fox": 0.5}]
    counts, unscored = window_counts(calibration, rows, ["fox", "cow", "cat", "cat", "cow"])
    assert scored(counts) == 1 and unscored == 4
    assert "too few" in str(fit_multiclass([{"a": 0.5, "b": 0.5}] * 10, ["a"] * 10, ["b"] * 10))
    many = {str(c): 1 / 60 for c in range(60)}
    assert "more than" in str(fit_multiclass([many] * 200, ["0"] * 200, ["1"] * 200))


def test_estimated_accuracy_tracks_realised_on_a_shifted_multiclass_stream_over_many_seeds(
        fast_calibration: None) -> None:
    errors, signed = [], []
    shifts = ({}, {"scale": 0.7}, {"scale": 0.5, "shift": 0.3}, {"scale": 0.35})
    for seed in range(12):
        rng = np.random.default_rng(200 + seed)
        monitor = ModelMonitor(MonitorConfig(reference_size=2000, window_size=1000,
                                             performance_reference_size=2000))
        obs, out = multiclass_stream(2000, rng, temperature=1.5)  # overconfident: calibration matters
        monitor.update(obs)
        monitor.update_outcomes(out)  # the reference's labels calibrate the classes
        assert monitor.performance_status()["estimating"], monitor.performance_status()
        for k, phase in enumerate(shifts):
            obs, out = multiclass_stream(1000, rng, t0=10_000 * (k + 1), temperature=1.5, **phase)
            monitor.update(obs)
            monitor.update_outcomes(out)
        windows = monitor.performance_status()["windows"]
        assert len(windows) == len(shifts) and all(w["realised_n"] == 1000 for w in windows)
        assert windows[-1]["realised"]["accuracy"] < windows[0]["realised"]["accuracy"] - 0.1  # the shift hurts
        errors += [w["estimation_error"] for w in windows]
        signed += [w["estimated"]["accuracy"] - w["realised"]["accuracy"] for w in windows]
    # a window's error is mostly its realised accuracy's own sampling noise (sd <= 0.016 for 1,000 rows), so the
    # mean absolute error of 48 windows stays under the 0.02 and the mean signed error near 0 (4 se)
    assert np.mean(errors) <= 0.02, errors
    assert abs(np.mean(signed)) <= 4 * 0.016 / math.sqrt(len(signed)), signed


def test_calibration_survives_reference_bytes_and_monitor_snapshots(fast_calibration: None) -> None:
    rng = np.random.default_rng(3)
    config = MonitorConfig(reference_size=1500, window_size=500)
    obs, out = multiclass_stream(1500, rng, temperature=1.5)
    rows, predictions = [o.features for o in obs], [o.prediction for o in obs]
    scores, labels = [o.scores for o in obs], [o.label for o in out]
    reference = Reference.from_columns(rows, config, predictions, scores, labels)
    assert isinstance(reference.performance, MulticlassCalibration)
    assert reference.performance.classes == CLASSES
    data = reference.to_bytes()
    assert build_reference(rows, config, predictions, scores, labels) == data, "deterministic"
    assert Reference.from_bytes(data).performance == reference.performance
    assert Reference.from_bytes(data).to_bytes() == data

    straight, restored = ModelMonitor.with_reference(config, data), ModelMonitor.with_reference(config, data)
    expected, got = [], []
    for k in range(5):
        obs, out = multiclass_stream(500, rng, t0=10_000 * (k + 1), temperature=1.5, scale=1.0 - 0.15 * k)
        expected += straight.update(obs) + straight.update_outcomes(out)
        got += restored.update(obs[:170])
        restored = ModelMonitor.from_bytes(restored.to_bytes(key=b"k"), key=b"k")
        got += restored.update(obs[170:])
        restored = ModelMonitor.from_bytes(restored.to_bytes(key=b"k"), key=b"k")
        got += restored.update_outcomes(out[:200])
        restored = ModelMonitor.from_bytes(restored.to_bytes(key=b"k"), key=b"k")
        got += restored.update_outcomes(out[200:])
    assert got == expected
    assert restored.status() == straight.status()
    assert fingerprint(vars(restored)) == fingerprint(vars(straight))
    estimates = restored.take_estimates()
    assert estimates == straight.take_estimates() and len(estimates) == 5
    assert estimates[0]["classes"] == list(CLASSES) and len(estimates[0]["confusion"]) == 3
    assert {s.kind for s in expected} >= {"performance"}  # the narrowed windows lose accuracy and say so
    status = restored.performance_status()
    assert status["calibration"]["classes"] == list(CLASSES)
    assert all(w["realised_n"] == 500 for w in status["windows"])
