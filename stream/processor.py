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
reused as long as the model's version counter says nobody wrote after it), and the same for the index of a
model's waiting predictions (``stream.pending_index``: rebuilt from Redis only when this process does not
hold the one of the model's current version).
"""

from __future__ import annotations

import logging
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import redis

from detectors.monitor import ModelMonitor
from driftwarden.contract.events import DriftAlert, DriftEvent, encode
from driftwarden.contract.settings import Settings, snapshot_key
from stream import watch
from stream.batch_metrics import record_estimates, record_model, record_traffic, record_window_scores
from stream.decoding import Decoded, decode_record
from stream.exceptions import StateConflict
from stream.faust_path import gc_paused
from stream.idle import activity, due, event_now
from stream.joins import Migration, load_index, read_joins
from stream.metrics import StreamMetrics
from stream.model_events import close_idle_window
from stream.outbox import Outgoing, Publisher, flush_outbox, queue_outbox
from stream.pending_index import PendingIndex
from stream.records import RawRecord
from stream.state import Keys, ModelState, decode_activity, encode_state
from stream.step import Applied, Snapshot, Source, load, models_of, route, step

log = logging.getLogger(__name__)
MAX_ATTEMPTS = 20


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

    def add(self, other: BatchReport) -> None:
        """Fold in the report of another shard of the same batch."""
        self.processed += other.processed
        self.duplicates += other.duplicates
        self.duplicate_records += other.duplicate_records
        self.dead_letters += other.dead_letters
        self.drift_events += other.drift_events
        self.alerts += other.alerts
        self.switched += other.switched
        self.published += other.published
        self.attempts = max(self.attempts, other.attempts)


class BatchProcessor:
    def __init__(self, settings: Settings, client: redis.Redis, publisher: Publisher,
                 metrics: StreamMetrics, clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.redis = client
        self.publisher = publisher
        self.metrics = metrics
        self.clock = clock
        self.keys = Keys(settings.redis.key_prefix, settings.redis.cluster)
        self.topics = settings.kafka.topics
        self.snapshot_key = snapshot_key(settings)
        self._seen: set[str] = set()  # models whose gauges this process has set at least once
        self._cache: dict[str, tuple[int, ModelState, ModelMonitor]] = {}  # model -> (version, state)
        self._indexed: set[str] = set()  # cluster: models this process has put in ``all_models``
        # model -> (state version, its waiting predictions' index): valid while nobody else wrote the model
        self._pending: dict[str, tuple[int, PendingIndex]] = {}

    def process(self, records: Sequence[RawRecord]) -> BatchReport:
        if not records:
            return BatchReport()
        started = time.perf_counter()
        # A batch makes its garbage in bulk and drops it after: collections in the middle of it only walk
        # the worker's long-lived objects (they more than doubled decode and column building). The batch's
        # objects die with ``_process``'s frame, before collections resume: the first one after would walk
        # every one of them (1.6 ms per 1,000 single events).
        with gc_paused():
            report = self._process(records)
        self.metrics.batch_seconds.labels(topic=records[0].topic).observe(time.perf_counter() - started)
        return report

    def _process(self, records: Sequence[RawRecord]) -> BatchReport:
        report = BatchReport()
        decoded = [decode_record(r, self.settings) for r in records]
        shards = shard_batch(self.keys, decoded)
        for keys, part in shards:  # one node: one shard, the whole batch in one transaction
            partitions = {(d.record.topic, d.record.partition) for d in part}
            report.published += flush_outbox(self.redis, keys, self.publisher, partitions)
        for keys, part in shards:
            report.add(self._apply_shard(part, keys))
            self._index({m for d in part if d.error is None for m in d.models()})
        return report

    def _apply_shard(self, part: list[Decoded], keys: Keys) -> BatchReport:
        """One shard's transaction (retried while a WATCHed key changes), then its messages published."""
        for attempt in range(1, MAX_ATTEMPTS + 1):
            applied = BatchReport(attempts=attempt)
            try:
                outgoing = self._apply(part, applied, keys=keys)
                break
            except (redis.WatchError, StateConflict):
                log.info("state changed under this batch (rebalance?), retrying (attempt %d)", attempt)
        else:
            raise StateConflict(f"batch could not be applied after {MAX_ATTEMPTS} attempts")
        if outgoing:
            self.publisher.publish(outgoing)
            partitions = {(d.record.topic, d.record.partition) for d in part}
            self.redis.delete(*[keys.outbox(t, p) for t, p in sorted(partitions)])
            applied.published += len(outgoing)
        return applied

    def _index(self, models: set[str]) -> None:
        """Cluster: record models in ``all_models`` (outside every shard, so after their transaction;
        idempotent, and a crash before it is mended by the model's next batch in the next process)."""
        new = sorted(models - self._indexed) if self.keys.cluster else []
        if new:
            self.redis.sadd(self.keys.all_models(), *new)
            self._indexed.update(new)

    def _activity(self) -> dict[bytes, bytes]:
        """Every model's ``Activity`` entry: one hash on one node, one per model shard on a cluster."""
        if not self.keys.cluster:
            return self.redis.hgetall(self.keys.activity())  # type: ignore[return-value]
        models = sorted(m.decode() for m in self.redis.smembers(self.keys.all_models()))  # type: ignore[union-attr]
        pipe = self.redis.pipeline(transaction=False)
        for m in models:
            pipe.hgetall(self.keys.for_model(m).activity())
        return {k: v for entries in pipe.execute() for k, v in entries.items()}

    # -- the idle timer ----------------------------------------------------------------------------

    def tick(self, partitions: set[int]) -> BatchReport:
        """Close the due windows and report the silences of idle models on ``partitions`` (of the
        predictions topic; the ones this worker owns). Same transaction as a batch: exactly once."""
        report = BatchReport()
        now = self.clock()
        min_idle = self.settings.stream.batch_timeout_s
        raw = self._activity()
        entries = {m.decode(): decode_activity(v) for m, v in raw.items()}
        for model, entry in sorted(entries.items()):
            if entry.partition in partitions and due(entry, self.settings.monitor_for(model), now, min_idle):
                # Like a batch: publish what a crash left in the partition's outbox before adding to it.
                report.published += flush_outbox(self.redis, self.keys.for_model(model), self.publisher,
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
                    self.redis.delete(self.keys.for_model(model).outbox(self.topics.predictions, entry.partition))
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
            keys = self.keys.for_model(m)
            published += flush_outbox(self.redis, keys, self.publisher, [source])
            for attempt in range(1, MAX_ATTEMPTS + 1):
                try:
                    outgoing = self._apply([], report, idle={m: source}, keys=keys)
                    break
                except (redis.WatchError, StateConflict):
                    log.info("state of %s changed under the timer, retrying (attempt %d)", m, attempt)
            else:
                raise StateConflict(f"timer could not adopt the new reference of {m} after {MAX_ATTEMPTS} attempts")
            if outgoing:
                self.publisher.publish(outgoing)
                self.redis.delete(keys.outbox(*source))
                published += len(outgoing)
        return published

    def _tick_model(self, model: str, partition: int, report: BatchReport) -> list[Outgoing]:
        keys, source = self.keys.for_model(model), (self.topics.predictions, partition)
        with self.redis.pipeline(transaction=True) as tx:
            tx.watch(keys.state_version(model), keys.fence(*source))
            version = int(self.redis.get(keys.state_version(model)) or 0)
            cached = self._cache.pop(model, None)
            if cached is not None and cached[0] == version:
                _version, state, monitor = cached
            else:
                blob: bytes | None = self.redis.get(keys.state(model))  # type: ignore[assignment]
                state, monitor = self._load(model, blob)
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
        self._carry_index(model, version, version + 1)  # the timer writes no waiting prediction
        closed = monitor.windows_closed - windows_before
        if closed:
            self.metrics.idle_windows.labels(model=model).inc(closed)
            record_window_scores(self.metrics, model, monitor.last_scores)
        record_model(self.metrics, model, state, alerts, events)
        report.drift_events.extend(events)
        report.alerts.extend(alerts)
        return outgoing

    def _carry_index(self, model: str, version: int, new_version: int) -> None:
        """A write that moved the model's state version but none of its waiting predictions: the index held for
        ``version`` still describes Redis at ``new_version``."""
        held = self._pending.get(model)
        if held is not None and held[0] == version:
            self._pending[model] = (new_version, held[1])

    def _watch_policy(self, model: str) -> watch.WatchPolicy:
        return watch.WatchPolicy.from_settings(self.settings.monitor_for(model))

    # -- one attempt -------------------------------------------------------------------------------

    def _read(self, tx: redis.client.Pipeline, decoded: list[Decoded], idle: dict[str, Source],
              keys: Keys) -> Snapshot:
        """Everything the batch's step needs, read under WATCH from one shard (``keys``; one node: the only
        one); the states this process holds are taken out of its cache (a failed attempt must not leave
        half-applied objects there)."""
        partitions, models = models_of(decoded, idle)
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
        snapshot = Snapshot(idle=dict(idle))
        snapshot.applied = {t: {p: int(o) for p, o in zip(ps, next(raw), strict=True) if o is not None}
                            for t, ps in by_topic.items()}
        snapshot.known = {m for m, member in zip(models, next(raw), strict=True) if member} if check_known else set()
        for m in models:
            version, switch, snapshot.labels_waiting[m], onboarding = next(raw), next(raw), next(raw), next(raw)
            snapshot.versions[m] = int(version or 0)
            if switch is not None:
                snapshot.switches[m] = switch.decode()
            if onboarding is not None:
                snapshot.onboardings[m] = onboarding
        # A state this process wrote last is still in memory: fetch (and unpickle) only the others.
        for m in models:
            cached = self._cache.get(m)
            if cached is not None and cached[0] == snapshot.versions[m]:
                del self._cache[m]
                snapshot.cached[m] = (cached[1], cached[2])
        missing = [m for m in models if m not in snapshot.cached]
        if missing:
            pipe = self.redis.pipeline(transaction=False)
            for m in missing:
                pipe.get(keys.state(m))
            snapshot.blobs = dict(zip(missing, pipe.execute(), strict=True))
        if snapshot.switches:  # rare: only in the first batch of a model after a promotion
            pipe = self.redis.pipeline(transaction=False)
            for m, version in snapshot.switches.items():
                pipe.get(keys.reference(m, version))
                pipe.get(keys.reference_origin(m, version))
            found = iter(pipe.execute())
            for m in snapshot.switches:
                snapshot.references[m], snapshot.origins[m] = next(found), next(found)
        # The joins read only what this batch's new records name: route them as the step will.
        snapshot.routed = routed = route(snapshot, decoded, self.settings)
        indexes: dict[str, tuple[PendingIndex, Migration | None]] = {}
        for m in sorted(set(routed.preds) | set(routed.labels)):
            # Taken out like the states: a failed attempt rebuilds it, a successful one puts it back advanced.
            held = self._pending.pop(m, None)
            if held is not None and held[0] == snapshot.versions[m]:
                indexes[m] = (held[1], None)
            else:
                indexes[m] = load_index(self.redis, keys, m, snapshot.versions[m])
        snapshot.joins = read_joins(self.redis, keys, routed.preds, routed.labels, snapshot.labels_waiting,
                                    self.settings.stream.pending_max, indexes, snapshot.versions)
        return snapshot

    def _load(self, model: str, blob: bytes | None) -> tuple[ModelState, ModelMonitor]:
        """``step.load`` for the idle timer, the refusal logged and counted."""
        loaded, why = load(model, blob, self.settings)
        if why is not None:
            self._rejected(model, why)
        return loaded

    def _rejected(self, model: str, why: str) -> None:
        log.critical("%s of model %s: starting it over; check who writes to Redis and that every worker has "
                     "the same monitor.snapshot_key", why, model)
        self.metrics.state_rejected.labels(model=model).inc()

    def _write(self, tx: redis.client.Pipeline, applied: Applied, keys: Keys) -> None:
        """Queue the applied batch on one MULTI and execute it (fails on a WATCHed change)."""
        stream = self.settings.stream
        preds, labels = applied.routed.preds, applied.routed.labels
        tx.multi()
        for m, blob in applied.blobs.items():
            tx.set(keys.state(m), blob)
            tx.set(keys.state_version(m), applied.versions[m])
            tx.hincrby(keys.counters(m), "predictions", len(preds.get(m, ())))
            tx.hincrby(keys.counters(m), "labels", len(labels.get(m, ())))
        if applied.states:
            tx.sadd(keys.models(), *applied.states)
        if applied.switches_done:
            tx.delete(*[keys.reference_switch(m) for m in applied.switches_done])
        if applied.onboarded:
            tx.delete(*[keys.onboarding(m) for m in applied.onboarded])
        if applied.activity:
            tx.hset(keys.activity(), mapping=applied.activity)  # type: ignore[arg-type]
        applied.plan.write(tx, keys, stream.samples_max, stream.label_ttl_s)
        for t, offsets in applied.offsets.items():
            tx.hset(keys.offsets(t), mapping=offsets)  # type: ignore[arg-type]
        for topic, partition in applied.partitions:
            tx.incr(keys.fence(topic, partition))
        queue_outbox(tx, keys, applied.outgoing)
        t0 = time.perf_counter()
        try:
            tx.execute()
        except redis.WatchError:
            raise
        except redis.RedisError:
            self.metrics.state_write_errors.inc()
            raise
        self.metrics.state_write_seconds.observe(time.perf_counter() - t0)

    def _apply(self, decoded: list[Decoded], report: BatchReport,
               idle: dict[str, Source] | None = None, keys: Keys | None = None) -> list[Outgoing]:
        """One attempt at a batch: read, step, write; ``idle`` adds models without records (the timer adopting
        a pending reference switch or onboarding), each with the source partition its messages belong to;
        ``keys`` the shard every key of the transaction is in (one node: the only one)."""
        keys = keys or self.keys
        with self.redis.pipeline(transaction=True) as tx:
            snapshot = self._read(tx, decoded, idle or {}, keys)
            applied = step(snapshot, decoded, self.settings, self.clock())
            self._write(tx, applied, keys)
        for m, index in applied.plan.advance().items():
            self._pending[m] = (applied.versions[m], index)
        for m in applied.states.keys() - applied.plan.indexes.keys():  # written, but no waiting prediction moved
            self._carry_index(m, snapshot.versions[m], applied.versions[m])
        for m, (state, monitor) in applied.states.items():
            self._cache[m] = (applied.versions[m], state, monitor)
        for m, (state, monitor) in snapshot.cached.items():  # held, not touched: still current
            self._cache.setdefault(m, (snapshot.versions[m], state, monitor))
        for m, why in applied.rejected:
            self._rejected(m, why)
        for m in applied.closed:
            record_window_scores(self.metrics, m, applied.states[m][1].last_scores)
        for m in applied.estimated:
            record_estimates(self.metrics, m, applied.states[m][1].performance_status())
        report.switched.extend(applied.switched)
        report.duplicates += len(applied.routed.duplicates)
        report.duplicate_records.extend(applied.routed.duplicates)
        self._record(applied, report)
        return [message for _source, message in applied.outgoing]

    # -- metrics -----------------------------------------------------------------------------------

    def _record(self, applied: Applied, report: BatchReport) -> None:
        """Metrics of an applied batch: per batch and model, never per event."""
        fresh, preds, labels = applied.routed.fresh, applied.routed.preds, applied.routed.labels
        plan, states, results = applied.plan, applied.states, applied.results
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
        for model, (state, _monitor) in states.items():
            events, alerts = results[model]
            record_model(m, model, state, alerts, events, refresh=bool(alerts) or model not in self._seen)
            record_traffic(m, model, state)
            self._seen.add(model)
            report.drift_events.extend(events)
            report.alerts.extend(alerts)
        report.processed = sum(map(len, preds.values())) + sum(map(len, labels.values()))
        report.dead_letters = len(dead)


def shard_batch(keys: Keys, decoded: list[Decoded]) -> list[tuple[Keys, list[Decoded]]]:
    """The batch split by the shard its transaction must stay in. One node: one shard, the whole batch.
    Cluster: one part per model (a record naming several models is split into one view per model, each
    applied, and skipped on replay, by its model's offsets) and one per source partition for records
    naming no model (dead letters)."""
    if not keys.cluster:
        return [(keys, decoded)]
    parts: dict[Keys, list[Decoded]] = defaultdict(list)
    for d in decoded:
        models = sorted(d.models())
        if d.error is not None or not models:
            parts[keys.for_partition(d.record.topic, d.record.partition)].append(d)
        elif len(models) == 1:
            parts[keys.for_model(models[0])].append(d)
        else:
            for m in models:
                parts[keys.for_model(m)].append(d.only(m))
    return list(parts.items())


def _events_per_model(records: list[Decoded]) -> Counter[tuple[str, str]]:
    """(topic, model) -> events in ``records``; a dead-lettered record counts once, with model "" (as its
    ``dead_letter`` outcome did)."""
    counts: Counter[tuple[str, str]] = Counter()
    for d in records:
        per_model = {} if d.error else d.counts()
        for model, n in (per_model or {"": 1}).items():
            counts[(d.record.topic, model)] += n
    return counts
