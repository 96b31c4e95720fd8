"""What the alert relay sends: a ``DriftAlert`` as Alertmanager's v2 API and its webhook receivers expect it.

Pure functions of the alert and the relay's clock. The stream's times are event times (window ends); they
are clamped to the relay's clock so that Alertmanager neither rejects an alert that "starts in the future"
nor keeps a resolved one open until an event time still ahead of it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from driftwarden.contract.events import DriftAlert, iso

RECEIVER = "driftwarden-alert-relay"


def _epoch(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC).timestamp()


def alertmanager_alert(alert: DriftAlert, now: float, firing_hold_s: float) -> dict[str, Any]:
    """One element of ``POST /api/v2/alerts``: firing → ``endsAt`` ``now + firing_hold_s`` (the stream sends
    no repeat), resolved → ``endsAt`` the resolving window's end, at the latest now."""
    starts = min(_epoch(alert.startsAt), now)
    ends = now + firing_hold_s if alert.status == "firing" else max(starts, min(_epoch(alert.endsAt), now))
    labels = {k: v for k, v in {
        "alertname": alert.labels.alertname, "model": alert.labels.model, "kind": alert.labels.kind,
        "feature": alert.labels.feature, "severity": alert.labels.severity}.items() if v}
    return {
        "labels": labels,
        "annotations": {"summary": alert.annotations.summary, "description": alert.annotations.description,
                        "drift_id": alert.drift_id},
        "startsAt": iso(starts),
        "endsAt": iso(ends),
        "generatorURL": "",
    }


def webhook_payload(alert: DriftAlert, now: float, firing_hold_s: float) -> dict[str, Any]:
    """Alertmanager's webhook body (version 4) holding one alert, so receivers written for it work as is."""
    item = alertmanager_alert(alert, now, firing_hold_s)
    return {
        "version": "4",
        "groupKey": alert.fingerprint,
        "truncatedAlerts": 0,
        "status": alert.status,
        "receiver": RECEIVER,
        "groupLabels": {"alertname": alert.labels.alertname},
        "commonLabels": item["labels"],
        "commonAnnotations": item["annotations"],
        "externalURL": "",
        "alerts": [{**item, "status": alert.status, "fingerprint": alert.fingerprint}],
    }
