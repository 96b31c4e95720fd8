"""Which drift events retrain a model: pure decision logic, no IO, time passed in.

An *incident* is one retrain. The drift events a stream window produces (one per drifting feature)
share the window's incident; a redelivered event finds the incident its ``drift_id`` already joined;
a new window within the cooldown of the last retrain is suppressed. Scheduled retrains are incidents
too, one per schedule slot (``floor(now / interval)``, aligned to the epoch).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Literal

import msgspec

from driftwarden.config import RetrainSettings
from driftwarden.events import DriftEvent, ModelUpdate

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


@dataclass(frozen=True)
class Policy:
    """The retrain policy of one model (``RetrainSettings`` with the model's overrides applied)."""

    trigger_kinds: frozenset[str]
    trigger_severities: frozenset[str]
    cooldown_s: float
    schedule_interval_s: float

    @classmethod
    def from_settings(cls, cfg: RetrainSettings) -> Policy:
        return cls(frozenset(cfg.trigger_kinds), frozenset(cfg.trigger_severities), cfg.cooldown_s,
                   cfg.schedule_interval_s)


@dataclass(frozen=True)
class ModelState:
    """What the store knows that is relevant to one event."""

    by_drift: Incident | None = None  # the incident this drift_id already belongs to
    by_window: Incident | None = None  # the incident opened for this event's window (or schedule slot)
    cooldown_from: float | None = None  # start of the last retrain whose trainer ran (see starts_cooldown)


@dataclass(frozen=True)
class Decision:
    action: Action
    reason: str
    incident: Incident | None = None


def window_key(event: DriftEvent) -> str:
    """Events of one window form one incident. Concept drift counts label windows, the other kinds
    prediction windows, so the two index spaces are kept apart."""
    source = "labels" if event.kind == "concept_drift" else "predictions"
    return f"{source}:{event.window.index}"


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


def decide(event: DriftEvent, state: ModelState, policy: Policy, now: float) -> Decision:
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
    return Decision("retrain", "triggered", incident)


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
