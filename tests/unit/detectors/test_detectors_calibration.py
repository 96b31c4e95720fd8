"""Calibrated drift decisions: the null fits survive snapshots and reference bytes exactly, the whole monitor's
stationary false-alarm rate is the configured one and each field's null is right in its bulk, real shifts are
still caught, a 0/1 prediction is binned per
value, the fits invert, the cut-offs follow the window size and the number of levels, and k-of-n persistence.

Statistical tests use fixed seeds, so they are deterministic; their bounds are loose enough (binomial quantiles
at 99.9%) that they test the calibration, not the luck of one seed.
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import numpy as np
import pytest
from detector_streams import fingerprint, make_observations
from scipy import stats

import detectors.reference as reference_module
from detectors.calibration import NullFit, calibrate
from detectors.histogram import NumericHistogram
from detectors.monitor import ModelMonitor, MonitorConfig, Observation, Signal, build_reference
from detectors.reference import Reference, field_key

DRIFT_KINDS = ("data_drift", "prediction_drift")
FAST_DRAWS = 2_500  # the fewest draws ``calibrate`` itself uses (for references of many bins)


@pytest.fixture
def fast_calibration(monkeypatch: pytest.MonkeyPatch) -> None:
    """Calibrate with 2,500 bootstrap draws instead of 10,000, for the tests that build many references.

    Same method, same seeds, a noisier tail fit: on ``mixed_stream`` with 200 references x 5 windows (calibration
    of 256b90a), 2,500 draws gave 50 alarms in 1,000 windows and 10,000 draws 54.
    """
    monkeypatch.setattr(reference_module, "calibrate", functools.partial(calibrate, draws=FAST_DRAWS))


def drift(signals: list[Signal], severity: str | None = None) -> list[Signal]:
    return [s for s in signals if s.kind in DRIFT_KINDS and (severity is None or s.severity == severity)]


# -- (a) the calibration survives snapshots and reference bytes ------------------------------------------------

def paused_stream() -> list[Observation]:
    """A reference of 600, then windows closed by count (200) and, after pauses, by time at odd sizes (so the
    monitor needs calibrations of several window-size classes), drifting by 0.4 sd after 1,400 observations."""
    stream = make_observations(1400, seed=101) + make_observations(1400, seed=102, shift=0.4, start=1400)
    pauses = {700: 5_000.0, 930: 10_000.0, 1_520: 15_000.0, 2_090: 20_000.0}  # index -> seconds added from there
    out: list[Observation] = []
    extra = 0.0
    for i, o in enumerate(stream):
        extra += pauses.get(i, 0.0)
        out.append(o._replace(timestamp=o.timestamp + extra))
    return out


def test_a_restored_monitor_decides_with_the_same_calibration_as_one_that_never_stopped(
        monkeypatch: pytest.MonkeyPatch) -> None:
    config = MonitorConfig(reference_size=600, window_size=200, window_seconds=1_000.0,
                           alert_after_windows=(2, 3))
    stream = paused_stream()
    calls: list[int] = []
    fast = functools.partial(calibrate, draws=FAST_DRAWS)  # exactness is tested here, not precision

    def counted(histogram: object, m: int, *args: object, **kwargs: object) -> object:
        calls.append(m)
        return fast(histogram, m, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(reference_module, "calibrate", counted)
    straight = ModelMonitor(config)
    expected: list[Signal] = []
    snapshots: dict[int, tuple[bytes, int, set[int]]] = {}
    done = 0
    for cut in (600, 705, 1_100, 1_525, 2_300, len(stream)):  # snapshots of the running monitor, mid-stream
        expected += straight.update(stream[done:cut])
        done = cut
        known = {size for size, _ in straight.reference.calibrations} if straight.reference else set()
        snapshots[cut] = (straight.to_bytes(key=b"k"), len(expected), known)
    assert straight.reference is not None
    sizes = {size for size, _ in straight.reference.calibrations}
    assert len(sizes) >= 3, f"the stream should need several window-size classes, got {sizes}"
    assert len(calls) == len(set(calls)) * 4 == len(sizes) * 4, "each (field, size class) computed once"
    assert drift(expected, "critical") and drift(expected, "warning")

    for cut, (blob, n_before, known) in list(snapshots.items())[:-1]:
        restored = ModelMonitor.from_bytes(blob, key=b"k")
        assert restored.reference is not None
        assert {size for size, _ in restored.reference.calibrations} == known
        before = len(calls)
        got = restored.update(stream[cut:])
        # only the size classes first met after the cut are computed again: none of the stored ones
        assert len(calls) - before == 4 * len(sizes - known), f"cut at {cut}"
        assert got == expected[n_before:], f"cut at {cut}"  # scores, thresholds, severities and every detail
        assert [s.details for s in got] == [s.details for s in expected[n_before:]]
        assert restored.status() == straight.status()
        assert fingerprint(restored.reference.calibrations) == fingerprint(straight.reference.calibrations)


def test_reference_bytes_round_trip_every_calibration_exactly(fast_calibration: None) -> None:
    config = MonitorConfig(reference_size=1000, window_size=400)
    stream = make_observations(1000, seed=103)
    rows, predictions = [o.features for o in stream], [o.prediction for o in stream]
    scores = [abs(o.features["x"]) for o in stream]
    reference = Reference.from_columns(rows, config, predictions, scores)
    assert set(reference.calibrations) == {(400, config.psi_epsilon)}  # computed when built, for full windows
    assert build_reference(rows, config, predictions, scores) == reference.to_bytes(), "deterministic"
    reference.fits("feature:x", 123, config)  # a smaller (time-closed) window's class, added later
    assert len(reference.calibrations) == 2
    data = reference.to_bytes()
    restored = Reference.from_bytes(data)
    assert restored.calibrations == reference.calibrations
    assert fingerprint(restored.calibrations) == fingerprint(reference.calibrations)  # bit for bit
    assert restored.to_bytes() == data
    table = restored.calibrations[(400, config.psi_epsilon)]
    assert set(table) == {"feature:x", "feature:y", "feature:c", "prediction", "score"}
    assert set(table["feature:c"]) == {"psi", "js", "chi2"}
    assert set(table["score"]) == {"psi", "js", "ks", "wasserstein"}

    # A monitor given the bytes decides exactly like one given the object the bytes were made of.
    later = make_observations(1200, seed=104, shift=0.3, start=1000)
    from_object = ModelMonitor(config)
    from_object.set_reference(reference)
    from_bytes = ModelMonitor.with_reference(config, data)
    expected = from_object.update(later)
    assert drift(expected)
    assert from_bytes.update(later) == expected


# -- (b) stationary streams: the whole monitor's false-alarm rate, each field's p-values ---------------------

LEVELS_50 = [f"level-{i:02d}" for i in range(50)]
ZIPF_50 = 1.0 / np.arange(1, 51) / np.sum(1.0 / np.arange(1, 51))


def mixed_stream(n: int, rng: np.random.Generator) -> list[Observation]:
    """Five features of different shapes and a 0/1 prediction, the same law throughout."""
    x = rng.normal(0.0, 1.0, n)
    income = rng.lognormal(0.0, 1.0, n)
    visits = rng.poisson(3.0, n)
    plan = rng.choice(["basic", "plus", "pro"], n, p=[0.6, 0.3, 0.1])
    city = rng.choice(LEVELS_50, n, p=ZIPF_50)
    label = (x + rng.normal(0.0, 1.0, n) > 0.5).astype(float)
    return [Observation(float(i), {"x": float(x[i]), "income": float(income[i]), "visits": int(visits[i]),
                                   "plan": str(plan[i]), "city": str(city[i])}, float(label[i]))
            for i in range(n)]


class StationaryRuns(NamedTuple):
    windows: int
    alarms: int  # windows with a critical data or prediction drift signal
    families: set[int]
    p_values: dict[tuple[str, str], list[float]]  # (field, statistic) -> the p-value of each window's score


STATIONARY_RATE = 0.05


@pytest.fixture(scope="module")
def stationary() -> StationaryRuns:
    """40 references x 20 windows of ``mixed_stream``, at a loose false-alarm rate; no effect floors (they only
    ever silence, and this measures the noise cut-offs)."""
    references, windows, n, m = 40, 20, 500, 100
    config = MonitorConfig(reference_size=n, window_size=m, n_bins=10, false_alarm_rate=STATIONARY_RATE,
                           warning_rate=0.1, psi_floor=0.0, js_floor=0.0, wasserstein_floor=0.0)
    alarms = 0
    families: set[int] = set()
    p_values: dict[tuple[str, str], list[float]] = {}
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(reference_module, "calibrate", functools.partial(calibrate, draws=FAST_DRAWS))
        for seed in range(references):
            monitor = ModelMonitor(config)
            stream = mixed_stream(n + windows * m, np.random.default_rng(seed))
            monitor.update(stream[:n])
            assert monitor.reference is not None
            for start in range(n, len(stream), m):
                signals = monitor.update(stream[start : start + m])
                alarms += bool(drift(signals, "critical"))
                families |= {s.details["family_size"] for s in drift(signals)}
                scores = monitor.status()["scores"]
                for name, field in (*scores["features"].items(), *scores["prediction"].items()):
                    key = field_key(name) if name in scores["features"] else name
                    for stat, fit in monitor.reference.fits(key, m, config).items():
                        p_values.setdefault((name, stat), []).append(fit.p_value(field[stat]))
            assert monitor.windows_closed == windows
    return StationaryRuns(references * windows, alarms, families, p_values)


def test_stationary_false_alarm_rate_of_the_whole_monitor_is_the_configured_one(stationary: StationaryRuns) -> None:
    assert stationary.families == {16}  # 3 numeric features and the prediction x 3 statistics, 2 categorical x 2
    upper = stats.binom.ppf(0.999, stationary.windows, 2 * STATIONARY_RATE)
    lower = stats.binom.ppf(0.001, stationary.windows, 0.2 * STATIONARY_RATE)
    assert lower <= stationary.alarms <= upper, (
        f"{stationary.alarms} of {stationary.windows} stationary windows alarmed at a rate of {STATIONARY_RATE}")


def test_every_fields_stationary_p_values_are_calibrated(stationary: StationaryRuns) -> None:
    """Each (field, statistic) separately, in the bulk of its null where 800 windows resolve it: a statistic's
    p-value is at most 0.5 in about half the stationary windows and at most 0.1 in about a tenth. Loose bands
    (windows of one reference are correlated; Wasserstein's calibration is conservative by design), but a null
    that is off by a factor of two fails."""
    off = {}
    for (name, stat), values in stationary.p_values.items():
        p = np.asarray(values)
        half, tenth = float(np.mean(p <= 0.5)), float(np.mean(p <= 0.1))
        if not (0.25 <= half <= 0.75 and 0.03 <= tenth <= 0.2):
            off[f"{name}/{stat}"] = (round(half, 3), round(tenth, 3))
    assert len(stationary.p_values) == 22  # every statistic of every field, deciding or not
    assert off == {}, f"share of windows with p <= 0.5 and p <= 0.1: {off}"


# -- (c) drift is still caught -----------------------------------------------------------------------------

def test_a_half_sd_mean_shift_with_1000_row_windows_is_caught(fast_calibration: None) -> None:
    seeds = 40
    config = MonitorConfig(reference_size=2000, window_size=1000)
    caught = 0
    for seed in range(seeds):
        rng = np.random.default_rng(200 + seed)
        x = np.concatenate([rng.normal(0.0, 1.0, 2000), rng.normal(0.5, 1.0, 1000)])
        plan = rng.choice(["basic", "plus", "pro"], 3000, p=[0.6, 0.3, 0.1])
        stream = [Observation(float(i), {"x": float(x[i]), "plan": str(plan[i])}, "yes" if plan[i] == "pro" else "no")
                  for i in range(3000)]
        signals = ModelMonitor(config).update(stream)
        caught += any(s.feature == "x" and s.kind == "data_drift" for s in drift(signals, "critical"))
        assert not [s for s in drift(signals, "critical") if s.feature != "x"], f"seed {seed}: only x changed"
    assert caught >= 0.95 * seeds, f"caught in {caught} of {seeds} seeds"


# -- (d) a 0/1 numeric prediction gets a bin per value ------------------------------------------------------

def binary_predictions(n: int, share_of_ones: float, seed: int, start: int = 0) -> list[Observation]:
    rng = np.random.default_rng(seed)
    x = rng.normal(0.0, 1.0, n)
    ones = rng.random(n) < share_of_ones
    return [Observation(float(start + i), {"x": float(x[i])}, float(ones[i])) for i in range(n)]


def test_a_0_1_prediction_gets_a_bin_per_value_and_its_mix_is_watched() -> None:
    config = MonitorConfig(reference_size=2000, window_size=1000)
    reference = binary_predictions(2000, 0.5, seed=301)
    monitor = ModelMonitor(config)
    current = binary_predictions(1000, 0.1, seed=302, start=2000)
    signals = monitor.update(reference + current)
    histogram = monitor.reference.prediction  # type: ignore[union-attr]
    assert isinstance(histogram, NumericHistogram) and histogram.discrete
    assert histogram.edges.tolist() == [0.0, 0.5, 1.0]  # a bin for 0 and a bin for 1
    psi = [s for s in signals if s.kind == "prediction_drift" and s.signal == "psi"]
    assert [(s.feature, s.severity) for s in psi] == [("prediction", "critical")]
    window = monitor.status()["scores"]["prediction"]["prediction"]
    assert window["psi"] == psi[0].score > 0.5 and psi[0].score >= window["psi_threshold"]
    # PSI over [below 0, 0, 1, above 1], computed from the raw predictions
    p, q = (np.maximum(np.array([0, np.mean(v == 0), np.mean(v == 1), 0]), 1e-4)
            for v in (np.array([o.prediction for o in reference]), np.array([o.prediction for o in current])))
    assert psi[0].score == pytest.approx(float(np.sum((q - p) * np.log(q / p))), abs=1e-9)
    assert not [s for s in signals if s.kind == "data_drift"]

    quiet = ModelMonitor(config)
    assert drift(quiet.update(reference + binary_predictions(1000, 0.5, seed=303, start=2000))) == []
    assert 0 <= quiet.status()["scores"]["prediction"]["prediction"]["psi"] < 0.02


# -- (e) a null fit's p-value and cut-off are inverse ------------------------------------------------------

def test_p_value_and_cutoff_are_inverse_across_the_bulk_and_the_tail() -> None:
    rng = np.random.default_rng(401)
    config = MonitorConfig(reference_size=2000, window_size=1000, drift_signals=("psi", "js", "wasserstein", "ks",
                                                                                   "chi2"))
    rows = [{"x": float(v), "c": str(c)} for v, c in zip(rng.lognormal(0.0, 1.0, 2000),
                                                          rng.choice(list("abcdefgh"), 2000), strict=True)]
    reference = Reference.from_columns(rows, config)
    fits = {f"{key}/{stat}": fit for key in ("feature:x", "feature:c")
            for stat, fit in reference.fits(key, 1000, config).items()}
    assert set(fits) == {"feature:x/psi", "feature:x/js", "feature:x/wasserstein", "feature:x/ks",
                         "feature:c/psi", "feature:c/js", "feature:c/chi2"}
    fits["by hand"] = NullFit((1.0, 2.0, 3.0, 4.0, 5.0), 2.0, False)
    alphas = [0.95, 0.7, 0.5, 0.35, 0.2, 0.12, 0.1, 0.07, 0.05, 0.03, 0.021, 0.02, 0.019, 0.01, 1e-3, 1e-4, 1e-6,
              1e-9, 1e-12]
    for name, fit in fits.items():
        cutoffs = [fit.cutoff(a) for a in alphas]
        assert all(a < b for a, b in zip(cutoffs, cutoffs[1:], strict=False)), f"{name}: {cutoffs}"
        for alpha, cut in zip(alphas, cutoffs, strict=True):
            assert fit.p_value(cut) == pytest.approx(alpha, rel=1e-9), f"{name} at {alpha}"
        assert fit.p_value(0.0) == 1.0 and math.isnan(fit.p_value(math.nan))
        assert NullFit.from_list(fit.to_list()) == fit
    # the hand-made fit, read off its definition: quantiles at survival 0.5 .. 0.02, then an exponential tail
    by_hand = fits["by hand"]
    assert by_hand.cutoff(0.5) == 1.0 and by_hand.cutoff(0.02) == pytest.approx(5.0)
    assert by_hand.cutoff(0.02 * math.exp(-1.0)) == pytest.approx(7.0)
    assert by_hand.p_value(4.5) == pytest.approx(0.035) and by_hand.p_value(9.0) == pytest.approx(0.02 * math.exp(-2))


# -- (f) cut-offs follow the window size and the number of levels -------------------------------------------

def test_a_fields_cutoff_grows_as_its_window_shrinks() -> None:
    config = MonitorConfig(reference_size=2000, window_size=1000, drift_signals=("psi", "js", "wasserstein", "ks"))
    rows = [{"x": float(v)} for v in np.random.default_rng(501).normal(0.0, 1.0, 2000)]
    reference = Reference.from_columns(rows, config)
    sizes = (1000, 500, 200, 100, 50)
    for stat in config.drift_signals:
        for alpha in (0.05, 1e-4):
            cutoffs = [reference.fits("feature:x", m, config)[stat].cutoff(alpha) for m in sizes]
            assert all(a < b for a, b in zip(cutoffs, cutoffs[1:], strict=False)), f"{stat} at {alpha}: {cutoffs}"


def test_a_200_level_categorical_gets_a_cutoff_above_the_old_fixed_psi() -> None:
    config = MonitorConfig(reference_size=2000, window_size=1000)
    levels = [f"level-{i:03d}" for i in range(200)]
    rng = np.random.default_rng(502)
    stream = [Observation(float(i), {"c": str(c)}, 0.0) for i, c in enumerate(rng.choice(levels, 3000))]
    monitor = ModelMonitor(config)
    signals = monitor.update(stream)
    scores = monitor.status()["scores"]["features"]["c"]
    assert scores["psi_threshold"] > 0.2  # PSI's old fixed critical threshold
    assert scores["psi"] > 0.2, "sampling noise alone is beyond the old threshold in a stationary window"
    assert drift(signals) == []
    fit = monitor.reference.fits("feature:c", 1000, config)["psi"]  # type: ignore[union-attr]
    assert fit.cutoff(0.5) > 0.2, "even the median of the noise is"


# -- (g) k-of-n persistence -------------------------------------------------------------------------------

def test_a_shift_in_one_window_is_a_warning_and_in_two_of_three_critical() -> None:
    def windows(shifts: list[float]) -> list[Observation]:
        stream = make_observations(1000, seed=601)
        for i, shift in enumerate(shifts):
            stream += make_observations(500, seed=602 + i, shift=shift, start=1000 + 500 * i)
        return stream

    shifts = [1.0, 0.0, 1.0, 0.0, 0.0, 1.0]
    config = MonitorConfig(reference_size=1000, window_size=500, alert_after_windows=(2, 3))
    stream = windows(shifts)

    def severities(signals: list[Signal]) -> dict[int, set[str]]:
        got: dict[int, set[str]] = {}
        for s in signals:
            if s.kind == "data_drift" and s.feature == "x":
                got.setdefault(s.window_index, set()).add(s.severity)
        return got

    at_once = severities(ModelMonitor(MonitorConfig(reference_size=1000, window_size=500)).update(stream))
    assert at_once == {0: {"critical"}, 2: {"critical"}, 5: {"critical"}}, "each shifted window alone is critical"
    persistent = ModelMonitor(config)
    signals = persistent.update(stream[:2000])  # the reference and windows 0 and 1
    # restored between the windows: the persistence memory is part of the snapshot
    persistent = ModelMonitor.from_bytes(persistent.to_bytes())
    signals += persistent.update(stream[2000:])
    assert severities(signals) == {0: {"warning"}, 2: {"critical"}, 5: {"warning"}}
    downgraded = [s for s in signals if s.feature == "x" and s.kind == "data_drift" and s.severity == "warning"]
    assert {s.details["persistence"] for s in downgraded} == {"1 of 2 windows"}
    assert all(s.details["false_alarm_rate"] == config.false_alarm_rate for s in downgraded)
