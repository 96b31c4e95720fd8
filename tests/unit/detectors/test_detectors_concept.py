"""River wrappers: every selectable detector matches River called directly, across snapshots too;
invalid parameters fail when built; repeated detections inside one incident become one signal."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from detector_streams import make_outcomes
from river.drift import ADWIN, KSWIN, PageHinkley
from river.drift.binary import DDM, EDDM, HDDMA, HDDMW

from detectors.concept import BINARY_INPUT, ConceptDetector, ConceptEvent, build_detector, canonical_kind
from detectors.monitor import ModelMonitor, MonitorConfig, Outcome

SPECS = [
    ("ADWIN", {"delta": 0.01}, lambda: ADWIN(delta=0.01)),
    ("DDM", {}, DDM),
    ("EDDM", {"alpha": 0.9, "beta": 0.8}, lambda: EDDM(alpha=0.9, beta=0.8)),
    ("PageHinkley", {"threshold": 20.0}, lambda: PageHinkley(threshold=20.0)),
    ("KSWIN", {"alpha": 0.05, "seed": 7}, lambda: KSWIN(alpha=0.05, seed=7)),
    ("HDDM_A", {}, HDDMA),
    ("HDDM_W", {"lambda_val": 0.1}, lambda: HDDMW(lambda_val=0.1)),
]

RIVER_ADWIN_DDM = ({"kind": "ADWIN"}, {"kind": "DDM"})  # River's own settings, compared with offline runs


def errors(seed: int) -> list[float]:
    rng = np.random.default_rng(seed)
    rates = [0.1] * 1500 + [0.4] * 1000 + [0.15] * 1500
    return [float(rng.random() < rate) for rate in rates]


def offline(detector: object, values: list[float]) -> tuple[list[int], list[int]]:
    """River called directly: drift indices, and the indices where a warning starts (a warning run
    ends when the warning flag clears or the detector drifts)."""
    drifts, warnings = [], []
    in_warning = False
    for i, value in enumerate(values):
        detector.update(value)  # type: ignore[attr-defined]
        if detector.drift_detected:  # type: ignore[attr-defined]
            drifts.append(i)
            in_warning = False
            continue
        warning = bool(getattr(detector, "warning_detected", False))
        if warning and not in_warning:
            warnings.append(i)
        in_warning = warning
    return drifts, warnings


def stream_for(kind: str) -> list[float]:
    values = errors(seed=1)
    return values[1200:1800] if kind == "KSWIN" else values  # a KS test per value is slow: a shorter stream


def split(events: list[ConceptEvent | None]) -> tuple[list[int], list[int]]:
    return ([e.position for e in events if e is not None and e.severity == "critical"],
            [e.position for e in events if e is not None and e.severity == "warning"])


@pytest.mark.parametrize(("kind", "params", "river"), SPECS, ids=[s[0] for s in SPECS])
def test_wrapper_detects_at_river_indices_across_a_snapshot(kind: str, params: dict, river: type) -> None:
    values = stream_for(kind)
    expected_drifts, expected_warnings = offline(river(), values)
    assert expected_drifts, f"{kind} should detect the change in this stream"
    if kind in BINARY_INPUT:  # River's binary detectors have a warning zone: it must be reported too
        assert expected_warnings, f"{kind} should warn in this stream"
    for cut in (0, 333, len(values) - 1, len(values)):
        wrapper = ConceptDetector(kind, params, cooldown=0)
        events = [wrapper.update(v) for v in values[:cut]]
        wrapper = pickle.loads(pickle.dumps(wrapper))
        events += [wrapper.update(v) for v in values[cut:]]
        assert split(events) == (expected_drifts, expected_warnings)
        assert wrapper.n_detections == len(expected_drifts)


@pytest.mark.parametrize(("kind", "params", "river"), SPECS, ids=[s[0] for s in SPECS])
def test_wrapper_restored_after_every_value_detects_and_warns_where_river_does(
    kind: str, params: dict, river: type
) -> None:
    values = stream_for(kind)
    expected = offline(river(), values)
    wrapper = ConceptDetector(kind, params, cooldown=0)
    events = []
    for value in values:  # a snapshot/restore at every point of the stream
        events.append(wrapper.update(value))
        wrapper = pickle.loads(pickle.dumps(wrapper))
    assert split(events) == expected
    assert wrapper.detector.__class__ is river().__class__


def test_monitor_snapshot_at_any_point_keeps_concept_detections() -> None:
    outcomes = make_outcomes(1500, 1500, 0.1, 0.4, seed=2)
    config = MonitorConfig(concept_detectors=({"kind": "ADWIN"}, {"kind": "EDDM"}, {"kind": "PageHinkley",
                           "params": {"threshold": 10.0}}),
                           concept_cooldown=0)
    expected = ModelMonitor(config).update_outcomes(outcomes)
    assert {s.signal for s in expected} >= {"adwin", "eddm", "page_hinkley"}
    for cut in np.random.default_rng(3).integers(1, len(outcomes), 4):
        first = ModelMonitor(config)
        got = first.update_outcomes(outcomes[:cut])
        got += ModelMonitor.from_bytes(first.to_bytes(key=b"x"), key=b"x").update_outcomes(outcomes[cut:])
        assert got == expected


@pytest.mark.parametrize("spec", [
    {"kind": "ADWIN", "params": {"delta": 0}},
    {"kind": "ADWIN", "params": {"delta": 1.5}},
    {"kind": "ADWIN", "params": {"clock": 0}},
    {"kind": "ADWIN", "params": {"nope": 1}},
    {"kind": "DDM", "params": {"warning_threshold": 3.0, "drift_threshold": 2.0}},
    {"kind": "EDDM", "params": {"alpha": 0.8, "beta": 0.9}},
    {"kind": "PageHinkley", "params": {"mode": "sideways"}},
    {"kind": "PageHinkley", "params": {"threshold": -1}},
    {"kind": "KSWIN", "params": {"window_size": 30, "stat_size": 30}},
    {"kind": "KSWIN", "params": {"window": [1, 2]}},
    {"kind": "HDDM_A", "params": {"drift_confidence": 0.01, "warning_confidence": 0.001}},
    {"kind": "HDDM_W", "params": {"lambda_val": 0}},
    {"kind": "HDDM_W", "params": {"two_sided_test": "yes"}},
    {"kind": "CUSUM", "params": {}},
    {"kind": "ADWIN", "params": {"delta": True}},
    {"params": {}},
])
def test_invalid_specs_are_rejected_when_built(spec: dict) -> None:
    with pytest.raises(ValueError):
        build_detector(spec)
    with pytest.raises(ValueError):
        MonitorConfig(concept_detectors=(spec,))


def test_kind_names_are_forgiving_and_yaml_lists_are_accepted() -> None:
    assert canonical_kind("hddm_a") == canonical_kind("HDDMA") == "HDDM_A"
    assert canonical_kind("page_hinkley") == "PageHinkley"
    config = MonitorConfig(concept_detectors=[{"kind": "adwin", "params": {"delta": 0.002}}])  # type: ignore[arg-type]
    assert config.concept_detectors == ({"kind": "ADWIN", "params": {"delta": 0.002}},)


def test_repeated_detections_in_one_incident_give_one_signal() -> None:
    values = errors(seed=4)
    drifts, _ = offline(ADWIN(), values)
    assert len(drifts) >= 2, "ADWIN fires repeatedly while it shrinks its window"
    wrapper = ConceptDetector("ADWIN", cooldown=int(max(np.diff(drifts))) + 1)
    events = [e for e in (wrapper.update(v) for v in values) if e is not None]
    assert [(e.severity, e.position) for e in events] == [("critical", drifts[0])]
    assert wrapper.n_detections == len(drifts) and wrapper.n_incidents == 1


def test_confirmation_waits_for_repeated_detections() -> None:
    values = errors(seed=4)
    drifts, _ = offline(ADWIN(), values)
    wrapper = ConceptDetector("ADWIN", confirmation=2, confirmation_window=10_000, cooldown=0)
    events = [e for e in (wrapper.update(v) for v in values) if e is not None]
    assert events[0].position == drifts[1] and events[0].detections == 2
    lonely = ConceptDetector("ADWIN", confirmation=2, confirmation_window=0, cooldown=0)
    assert [e for e in (lonely.update(v) for v in values) if e is not None] == []


def test_regression_errors_skip_binary_detectors() -> None:
    rng = np.random.default_rng(5)
    labels = rng.normal(size=3000)
    noise = np.concatenate([rng.normal(0, 0.1, 1500), rng.normal(0, 2.0, 1500)])
    outcomes = [Outcome(float(i), float(labels[i] + noise[i]), float(labels[i])) for i in range(3000)]
    monitor = ModelMonitor(MonitorConfig(concept_detectors=RIVER_ADWIN_DDM, concept_cooldown=0))
    signals = monitor.update_outcomes(outcomes)
    status = monitor.status()["concept"]
    assert status["task"] == "regression"
    assert {s.signal for s in signals} == {"adwin"}
    expected, _ = offline(ADWIN(), [abs(o.prediction - o.label) for o in outcomes])  # type: ignore[operator]
    assert [s.window_index for s in signals] == expected
    assert [d["active"] for d in status["detectors"]] == [True, False]


def test_unscorable_outcomes_are_counted_not_fed() -> None:
    monitor = ModelMonitor(MonitorConfig(task="regression"))
    monitor.update_outcomes([Outcome(0.0, "a", 1.0), Outcome(1.0, float("nan"), 1.0), Outcome(2.0, 1.0, 2.0)])
    status = monitor.status()
    assert status["counts"]["outcomes"] == 1 and status["counts"]["invalid_outcomes"] == 2


def test_monitor_cooldown_from_config_groups_detections_into_one_critical_signal() -> None:
    values = errors(seed=4)
    outcomes = [Outcome(float(i), "a", "b" if error else "a") for i, error in enumerate(values)]
    drifts, _ = offline(ADWIN(), values)
    assert len(drifts) >= 2
    ungrouped = ModelMonitor(MonitorConfig(concept_detectors=RIVER_ADWIN_DDM, concept_cooldown=0)
                             ).update_outcomes(outcomes)
    assert [s.window_index for s in ungrouped if s.signal == "adwin"] == drifts
    monitor = ModelMonitor(MonitorConfig(concept_detectors=RIVER_ADWIN_DDM,
                                         concept_cooldown=int(max(np.diff(drifts)))))
    adwin = [s for s in monitor.update_outcomes(outcomes) if s.signal == "adwin"]
    assert [(s.window_index, s.severity) for s in adwin] == [(drifts[0], "critical")]
    status = next(d for d in monitor.status()["concept"]["detectors"] if d["kind"] == "ADWIN")
    assert (status["detections"], status["incidents"]) == (len(drifts), 1)
