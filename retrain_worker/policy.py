"""Which drift events retrain a model: pure decision logic, no IO, time passed in.

An *incident* is one retrain. The drift events a stream window produces (one per drifting feature)
share the window's incident; a redelivered event finds the incident its ``drift_id`` already joined;
a new window within the cooldown of the last retrain is suppressed. Scheduled retrains are incidents
too, one per schedule slot (``floor(now / interval)``, aligned to the epoch).

A retrain refused for want of data (too few labelled samples, one class) does not start the cooldown:
the next drift event tries again, since the labels may have arrived. But it is announced once per drift
incident, not once per window: while the drift goes on (the next drifted prediction window at most
``stream.alert_resolve_windows`` after the last one, i.e. before the stream's alert resolves; the next
concept detection at most ``concept_cooldown`` outcomes after the last), each new attempt that finds
too little data again is recorded without a second ``model-updates`` message (``Starved``).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Literal

import msgspec

from driftwarden.contract.events import DriftEvent, ModelUpdate
from driftwarden.contract.settings import RetrainSettings

IncidentStatus = Literal["training", "decided", "done"]
Action = Literal["retrain", "resume", "join", "republish", "skip"]
SCHEDULE_TRIGGER = "schedule"


class Incident(msgspec.Struct, frozen=True):
    """One retrain, as recorded in Redis: opened ``training``, ``decided`` once its update is known,
    ``done`` once that update is published."""

    incident_id: str
    model: str
    trigger: str  # the drift kind that opened it, or "schedule"
    drift_id: str | None
    window_key: str
    started_at: float
    status: IncidentStatus = "training"
    update: ModelUpdate | None = None
    continues: str | None = None  # the incident whose refusal for want of data this one repeats


class Starved(msgspec.Struct, frozen=True):
    """The last retrain refused for want of data, per source of window indexes (``predictions`` or
    ``labels``): the incident that announced it and the newest window (or outcome) index it covers."""

    incident_id: str
    index: int


@dataclass(frozen=True)
class Policy:
    """The retrain policy of one model (``RetrainSettings`` with the model's overrides applied)."""

    trigger_kinds: frozenset[str]
    trigger_severities: frozenset[str]
    cooldown_s: float
    schedule_interval_s: float
    incident_gap_windows: int = 3  # stream.alert_resolve_windows: a later drifted window is a new incident
    incident_gap_outcomes: int = 1000  # monitor.concept_cooldown: a later concept detection is a new one

    @classmethod
    def from_settings(cls, cfg: RetrainSettings, gap_windows: int = 3, gap_outcomes: int = 1000) -> Policy:
        return cls(frozenset(cfg.trigger_kinds), frozenset(cfg.trigger_severities), cfg.cooldown_s,
                   cfg.schedule_interval_s, gap_windows, gap_outcomes)


@dataclass(frozen=True)
class IncidentContext:
    """What the store knows that is relevant to one event."""

    by_drift: Incident | None = None  # the incident this drift_id already belongs to
    by_window: Incident | None = None  # the incident opened for this event's window (or schedule slot)
    cooldown_from: float | None = None  # start of the last retrain whose trainer ran (see starts_cooldown)
    starved: Starved | None = None  # the last refusal for want of data, for this event's source


@dataclass(frozen=True)
class Decision:
    action: Action
    reason: str
    incident: Incident | None = None


def source_of(event: DriftEvent) -> str:
    """Concept drift counts labelled outcomes, the other kinds prediction windows: two index spaces."""
    return "labels" if event.kind == "concept_drift" else "predictions"


def window_key(event: DriftEvent) -> str:
    """Events of one window form one incident; the two index spaces are kept apart."""
    return f"{source_of(event)}:{event.window.index}"


def starved_source(incident: Incident) -> str | None:
    """``predictions`` or ``labels`` for an incident opened by a drift event; None for a schedule."""
    source = incident.window_key.split(":", 1)[0]
    return source if source in ("predictions", "labels") else None


def starved_index(incident: Incident) -> int:
    return int(incident.window_key.split(":", 1)[1])


def continues_starved(event: DriftEvent, starved: Starved | None, policy: Policy) -> bool:
    """Whether ``event`` belongs to the drift incident whose retrain was refused for want of data."""
    if starved is None:
        return False
    gap = policy.incident_gap_outcomes if event.kind == "concept_drift" else policy.incident_gap_windows
    return 0 < event.window.index - starved.index <= gap


def schedule_key(slot: int) -> str:
    return f"schedule:{slot}"


def incident_id(model: str, key: str, opened_at: float) -> str:
    """The id of an incident opened at ``opened_at``. Redeliveries find it through the Redis record
    (``drift:`` and ``window:`` fields), not by recomputing it, so the opening time may be part of it:
    a model whose stream state was reset (window indexes start again) gets fresh incidents instead of
    matching versions registered for the old ones."""
    return hashlib.sha256(f"{model}|{key}|{opened_at!r}".encode()).hexdigest()[:24]


def _existing(incident: Incident) -> Decision:
    if incident.status == "training":
        return Decision("resume", "unfinished_incident", incident)
    if incident.status == "decided":
        return Decision("republish", "duplicate", incident)
    return Decision("skip", "duplicate", incident)


def decide(event: DriftEvent, state: IncidentContext, policy: Policy, now: float) -> Decision:
    """What to do with ``event``. ``join`` means: record the event under the incident, nothing else."""
    if state.by_drift is not None:
        return _existing(state.by_drift)
    if event.kind not in policy.trigger_kinds:
        return Decision("skip", f"kind_not_triggering:{event.kind}")
    if event.severity not in policy.trigger_severities:
        return Decision("skip", f"severity_not_triggering:{event.severity}")
    if state.by_window is not None:
        if state.by_window.status == "training":
            return Decision("resume", "unfinished_incident", state.by_window)
        return Decision("join", "same_incident", state.by_window)
    if state.cooldown_from is not None and now - state.cooldown_from < policy.cooldown_s:
        return Decision("skip", "cooldown")
    key = window_key(event)
    incident = Incident(incident_id(event.model, key, now), event.model, event.kind, event.drift_id, key, now)
    if continues_starved(event, state.starved, policy):
        assert state.starved is not None
        return Decision("retrain", "retry_for_data",
                        msgspec.structs.replace(incident, continues=state.starved.incident_id))
    return Decision("retrain", "triggered", incident)


def wants_data(update: ModelUpdate) -> bool:
    """The retrain was refused for want of data: too few labelled samples, or a single class."""
    return update.version is None and update.reason.startswith(("too_few_samples", "single_class"))


def starts_cooldown(update: ModelUpdate) -> bool:
    """A retrain whose trainer ran (a version came out, or the trainer failed) starts the cooldown.
    One refused for want of data (too few samples, one class) or by an outage does not: the next
    drift event may find enough data a minute later."""
    return update.version is not None or update.reason.startswith("trainer_failed")


def schedule_slot(now: float, interval_s: float) -> int | None:
    """The current schedule slot, or None when the model has no scheduled retrain."""
    if interval_s <= 0:
        return None
    return int(now // interval_s)


def decide_scheduled(model: str, slot: int, existing: Incident | None, now: float) -> Decision:
    """A scheduled retrain: once per slot, whatever the cooldown (the schedule is explicit)."""
    if existing is not None:
        return _existing(existing)
    key = schedule_key(slot)
    return Decision("retrain", "scheduled", Incident(incident_id(model, key, now), model, SCHEDULE_TRIGGER,
                                                     None, key, now))
