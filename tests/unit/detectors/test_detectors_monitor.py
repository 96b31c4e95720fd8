"""ModelMonitor end to end: reference phase, exact window cuts, signals against independent numpy/scipy
computations, concept drift against offline River, and exact snapshot round trips."""

from __future__ import annotations

import json

import numpy as np
import pytest
from detector_streams import fingerprint, make_observations, make_outcomes
from river.drift import ADWIN
from river.drift.binary import DDM
from scipy import special

from detectors.codec import seal
from detectors.exceptions import SnapshotError
from detectors.monitor import ModelMonitor, MonitorConfig, Observation, Signal, build_reference


def independent_psi(reference: np.ndarray, current: np.ndarray, n_bins: int, eps: float = 1e-4) -> float:
    """PSI with quantile edges and under/overflow bins, computed without the detectors package."""
    edges = np.unique(np.quantile(reference, np.linspace(0, 1, n_bins + 1)))
    inner = np.concatenate([[-np.inf], edges[:-1], [np.nextafter(edges[-1], np.inf), np.inf]])

    def shares(values: np.ndarray) -> np.ndarray:
        counts = np.histogram(values, bins=inner)[0].astype(float)
        return np.maximum(counts / counts.sum(), eps)

    p, q = shares(reference), shares(current)
    return float(np.sum(special.rel_entr(q, p) + special.rel_entr(p, q)))


def feed_in_batches(monitor: ModelMonitor, observations: list[Observation], seed: int) -> list[Signal]:
    rng = np.random.default_rng(seed)
    signals: list[Signal] = []
    start = 0
    while start < len(observations):
        size = int(rng.integers(1, 700))
        signals += monitor.update(observations[start : start + size])
        start += size
    return signals


def test_reference_phase_then_windows_of_exact_size() -> None:
    config = MonitorConfig(reference_size=500, window_size=300)
    monitor = ModelMonitor(config)
    stream = make_observations(2000, seed=1)
    monitor.update(stream[:499])
    assert monitor.status()["phase"] == "reference"
    assert monitor.status()["counts"]["reference"] == 499
    monitor.update(stream[499:501])
    status = monitor.status()
    assert status["phase"] == "monitoring"
    assert status["schema"] == {"x": "numeric", "y": "numeric", "c": "categorical"}
    assert status["counts"]["current_window"] == 1
    monitor.update(stream[501:])
    status = monitor.status()
    assert status["counts"]["windows_closed"] == (2000 - 500) // 300
    assert status["last_window"]["n"] == 300
    assert status["last_window"]["start"] == 500 + 4 * 300 and status["last_window"]["end"] == 500 + 5 * 300 - 1
    json.dumps(status, allow_nan=False)


def test_batches_spanning_window_boundaries_give_the_same_signals() -> None:
    config = MonitorConfig(reference_size=1000, window_size=250)
    stream = make_observations(1000, seed=2) + make_observations(3000, seed=3, shift=0.8, start=1000)
    whole = ModelMonitor(config).update(stream)
    batched = feed_in_batches(ModelMonitor(config), stream, seed=4)
    assert whole == batched
    assert {s.window_n for s in whole} == {250}
    assert sorted({s.window_index for s in whole if s.kind == "data_drift"}) == list(range(12))


def test_no_drift_signal_on_the_same_distribution() -> None:
    stream = make_observations(6000, seed=5)
    signals = ModelMonitor(MonitorConfig()).update(stream)
    assert [s for s in signals if s.kind in ("data_drift", "prediction_drift")] == []


def test_shift_raises_critical_psi_equal_to_an_independent_computation() -> None:
    config = MonitorConfig(reference_size=2000, window_size=1000)
    reference = make_observations(2000, seed=6)
    current = make_observations(1000, seed=7, shift=0.7, start=2000)
    signals = ModelMonitor(config).update(reference + current)
    psi = [s for s in signals if s.signal == "psi" and s.feature == "x"]
    assert len(psi) == 1 and psi[0].kind == "data_drift" and psi[0].severity == "critical"
    expected = independent_psi(np.array([o.features["x"] for o in reference]),
                               np.array([o.features["x"] for o in current]), config.n_bins)
    assert psi[0].score == pytest.approx(expected, abs=1e-9)
    assert (psi[0].window_index, psi[0].window_start, psi[0].window_end, psi[0].window_n) == (0, 2000, 2999, 1000)
    prediction = [s for s in signals if s.kind == "prediction_drift" and s.signal == "psi"]
    assert [s.feature for s in prediction] == ["prediction"]
    assert not [s for s in signals if s.feature in ("y", "c") and s.kind == "data_drift"]


def test_a_shift_between_the_warning_and_the_critical_cut_off_is_a_warning() -> None:
    reference = make_observations(2000, seed=8)
    current = make_observations(1000, seed=9, shift=0.3, start=2000)
    score = independent_psi(np.array([o.features["x"] for o in reference]),
                            np.array([o.features["x"] for o in current]), 20)
    config = MonitorConfig(drift_signals=("psi",), psi_floor=0.0)
    monitor = ModelMonitor(config)
    monitor.update(reference)
    assert monitor.reference is not None
    fit = monitor.reference.fits("feature:x", 1000, config)["psi"]
    family = 4  # x, y, c and the prediction, one statistic each
    # choose the two budgets so that the score falls between the two cut-offs
    p = fit.p_value(score)
    warn = MonitorConfig(drift_signals=("psi",), psi_floor=0.0, false_alarm_rate=p * family / 4,
                         warning_rate=min(p * family * 4, 0.5))
    signals = [s for s in ModelMonitor(warn).update(reference + current) if s.feature == "x"]
    assert [(s.signal, s.severity) for s in signals] == [("psi", "warning")]
    assert signals[0].threshold == pytest.approx(fit.cutoff(warn.warning_rate / family))
    assert signals[0].details["noise_threshold"] == signals[0].threshold and signals[0].score == pytest.approx(score)


def test_concept_drift_indices_match_offline_river() -> None:
    outcomes = make_outcomes(2000, 2000, 0.1, 0.45, seed=10)
    config = MonitorConfig(concept_detectors=({"kind": "ADWIN"}, {"kind": "DDM"}), concept_cooldown=0)
    signals = ModelMonitor(config).update_outcomes(outcomes)
    errors = [0.0 if o.prediction == o.label else 1.0 for o in outcomes]
    adwin, ddm = ADWIN(), DDM()
    expected: dict[str, list[tuple[int, str]]] = {"adwin": [], "ddm": []}
    in_warning = False
    for i, error in enumerate(errors):
        adwin.update(error)
        ddm.update(error)
        if adwin.drift_detected:
            expected["adwin"].append((i, "critical"))
        if ddm.drift_detected:
            expected["ddm"].append((i, "critical"))
            in_warning = False
        elif ddm.warning_detected and not in_warning:
            expected["ddm"].append((i, "warning"))
        in_warning = ddm.warning_detected if not ddm.drift_detected else False
    got = {name: [(s.window_index, s.severity) for s in signals if s.signal == name] for name in expected}
    assert got == expected
    assert expected["adwin"] and any(sev == "critical" for _, sev in expected["ddm"])
    assert all(s.kind == "concept_drift" and s.feature is None for s in signals)


def test_snapshot_restored_mid_stream_continues_exactly() -> None:
    config = MonitorConfig(reference_size=800, window_size=300)
    stream = make_observations(800, seed=11) + make_observations(2500, seed=12, shift=0.5, start=800)
    outcomes = make_outcomes(1500, 1500, 0.1, 0.4, seed=13)
    straight = ModelMonitor(config)
    expected = straight.update(stream) + straight.update_outcomes(outcomes)
    for cut in (1, 500, 799, 800, 1234, 2999):
        first = ModelMonitor(config)
        got = first.update(stream[:cut]) + first.update_outcomes(outcomes[: cut // 2])
        restored = ModelMonitor.from_bytes(first.to_bytes(key=b"k"), key=b"k")
        got += restored.update(stream[cut:])
        got += restored.update_outcomes(outcomes[cut // 2 :])
        data_signals = [s for s in got if s.kind != "concept_drift"]
        assert data_signals == [s for s in expected if s.kind != "concept_drift"]
        assert [s for s in got if s.kind == "concept_drift"] == [s for s in expected if s.kind == "concept_drift"]
        assert restored.status() == straight.status()


def test_tampered_or_wrongly_keyed_snapshot_is_rejected() -> None:
    monitor = ModelMonitor(MonitorConfig(reference_size=10, window_size=10))
    monitor.update(make_observations(15, seed=14))
    blob = bytearray(monitor.to_bytes(key=b"secret"))
    assert ModelMonitor.from_bytes(bytes(blob), key=b"secret").status() == monitor.status()
    with pytest.raises(SnapshotError, match="HMAC"):
        ModelMonitor.from_bytes(bytes(blob), key=b"other")
    blob[-5] ^= 0xFF
    with pytest.raises(SnapshotError, match="HMAC"):
        ModelMonitor.from_bytes(bytes(blob), key=b"secret")
    with pytest.raises(ValueError):
        ModelMonitor.from_bytes(b"short", key=b"secret")


@pytest.mark.parametrize("supplied", [False, True], ids=["first-n-reference", "supplied-reference"])
def test_restored_after_every_single_update_the_state_stays_bit_for_bit_equal(supplied: bool) -> None:
    config = MonitorConfig(reference_size=100, window_size=50, concept_cooldown=20)
    stream = make_observations(100, seed=21) + make_observations(300, seed=22, shift=0.8, start=100)
    outcomes = make_outcomes(300, 300, 0.1, 0.6, seed=23)
    blob = build_reference([o.features for o in stream[:100]], config, [o.prediction for o in stream[:100]])

    def fresh() -> ModelMonitor:
        return ModelMonitor.with_reference(config, blob) if supplied else ModelMonitor(config)

    straight, restored = fresh(), fresh()
    expected: list[Signal] = []
    got: list[Signal] = []
    for i in range(len(stream)):  # a snapshot after each observation and each pair of outcomes
        expected += straight.update(stream[i : i + 1]) + straight.update_outcomes(outcomes[2 * i : 2 * i + 2])
        got += restored.update(stream[i : i + 1])
        restored = ModelMonitor.from_bytes(restored.to_bytes(key=b"k"), key=b"k")
        got += restored.update_outcomes(outcomes[2 * i : 2 * i + 2])
        restored = ModelMonitor.from_bytes(restored.to_bytes(key=b"k"), key=b"k")
        if i % 97 == 0:
            assert fingerprint(vars(restored)) == fingerprint(vars(straight)), f"states differ after {i}"
    assert {s.kind for s in expected} == {"data_drift", "prediction_drift", "data_quality", "concept_drift"}
    assert got == expected
    assert fingerprint(vars(restored)) == fingerprint(vars(straight))


def test_snapshot_of_another_format_version_is_rejected_even_when_authentic() -> None:
    monitor = ModelMonitor(MonitorConfig(reference_size=10, window_size=10))
    state = ModelMonitor.from_bytes(monitor.to_bytes(key=b"k"), key=b"k").__dict__
    future = seal(b"DWMN", 2, dict(state), b"k")
    with pytest.raises(SnapshotError, match="version 2 is not supported"):
        ModelMonitor.from_bytes(future, key=b"k")
    with pytest.raises(SnapshotError, match="magic"):
        ModelMonitor.from_bytes(seal(b"XXXX", 1, dict(state), b"k"), key=b"k")


def classifier_stream(n: int, seed: int, p_yes: float, score_shape: tuple[float, float],
                      start: int = 0) -> list[Observation]:
    rng = np.random.default_rng(seed)
    labels = np.where(rng.random(n) < p_yes, "yes", "no")
    scores = rng.beta(*score_shape, n)
    return [Observation(float(start + i), {"x": float(s)}, str(labels[i]), float(s)) for i, s in enumerate(scores)]


def test_prediction_and_score_drift_use_the_same_statistics() -> None:
    config = MonitorConfig(reference_size=1000, window_size=1000)
    reference = classifier_stream(1000, seed=31, p_yes=0.3, score_shape=(2, 5))
    current = classifier_stream(1000, seed=32, p_yes=0.7, score_shape=(5, 2), start=1000)
    monitor = ModelMonitor(config)
    signals = [s for s in monitor.update(reference + current) if s.kind == "prediction_drift"]
    assert {(s.signal, s.feature) for s in signals} >= {("psi", "prediction"), ("js", "prediction"),
                                                        ("psi", "score"), ("wasserstein", "score")}
    scores = monitor.status()["scores"]["prediction"]
    assert "chi2" in scores["prediction"] and "ks" in scores["score"]  # categorical vs numeric statistics
    # categorical prediction PSI over [no, yes, other, unseen], computed independently
    p = np.array([sum(o.prediction == k for o in reference) for k in ("no", "yes")] + [0, 0]) / 1000
    q = np.array([sum(o.prediction == k for o in current) for k in ("no", "yes")] + [0, 0]) / 1000
    p, q = np.maximum(p, 1e-4), np.maximum(q, 1e-4)
    assert scores["prediction"]["psi"] == pytest.approx(float(np.sum((q - p) * np.log(q / p))), abs=1e-9)
    quiet = ModelMonitor(config).update(reference + classifier_stream(1000, 33, 0.3, (2, 5), start=1000))
    assert [s for s in quiet if s.kind == "prediction_drift"] == []


def test_an_effect_floor_keeps_a_significant_but_trivial_shift_quiet() -> None:
    n = 20_000  # large windows: a shift of 0.06 std is beyond the noise but too small to matter
    stream = make_observations(n, seed=34) + make_observations(n, seed=35, shift=0.06, start=n)
    by_default = ModelMonitor(MonitorConfig(reference_size=n, window_size=n))
    signals = by_default.update(stream)
    x = by_default.status()["scores"]["features"]["x"]
    assert x["ks_pvalue"] < 0.001, "the shift is real"
    assert x["wasserstein"] < 0.1 and x["psi"] < 0.03
    assert [s for s in signals if s.kind == "data_drift"] == []
    no_floor = ModelMonitor(MonitorConfig(reference_size=n, window_size=n, wasserstein_floor=0.0))
    fired = [s for s in no_floor.update(stream) if s.kind == "data_drift"]
    assert {(s.signal, s.feature) for s in fired} == {("wasserstein", "x")}
    assert fired[0].details["decided_by"] == "noise" and fired[0].details["effect_floor"] == 0.0


def test_count_and_time_bounds_hold_together() -> None:
    config = MonitorConfig(reference_size=100, window_size=50, window_seconds=1000.0, min_window_n=10)
    monitor = ModelMonitor(config)
    monitor.update(make_observations(100, seed=36))
    # 30 observations, a pause of 2000 s, then 120 more: time closes the first window, count the next two
    burst = make_observations(30, seed=37, shift=3.0, start=100) + make_observations(120, seed=38, shift=3.0,
                                                                                     start=2130)
    signals = [s for s in monitor.update(burst) if s.kind == "data_drift" and s.feature == "x"]
    windows = sorted({(s.window_index, s.window_start, s.window_n) for s in signals})
    assert windows == [(0, 100.0, 30), (1, 2130.0, 50), (2, 2180.0, 50)]
    assert monitor.windows_closed == 3 and monitor.status()["counts"]["current_window"] == 20


def test_a_new_version_gets_its_own_first_n_reference_or_its_training_histograms() -> None:
    config = MonitorConfig(reference_size=1000, window_size=1000, concept_cooldown=0)
    first = make_observations(3000, seed=41)
    new = make_observations(3000, seed=43, shift=2.0, start=3000)  # the new version sees other inputs
    old_version = ModelMonitor(config)
    old_version.update(first)
    assert {s.feature for s in old_version.update(new) if s.kind == "data_drift"} >= {"x"}

    monitor = ModelMonitor(config)
    monitor.update(first)
    monitor.update_outcomes(make_outcomes(300, 300, 0.1, 0.5, seed=42))
    assert (monitor.windows_closed, monitor.status()["concept"]["outcomes"]) == (2, 600)
    monitor.start_version()
    assert monitor.phase == "reference" and monitor.status()["concept"]["outcomes"] == 0
    monitor = ModelMonitor.from_bytes(monitor.to_bytes(key=b"k"), key=b"k")  # restarts survive a snapshot
    signals = monitor.update(new[:2000])
    assert monitor.phase == "monitoring" and monitor.windows_closed == 3
    assert (monitor.status()["last_window"]["index"], monitor.status()["last_window"]["start"]) == (2, 4000.0)
    signals += monitor.update(new[2000:])
    assert monitor.windows_closed == 4 and monitor.status()["last_window"]["index"] == 3
    assert [s for s in signals if s.kind in ("data_drift", "prediction_drift")] == []  # its own reference

    training = build_reference([o.features for o in first[:1000]], config)
    monitor.start_version(training)
    assert monitor.phase == "monitoring" and monitor.status()["reference_source"] == "supplied"
    assert {s.feature for s in monitor.update(new[:1000]) if s.kind == "data_drift"} >= {"x"}
    assert monitor.windows_closed == 5
