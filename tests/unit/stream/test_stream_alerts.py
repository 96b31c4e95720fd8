"""Alert hygiene, pure: one firing alert per (model, kind, feature), escalation, resolution, cooldown."""

from __future__ import annotations

import pytest

from driftwarden.contract.events import DriftEvent, WindowSpan
from stream.alerts import AlertBook, AlertPolicy, alert_key, on_drift, on_window_closed

POLICY = AlertPolicy(resolve_after=2, cooldown_s=100.0)


def event(end: float, severity: str = "warning", feature: str | None = "x", kind: str = "data_drift") -> DriftEvent:
    return DriftEvent(drift_id=f"id-{end}", model="m", model_version="1", kind=kind,  # type: ignore[arg-type]
                      signal="psi", feature=feature, score=0.15, threshold=0.1,
                      severity=severity,  # type: ignore[arg-type]
                      window=WindowSpan(index=int(end), start=end - 1, end=end, n=10), detected_at=end)


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


def test_the_alert_summary_names_the_top_three_ranked_features_and_survives_the_state_codec() -> None:
    import msgspec

    ranking = [{"feature": f, "effect": e, "tracks_performance": None, "rank": i + 1}
               for i, (f, e) in enumerate([("b", 0.4), ("a", 0.3), ("d", 0.2)])]
    book = AlertBook()
    drifting = msgspec.structs.replace(event(1), details={"ranking": ranking, "rank": 2}, feature="a")
    alert = on_drift(book, "m", drifting, POLICY)
    assert alert is not None and alert.annotations.summary.endswith("top drifted features: b, a, d")
    performance = msgspec.structs.replace(event(1, "critical", feature=None, kind="performance"),
                                          details={"ranking": ranking[:1]})
    alert = on_drift(book, "m", performance, POLICY)
    assert alert is not None and "performance" in alert.annotations.summary
    assert alert.annotations.summary.endswith("top drifted features: b")
    plain = on_drift(book, "m", event(1, feature="z"), POLICY)  # an event without a ranking says nothing more
    assert plain is not None and "top drifted" not in plain.annotations.summary
    restored = msgspec.msgpack.decode(msgspec.msgpack.encode(book), type=AlertBook)
    assert restored.active[alert_key("data_drift", "a")].top == ["b", "a", "d"]
