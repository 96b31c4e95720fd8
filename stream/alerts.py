"""Alert hygiene for on-call tooling: one firing alert per (model, kind, feature) until it resolves.

Pure logic over a small serialisable book kept in each model's state. A drift signal fires an alert if
none is active for its key and the key is out of its cooldown; an active alert resolves after
``resolve_after`` consecutive windows without a signal for its key. Time is event time (the window's
end), so replaying the same data yields the same alerts.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import msgspec

from driftwarden.contract.events import AlertAnnotations, AlertLabels, DriftAlert, DriftEvent, iso

SEVERITY_RANK = {"warning": 1, "critical": 2}
# Alerts of the traffic watch (stream/watch.py) resolve when traffic or labels return, not by clean windows.
WATCH_KINDS = frozenset({"traffic", "label_coverage"})


@dataclass(frozen=True)
class AlertPolicy:
    resolve_after: int = 3  # clean windows before an alert resolves
    cooldown_s: float = 600.0  # no new firing for a key this long after it resolved

    def __post_init__(self) -> None:
        if self.resolve_after < 1:
            raise ValueError("resolve_after must be at least 1")
        if self.cooldown_s < 0:
            raise ValueError("cooldown_s must not be negative")


class ActiveAlert(msgspec.Struct):
    drift_id: str
    kind: str
    feature: str | None
    severity: str
    signal: str
    score: float
    threshold: float
    started_at: float
    clean_windows: int = 0
    top: list[str] = []  # the window's drifted features, most relevant first (at most three)


def top_features(event: DriftEvent) -> list[str]:
    """The first three features of the ranking a data-drift or performance event carries."""
    ranking = event.details.get("ranking") or []
    return [str(r["feature"]) for r in ranking[:3] if isinstance(r, dict) and "feature" in r]


class AlertBook(msgspec.Struct):
    active: dict[str, ActiveAlert] = {}
    resolved_at: dict[str, float] = {}


def alert_key(kind: str, feature: str | None) -> str:
    return f"{kind}|{feature or ''}"


def fingerprint(model: str, kind: str, feature: str | None) -> str:
    return hashlib.sha256(f"{model}|{kind}|{feature or ''}".encode()).hexdigest()[:16]


def on_drift(book: AlertBook, model: str, event: DriftEvent, policy: AlertPolicy) -> DriftAlert | None:
    """Record a drift event; return a firing alert when it opens an incident or escalates one."""
    key = alert_key(event.kind, event.feature)
    current = book.active.get(key)
    if current is not None:
        current.clean_windows = 0
        if SEVERITY_RANK[event.severity] <= SEVERITY_RANK[current.severity]:
            return None
        current.severity = event.severity  # escalation: same fingerprint, updated severity
        current.score, current.threshold, current.signal = event.score, event.threshold, event.signal
        current.top = top_features(event) or current.top
        return _alert(model, current, "firing", event.window.end)
    resolved = book.resolved_at.get(key)
    if resolved is not None and event.window.end - resolved < policy.cooldown_s:
        return None
    active = ActiveAlert(drift_id=event.drift_id, kind=event.kind, feature=event.feature,
                         severity=event.severity, signal=event.signal, score=event.score,
                         threshold=event.threshold, started_at=event.window.end, top=top_features(event))
    book.active[key] = active
    return _alert(model, active, "firing", event.window.end)


def on_window_closed(book: AlertBook, model: str, drifted_keys: set[str], window_end: float,
                     policy: AlertPolicy) -> list[DriftAlert]:
    """A window closed: count it as clean for every active alert without a signal in it."""
    resolved: list[DriftAlert] = []
    for key, active in list(book.active.items()):
        if active.kind in WATCH_KINDS:
            continue
        if key in drifted_keys:  # consecutive clean windows: a drifting one starts the count over
            active.clean_windows = 0
            continue
        active.clean_windows += 1
        if active.clean_windows >= policy.resolve_after:
            del book.active[key]
            book.resolved_at[key] = window_end
            resolved.append(_alert(model, active, "resolved", window_end))
    return resolved


def _alert(model: str, active: ActiveAlert, status: str, at: float, alertname: str = "DriftwardenDrift",
           resolved_note: str | None = None) -> DriftAlert:
    feature = active.feature or ""
    what = f"{active.kind.replace('_', ' ')}" + (f" on feature {feature}" if feature else "")
    return DriftAlert(
        status="firing" if status == "firing" else "resolved",
        labels=AlertLabels(alertname=alertname, model=model, kind=active.kind, feature=feature,
                           severity="critical" if active.severity == "critical" else "warning"),
        annotations=AlertAnnotations(
            summary=f"{model}: {what} ({active.severity})"
            + (f"; top drifted features: {', '.join(active.top)}" if active.top else ""),
            description=(f"{active.signal}={active.score:.4f} against threshold {active.threshold:.4f}"
                         if status == "firing" else resolved_note or
                         f"{active.clean_windows} consecutive clean windows since the incident"),
        ),
        startsAt=iso(active.started_at),
        endsAt=iso(at) if status == "resolved" else "0001-01-01T00:00:00Z",
        fingerprint=fingerprint(model, active.kind, active.feature),
        drift_id=active.drift_id,
    )
