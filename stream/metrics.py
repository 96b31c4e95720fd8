"""Prometheus metrics of the stream worker, built on a registry handed in (tests use a fresh one)."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
LABEL_DELAY_BUCKETS = (1, 10, 60, 300, 900, 3600, 4 * 3600, 12 * 3600, 86400, 3 * 86400, 7 * 86400)


@dataclass(frozen=True)
class StreamMetrics:
    registry: CollectorRegistry
    events: Counter
    dead_letters: Counter
    drift_score: Gauge
    drift_events: Counter
    alerts: Counter
    alerts_active: Gauge
    labels_joined: Counter
    labels_expired: Counter
    predictions_evicted: Counter
    label_delay: Histogram
    model_performance: Gauge
    performance_estimate: Gauge
    performance_realised: Gauge
    performance_estimation_error: Gauge
    batch_seconds: Histogram
    state_write_seconds: Histogram
    state_write_errors: Counter
    state_rejected: Counter
    consumer_lag: Gauge
    last_prediction: Gauge
    prediction_rate: Gauge
    label_coverage: Gauge
    idle_windows: Counter


def build_metrics(registry: CollectorRegistry | None = None) -> StreamMetrics:
    r = registry if registry is not None else CollectorRegistry()
    return StreamMetrics(
        registry=r,
        events=Counter("driftwarden_events_total", "Events consumed, by outcome",
                       ["topic", "model", "outcome"], registry=r),
        dead_letters=Counter("driftwarden_dead_letters_total", "Messages sent to the dead-letter topic",
                             ["topic", "reason"], registry=r),
        drift_score=Gauge("driftwarden_drift_score", "Latest drift score per model, feature and signal",
                          ["model", "feature", "signal"], registry=r),
        drift_events=Counter("driftwarden_drift_events_total", "Drift events emitted",
                             ["model", "kind", "severity"], registry=r),
        alerts=Counter("driftwarden_alerts_total", "Alerts emitted", ["model", "kind", "severity", "status"],
                       registry=r),
        alerts_active=Gauge("driftwarden_alerts_active", "Alerts currently firing",
                            ["model", "kind", "severity"], registry=r),
        labels_joined=Counter("driftwarden_labels_joined_total", "Labels joined to their prediction",
                              ["model"], registry=r),
        labels_expired=Counter("driftwarden_labels_expired_total",
                               "Predictions that expired without a label", ["model"], registry=r),
        predictions_evicted=Counter("driftwarden_predictions_evicted_total",
                                    "Waiting predictions evicted unjoined by stream.pending_max", ["model"],
                                    registry=r),
        label_delay=Histogram("driftwarden_label_delay_seconds", "Label time minus prediction time",
                              ["model"], buckets=LABEL_DELAY_BUCKETS, registry=r),
        model_performance=Gauge("driftwarden_model_performance", "Performance on joined labels",
                                ["model", "version", "metric"], registry=r),
        performance_estimate=Gauge("driftwarden_performance_estimate",
                                   "Performance of the last closed window estimated from calibrated scores",
                                   ["model", "metric"], registry=r),
        performance_realised=Gauge("driftwarden_performance_realised",
                                   "Realised performance of the last fully labelled window", ["model", "metric"],
                                   registry=r),
        performance_estimation_error=Gauge("driftwarden_performance_estimation_error",
                                           "|estimated - realised| accuracy of the last fully labelled window",
                                           ["model"], registry=r),
        batch_seconds=Histogram("driftwarden_batch_seconds", "Time to process one consumed batch",
                                ["topic"], buckets=LATENCY_BUCKETS, registry=r),
        state_write_seconds=Histogram("driftwarden_state_write_seconds", "Redis state transaction time",
                                      buckets=LATENCY_BUCKETS, registry=r),
        state_write_errors=Counter("driftwarden_state_write_errors_total", "Failed state transactions",
                                   registry=r),
        state_rejected=Counter("driftwarden_state_rejected_total",
                               "Model states refused (HMAC, format or undecodable) and started over", ["model"],
                               registry=r),
        consumer_lag=Gauge("driftwarden_consumer_lag", "Messages behind the high watermark",
                           ["topic", "partition"], registry=r),
        last_prediction=Gauge("driftwarden_last_prediction_timestamp_seconds",
                              "Wall-clock time the model's last prediction batch was applied", ["model"], registry=r),
        prediction_rate=Gauge("driftwarden_prediction_rate", "Predictions per second in the last completed "
                              "traffic bucket (monitor.silence_seconds)", ["model"], registry=r),
        label_coverage=Gauge("driftwarden_label_coverage", "Share of the model's predictions joined to a label",
                             ["model"], registry=r),
        idle_windows=Counter("driftwarden_idle_windows_closed_total",
                             "Windows closed by the timer because no further prediction arrived", ["model"],
                             registry=r),
    )
