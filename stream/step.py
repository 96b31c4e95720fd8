"""The stream's step on one batch, without Redis: what was read in, new states, writes and messages out.

``BatchProcessor`` reads a ``Snapshot`` under WATCH (``stream.processor``), calls ``step`` and queues the
returned ``Applied`` in one MULTI/EXEC. ``step`` does no IO: it routes the decoded records (duplicates by the
stored offsets, refused models, dead letters), restores or starts each model's state, adopts a pending
reference, feeds the monitors, plans the label joins, and packs every state and message the transaction
writes. It takes the snapshot's states over (it mutates them): a failed attempt reads a new snapshot.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import msgspec

from detectors.exceptions import SnapshotError
from detectors.monitor import ModelMonitor
from driftwarden.contract.events import ContractError, DriftAlert, DriftEvent, Label, Prediction, encode
from driftwarden.contract.prediction_columns import PredictionColumns
from driftwarden.contract.settings import Settings, monitor_config, snapshot_key
from stream import watch
from stream.decoding import Decoded, dead_letter
from stream.idle import activity
from stream.joins import JoinPlan, JoinReads, plan_joins
from stream.model_events import (
    apply_predictions,
    new_state,
    record_performance,
    take_estimates,
)
from stream.onboarding import adopt_onboarding, adopted_origin
from stream.outbox import Outgoing
from stream.state import ModelState, decode_state, encode_state
from stream.switch import switch_reference

Source = tuple[str, int]  # (topic, partition) whose outbox holds a message
Loaded = tuple[ModelState, ModelMonitor]


@dataclass
class Snapshot:
    """What a batch read from Redis under WATCH (and the states this process still holds)."""

    applied: dict[str, dict[int, int]] = field(default_factory=dict)  # topic -> partition -> last applied offset
    known: set[str] = field(default_factory=set)  # onboarded models (read only when onboarding is off)
    versions: dict[str, int] = field(default_factory=dict)  # model -> how many times its state was written
    cached: dict[str, Loaded] = field(default_factory=dict)  # states this process wrote last (still current)
    blobs: dict[str, bytes | None] = field(default_factory=dict)  # the other states, as stored
    switches: dict[str, str] = field(default_factory=dict)  # model -> promoted version to adopt
    references: dict[str, bytes | None] = field(default_factory=dict)  # of the switched-to versions
    origins: dict[str, bytes | None] = field(default_factory=dict)  # the switched-to versions' origins
    onboardings: dict[str, bytes] = field(default_factory=dict)  # model -> training-data reference to adopt
    labels_waiting: dict[str, int] = field(default_factory=dict)  # model -> early labels waiting
    joins: dict[str, JoinReads] = field(default_factory=dict)
    idle: dict[str, Source] = field(default_factory=dict)  # models without records (the timer), their source
    routed: Routed | None = None  # ``route`` of the batch as the read did it (the joins read what it names)


@dataclass
class Routed:
    """A batch's records sorted out against the snapshot: what is new, per model, and where it came from."""

    fresh: list[Decoded] = field(default_factory=list)  # not applied before (dead letters included)
    duplicates: list[Decoded] = field(default_factory=list)  # applied before (a replay)
    preds: dict[str, PredictionColumns] = field(default_factory=dict)  # a model's new predictions, in order
    labels: dict[str, list[Label]] = field(default_factory=lambda: defaultdict(list))
    sources: dict[str, Source] = field(default_factory=dict)  # model -> partition of its first record


@dataclass
class Applied:
    """Everything the batch's transaction writes, the messages it publishes, and what metrics count."""

    routed: Routed
    partitions: list[Source]
    states: dict[str, Loaded]  # the new state of every model the batch touched
    blobs: dict[str, bytes]  # ... encoded
    activity: dict[str, bytes]  # the idle timer's index entries
    versions: dict[str, int]  # the version each written state becomes
    plan: JoinPlan
    outgoing: list[tuple[Source, Outgoing]]
    offsets: dict[str, dict[int, int]]  # topic -> partition -> newest applied offset
    switched: list[str] = field(default_factory=list)  # models that adopted a new reference
    switches_done: list[str] = field(default_factory=list)  # pending switches to delete (adopted or not)
    onboarded: list[str] = field(default_factory=list)  # pending onboardings to delete
    results: dict[str, tuple[list[DriftEvent], list[DriftAlert]]] = field(default_factory=dict)
    closed: set[str] = field(default_factory=set)  # models that closed a window
    estimated: set[str] = field(default_factory=set)  # models with new estimates or joined labels
    rejected: list[tuple[str, str]] = field(default_factory=list)  # (model, why its state started over)


def models_of(decoded: list[Decoded], idle: dict[str, Source]) -> tuple[list[Source], list[str]]:
    """The partitions and models a batch touches (every record's, dead letters and replays included)."""
    partitions = sorted({(d.record.topic, d.record.partition) for d in decoded} | set(idle.values()))
    models = sorted({m for d in decoded for m in d.models()} | set(idle))
    return partitions, models


def route(snapshot: Snapshot, decoded: list[Decoded], settings: Settings) -> Routed:
    """Drop records at or below the applied offsets, refuse unknown models (onboarding off), group the rest."""
    routed = Routed()
    onboarding = settings.stream.onboarding
    configured = set(settings.models)
    # A model's predictions in record order: runs of JSON structs, and Arrow columns, made one batch at the end.
    parts: dict[str, list[PredictionColumns | list[Prediction]]] = defaultdict(list)
    for d in decoded:
        r = d.record
        if d.error is None and not onboarding:
            unknown = d.models() - snapshot.known - configured
            if unknown:
                d.error = ContractError("unknown_model", f"onboarding is disabled: {sorted(unknown)}")
        if r.offset <= snapshot.applied.get(r.topic, {}).get(r.partition, -1):
            routed.duplicates.append(d)  # counted by model; a refused model's name is not
            continue
        routed.fresh.append(d)
        if d.error is not None:
            continue
        if d.predictions:
            one = len(d.counts()) == 1  # as a rule: then the record's structs go in at once
            for m, preds in ([(d.predictions[0].model, d.predictions)] if one
                             else [(p.model, [p]) for p in d.predictions]):
                own = parts[m]
                if not own or not isinstance(own[-1], list):
                    own.append([])
                own[-1].extend(preds)  # type: ignore[union-attr]
        for c in d.columns:
            parts[c.model].append(c)
        for lab in d.labels:
            routed.labels[lab.model].append(lab)
        for m in d.models():
            routed.sources.setdefault(m, (r.topic, r.partition))
    routed.preds = {m: PredictionColumns.concat([PredictionColumns.from_events(m, x) if isinstance(x, list) else x
                                                 for x in own]) for m, own in parts.items()}
    for m, source in snapshot.idle.items():
        routed.sources.setdefault(m, source)
    return routed


def load(model: str, blob: bytes | None, settings: Settings) -> tuple[Loaded, str | None]:
    """The model's stored state and monitor, or new ones (and why) when a blob cannot be decoded or its
    snapshot is refused: such a blob would fail every retry of the batch and stall the partition, so the
    model starts over (its counters, kept apart, survive)."""
    key = snapshot_key(settings)
    ms = settings.monitor_for(model)
    why = None
    state = None
    if blob:
        try:
            state = decode_state(blob)
        except msgspec.DecodeError as exc:
            why = f"state cannot be decoded ({exc})"
    if state is None:
        state = new_state(ms, key)
    try:
        return (state, ModelMonitor.from_bytes(state.monitor, key)), why
    except SnapshotError as exc:
        return (state, ModelMonitor(monitor_config(ms))), f"monitor snapshot refused ({exc})"


def step(snapshot: Snapshot, decoded: list[Decoded], settings: Settings, now: float) -> Applied:
    """Apply one batch to the snapshot's states; returns the new states, writes and messages (no IO)."""
    routed = snapshot.routed if snapshot.routed is not None else route(snapshot, decoded, settings)
    partitions, _models = models_of(decoded, snapshot.idle)
    stream, topics = settings.stream, settings.kafka.topics
    active = sorted(set(routed.preds) | set(routed.labels) | set(snapshot.idle))
    states: dict[str, Loaded] = {}
    rejected: list[tuple[str, str]] = []
    for m in active:
        if m in snapshot.cached and m not in snapshot.blobs:
            states[m] = snapshot.cached[m]
            continue
        states[m], why = load(m, snapshot.blobs.get(m), settings)
        if why is not None:
            rejected.append((m, why))
    plan = plan_joins(snapshot.joins, routed.preds, routed.labels, stream.pending_max, stream.samples_max)
    applied = Applied(routed=routed, partitions=partitions, states=states, blobs={}, activity={},
                      versions={m: snapshot.versions.get(m, 0) + 1 for m in states}, plan=plan,
                      outgoing=[((d.record.topic, d.record.partition), dead_letter(d, topics.dead_letters, now))
                                for d in routed.fresh if d.error is not None],
                      offsets={}, rejected=rejected)
    key_of_snapshots = snapshot_key(settings)
    for m, (state, monitor) in states.items():
        windows_before = monitor.windows_closed
        source = routed.sources[m]
        if m in snapshot.switches and switch_reference(state, monitor, snapshot.switches[m],
                                                       snapshot.references.get(m)):
            applied.switched.append(m)
            adopted_origin(state, snapshot.switches[m], snapshot.origins.get(m), now)
        if m in snapshot.onboardings and adopt_onboarding(state, monitor, snapshot.onboardings[m]):
            applied.switched.append(m)
        model_preds = routed.preds.get(m)
        outcomes = plan.outcomes.get(m, [])
        events, alerts = apply_predictions(m, state, monitor, model_preds, outcomes, settings, now)
        alerts += watch.on_batch(
            state.alerts, state.traffic, m, watch.WatchPolicy.from_settings(settings.monitor_for(m)), now,
            len(model_preds) if model_preds else 0, plan.delays.get(m, []), source[1] if model_preds else None,
            float(model_preds.timestamps.max()) if model_preds else None)
        estimates = take_estimates(m, state, monitor, now)
        state.monitor = monitor.to_bytes(key_of_snapshots)
        if monitor.windows_closed != windows_before:  # every feature's score, drifted or not
            applied.closed.add(m)
        if estimates or outcomes:
            applied.estimated.add(m)
        record_performance(state, plan.versions.get(m, []), outcomes, monitor.errors.task)
        applied.results[m] = (events, alerts)
        key = m.encode()
        applied.outgoing += [(source, Outgoing(topics.drift_events, key, encode(e))) for e in events]
        applied.outgoing += [(source, Outgoing(topics.drift_alerts, key, encode(a))) for a in alerts]
        applied.outgoing += [(source, Outgoing(topics.performance_estimates, key, encode(e))) for e in estimates]
        applied.blobs[m] = encode_state(state)
        if state.traffic.partition >= 0:  # the idle timer's index (a switch moves the window too)
            applied.activity[m] = encode_state(activity(state, monitor))
    applied.switches_done = list(snapshot.switches)
    applied.onboarded = [m for m in snapshot.onboardings if m in states]
    for d in routed.fresh:
        r = d.record
        latest = applied.offsets.setdefault(r.topic, {})
        latest[r.partition] = max(r.offset, latest.get(r.partition, -1))
    return applied
