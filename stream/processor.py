"""One consumed batch, applied effectively once.

Per batch: decode and validate (bad input becomes dead letters), drop records at or below the offset
Redis says is applied, apply the rest to the models' monitors in memory, then write every model's
state, the last applied offset per partition and the outgoing messages (an outbox) in one Redis
transaction. Only after that are the messages published; Kafka's offsets are committed by the caller
after ``process`` returns. A crash anywhere replays the batch, and the stored offsets make the replay a
no-op for state while the outbox makes publishing at-least-once (drift ids are deterministic).

WATCH on a fence key per partition, the state versions and pending reference switches fences a worker that lost its
partitions in a rebalance but has not noticed yet: its transaction fails and it re-reads. Redis round
trips per batch are constant: outbox flush, WATCH, one read pipeline, one join read, MULTI/EXEC,
plus one read of the state blobs this process does not hold in memory (a state it wrote last is
reused as long as the model's version counter says nobody wrote after it).
"""

from __future__ import annotations

import logging
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import msgspec
import redis

from detectors.exceptions import SnapshotError
from detectors.monitor import ModelMonitor
from driftwarden.contract.events import ContractError, DriftAlert, DriftEvent, Label, Prediction, encode
from driftwarden.contract.settings import Settings
from stream import watch
from stream.batch_metrics import record_estimates, record_model, record_traffic, record_window_scores
from stream.decoding import Decoded, dead_letter, decode_record, epoch
from stream.exceptions import StateConflict
from stream.idle import activity, due, event_now
from stream.joins import JoinPlan, plan_joins
from stream.metrics import StreamMetrics
from stream.model_events import (
    apply_predictions,
    close_idle_window,
    monitor_config,
    new_state,
    record_performance,
    snapshot_key,
    take_estimates,
)
from stream.onboarding import adopt_onboarding, adopted_origin
from stream.outbox import Outgoing, Publisher, flush_outbox, queue_outbox
from stream.records import RawRecord
from stream.state import Keys, ModelState, decode_activity, decode_state, encode_state
from stream.switch import switch_reference

log = logging.getLogger(__name__)
MAX_ATTEMPTS = 20
Source = tuple[str, int]  # (topic, partition) whose outbox holds a message


@dataclass
class BatchReport:
    processed: int = 0
    duplicates: int = 0
    duplicate_records: list[Decoded] = field(default_factory=list)  # skipped: applied before (replay)
    dead_letters: int = 0
    drift_events: list[DriftEvent] = field(default_factory=list)
    alerts: list[DriftAlert] = field(default_factory=list)
    switched: list[str] = field(default_factory=list)
    published: int = 0
    attempts: int = 0


@dataclass
class _Read:
    """What the batch read from Redis under WATCH."""

    applied: dict[str, dict[int, int]]
    known: set[str]  # the batch's models already onboarded (read only when onboarding is off)
    versions: dict[str, int]  # model -> how many times its state was written (WATCHed)
    blobs: dict[str, bytes | None]  # states not cached in this process
    switches: dict[str, str]  # model -> promoted version whose reference is still to be adopted
    labels_waiting: dict[str, int]  # model -> labels that arrived before their prediction
    references: dict[str, bytes | None]
    origins: dict[str, bytes | None]  # model -> the switched-to version's reference origin
    onboardings: dict[str, bytes]  # model -> a training-data reference waiting to be adopted


class BatchProcessor:
    def __init__(self, settings: Settings, client: redis.Redis, publisher: Publisher,
                 metrics: StreamMetrics, clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.redis = client
        self.publisher = publisher
        self.metrics = metrics
        self.clock = clock
        self.keys = Keys(settings.redis.key_prefix)
        self.topics = settings.kafka.topics
        self.snapshot_key = snapshot_key(settings)
        self._seen: set[str] = set()  # models whose gauges this process has set at least once
        self._cache: dict[str, tuple[int, ModelState, ModelMonitor]] = {}  # model -> (version, state)

    def process(self, records: Sequence[RawRecord]) -> BatchReport:
        if not records:
            return BatchReport()
        started = time.perf_counter()
        decoded = [decode_record(r, self.settings) for r in records]
        partitions = {(r.topic, r.partition) for r in records}
        leftovers = flush_outbox(self.redis, self.keys, self.publisher, partitions)
        for attempt in range(1, MAX_ATTEMPTS + 1):
            report = BatchReport(published=leftovers, attempts=attempt)
            try:
                outgoing = self._apply(decoded, report)
                break
            except (redis.WatchError, StateConflict):
                log.info("state changed under this batch (rebalance?), retrying (attempt %d)", attempt)
        else:
            raise StateConflict(f"batch could not be applied after {MAX_ATTEMPTS} attempts")
        if outgoing:
            self.publisher.publish(outgoing)
            self.redis.delete(*[self.keys.outbox(t, p) for t, p in sorted(partitions)])
            report.published += len(outgoing)
        self.metrics.batch_seconds.labels(topic=records[0].topic).observe(time.perf_counter() - started)
        return report

    # -- the idle timer ----------------------------------------------------------------------------

    def tick(self, partitions: set[int]) -> BatchReport:
        """Close the due windows and report the silences of idle models on ``partitions`` (of the
        predictions topic; the ones this worker owns). Same transaction as a batch: exactly once."""
        report = BatchReport()
        now = self.clock()
        min_idle = self.settings.stream.batch_timeout_s
        raw: dict[bytes, bytes] = self.redis.hgetall(self.keys.activity())  # type: ignore[assignment]
        entries = {m.decode(): decode_activity(v) for m, v in raw.items()}
        for model, entry in sorted(entries.items()):
            if entry.partition in partitions and due(entry, self.settings.monitor_for(model), now, min_idle):
                # Like a batch: publish what a crash left in the partition's outbox before adding to it.
                report.published += flush_outbox(self.redis, self.keys, self.publisher,
                                                 [(self.topics.predictions, entry.partition)])
                for attempt in range(1, MAX_ATTEMPTS + 1):
                    try:
                        outgoing = self._tick_model(model, entry.partition, report)
                        break
                    except (redis.WatchError, StateConflict):
                        log.info("state of %s changed under the timer, retrying (attempt %d)", model, attempt)
                else:
                    raise StateConflict(f"timer could not update {model} after {MAX_ATTEMPTS} attempts")
                if outgoing:
                    self.publisher.publish(outgoing)
                    self.redis.delete(self.keys.outbox(self.topics.predictions, entry.partition))
                    report.published += len(outgoing)
        report.published += self._adopt_pending({m: e.partition for m, e in entries.items()
                                                 if e.partition in partitions}, report)
        return report

    def _adopt_pending(self, owned: dict[str, int], report: BatchReport) -> int:
        """A promotion, rollback or onboarding of a model no prediction reaches: adopt it now, through
        the batch path with no records, so /status and the next window already use the new reference."""
        if not owned:
            return 0
        pipe = self.redis.pipeline(transaction=False)
        for m in owned:
            pipe.exists(self.keys.reference_switch(m), self.keys.onboarding(m))
        pending = {m: (self.topics.predictions, p) for (m, p), n in zip(owned.items(), pipe.execute(), strict=True)
                   if n}
        published = 0
        for m, source in sorted(pending.items()):
            published += flush_outbox(self.redis, self.keys, self.publisher, [source])
            for attempt in range(1, MAX_ATTEMPTS + 1):
                try:
                    outgoing = self._apply([], report, idle={m: source})
                    break
                except (redis.WatchError, StateConflict):
                    log.info("state of %s changed under the timer, retrying (attempt %d)", m, attempt)
            else:
                raise StateConflict(f"timer could not adopt the new reference of {m} after {MAX_ATTEMPTS} attempts")
            if outgoing:
                self.publisher.publish(outgoing)
                self.redis.delete(self.keys.outbox(*source))
                published += len(outgoing)
        return published

    def _tick_model(self, model: str, partition: int, report: BatchReport) -> list[Outgoing]:
        keys, source = self.keys, (self.topics.predictions, partition)
        with self.redis.pipeline(transaction=True) as tx:
            tx.watch(keys.state_version(model), keys.fence(*source))
            version = int(self.redis.get(keys.state_version(model)) or 0)
            cached = self._cache.pop(model, None)
            if cached is not None and cached[0] == version:
                _version, state, monitor = cached
            else:
                blob: bytes | None = self.redis.get(keys.state(model))  # type: ignore[assignment]
                state = self._load_state(model, blob)
                monitor = self._restore(model, state)
            now = self.clock()
            entry = activity(state, monitor)
            ms = self.settings.monitor_for(model)
            if not due(entry, ms, now, self.settings.stream.batch_timeout_s):
                tx.multi()  # a batch got there first; mend the index so the next tick does not look again
                tx.hset(keys.activity(), model, encode_state(entry))
                tx.execute()
                self._cache[model] = (version, state, monitor)
                return []
            windows_before = monitor.windows_closed
            events, alerts = close_idle_window(model, state, monitor, self.settings, now, event_now(entry, now))
            alerts += watch.on_tick(state.alerts, state.traffic, model, self._watch_policy(model), now)
            state.monitor = monitor.to_bytes(self.snapshot_key)
            key = model.encode()
            outgoing = [Outgoing(self.topics.drift_events, key, encode(e)) for e in events]
            outgoing += [Outgoing(self.topics.drift_alerts, key, encode(a)) for a in alerts]
            tx.multi()
            tx.set(keys.state(model), encode_state(state))
            tx.set(keys.state_version(model), version + 1)
            tx.hset(keys.activity(), model, encode_state(activity(state, monitor)))
            tx.incr(keys.fence(*source))
            queue_outbox(tx, keys, [(source, o) for o in outgoing])
            tx.execute()
        self._cache[model] = (version + 1, state, monitor)
        closed = monitor.windows_closed - windows_before
        if closed:
            self.metrics.idle_windows.labels(model=model).inc(closed)
            record_window_scores(self.metrics, model, monitor.last_scores)
        record_model(self.metrics, model, state, alerts, events)
        report.drift_events.extend(events)
        report.alerts.extend(alerts)
        return outgoing

    def _watch_policy(self, model: str) -> watch.WatchPolicy:
        return watch.WatchPolicy.from_settings(self.settings.monitor_for(model))

    # -- one attempt -------------------------------------------------------------------------------

    def _read(self, tx: redis.client.Pipeline, partitions: list[Source], models: list[str]) -> _Read:
        keys = self.keys
        # Fences are per partition: two workers conflict only over the same partition or model, not
        # over the shared offsets hash (watching that would make every worker retry every batch).
        tx.watch(*[keys.fence(t, p) for t, p in partitions], *[keys.state_version(m) for m in models],
                 *[keys.reference_switch(m) for m in models], *[keys.onboarding(m) for m in models])
        by_topic: dict[str, list[int]] = defaultdict(list)
        for t, p in partitions:
            by_topic[t].append(p)
        check_known = bool(models) and not self.settings.stream.onboarding
        reads = self.redis.pipeline(transaction=False)
        for t, ps in by_topic.items():
            reads.hmget(keys.offsets(t), ps)
        if check_known:
            reads.smismember(keys.models(), models)
        for m in models:
            reads.get(keys.state_version(m))
            reads.get(keys.reference_switch(m))
            reads.hlen(keys.pending_labels(m))
            reads.get(keys.onboarding(m))
        raw = iter(reads.execute())
        applied = {t: {p: int(o) for p, o in zip(ps, next(raw), strict=True) if o is not None}
                   for t, ps in by_topic.items()}
        known = {m for m, member in zip(models, next(raw), strict=True) if member} if check_known else set()
        versions: dict[str, int] = {}
        switches: dict[str, str] = {}
        waiting: dict[str, int] = {}
        onboardings: dict[str, bytes] = {}
        for m in models:
            version, switch, waiting[m], onboarding = next(raw), next(raw), next(raw), next(raw)
            versions[m] = int(version or 0)
            if switch is not None:
                switches[m] = switch.decode()
            if onboarding is not None:
                onboardings[m] = onboarding
        # A state this process wrote last is still in memory: fetch (and unpickle) only the others.
        missing = [m for m in models if m not in self._cache or self._cache[m][0] != versions[m]]
        blobs: dict[str, bytes | None] = {}
        if missing:
            pipe = self.redis.pipeline(transaction=False)
            for m in missing:
                pipe.get(keys.state(m))
            blobs = dict(zip(missing, pipe.execute(), strict=True))
        references: dict[str, bytes | None] = {}
        origins: dict[str, bytes | None] = {}
        if switches:  # rare: only in the first batch of a model after a promotion
            pipe = self.redis.pipeline(transaction=False)
            for m, version in switches.items():
                pipe.get(keys.reference(m, version))
                pipe.get(keys.reference_origin(m, version))
            found = iter(pipe.execute())
            for m in switches:
                references[m], origins[m] = next(found), next(found)
        return _Read(applied=applied, known=known, versions=versions, blobs=blobs, switches=switches,
                     references=references, labels_waiting=waiting, origins=origins, onboardings=onboardings)

    def _load_state(self, model: str, blob: bytes | None) -> ModelState:
        """The model's stored state, or a new one for a new model or a state that cannot be decoded.

        Like a refused snapshot, an undecodable state would fail every retry of the batch; the model
        starts over (its counters, kept apart, survive) and the refusal is logged and counted.
        """
        if blob:
            try:
                return decode_state(blob)
            except msgspec.DecodeError as exc:
                log.critical("state of model %s cannot be decoded (%s): starting it over", model, exc)
                self.metrics.state_rejected.labels(model=model).inc()
        return new_state(self.settings.monitor_for(model), self.snapshot_key)

    def _restore(self, model: str, state: ModelState) -> ModelMonitor:
        """The model's monitor, or a fresh one when its snapshot fails authentication or cannot be read.

        A refused snapshot would fail every retry of the batch and stall the partition, so the model
        starts over (a new reference from its next predictions) and the refusal is logged and counted.
        """
        try:
            return ModelMonitor.from_bytes(state.monitor, self.snapshot_key)
        except SnapshotError as exc:
            log.critical("monitor snapshot of model %s refused (%s): starting it over; check who writes "
                         "to Redis and that every worker has the same monitor.snapshot_key", model, exc)
            self.metrics.state_rejected.labels(model=model).inc()
            return ModelMonitor(monitor_config(self.settings.monitor_for(model)))

    def _apply(self, decoded: list[Decoded], report: BatchReport,
               idle: dict[str, Source] | None = None) -> list[Outgoing]:
        """One attempt at a batch; ``idle`` adds models without records (the timer adopting a pending
        reference switch or onboarding), each with the source partition its outgoing messages belong to."""
        keys, stream = self.keys, self.settings.stream
        idle = idle or {}
        partitions = sorted({(d.record.topic, d.record.partition) for d in decoded} | set(idle.values()))
        models = sorted({p.model for d in decoded for p in d.predictions}
                        | {lab.model for d in decoded for lab in d.labels} | set(idle))
        with self.redis.pipeline(transaction=True) as tx:
            read = self._read(tx, partitions, models)
            now = self.clock()
            outgoing: list[tuple[Source, Outgoing]] = []
            fresh: list[Decoded] = []
            preds: dict[str, list[Prediction]] = defaultdict(list)
            labels: dict[str, list[Label]] = defaultdict(list)
            sources: dict[str, Source] = {}
            configured = set(self.settings.models)
            for d in decoded:
                r = d.record
                if d.error is None and not stream.onboarding:
                    named = {p.model for p in d.predictions} | {lab.model for lab in d.labels}
                    unknown = named - read.known - configured
                    if unknown:
                        d.error = ContractError("unknown_model", f"onboarding is disabled: {sorted(unknown)}")
                if r.offset <= read.applied.get(r.topic, {}).get(r.partition, -1):
                    report.duplicates += 1
                    report.duplicate_records.append(d)  # counted by model; a refused model's name is not
                    continue
                fresh.append(d)
                if d.error is not None:
                    outgoing.append(((r.topic, r.partition), dead_letter(d, self.topics.dead_letters, now)))
                    continue
                for p in d.predictions:
                    preds[p.model].append(p)
                    sources.setdefault(p.model, (r.topic, r.partition))
                for lab in d.labels:
                    labels[lab.model].append(lab)
                    sources.setdefault(lab.model, (r.topic, r.partition))

            for m, source in idle.items():
                sources.setdefault(m, source)
            active = sorted(set(preds) | set(labels) | set(idle))
            states: dict[str, ModelState] = {}
            monitors: dict[str, ModelMonitor] = {}
            for m in active:
                # Taken out of the cache: a failed attempt must not leave half-applied objects there.
                cached = self._cache.pop(m, None)
                if cached is not None and m not in read.blobs:
                    _version, states[m], monitors[m] = cached
                    continue
                blob = read.blobs.get(m)
                states[m] = self._load_state(m, blob)
                monitors[m] = self._restore(m, states[m])
            plan: JoinPlan = plan_joins(self.redis, keys, preds, labels, read.labels_waiting,
                                        self.settings.stream.pending_max, self.settings.stream.samples_max)
            results: dict[str, tuple[list[DriftEvent], list[DriftAlert]]] = {}
            for m, state in states.items():
                monitor = monitors[m]
                windows_before = monitor.windows_closed
                if m in read.switches and switch_reference(state, monitor, read.switches[m],
                                                           read.references.get(m)):
                    report.switched.append(m)
                    adopted_origin(state, read.switches[m], read.origins.get(m), now)
                if m in read.onboardings and adopt_onboarding(state, monitor, read.onboardings[m]):
                    report.switched.append(m)
                events, alerts = apply_predictions(m, state, monitor, preds.get(m, []),
                                                   plan.outcomes.get(m, []), self.settings, now)
                model_preds = preds.get(m, [])
                alerts += watch.on_batch(
                    state.alerts, state.traffic, m, self._watch_policy(m), now, len(model_preds),
                    plan.delays.get(m, []), sources[m][1] if model_preds else None,
                    max(epoch(p.timestamp) for p in model_preds) if model_preds else None)
                estimates = take_estimates(m, state, monitor, now)
                state.monitor = monitor.to_bytes(self.snapshot_key)
                if monitor.windows_closed != windows_before:  # every feature's score, drifted or not
                    record_window_scores(self.metrics, m, monitor.last_scores)
                if estimates or plan.outcomes.get(m):
                    record_estimates(self.metrics, m, monitor.performance_status())
                record_performance(state, plan.versions.get(m, []), plan.outcomes.get(m, []),
                                   monitor.errors.task)
                results[m] = (events, alerts)
                key = m.encode()
                outgoing += [(sources[m], Outgoing(self.topics.drift_events, key, encode(e))) for e in events]
                outgoing += [(sources[m], Outgoing(self.topics.drift_alerts, key, encode(a))) for a in alerts]
                outgoing += [(sources[m], Outgoing(self.topics.performance_estimates, key, encode(e)))
                             for e in estimates]

            tx.multi()
            for m, state in states.items():
                tx.set(keys.state(m), encode_state(state))
                tx.set(keys.state_version(m), read.versions[m] + 1)
                tx.hincrby(keys.counters(m), "predictions", len(preds.get(m, ())))
                tx.hincrby(keys.counters(m), "labels", len(labels.get(m, ())))
            if states:
                tx.sadd(keys.models(), *states)
            if read.switches:
                tx.delete(*[keys.reference_switch(m) for m in read.switches])
            adopted = [m for m in read.onboardings if m in states]
            if adopted:
                tx.delete(*[keys.onboarding(m) for m in adopted])
            for m, state in states.items():  # the idle timer's index (a switch moves the window too)
                if state.traffic.partition >= 0:
                    tx.hset(keys.activity(), m, encode_state(activity(state, monitors[m])))
            plan.write(tx, keys, stream.samples_max, stream.label_ttl_s)
            latest: dict[str, dict[int, int]] = defaultdict(dict)
            for d in fresh:
                r = d.record
                latest[r.topic][r.partition] = max(r.offset, latest[r.topic].get(r.partition, -1))
            for t, offsets in latest.items():
                tx.hset(keys.offsets(t), mapping=offsets)  # type: ignore[arg-type]
            for topic, partition in partitions:
                tx.incr(keys.fence(topic, partition))
            queue_outbox(tx, keys, outgoing)
            t0 = time.perf_counter()
            try:
                tx.execute()
            except redis.WatchError:
                raise
            except redis.RedisError:
                self.metrics.state_write_errors.inc()
                raise
            self.metrics.state_write_seconds.observe(time.perf_counter() - t0)
        for m, state in states.items():
            self._cache[m] = (read.versions[m] + 1, state, monitors[m])

        self._record(fresh, preds, labels, plan, states, results, report)
        return [message for _source, message in outgoing]

    # -- metrics -----------------------------------------------------------------------------------

    def _record(self, fresh: list[Decoded], preds: dict[str, list[Prediction]],
                labels: dict[str, list[Label]], plan: JoinPlan, states: dict[str, ModelState],
                results: dict[str, tuple[list[DriftEvent], list[DriftAlert]]], report: BatchReport) -> None:
        """Metrics of an applied batch: per batch and model, never per event."""
        m = self.metrics
        t = self.topics
        dead = [d for d in fresh if d.error is not None]
        for d in dead:
            assert d.error is not None
            m.dead_letters.labels(topic=d.record.topic, reason=d.error.reason).inc()
            m.events.labels(topic=d.record.topic, model="", outcome="dead_letter").inc()
        for (topic, model), n in _events_per_model(report.duplicate_records).items():
            m.events.labels(topic=topic, model=model, outcome="duplicate").inc(n)
        for model, model_preds in preds.items():
            m.events.labels(topic=t.predictions, model=model, outcome="processed").inc(len(model_preds))
        for model, model_labels in labels.items():
            m.events.labels(topic=t.labels, model=model, outcome="processed").inc(len(model_labels))
        for model, delays in plan.delays.items():
            if delays:
                m.labels_joined.labels(model=model).inc(len(delays))
                histogram = m.label_delay.labels(model=model)
                for delay in delays:
                    histogram.observe(max(delay, 0.0))
        for model, n in plan.expired.items():
            if n:
                m.labels_expired.labels(model=model).inc(n)
        for model, n in plan.evicted.items():
            if n:
                m.predictions_evicted.labels(model=model).inc(n)
        for model, state in states.items():
            events, alerts = results[model]
            record_model(m, model, state, alerts, events, refresh=bool(alerts) or model not in self._seen)
            record_traffic(m, model, state)
            self._seen.add(model)
            report.drift_events.extend(events)
            report.alerts.extend(alerts)
        report.processed = sum(map(len, preds.values())) + sum(map(len, labels.values()))
        report.dead_letters = len(dead)


def _events_per_model(records: list[Decoded]) -> Counter[tuple[str, str]]:
    """(topic, model) -> events in ``records``; a dead-lettered record counts once, with model "" (as its
    ``dead_letter`` outcome did)."""
    counts: Counter[tuple[str, str]] = Counter()
    for d in records:
        models = [] if d.error else [p.model for p in d.predictions] + [lab.model for lab in d.labels]
        counts.update((d.record.topic, model) for model in models or [""])
    return counts
