"""The relay's mapping of a ``DriftAlert`` onto Alertmanager's v2 API and its webhook body (pure)."""

from __future__ import annotations

from driftwarden.contract.alerts import alertmanager_alert, webhook_payload
from driftwarden.contract.events import AlertAnnotations, AlertLabels, DriftAlert, iso

NOW = 1_800_000_000.0


def drift_alert(status: str, starts: float, ends: float | None, feature: str = "income") -> DriftAlert:
    return DriftAlert(status="firing" if status == "firing" else "resolved",
                      labels=AlertLabels(alertname="DriftwardenDrift", model="churn", kind="data_drift",
                                         feature=feature, severity="critical"),
                      annotations=AlertAnnotations(summary="s", description="d"), startsAt=iso(starts),
                      endsAt=iso(ends) if ends is not None else "0001-01-01T00:00:00Z", fingerprint="f",
                      drift_id="id-1")


def test_firing_is_held_open_and_resolved_ends_at_the_resolving_window() -> None:
    firing = alertmanager_alert(drift_alert("firing", NOW - 300, None), NOW, 3600)
    assert (firing["startsAt"], firing["endsAt"]) == (iso(NOW - 300), iso(NOW + 3600))
    resolved = alertmanager_alert(drift_alert("resolved", NOW - 300, NOW - 30), NOW, 3600)
    assert (resolved["startsAt"], resolved["endsAt"]) == (iso(NOW - 300), iso(NOW - 30))
    assert firing["labels"] == {"alertname": "DriftwardenDrift", "model": "churn", "kind": "data_drift",
                                "feature": "income", "severity": "critical"}
    assert firing["annotations"]["drift_id"] == "id-1"


def test_event_times_ahead_of_the_relay_clock_are_clamped_to_it() -> None:
    # A replay or a skewed producer: Alertmanager would reject startsAt > endsAt, or keep a resolved alert
    # open until a future endsAt.
    resolved = alertmanager_alert(drift_alert("resolved", NOW + 50, NOW + 500), NOW, 3600)
    assert (resolved["startsAt"], resolved["endsAt"]) == (iso(NOW), iso(NOW))
    firing = alertmanager_alert(drift_alert("firing", NOW + 50, None), NOW, 3600)
    assert firing["startsAt"] == iso(NOW) < firing["endsAt"]


def test_an_alert_without_a_feature_has_no_empty_label_and_the_webhook_body_is_alertmanagers() -> None:
    alert = drift_alert("firing", NOW - 10, None, feature="")
    assert "feature" not in alertmanager_alert(alert, NOW, 60)["labels"]
    body = webhook_payload(alert, NOW, 60)
    assert body["version"] == "4" and body["status"] == "firing" and body["groupKey"] == "f"
    [item] = body["alerts"]
    assert item["status"] == "firing" and item["fingerprint"] == "f" and item["endsAt"] == iso(NOW + 60)
