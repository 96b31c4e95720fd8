"""Silent producers and blind concept detectors: a model's prediction rate and label coverage.

Wall-clock buckets of ``monitor.silence_seconds`` per model. When a bucket completes (the first batch
after its end), its prediction rate and its coverage (labels joined per prediction) are compared with
their usual values, exponentially weighted over earlier healthy buckets. A ``traffic`` alert fires
when nothing arrives for ``silence_seconds`` (the stream's timer checks) or a bucket's rate is below
``traffic_drop_share`` of the usual rate; it resolves when predictions come back (after silence) or a
bucket is healthy again. A ``label_coverage`` alert fires when a bucket's coverage falls below
``label_coverage_drop_share`` of the usual coverage: the concept detectors are going blind.

Wall clock, not event time: the question is whether the producer is sending now, and a replay of old
events at full speed is healthy traffic.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from driftwarden.contract.events import DriftAlert
from driftwarden.contract.settings import MonitorSettings
from stream.alerts import ActiveAlert, AlertBook, _alert, alert_key
from stream.state import TrafficState

TRAFFIC = "traffic"
LABEL_COVERAGE = "label_coverage"
ALERTNAMES = {TRAFFIC: "DriftwardenTraffic", LABEL_COVERAGE: "DriftwardenLabelCoverage"}
WARMUP_BUCKETS = 3  # completed buckets before a usual rate or coverage exists
SMOOTHING = 0.2  # weight of the newest healthy bucket in the usual values
MIN_COVERAGE_PREDICTIONS = 100  # a bucket with fewer predictions says nothing about coverage
DELAYS_KEPT = 500  # newest label delays kept for p50/p95


@dataclass(frozen=True)
class WatchPolicy:
    silence_seconds: float | None
    drop_share: float
    coverage_share: float

    @classmethod
    def from_settings(cls, ms: MonitorSettings) -> WatchPolicy:
        if ms.silence_seconds is not None and ms.silence_seconds <= 0:
            raise ValueError(f"monitor.silence_seconds must be > 0 or null, got {ms.silence_seconds}")
        for name in ("traffic_drop_share", "label_coverage_drop_share"):
            if not 0 < getattr(ms, name) < 1:
                raise ValueError(f"monitor.{name} must be in (0, 1), got {getattr(ms, name)}")
        return cls(ms.silence_seconds, ms.traffic_drop_share, ms.label_coverage_drop_share)


def on_batch(book: AlertBook, traffic: TrafficState, model: str, policy: WatchPolicy, now: float,
             predictions: int, joined_delays: list[float], partition: int | None,
             newest_event: float | None) -> list[DriftAlert]:
    """Count one applied batch of the model; returns traffic and coverage alerts it fired or resolved."""
    alerts: list[DriftAlert] = []
    traffic.joined += len(joined_delays)
    if joined_delays:
        traffic.delays = (traffic.delays + [round(max(d, 0.0), 3) for d in joined_delays])[-DELAYS_KEPT:]
    if predictions:
        active = book.active.get(alert_key(TRAFFIC, None))
        if active is not None and active.signal == "silence":
            # Traffic is back; the silent span is not a bucket of low rate, it was reported already.
            alerts.append(_resolve(book, model, TRAFFIC, now, "predictions arrive again"))
            traffic.bucket_start, traffic.bucket_predictions, traffic.bucket_joined = now, 0, 0
        traffic.last_prediction_at = now
        if newest_event is not None:
            traffic.last_event_at = max(traffic.last_event_at, newest_event)
        if partition is not None:
            traffic.partition = partition
    if policy.silence_seconds is None:
        traffic.bucket_predictions += predictions
        traffic.bucket_joined += len(joined_delays)
        return alerts
    if traffic.bucket_start == 0.0:
        traffic.bucket_start = now
    elif now >= traffic.bucket_start + policy.silence_seconds:
        alerts += _complete_bucket(book, traffic, model, policy, now)
    traffic.bucket_predictions += predictions
    traffic.bucket_joined += len(joined_delays)
    return alerts


def on_tick(book: AlertBook, traffic: TrafficState, model: str, policy: WatchPolicy,
            now: float) -> list[DriftAlert]:
    """The timer: a silence alert when no prediction arrived for ``silence_seconds``."""
    if policy.silence_seconds is None or traffic.last_prediction_at == 0.0:
        return []
    idle = now - traffic.last_prediction_at
    if idle < policy.silence_seconds:
        return []
    alert = _fire(book, model, TRAFFIC, "silence", "critical", idle, policy.silence_seconds, now,
                  traffic.last_prediction_at)
    return [alert] if alert is not None else []


def silent(book: AlertBook) -> bool:
    active = book.active.get(alert_key(TRAFFIC, None))
    return active is not None and active.signal == "silence"


def _complete_bucket(book: AlertBook, traffic: TrafficState, model: str, policy: WatchPolicy,
                     now: float) -> list[DriftAlert]:
    alerts: list[DriftAlert] = []
    rate = traffic.bucket_predictions / max(now - traffic.bucket_start, 1e-9)
    coverage = (traffic.bucket_joined / traffic.bucket_predictions
                if traffic.bucket_predictions >= MIN_COVERAGE_PREDICTIONS else None)
    traffic.last_rate, traffic.last_coverage = rate, coverage
    warm = traffic.buckets >= WARMUP_BUCKETS
    dropped = warm and rate < policy.drop_share * traffic.usual_rate
    if dropped:
        fired = _fire(book, model, TRAFFIC, "rate_drop", "warning", rate, policy.drop_share * traffic.usual_rate,
                      now, traffic.bucket_start)
        alerts += [fired] if fired is not None else []
    else:
        if alert_key(TRAFFIC, None) in book.active:
            alerts.append(_resolve(book, model, TRAFFIC, now, f"prediction rate back to {rate:.3g}/s"))
        traffic.usual_rate = rate if traffic.buckets == 0 else (
            SMOOTHING * rate + (1 - SMOOTHING) * traffic.usual_rate)
    if coverage is not None:
        blind = warm and traffic.usual_coverage > 0 and coverage < policy.coverage_share * traffic.usual_coverage
        if blind:
            fired = _fire(book, model, LABEL_COVERAGE, "coverage_drop", "warning", coverage,
                          policy.coverage_share * traffic.usual_coverage, now, traffic.bucket_start)
            alerts += [fired] if fired is not None else []
        else:
            if alert_key(LABEL_COVERAGE, None) in book.active:
                alerts.append(_resolve(book, model, LABEL_COVERAGE, now, f"label coverage back to {coverage:.3f}"))
            traffic.usual_coverage = coverage if traffic.usual_coverage == 0 else (
                SMOOTHING * coverage + (1 - SMOOTHING) * traffic.usual_coverage)
    traffic.buckets += 1
    traffic.bucket_start, traffic.bucket_predictions, traffic.bucket_joined = now, 0, 0
    return alerts


def _fire(book: AlertBook, model: str, kind: str, signal: str, severity: str, score: float, threshold: float,
          now: float, since: float) -> DriftAlert | None:
    key = alert_key(kind, None)
    current = book.active.get(key)
    if current is not None and (current.signal == signal or current.severity == "critical"):
        return None
    drift_id = hashlib.sha256(f"{model}|{kind}|{signal}|{since!r}".encode()).hexdigest()[:32]
    active = ActiveAlert(drift_id=drift_id, kind=kind, feature=None, severity=severity, signal=signal,
                         score=float(score), threshold=float(threshold), started_at=now)
    book.active[key] = active
    return _alert(model, active, "firing", now, ALERTNAMES[kind])


def _resolve(book: AlertBook, model: str, kind: str, now: float, note: str) -> DriftAlert:
    key = alert_key(kind, None)
    active = book.active.pop(key)
    book.resolved_at[key] = now
    return _alert(model, active, "resolved", now, ALERTNAMES[kind], note)


def coverage(traffic: TrafficState, predictions: int) -> float | None:
    """Share of the model's predictions joined to a label so far (None before the first prediction)."""
    return min(1.0, traffic.joined / predictions) if predictions else None


def delay_quantiles(traffic: TrafficState) -> dict[str, float | None]:
    """p50 and p95 of the newest label delays (nearest rank), None before the first joined label."""
    if not traffic.delays:
        return {"p50": None, "p95": None}
    ordered = sorted(traffic.delays)

    def rank(q: float) -> float:
        return ordered[min(len(ordered) - 1, max(0, int(q * len(ordered) + 0.999999) - 1))]

    return {"p50": rank(0.5), "p95": rank(0.95)}
