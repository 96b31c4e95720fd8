"""Performance estimation, multivariate drift and the ranking of drifted features (pure, no services)."""

from __future__ import annotations

import functools

import numpy as np
import pytest
from detector_streams import fingerprint
from scipy import stats
from sklearn.isotonic import IsotonicRegression
from sklearn.metrics import roc_auc_score

import detectors.reference as reference_module
from detectors.calibration import calibrate
from detectors.monitor import ModelMonitor, MonitorConfig, Observation, Outcome
from detectors.performance import (
    ScoreCalibration,
    _isotonic,
    expected_metrics,
    fit_calibration,
    realised_metrics,
)
from detectors.reference import Reference, build_reference

N_FEATURES = 5


@pytest.fixture
def fast_calibration(monkeypatch: pytest.MonkeyPatch) -> None:
    """2,500 bootstrap draws for the histogram statistics (as in test_detectors_calibration.py)."""
    monkeypatch.setattr(reference_module, "calibrate", functools.partial(calibrate, draws=2500))


def scored_stream(n: int, rng: np.random.Generator, t0: float = 0.0, shift: float = 0.0, scale0: float = 1.0,
                  flip: bool = False, shift3: float = 0.0) -> tuple[list[Observation], list[Outcome]]:
    """Rows of five numeric features (f1 correlated with f0, +0.8 or -0.8 with ``flip``), a model whose score is
    the true P(y=1 | x) (calibrated by construction), its 0.5-threshold prediction, and the labels."""
    x = rng.normal(shift, 1.0, (n, N_FEATURES))
    x[:, 0] = shift + scale0 * rng.normal(0.0, 1.0, n)
    x[:, 1] = shift + (-0.8 if flip else 0.8) * (x[:, 0] - shift) / scale0 + 0.6 * rng.normal(0.0, 1.0, n)
    x[:, 3] += shift3
    p = 1.0 / (1.0 + np.exp(-(2.0 * x[:, 0] - 1.0 * x[:, 2])))
    y = (rng.random(n) < p).astype(int)
    predicted = (p > 0.5).astype(int)
    observations = [Observation(t0 + i, {f"f{j}": float(x[i, j]) for j in range(N_FEATURES)}, int(predicted[i]),
                                float(p[i])) for i in range(n)]
    outcomes = [Outcome(t0 + i, int(predicted[i]), int(y[i]), float(p[i]), t0 + i) for i in range(n)]
    return observations, outcomes


def test_expected_confusion_matrix_matches_a_direct_computation() -> None:
    rng = np.random.default_rng(0)
    steps = 7
    probabilities = tuple(float(v) for v in np.sort(rng.random(steps)))
    calibration = ScoreCalibration(tuple(float(e) for e in np.linspace(0.1, 0.9, steps - 1)), probabilities,
                                   "binned", 1.0, 0.8, 100, ((0,) * steps, (0,) * steps), 0.0)
    rows = [(int(rng.integers(0, 2)), int(rng.integers(0, steps))) for _ in range(500)]  # (predicted, step)
    counts = np.zeros((2, steps), dtype=np.int64)
    tp = fp = fn = tn = 0.0
    for predicted, step in rows:
        counts[predicted, step] += 1
        p = probabilities[step]
        tp, fp = tp + predicted * p, fp + predicted * (1 - p)
        fn, tn = fn + (1 - predicted) * p, tn + (1 - predicted) * (1 - p)
    got = expected_metrics(calibration, counts)
    assert got["accuracy"] == pytest.approx((tp + tn) / len(rows))
    assert got["precision"] == pytest.approx(tp / (tp + fp))
    assert got["recall"] == pytest.approx(tp / (tp + fn))
    assert got["f1"] == pytest.approx(2 * tp / (2 * tp + fp + fn))
    # the binned AUC is the AUC of each row's step, each row a positive with weight p and a negative with 1 - p
    steps_of_rows = np.array([s for _, s in rows] * 2, dtype=float)
    truth = np.array([1] * len(rows) + [0] * len(rows))
    weights = np.array([probabilities[s] for _, s in rows] + [1 - probabilities[s] for _, s in rows])
    assert got["roc_auc"] == pytest.approx(roc_auc_score(truth, steps_of_rows, sample_weight=weights))
    # realised counts of the same rows with labels give scikit-learn's accuracy and AUC
    labels = rng.integers(0, 2, len(rows))
    realised = np.zeros((2, 2, steps), dtype=np.int64)
    for (predicted, step), label in zip(rows, labels, strict=True):
        realised[predicted, label, step] += 1
    r = realised_metrics(realised)
    assert r["accuracy"] == pytest.approx(np.mean([p == y for (p, _), y in zip(rows, labels, strict=True)]))
    assert r["roc_auc"] == pytest.approx(roc_auc_score(labels, [s for _, s in rows]))


def test_isotonic_step_function_is_scikit_learns_isotonic_regression() -> None:
    rng = np.random.default_rng(1)
    scores = np.round(rng.random(800), 2)  # ties, as real scores have
    y = (rng.random(800) < scores).astype(float)
    edges, probabilities = _isotonic(scores, y)
    step = np.searchsorted(edges, scores, side="left")
    n = np.bincount(step, minlength=probabilities.size)
    unsmoothed = (probabilities * (n + 1) - 0.5) / n  # undo the Jeffreys smoothing
    expected = IsotonicRegression().fit(scores, y).predict(scores)
    np.testing.assert_allclose(unsmoothed[step], expected, atol=1e-12)


def test_calibration_is_chosen_by_held_out_error_and_multiclass_is_refused() -> None:
    rng = np.random.default_rng(2)
    scores = rng.random(2000)
    labels = (rng.random(2000) < scores**3).astype(int)  # miscalibrated: P(y) = score**3
    fitted = fit_calibration(list(scores), list((scores > 0.5).astype(int)), list(labels))
    assert isinstance(fitted, ScoreCalibration) and fitted.method in ("binned", "isotonic")
    mid = fitted.probabilities[int(np.searchsorted(fitted.edges, 0.8))]
    assert abs(mid - 0.8**3) < 0.1  # the calibrated probability, not the raw score
    assert fitted.positive == 1.0 and fitted.held_out_error < 0.05
    three = fit_calibration(list(scores), [0] * 2000, list(rng.integers(0, 3, 2000)))
    assert isinstance(three, str) and "binary only" in three


def test_estimated_accuracy_tracks_realised_under_covariate_shift_over_many_seeds() -> None:
    errors = []
    for seed in range(12):
        rng = np.random.default_rng(100 + seed)
        monitor = ModelMonitor(MonitorConfig(reference_size=2000, window_size=1000))
        obs, out = scored_stream(2000, rng)
        monitor.update(obs)
        monitor.update_outcomes(out[:1000])  # the first 1,000 labels calibrate the scores
        for k, shift in enumerate((0.0, 0.4, 0.8)):  # covariate shift: x moves, P(y | x) stays
            obs, out = scored_stream(1000, rng, t0=10_000 * (k + 1), shift=shift)
            monitor.update(obs)
            monitor.update_outcomes(out)
        windows = monitor.performance_status()["windows"]
        assert len(windows) == 3 and all(w["realised_n"] == 1000 for w in windows)
        errors += [w["estimation_error"] for w in windows]
    # each error is mostly the realised accuracy's own sampling noise (sd ~ 0.013 for 1,000 rows)
    assert np.mean(errors) <= 0.02, errors
    assert max(errors) <= 0.06, errors


def test_calibration_and_pca_survive_reference_bytes_and_monitor_snapshots(fast_calibration: None) -> None:
    rng = np.random.default_rng(3)
    config = MonitorConfig(reference_size=1500, window_size=500)
    obs, out = scored_stream(1500, rng)
    rows, predictions, scores = [o.features for o in obs], [o.prediction for o in obs], [o.score for o in obs]
    labels = [o.label for o in out]
    reference = Reference.from_columns(rows, config, predictions, scores, labels)
    assert reference.performance is not None and reference.pca is not None
    data = reference.to_bytes()
    assert build_reference(rows, config, predictions, scores, labels) == data, "deterministic"
    restored_reference = Reference.from_bytes(data)
    assert restored_reference.performance == reference.performance and restored_reference.pca == reference.pca
    assert restored_reference.to_bytes() == data

    straight, restored = ModelMonitor.with_reference(config, data), ModelMonitor.with_reference(config, data)
    expected, got = [], []
    for k in range(4):
        obs, out = scored_stream(500, rng, t0=10_000 * (k + 1), shift=0.3 * k, flip=k == 3)
        expected += straight.update(obs) + straight.update_outcomes(out)
        got += restored.update(obs[:250])
        restored = ModelMonitor.from_bytes(restored.to_bytes(key=b"k"), key=b"k")
        got += restored.update(obs[250:])
        restored = ModelMonitor.from_bytes(restored.to_bytes(key=b"k"), key=b"k")
        got += restored.update_outcomes(out)
    assert got == expected and {s.signal for s in expected} >= {"multivariate"}
    assert restored.status() == straight.status()
    assert fingerprint(vars(restored)) == fingerprint(vars(straight))
    assert restored.reference is not None and restored.reference.performance == reference.performance


def test_multivariate_catches_a_correlation_sign_swap_that_no_marginal_sees(fast_calibration: None) -> None:
    for seed in range(5):
        rng = np.random.default_rng(200 + seed)
        monitor = ModelMonitor(MonitorConfig(reference_size=2000, window_size=1000))
        monitor.update(scored_stream(2000, rng)[0])
        quiet = monitor.update(scored_stream(1000, rng, t0=10_000)[0])
        swapped = monitor.update(scored_stream(1000, rng, t0=20_000, flip=True)[0])
        assert not [s for s in quiet if s.severity == "critical"], quiet
        assert [(s.signal, s.severity) for s in swapped if s.kind == "data_drift"] == [("multivariate", "critical")]
        status = monitor.status()["scores"]["multivariate"]["multivariate"]
        assert status["multivariate"] > 3 * status["multivariate_reference"]


def test_whole_monitor_with_the_new_tests_keeps_the_configured_false_alarm_rate(fast_calibration: None) -> None:
    rate = 0.05
    references, windows, n, m = 30, 12, 600, 200
    config = MonitorConfig(reference_size=n, window_size=m, n_bins=10, false_alarm_rate=rate, warning_rate=0.1,
                           psi_floor=0.0, js_floor=0.0, wasserstein_floor=0.0, multivariate_floor=0.0,
                           performance_margin=0.0, performance_reference_size=n)
    alarms = 0
    kinds: set[str] = set()
    families: set[int] = set()
    for seed in range(references):
        rng = np.random.default_rng(300 + seed)
        monitor = ModelMonitor(config)
        obs, out = scored_stream(n + windows * m, rng)
        monitor.update(obs[:n])
        monitor.update_outcomes(out[:n])
        signals = monitor.update(obs[n:])
        critical = [s for s in signals if s.severity == "critical"]
        alarms += len({s.window_index for s in critical})
        kinds |= {s.signal for s in signals}
        families |= {s.details["family_size"] for s in signals if "family_size" in s.details}
    total = references * windows
    # 5 features and the prediction and score x 3 statistics, the multivariate and the performance tests
    assert families == {23}
    upper = stats.binom.ppf(0.999, total, 2 * rate)
    lower = stats.binom.ppf(0.001, total, 0.2 * rate)
    assert lower <= alarms <= upper, f"{alarms} of {total} stationary windows alarmed at a rate of {rate}"


def test_performance_signal_and_ranking_name_the_feature_that_hurts(fast_calibration: None) -> None:
    rng = np.random.default_rng(4)
    monitor = ModelMonitor(MonitorConfig(reference_size=2000, window_size=1000))
    obs, out = scored_stream(2000, rng)
    monitor.update(obs)
    monitor.update_outcomes(out[:1000])
    last: list = []
    # f3 shifts far but the model ignores it; f0 (the model's main input) narrows towards the decision boundary
    for k, scale in enumerate((1.0, 0.8, 0.6, 0.45, 0.3, 0.2)):
        obs, _ = scored_stream(1000, rng, t0=10_000 * (k + 1), scale0=scale, shift3=2.0)
        last = monitor.update(obs)
    performance = [s for s in last if s.kind == "performance"]
    assert [(s.signal, s.severity) for s in performance] == [("accuracy_estimate", "critical")]
    assert performance[0].score >= performance[0].threshold >= 0.02
    ranking = monitor.status()["ranking"]
    assert ranking[0]["feature"] == "f0" and ranking[0]["tracks_performance"] > 0.8
    f3 = next(r for r in ranking if r["feature"] == "f3")
    assert f3["effect"] > ranking[0]["effect"]  # the larger shift, ranked below the one that hurts
    assert performance[0].details["ranking"][0]["feature"] == "f0"
    data_drift = [s for s in last if s.kind == "data_drift" and s.feature == "f3"]
    assert data_drift and data_drift[0].details["rank"] > 1
    records = monitor.take_estimates()
    assert len(records) == 6 and records[-1]["estimated"]["accuracy"] < records[0]["estimated"]["accuracy"] - 0.1
    assert monitor.take_estimates() == []
