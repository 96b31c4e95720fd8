"""Alert hygiene, pure: one firing alert per (model, kind, feature), escalation, resolution, cooldown."""

from __future__ import annotations

import pytest

from driftwarden.events import DriftEvent, Window
from stream.alerts import AlertBook, AlertPolicy, alert_key, on_drift, on_window_closed

POLICY = AlertPolicy(resolve_after=2, cooldown_s=100.0)


def event(end: float, severity: str = "warning", feature: str | None = "x", kind: str = "data_drift") -> DriftEvent:
    return DriftEvent(drift_id=f"id-{end}", model="m", model_version="1", kind=kind,  # type: ignore[arg-type]
                      signal="psi", feature=feature, score=0.15, threshold=0.1,
                      severity=severity,  # type: ignore[arg-type]
                      window=Window(index=int(end), start=end - 1, end=end, n=10), detected_at=end)


def test_warning_fires_repeats_are_silent_and_critical_escalates_the_same_alert() -> None:
    book = AlertBook()
    first = on_drift(book, "m", event(1), POLICY)
    assert first is not None and (first.status, first.labels.severity) == ("firing", "warning")
    assert on_drift(book, "m", event(2), POLICY) is None
    escalated = on_drift(book, "m", event(3, "critical"), POLICY)
    assert escalated is not None and escalated.labels.severity == "critical"
    assert escalated.fingerprint == first.fingerprint and escalated.drift_id == first.drift_id
    assert on_drift(book, "m", event(4, "warning"), POLICY) is None  # no de-escalation noise
    other = on_drift(book, "m", event(5, feature="y"), POLICY)
    assert other is not None and other.fingerprint != first.fingerprint


def test_resolves_after_clean_windows_and_a_drifting_window_resets_the_count() -> None:
    book = AlertBook()
    on_drift(book, "m", event(1), POLICY)
    key = alert_key("data_drift", "x")
    assert on_window_closed(book, "m", set(), 2, POLICY) == []
    assert on_window_closed(book, "m", {key}, 3, POLICY) == []  # drifted again: count starts over
    assert on_window_closed(book, "m", set(), 4, POLICY) == []
    resolved = on_window_closed(book, "m", set(), 5, POLICY)
    assert [(a.status, a.endsAt) for a in resolved] == [("resolved", "1970-01-01T00:00:05Z")]
    assert book.active == {}


@pytest.mark.parametrize(("end", "fires"), [(50.0, False), (104.9, False), (105.0, True)])
def test_no_new_firing_inside_the_cooldown(end: float, fires: bool) -> None:
    book = AlertBook()
    on_drift(book, "m", event(1), POLICY)
    on_window_closed(book, "m", set(), 2, POLICY)
    on_window_closed(book, "m", set(), 5, POLICY)  # resolved at event time 5
    assert (on_drift(book, "m", event(end), POLICY) is not None) is fires


def test_policy_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        AlertPolicy(resolve_after=0)
    with pytest.raises(ValueError):
        AlertPolicy(cooldown_s=-1)
