"""Turning one applied batch into Prometheus samples (the metric names are in docs/architecture.md)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from driftwarden.contract.events import DriftAlert, DriftEvent
from stream.metrics import StreamMetrics
from stream.state import ModelState

KINDS = ("data_drift", "prediction_drift", "concept_drift", "data_quality", "traffic", "label_coverage",
         "performance")
SEVERITIES = ("warning", "critical")


def record_window_scores(metrics: StreamMetrics, model: str, scores: Mapping[str, Any]) -> None:
    """Every feature's and the prediction's scores of the last closed window, drifted or not, and the multivariate
    and performance scores (``feature`` "multivariate" / "accuracy_estimate")."""
    for group in ("features", "prediction", "multivariate", "performance"):
        for name, values in (scores.get(group) or {}).items():
            for signal, value in values.items():
                if signal.endswith("_reference") or value is None or not math.isfinite(value):
                    continue
                metrics.drift_score.labels(model=model, feature=name, signal=signal).set(value)


def record_estimates(metrics: StreamMetrics, model: str, performance: Mapping[str, Any]) -> None:
    """The last window's estimated performance, the last fully labelled window's realised performance beside it,
    and the estimation error of that window's accuracy."""
    windows = performance.get("windows") or []
    if windows:
        for metric, value in (windows[-1]["estimated"] or {}).items():
            if value is not None:
                metrics.performance_estimate.labels(model=model, metric=metric).set(value)
    labelled = [w for w in windows if w["realised"] is not None and w["realised_n"] >= 0.9 * max(w["estimated_n"], 1)]
    if labelled:
        for metric, value in labelled[-1]["realised"].items():
            if value is not None:
                metrics.performance_realised.labels(model=model, metric=metric).set(value)
        if labelled[-1]["estimation_error"] is not None:
            metrics.performance_estimation_error.labels(model=model).set(labelled[-1]["estimation_error"])


def record_model(metrics: StreamMetrics, model: str, state: ModelState, alerts: Iterable[DriftAlert],
                 events: Iterable[DriftEvent], refresh: bool = True) -> None:
    """Drift events, alerts and performance of one model after a batch; the active-alert gauges only
    when ``refresh`` (they change only with an alert, and setting them costs per batch)."""
    for e in events:
        metrics.drift_events.labels(model=model, kind=e.kind, severity=e.severity).inc()
        if e.kind == "concept_drift":
            metrics.drift_score.labels(model=model, feature="", signal=e.signal).set(e.score)
    for a in alerts:
        metrics.alerts.labels(model=model, kind=a.labels.kind, severity=a.labels.severity,
                              status=a.status).inc()
    if refresh:
        record_active(metrics, model, state)
    for version, perf in state.performance.items():
        if perf.n:
            metrics.model_performance.labels(model=model, version=version,
                                             metric=perf.metric or "accuracy").set(perf.total / perf.n)


def record_traffic(metrics: StreamMetrics, model: str, state: ModelState) -> None:
    """The traffic watch's gauges after a batch of the model."""
    traffic = state.traffic
    if traffic.last_prediction_at:
        metrics.last_prediction.labels(model=model).set(traffic.last_prediction_at)
    if traffic.last_rate is not None:
        metrics.prediction_rate.labels(model=model).set(traffic.last_rate)
    if state.observations:
        metrics.label_coverage.labels(model=model).set(min(1.0, traffic.joined / state.observations))


def record_active(metrics: StreamMetrics, model: str, state: ModelState) -> None:
    active = {(k, s): 0 for k in KINDS for s in SEVERITIES}
    for alert in state.alerts.active.values():
        active[(alert.kind, alert.severity)] = active.get((alert.kind, alert.severity), 0) + 1
    for (kind, severity), n in active.items():
        metrics.alerts_active.labels(model=model, kind=kind, severity=severity).set(n)
