"""One consumed batch, applied effectively once.

Per batch: decode and validate (bad input becomes dead letters), drop records at or below the offset
Redis says is applied, apply the rest to the models' monitors in memory, then write every model's
state, the last applied offset per partition and the outgoing messages (an outbox) in one Redis
transaction. Only after that are the messages published; Kafka's offsets are committed by the caller
after ``process`` returns. A crash anywhere replays the batch, and the stored offsets make the replay a
no-op for state while the outbox makes publishing at-least-once (drift ids are deterministic).

WATCH on the offset hashes and state keys fences a worker that lost its partitions in a rebalance but
has not noticed yet: its transaction fails and it re-reads.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import msgspec
import redis

from detectors.monitor import ModelMonitor
from driftwarden.config import Settings
from driftwarden.events import (
    ContractError,
    DeadLetter,
    DriftEvent,
    Label,
    Prediction,
    decode_batch,
    encode,
    iso,
)
from stream.exceptions import StateConflict
from stream.joins import JoinPlan, plan_joins
from stream.metrics import StreamMetrics
from stream.monitoring import apply_predictions, monitor_config, new_state, record_performance
from stream.records import RawRecord
from stream.state import Keys, ModelState, decode_state, encode_state

log = logging.getLogger(__name__)
MAX_ATTEMPTS = 20


class Outgoing(msgspec.Struct, array_like=True, frozen=True):
    topic: str
    key: bytes | None
    value: bytes


class Publisher(Protocol):
    def publish(self, messages: Sequence[Outgoing]) -> None:
        """Produce every message and wait until the broker has acknowledged all of them."""


_outgoing_encoder = msgspec.msgpack.Encoder()
_outgoing_decoder = msgspec.msgpack.Decoder(Outgoing)


@dataclass
class BatchReport:
    processed: int = 0
    duplicates: int = 0
    dead_letters: int = 0
    drift_events: list[DriftEvent] = field(default_factory=list)
    published: int = 0
    attempts: int = 0


@dataclass
class _Decoded:
    record: RawRecord
    predictions: list[Prediction] = field(default_factory=list)
    labels: list[Label] = field(default_factory=list)
    error: ContractError | None = None


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

    # -- the batch -----------------------------------------------------------------------------------

    def process(self, records: Sequence[RawRecord]) -> BatchReport:
        if not records:
            return BatchReport()
        started = time.perf_counter()
        decoded = [self._decode(r) for r in records]
        partitions = {(r.topic, r.partition) for r in records}
        report = BatchReport()
        report.published += self._flush_outbox(partitions)
        for attempt in range(1, MAX_ATTEMPTS + 1):
            report.attempts = attempt
            try:
                outgoing = self._apply(decoded, report)
                break
            except (redis.WatchError, StateConflict):
                log.info("state changed under this batch (rebalance?), retrying (attempt %d)", attempt)
                report = BatchReport(published=report.published)
        else:
            raise StateConflict(f"batch could not be applied after {MAX_ATTEMPTS} attempts")
        if outgoing:
            self.publisher.publish(outgoing)
            self.redis.delete(*[self.keys.outbox(t, p) for t, p in partitions])
            report.published += len(outgoing)
        topic = records[0].topic
        self.metrics.batch_seconds.labels(topic=topic).observe(time.perf_counter() - started)
        return report

    def _decode(self, record: RawRecord) -> _Decoded:
        item = _Decoded(record)
        try:
            if record.value is None:
                raise ContractError("empty_message", "the message has no value")
            if len(record.value) > self.settings.stream.max_message_bytes:
                raise ContractError("oversize", f"{len(record.value)} bytes exceeds "
                                    f"{self.settings.stream.max_message_bytes}")
            if record.topic == self.topics.predictions:
                item.predictions = decode_batch(Prediction, record.value)
            elif record.topic == self.topics.labels:
                item.labels = decode_batch(Label, record.value)
            else:
                raise ContractError("unknown_topic", f"no handler for topic {record.topic}")
        except ContractError as exc:
            item.error = exc
        return item

    def _apply(self, decoded: list[_Decoded], report: BatchReport) -> list[Outgoing]:
        keys = self.keys
        topics = sorted({d.record.topic for d in decoded})
        models = sorted({e.model for d in decoded for e in (*d.predictions, *d.labels)})
        with self.redis.pipeline(transaction=True) as tx:
            tx.watch(*[keys.offsets(t) for t in topics], *[keys.state(m) for m in models])
            reads = self.redis.pipeline(transaction=False)
            for t in topics:
                reads.hgetall(keys.offsets(t))
            reads.smembers(keys.models())
            for m in models:
                reads.get(keys.state(m))
            raw = reads.execute()
            applied = {t: {int(p): int(o) for p, o in raw[i].items()} for i, t in enumerate(topics)}
            known = {m.decode() for m in raw[len(topics)]}
            blobs = dict(zip(models, raw[len(topics) + 1:], strict=True))

            fresh: list[_Decoded] = []
            for d in decoded:
                r = d.record
                if r.offset <= applied.get(r.topic, {}).get(r.partition, -1):
                    report.duplicates += 1
                    continue
                if d.error is None and not self.settings.stream.onboarding:
                    unknown = {e.model for e in (*d.predictions, *d.labels)} - known - set(self.settings.models)
                    if unknown:
                        d.error = ContractError("unknown_model", f"onboarding is disabled: {sorted(unknown)}")
                fresh.append(d)

            now = self.clock()
            outgoing: list[Outgoing] = []
            counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
            dead = [d for d in fresh if d.error is not None]
            for d in dead:
                outgoing.append(self._dead_letter(d, now))
            good = [d for d in fresh if d.error is None]
            preds: dict[str, list[Prediction]] = defaultdict(list)
            labels: dict[str, list[Label]] = defaultdict(list)
            for d in good:
                for p in d.predictions:
                    preds[p.model].append(p)
                for lab in d.labels:
                    labels[lab.model].append(lab)

            states: dict[str, ModelState] = {}
            for m in sorted(set(preds) | set(labels)):
                blob = blobs.get(m)
                states[m] = decode_state(blob) if blob else new_state(self.settings.monitor_for(m))
            plan: JoinPlan = plan_joins(self.redis, keys, preds, labels, self.settings.stream.label_ttl_s)

            drift_events: list[DriftEvent] = []
            for m, state in states.items():
                monitor = ModelMonitor.from_bytes(state.monitor)
                cfg = monitor_config(self.settings.monitor_for(m))
                events, alerts = apply_predictions(m, state, monitor, cfg, preds.get(m, []),
                                                   plan.outcomes.get(m, []), self.settings, now)
                state.monitor = monitor.to_bytes()
                record_performance(state, plan.versions.get(m, []), plan.outcomes.get(m, []))
                drift_events.extend(events)
                for e in events:
                    outgoing.append(Outgoing(self.topics.drift_events, m.encode(), encode(e)))
                for a in alerts:
                    outgoing.append(Outgoing(self.topics.drift_alerts, m.encode(), encode(a)))
                counts[m]["predictions"] += len(preds.get(m, []))
                counts[m]["labels"] += len(labels.get(m, []))

            tx.multi()
            for m, state in states.items():
                tx.set(keys.state(m), encode_state(state))
                for name, n in counts[m].items():
                    if n:
                        tx.hincrby(keys.counters(m), name, n)
            if states:
                tx.sadd(keys.models(), *states)
            plan.write(tx, keys, self.settings.stream.samples_max)
            for t in topics:
                latest = {}
                for d in fresh:
                    if d.record.topic == t:
                        latest[d.record.partition] = max(d.record.offset, latest.get(d.record.partition, -1))
                if latest:
                    tx.hset(keys.offsets(t), mapping=latest)
            by_partition: dict[tuple[str, int], list[bytes]] = defaultdict(list)
            first = fresh[0].record if fresh else None
            for o in outgoing:
                if first is not None:
                    by_partition[(first.topic, first.partition)].append(_outgoing_encoder.encode(o))
            for (t, p), items in by_partition.items():
                tx.rpush(keys.outbox(t, p), *items)
            t0 = time.perf_counter()
            try:
                tx.execute()
            except redis.WatchError:
                raise
            except redis.RedisError:
                self.metrics.state_write_errors.inc()
                raise
            self.metrics.state_write_seconds.observe(time.perf_counter() - t0)

        self._record_metrics(fresh, dead, counts, plan, drift_events, outgoing, report)
        report.drift_events = drift_events
        return outgoing

    # -- helpers -------------------------------------------------------------------------------------

    def _dead_letter(self, d: _Decoded, now: float) -> Outgoing:
        r = d.record
        assert d.error is not None
        payload = (r.value or b"")[:10_000].decode("utf-8", errors="replace")
        letter = DeadLetter(source_topic=r.topic, partition=r.partition, offset=r.offset,
                            key=r.key.decode("utf-8", errors="replace") if r.key is not None else None,
                            error=f"{d.error.reason}: {d.error.detail}"[:2000], payload=payload,
                            received_at=iso(now))
        return Outgoing(self.topics.dead_letters, r.key, encode(letter))

    def _flush_outbox(self, partitions: set[tuple[str, int]]) -> int:
        """Publish what a crash left between the state commit and the publish, then clear it."""
        keys = [self.keys.outbox(t, p) for t, p in sorted(partitions)]
        pipe = self.redis.pipeline(transaction=False)
        for k in keys:
            pipe.lrange(k, 0, -1)
        leftovers = [_outgoing_decoder.decode(b) for items in pipe.execute() for b in items]
        if not leftovers:
            return 0
        log.warning("publishing %d messages left in the outbox by an earlier run", len(leftovers))
        self.publisher.publish(leftovers)
        self.redis.delete(*keys)
        return len(leftovers)

    def _record_metrics(self, fresh: list[_Decoded], dead: list[_Decoded],
                        counts: dict[str, dict[str, int]], plan: JoinPlan,
                        drift_events: list[DriftEvent], outgoing: list[Outgoing], report: BatchReport) -> None:
        m = self.metrics
        for d in dead:
            assert d.error is not None
            m.dead_letters.labels(topic=d.record.topic, reason=d.error.reason).inc()
            m.events.labels(topic=d.record.topic, model="", outcome="dead_letter").inc()
        for model, c in counts.items():
            if c["predictions"]:
                m.events.labels(topic=self.topics.predictions, model=model, outcome="processed").inc(c["predictions"])
            if c["labels"]:
                m.events.labels(topic=self.topics.labels, model=model, outcome="processed").inc(c["labels"])
        for model, delays in plan.delays.items():
            m.labels_joined.labels(model=model).inc(len(delays))
            for delay in delays:
                m.label_delay.labels(model=model).observe(max(delay, 0.0))
        for model, n in plan.expired.items():
            m.labels_expired.labels(model=model).inc(n)
        for e in drift_events:
            m.drift_events.labels(model=e.model, kind=e.kind, severity=e.severity).inc()
            m.drift_score.labels(model=e.model, feature=e.feature or "", signal=e.signal).set(e.score)
        report.processed = sum(c["predictions"] + c["labels"] for c in counts.values())
        report.dead_letters = len(dead)
