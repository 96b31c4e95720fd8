"""Data-quality signals, bad values, supplied references and time windows through ModelMonitor."""

from __future__ import annotations

import json
import math

import pytest
from detector_streams import make_observations

from detectors.monitor import ModelMonitor, MonitorConfig, Observation, Signal, build_reference
from detectors.reference import Reference


def by_signal(signals: list[Signal], kind: str = "data_quality") -> dict[tuple[str, str | None], Signal]:
    return {(s.signal, s.feature): s for s in signals if s.kind == kind}


def test_quality_signals_fire_on_their_own_thresholds() -> None:
    config = MonitorConfig(reference_size=500, window_size=200)
    reference = make_observations(500, seed=1)
    rows = []
    for i, o in enumerate(make_observations(200, seed=2, start=500)):
        features = dict(o.features)
        if i % 10 == 0:
            features["x"] = None  # 10% missing
        if i % 5 == 0:
            features["y"] = 99.0  # 20% beyond the reference range [0, 10]
        if i % 4 == 0:
            features["c"] = "zzz"  # 25% unseen
        if i % 2 == 0:
            features["extra"] = 1.0  # an unexpected feature in half of them
        rows.append(o._replace(features=features))
    signals = by_signal(ModelMonitor(config).update(reference + rows))
    assert signals["missing_share", "x"].score == pytest.approx(0.1)
    assert signals["missing_share", "x"].threshold == pytest.approx(0.05)
    assert 0.2 <= signals["out_of_range_share", "y"].score <= 0.21  # plus the odd value just outside
    assert signals["unseen_category_share", "c"].score == pytest.approx(0.25)
    assert signals["unseen_category_share", "c"].details["unseen_examples"] == {"zzz": 50}
    assert signals["schema_mismatch", "extra"].details["reason"] == "unexpected_feature"
    assert signals["schema_mismatch", "extra"].severity == "critical"
    assert ("missing_share", "y") not in signals
    quiet = MonitorConfig(reference_size=500, window_size=200, missing_share_threshold=0.2,
                          out_of_range_share_threshold=0.3, unseen_category_share_threshold=0.3,
                          schema_mismatch_threshold=0.6)
    assert by_signal(ModelMonitor(quiet).update(reference + rows)) == {}


def test_schema_mismatch_on_missing_feature_and_type_change() -> None:
    config = MonitorConfig(reference_size=300, window_size=100)
    reference = make_observations(300, seed=3)
    current = [o._replace(features={"x": "text", "c": 3.5}) for o in make_observations(100, seed=4, start=300)]
    signals = [s for s in ModelMonitor(config).update(reference + current) if s.signal == "schema_mismatch"]
    reasons = {(s.feature, s.details["reason"]): s.score for s in signals}
    assert reasons == {("x", "type_change"): 1.0, ("c", "type_change"): 1.0, ("y", "missing_feature"): 1.0}


def test_reference_missing_share_is_the_baseline() -> None:
    config = MonitorConfig(reference_size=400, window_size=200)
    stream = [o._replace(features=dict(o.features, x=None if i % 3 == 0 else o.features["x"]))
              for i, o in enumerate(make_observations(1000, seed=5))]
    signals = ModelMonitor(config).update(stream)
    assert not [s for s in signals if s.signal == "missing_share"]


@pytest.mark.parametrize("bad", [None, math.nan, math.inf, -math.inf, "oops", True, [1, 2]])
def test_bad_values_are_counted_and_never_crash(bad: object) -> None:
    config = MonitorConfig(reference_size=100, window_size=50)
    stream = make_observations(200, seed=6)
    stream = [o._replace(features=dict(o.features, x=bad if i % 2 else o.features["x"], c=bad))
              for i, o in enumerate(stream)]
    monitor = ModelMonitor(config)
    monitor.update(stream)
    status = monitor.status()
    json.dumps(status, allow_nan=False)
    scores = status["scores"]["features"]
    assert scores["x"]["missing_share"] + scores["x"]["invalid_share"] == pytest.approx(0.5)
    valid_category = isinstance(bad, str | bool)
    assert scores["c"]["missing_share"] + scores["c"]["invalid_share"] == (0.0 if valid_category else 1.0)


def test_empty_batches_and_rows_without_features() -> None:
    monitor = ModelMonitor(MonitorConfig(reference_size=20, window_size=10))
    assert monitor.update([]) == [] and monitor.update_outcomes([]) == []
    monitor.update(make_observations(20, seed=15))
    assert monitor.update([]) == []
    signals = monitor.update([Observation(float(i), None, 0.5, None) for i in range(10)])  # type: ignore[arg-type]
    reasons = {(s.feature, s.details.get("reason")) for s in signals if s.signal == "schema_mismatch"}
    assert reasons == {("x", "missing_feature"), ("y", "missing_feature"), ("c", "missing_feature")}
    swapped = [o._replace(features={"x": 1.0, "y": 2.0, "z": "a"}) for o in make_observations(10, seed=16)]
    reasons = {(s.feature, s.details.get("reason")) for s in monitor.update(swapped) if s.signal == "schema_mismatch"}
    assert reasons == {("c", "missing_feature"), ("z", "unexpected_feature")}


def test_constant_feature_and_zero_variance_reference() -> None:
    config = MonitorConfig(reference_size=200, window_size=100)
    stream = [Observation(float(i), {"k": 7.0, "b": True}, 1.0, 0.5) for i in range(400)]
    monitor = ModelMonitor(config)
    assert [s for s in monitor.update(stream) if s.kind != "data_quality"] == []
    assert monitor.status()["scores"]["features"]["k"]["wasserstein"] == 0.0
    moved = [Observation(float(i), {"k": 8.0, "b": False}, 1.0, 0.5) for i in range(400, 500)]
    signals = by_signal(monitor.update(moved), "data_drift")
    assert signals["wasserstein", "k"].score == pytest.approx(1 / 7)  # normalised by |mean|: std is 0
    assert signals["psi", "k"].severity == "critical" and signals["psi", "b"].severity == "critical"
    assert all(math.isfinite(s.score) for s in signals.values())


def test_supplied_reference_from_training_rows() -> None:
    config = MonitorConfig(window_size=300)
    training = make_observations(3000, seed=7)
    blob = build_reference([o.features for o in training], config, [o.prediction for o in training])
    assert blob == build_reference([o.features for o in training], config, [o.prediction for o in training])
    monitor = ModelMonitor.with_reference(config, blob)
    assert monitor.status()["phase"] == "monitoring"
    assert monitor.status()["reference_source"] == "supplied"
    signals = monitor.update(make_observations(300, seed=8, shift=1.0))
    assert ("psi", "x") in by_signal(signals, "data_drift")
    assert ("psi", "prediction") in by_signal(signals, "prediction_drift")
    # a first-N monitor on the same rows builds the same reference
    first_n = ModelMonitor(MonitorConfig(reference_size=3000, window_size=300))
    first_n.update(training)
    assert first_n.reference is not None
    assert first_n.reference.features == Reference.from_bytes(blob).features
    # switching references discards the half-filled window
    monitor.update(make_observations(100, seed=9))
    monitor.set_reference(build_reference([{"x": 5.0}] * 10, config))
    assert monitor.status()["counts"]["current_window"] == 0 and monitor.status()["schema"] == {"x": "numeric"}


def test_time_windows_close_by_time_and_by_count() -> None:
    config = MonitorConfig(reference_size=100, window_size=500, window_seconds=60.0, min_window_n=10)
    monitor = ModelMonitor(config)
    monitor.update(make_observations(100, seed=10, step=1.0))
    # one observation per second: windows close every 60 observations, before the count bound
    signals = monitor.update(make_observations(250, seed=11, shift=2.0, start=100, step=1.0))
    windows = sorted({(s.window_index, s.window_start, s.window_n) for s in signals})
    assert windows == [(0, 100.0, 60), (1, 160.0, 60), (2, 220.0, 60), (3, 280.0, 60)]
    assert monitor.advance(now=300.0) == [] and monitor.status()["counts"]["current_window"] == 10
    late = monitor.advance(now=400.0)
    assert {(s.window_index, s.window_n) for s in late} == {(4, 10)}
    assert monitor.advance(now=500.0) == []  # an empty window closes nothing


def test_ks_and_chi2_can_decide_with_their_own_calibrated_cut_offs() -> None:
    config = MonitorConfig(reference_size=2000, window_size=1000, drift_signals=("ks", "chi2"))
    stream = make_observations(2000, seed=12) + make_observations(1000, seed=13, shift=0.3, start=2000,
                                                                  weights=(0.5, 0.3, 0.2))
    signals = ModelMonitor(config).update(stream)
    tests = by_signal(signals, "data_drift")
    assert set(tests) == {("ks", "x"), ("chi2", "c")}
    ks, chi2 = tests["ks", "x"], tests["chi2", "c"]
    assert ks.score >= ks.threshold == max(ks.details["noise_threshold"], config.ks_floor)
    # one test each for x and y (ks), c (chi2) and the prediction (ks)
    assert ks.details["family_size"] == 4 and ks.details["test_alpha"] == pytest.approx(0.001 / 4)
    assert ks.score == ks.details["scores"]["ks"] and chi2.score == chi2.details["scores"]["chi2"]
    assert chi2.details["scores"]["cramers_v"] >= config.chi2_floor


def test_bad_predictions_and_scores_are_counted_and_the_window_still_closes() -> None:
    config = MonitorConfig(reference_size=100, window_size=50)
    monitor = ModelMonitor(config)
    monitor.update([o._replace(score=o.prediction) for o in make_observations(100, seed=17)])
    bad: list[object] = [None, math.nan, math.inf, "text", -math.inf]
    current = [o._replace(prediction=bad[i % 5] if i % 2 else o.prediction,
                          score=bad[i % 5] if i % 3 == 0 else o.prediction)
               for i, o in enumerate(make_observations(49, seed=18, start=100))]
    monitor.update(current)
    window = monitor.window
    assert window is not None and window.prediction is not None and window.score is not None
    assert (window.prediction.n, window.prediction.n_missing, window.prediction.n_invalid) == (25, 10, 14)
    assert (window.score.n, window.score.n_missing, window.score.n_invalid) == (32, 7, 10)
    monitor.update(make_observations(1, seed=19, start=149))
    status = monitor.status()
    json.dumps(status, allow_nan=False)
    assert status["counts"]["windows_closed"] == 1
    assert all(math.isfinite(v) for v in status["scores"]["prediction"]["score"].values())


def test_window_quality_equals_each_feature_against_its_reference_to_the_bit() -> None:
    """The window's quality shares, with the reference's taken from what it derived when loaded, are the ones
    ``feature_quality`` computes from both histograms (same keys, same order, same floats)."""
    from detectors.quality import feature_quality, window_quality

    config = MonitorConfig(reference_size=300, window_size=150)
    training = make_observations(300, seed=31)
    rows = [dict(o.features, x=None) if i % 3 == 0 else dict(o.features, y="text") if i % 7 == 0 else dict(o.features)
            for i, o in enumerate(training)]
    for i, row in enumerate(rows):
        if i % 11 == 0:
            row["c"] = f"rare{i}"  # singletons: a Good-Turing share of unseen categories
    reference = Reference.from_bytes(build_reference(rows, config))
    assert reference.features["c"].unseen_share_expected > 0  # type: ignore[union-attr]
    monitor = ModelMonitor.with_reference(config, build_reference(rows, config))
    current = []
    for i, o in enumerate(make_observations(120, seed=32, start=300)):
        features = dict(o.features, y=99.0) if i % 4 == 0 else dict(o.features)
        if i % 5 == 0:
            features["c"] = "new"
        if i % 6 == 0:
            del features["x"]
        current.append(o._replace(features=features))
    monitor.update(current)
    window = monitor.window
    assert window is not None and monitor.reference is not None
    got = window_quality(monitor.reference, window)
    expected = {name: feature_quality(reference.features[name], h, window.n, window.absent.get(name, 0))
                for name, h in window.features.items()}
    assert json.dumps(got) == json.dumps(expected)
    assert got["x"]["absent_share"] > 0 and got["c"]["unseen_category_share"] > 0
    assert got["x"]["missing_share_reference"] > 0 and got["y"]["invalid_share_reference"] > 0
