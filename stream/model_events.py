"""Glue between a model's stream state and its pure monitor: signals in, contract events out."""

from __future__ import annotations

import math
from collections import defaultdict

from detectors.monitor import ModelMonitor, Outcome, Predictions, Signal
from detectors.task import infer_task
from driftwarden.contract.events import DriftAlert, DriftEvent, PerformanceEstimate, WindowSpan, drift_id
from driftwarden.contract.prediction_columns import PredictionColumns
from driftwarden.contract.settings import MonitorSettings, Settings, monitor_config
from driftwarden.contract.settings import snapshot_key as snapshot_key  # re-exported for stream.processor
from stream.alerts import AlertPolicy, alert_key, on_drift, on_window_closed
from stream.state import ModelState, VersionPerformance


def new_state(ms: MonitorSettings, key: bytes = b"") -> ModelState:
    return ModelState(monitor=ModelMonitor(monitor_config(ms)).to_bytes(key))


def alert_policy(settings: Settings) -> AlertPolicy:
    return AlertPolicy(resolve_after=settings.stream.alert_resolve_windows,
                       cooldown_s=settings.stream.alert_cooldown_s)


def to_event(model: str, version: str | None, s: Signal, now: float) -> DriftEvent:
    return DriftEvent(
        drift_id=drift_id(model, version, s.kind, s.signal, s.feature, s.window_index),
        model=model, model_version=version, kind=s.kind, signal=s.signal,  # type: ignore[arg-type]
        feature=s.feature, score=float(s.score), threshold=float(s.threshold),
        severity=s.severity,  # type: ignore[arg-type]
        window=WindowSpan(index=s.window_index, start=s.window_start, end=s.window_end, n=s.window_n),
        detected_at=now, details=dict(s.details),
    )


def apply_predictions(model: str, state: ModelState, monitor: ModelMonitor,
                      preds: PredictionColumns | None, outcomes: list[Outcome], settings: Settings,
                      now: float) -> tuple[list[DriftEvent], list[DriftAlert]]:
    """Feed one model's predictions and joined outcomes of a batch; return its events and alerts."""
    policy = alert_policy(settings)
    events: list[DriftEvent] = []
    alerts: list[DriftAlert] = []
    if preds:
        version = preds.last_version()
        if version is not None:
            state.version = version
        batch = columns(preds)
        signals = monitor.update_columns(batch)
        state.observations += len(preds)
        _closed_windows(model, state, monitor, signals, float(batch.timestamps[-1]), policy, now, events, alerts)
    if outcomes:
        for s in monitor.update_outcomes(outcomes):
            event = to_event(model, state.version, s, now)
            events.append(event)
            alert = on_drift(state.alerts, model, event, policy)
            if alert is not None:
                alerts.append(alert)
        state.outcomes += len(outcomes)
    return events, alerts


def columns(preds: PredictionColumns) -> Predictions:
    """One model's predictions of a batch as the monitor's columns: JSON's feature mappings as they came, Arrow's
    feature columns as decoded."""
    return Predictions(preds.timestamps, preds.rows if preds.rows is not None else [], preds.predictions,
                       preds.scores, preds.class_scores, preds.features)


def close_idle_window(model: str, state: ModelState, monitor: ModelMonitor, settings: Settings, now: float,
                      event_now: float) -> tuple[list[DriftEvent], list[DriftAlert]]:
    """The idle timer: close the model's window if ``window_seconds`` have passed by ``event_now``."""
    events: list[DriftEvent] = []
    alerts: list[DriftAlert] = []
    signals = monitor.advance(event_now)
    _closed_windows(model, state, monitor, signals, event_now, alert_policy(settings), now, events, alerts)
    return events, alerts


def _closed_windows(model: str, state: ModelState, monitor: ModelMonitor, signals: list[Signal],
                    fallback_end: float, policy: AlertPolicy, now: float, events: list[DriftEvent],
                    alerts: list[DriftAlert]) -> None:
    """Events and alerts of every window the monitor closed since ``state.windows_closed``."""
    by_window: dict[int, list[Signal]] = defaultdict(list)
    for s in signals:
        by_window[s.window_index].append(s)
    # The monitor's own count: time-closed windows and a reference switch move it too.
    closed_now = monitor.windows_closed
    for index in sorted(set(range(state.windows_closed, closed_now)) | set(by_window)):
        window_signals = by_window.get(index, [])
        drifted = set()
        for s in window_signals:
            event = to_event(model, state.version, s, now)
            events.append(event)
            drifted.add(alert_key(s.kind, s.feature))
            alert = on_drift(state.alerts, model, event, policy)
            if alert is not None:
                alerts.append(alert)
        end = max([s.window_end for s in window_signals], default=fallback_end)
        alerts.extend(on_window_closed(state.alerts, model, drifted, end, policy))
    state.windows_closed = max(state.windows_closed, closed_now)


def take_estimates(model: str, state: ModelState, monitor: ModelMonitor, now: float) -> list[PerformanceEstimate]:
    """The performance_estimate records of the windows the monitor closed since the last call."""
    out = []
    for r in monitor.take_estimates():
        w = r["window"]
        out.append(PerformanceEstimate(
            estimate_id=drift_id(model, state.version, "performance_estimate", "", None, int(w["index"])),
            model=model, model_version=state.version,
            window=WindowSpan(index=int(w["index"]), start=float(w["start"] or 0.0), end=float(w["end"] or 0.0),
                          n=int(w["n"])),
            n_scored=r["n_scored"], unscored=r["unscored"], estimated=r["estimated"],
            reference_accuracy=r["reference_accuracy"], accuracy_drop=r["accuracy_drop"],
            calibration=r["calibration"], detected_at=now, classes=r.get("classes"), confusion=r.get("confusion")))
    return out


def record_performance(state: ModelState, versions: list[str | None], outcomes: list[Outcome],
                       task: str | None = None) -> None:
    """Running accuracy (classification) or mean absolute error (regression) per model version.

    ``task`` is the one the monitor's error stream resolved (``detectors.task``'s rule, or the setting),
    so the status reports the same kind of performance the concept detectors watch."""
    for version, o in zip(versions, outcomes, strict=True):
        perf = state.performance.setdefault(version or "unknown", VersionPerformance())
        if not perf.metric:
            perf.metric = "accuracy" if (task or infer_task([o.label])) == "classification" else "mae"
        perf.n += 1
        perf.total += performance_term(o.prediction, o.label, perf.metric)


def performance_term(prediction: float | str, label: float | str | bool, metric: str) -> float:
    """1 for a right class and 0 for a wrong one (accuracy), or the absolute error (mae)."""
    if metric == "accuracy":
        return 1.0 if str(prediction) == str(label) or _num_eq(prediction, label) else 0.0
    try:
        error = abs(float(prediction) - float(label))
    except (TypeError, ValueError):
        return 0.0  # not scorable as a regression: counted, adds no error
    return error if math.isfinite(error) else 0.0


def _num_eq(a: float | str | bool, b: float | str | bool) -> bool:
    try:
        return float(a) == float(b)
    except (TypeError, ValueError):
        return False
