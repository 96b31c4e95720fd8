"""The retrain policy: which drift events retrain, incidents, cooldown, schedule (pure, clock injected)."""

from __future__ import annotations

import msgspec
import pytest

from driftwarden.contract.events import DriftEvent, ModelUpdate, WindowSpan, drift_id
from driftwarden.contract.settings import RetrainSettings
from retrain_worker.policy import (
    Incident,
    IncidentContext,
    Policy,
    Starved,
    decide,
    decide_scheduled,
    incident_id,
    schedule_slot,
    starts_cooldown,
    wants_data,
    window_key,
)

NOW = 1_800_000_000.0
POLICY = Policy.from_settings(RetrainSettings())


def event(kind: str = "concept_drift", severity: str = "critical", feature: str | None = None,
          window: int = 7, model: str = "fraud") -> DriftEvent:
    return DriftEvent(drift_id=drift_id(model, "1", kind, "psi", feature, window), model=model,
                      model_version="1", kind=kind,  # type: ignore[arg-type]
                      signal="psi", feature=feature, score=0.3, threshold=0.2,
                      severity=severity,  # type: ignore[arg-type]
                      window=WindowSpan(window, 0.0, 10.0, 1000), detected_at=NOW)


def opened(e: DriftEvent, status: str = "training", started_at: float = NOW - 5) -> Incident:
    decision = decide(e, IncidentContext(), POLICY, started_at)
    assert decision.incident is not None
    return msgspec.structs.replace(decision.incident, status=status)


def test_defaults_retrain_on_concept_drift_and_critical_data_drift_only() -> None:
    assert decide(event("concept_drift"), IncidentContext(), POLICY, NOW).action == "retrain"
    assert decide(event("data_drift", feature="amount"), IncidentContext(), POLICY, NOW).action == "retrain"
    warning = decide(event("data_drift", "warning", "amount"), IncidentContext(), POLICY, NOW)
    assert (warning.action, warning.reason) == ("skip", "severity_not_triggering:warning")
    other = decide(event("prediction_drift"), IncidentContext(), POLICY, NOW)
    assert (other.action, other.reason) == ("skip", "kind_not_triggering:prediction_drift")
    quality = decide(event("data_quality", feature="age"), IncidentContext(), POLICY, NOW)
    assert quality.action == "skip"


def test_new_incident_carries_the_trigger() -> None:
    e = event("data_drift", feature="amount", window=12)
    first = decide(e, IncidentContext(), POLICY, NOW)
    later = decide(e, IncidentContext(), POLICY, NOW + 50)  # e.g. the stream's state was reset since
    assert first.incident is not None and later.incident is not None
    assert first.incident.incident_id == incident_id("fraud", "predictions:12", NOW)
    assert later.incident.incident_id != first.incident.incident_id
    assert first.incident.window_key == later.incident.window_key == "predictions:12"
    assert first.incident.trigger == "data_drift"
    assert first.incident.drift_id == e.drift_id
    assert first.incident.started_at == NOW
    assert first.incident.status == "training"


def test_per_model_override_changes_the_triggers() -> None:
    settings = RetrainSettings(models={"churn": {"trigger_kinds": ["prediction_drift"],
                                                 "trigger_severities": ["warning", "critical"]}})
    churn = Policy.from_settings(settings.for_model("churn"))
    fraud = Policy.from_settings(settings.for_model("fraud"))
    e = event("prediction_drift", "warning", model="churn")
    assert decide(e, IncidentContext(), churn, NOW).action == "retrain"
    assert decide(e, IncidentContext(), fraud, NOW).action == "skip"
    assert decide(event("concept_drift", model="churn"), IncidentContext(), churn, NOW).action == "skip"


def test_events_of_one_window_form_one_incident() -> None:
    first = event("data_drift", feature="amount")
    incident = opened(first, status="done")
    second = event("data_drift", feature="country")  # same window, another feature
    assert window_key(second) == window_key(first)
    decision = decide(second, IncidentContext(by_window=incident), POLICY, NOW)
    assert (decision.action, decision.incident) == ("join", incident)


def test_concept_and_data_windows_are_separate_index_spaces() -> None:
    assert window_key(event("concept_drift", window=3)) != window_key(event("data_drift", "critical", "a", 3))


@pytest.mark.parametrize(("status", "action"), [("training", "resume"), ("decided", "republish"),
                                                 ("done", "skip")])
def test_a_redelivered_event_finds_its_incident(status: str, action: str) -> None:
    e = event()
    incident = opened(e, status=status)
    decision = decide(e, IncidentContext(by_drift=incident, cooldown_from=NOW - 5), POLICY, NOW)
    assert decision.action == action
    assert decision.incident == incident


def test_redelivery_wins_over_policy_changes() -> None:
    """An event that opened an incident is resumed even if the policy no longer triggers on it."""
    e = event()
    incident = opened(e)
    strict = Policy(frozenset({"data_drift"}), frozenset({"critical"}), 600.0, 0.0)
    assert decide(e, IncidentContext(by_drift=incident), strict, NOW).action == "resume"


def test_a_sibling_event_of_an_unfinished_incident_resumes_it() -> None:
    incident = opened(event("data_drift", feature="amount"))
    decision = decide(event("data_drift", feature="age"), IncidentContext(by_window=incident), POLICY, NOW)
    assert (decision.action, decision.incident) == ("resume", incident)


def test_cooldown_suppresses_a_new_window_until_it_expires() -> None:
    e = event(window=8)
    inside = decide(e, IncidentContext(cooldown_from=NOW - 599), POLICY, NOW)
    assert (inside.action, inside.reason) == ("skip", "cooldown")
    assert decide(e, IncidentContext(cooldown_from=NOW - 600), POLICY, NOW).action == "retrain"
    no_cooldown = Policy.from_settings(RetrainSettings(cooldown_s=0))
    assert decide(e, IncidentContext(cooldown_from=NOW), no_cooldown, NOW).action == "retrain"


def test_only_a_retrain_that_trained_starts_the_cooldown() -> None:
    def update(version: str | None, reason: str) -> ModelUpdate:
        return ModelUpdate("fraud", version, None, "champion", False, None, "d", {}, reason)

    assert starts_cooldown(update("3", "challenger_not_better: accuracy 0.7 vs champion 0.8"))
    assert starts_cooldown(update(None, "trainer_failed: RuntimeError"))
    assert not starts_cooldown(update(None, "too_few_samples: 12 labelled samples, 500 needed"))
    assert not starts_cooldown(update(None, "single_class_holdout: every holdout label is 0"))
    assert not starts_cooldown(update(None, "mlflow_unavailable: connection refused"))


def test_schedule_slots_and_decisions() -> None:
    assert schedule_slot(NOW, 0) is None
    week = 7 * 24 * 3600.0
    slot = schedule_slot(NOW, week)
    assert slot == int(NOW // week)
    assert schedule_slot(NOW + week, week) == slot + 1  # type: ignore[operator]
    first = decide_scheduled("fraud", 5, None, NOW)
    assert first.action == "retrain" and first.incident is not None
    assert (first.incident.trigger, first.incident.drift_id) == ("schedule", None)
    assert first.incident.incident_id == incident_id("fraud", "schedule:5", NOW)
    update = ModelUpdate("fraud", "2", "1", "champion", True, "r", None, {}, "no_champion")
    done = msgspec.structs.replace(first.incident, status="done", update=update)
    assert decide_scheduled("fraud", 5, done, NOW + 60).action == "skip"
    assert decide_scheduled("fraud", 5, first.incident, NOW + 60).action == "resume"


def test_incident_round_trips_through_json() -> None:
    update = ModelUpdate("fraud", "2", "1", "champion", False, "r", "d", {"challenger_accuracy": 0.8}, "x")
    incident = msgspec.structs.replace(opened(event()), status="decided", update=update)
    assert msgspec.json.decode(msgspec.json.encode(incident), type=Incident) == incident


def starved_at(e: DriftEvent) -> IncidentContext:
    return IncidentContext(starved=Starved("first", e.window.index))


def test_a_refusal_for_want_of_data_is_repeated_silently_while_its_drift_incident_goes_on() -> None:
    policy = Policy.from_settings(RetrainSettings(), gap_windows=3, gap_outcomes=1000)
    last = event("data_drift", feature="amount", window=7)
    for window, continues in ((8, "first"), (10, "first"), (11, None), (7, None), (2, None)):
        decision = decide(event("data_drift", feature="age", window=window), starved_at(last), policy, NOW)
        assert decision.action == "retrain" and decision.incident is not None
        assert (decision.incident.continues, decision.reason) == (
            continues, "retry_for_data" if continues else "triggered"), window
    concept = event("concept_drift", window=6_040)  # a detection 1,000 outcomes after the last or less
    near = decide(event("concept_drift", window=6_900), starved_at(concept), policy, NOW)
    far = decide(event("concept_drift", window=7_041), starved_at(concept), policy, NOW)
    assert near.incident is not None and near.incident.continues == "first"
    assert far.incident is not None and far.incident.continues is None
    cooling = IncidentContext(starved=Starved("first", 7), cooldown_from=NOW - 10)
    assert decide(event("data_drift", feature="age", window=8), cooling, policy, NOW).action == "skip"


def test_which_refusals_wait_for_data() -> None:
    def update(version: str | None, reason: str) -> ModelUpdate:
        return ModelUpdate("fraud", version, None, "champion", False, None, "d", {}, reason)

    assert wants_data(update(None, "too_few_samples: 12 labelled samples, 500 needed"))
    assert wants_data(update(None, "single_class_holdout: every holdout label is 0"))
    assert not wants_data(update(None, "trainer_failed: boom"))
    assert not wants_data(update("3", "challenger worse"))
