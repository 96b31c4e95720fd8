"""The stream's batch code on the real Redis and broker, driven in-process (no Faust): delayed labels joined
across batches in Redis, dead letters through the broker, constant Redis work per batch, WATCH fencing, the
outbox and states written by another worker. The pure step (alerts, the reference switch, per-model settings,
refused snapshots, routing) is tested without services in ``tests/unit/stream/test_step.py``.

Input records are built here (topic, partition, offset as the consumer would hand them over); what the
step publishes goes through the real producer to the real broker and is read back from there.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from itertools import count

import msgspec
import pytest
from confluent_kafka import Consumer
from prometheus_client import CollectorRegistry
from stream_inputs import bad_inputs, pred

from detectors.monitor import ModelMonitor
from driftwarden.contract.events import DeadLetter, Label, Prediction, decode, encode
from driftwarden.contract.kafka import client_config, ensure_topics
from driftwarden.contract.settings import Settings
from driftwarden.contract.storage import Keys, connect
from stream.app import StreamService
from stream.joins import digest, stored_waiting
from stream.metrics import build_metrics
from stream.outbox import Outgoing, queue_outbox
from stream.processor import BatchProcessor, BatchReport
from stream.publisher import KafkaPublisher
from stream.records import RawRecord
from stream.state import PendingPrediction, decode_pending_prediction, decode_state

pytestmark = pytest.mark.services


class Feed:
    """A processor on the real services plus the offsets a consumer would see, per (topic, partition)."""

    def __init__(self, settings: Settings) -> None:
        ensure_topics(settings)
        self.settings = settings
        self.registry = CollectorRegistry()
        self.redis = connect(settings.redis.url, settings.redis.cluster)
        self.publisher = KafkaPublisher(settings)
        self.processor = BatchProcessor(settings, self.redis, self.publisher, build_metrics(self.registry))
        self.keys = Keys(settings.redis.key_prefix, settings.redis.cluster)
        self.offsets: dict[tuple[str, int], Iterator[int]] = {}

    def record(self, topic: str, value: bytes | None, key: bytes | None = b"m", partition: int = 0) -> RawRecord:
        offsets = self.offsets.setdefault((topic, partition), count())
        return RawRecord(topic, partition, next(offsets), key, value)

    def predictions(self, preds: Iterable[Prediction], per_message: int = 100) -> list[RawRecord]:
        items = list(preds)
        return [self.record(self.settings.kafka.topics.predictions, encode(items[i:i + per_message]))
                for i in range(0, len(items), per_message)]

    def labels(self, labels: Iterable[Label]) -> list[RawRecord]:
        return [self.record(self.settings.kafka.topics.labels, encode(list(labels)))]

    def process(self, records: list[RawRecord]) -> BatchReport:
        return self.processor.process(records)

    def metric(self, name: str, **labels: str) -> float:
        return self.registry.get_sample_value(name, labels) or 0.0

    def counters(self, model: str) -> dict[str, int]:
        return {k.decode(): int(v) for k, v in self.redis.hgetall(self.keys.counters(model)).items()}

    def state(self, model: str):  # type: ignore[no-untyped-def]
        return decode_state(self.redis.get(self.keys.state(model)))

    def waiting(self, model: str) -> dict[bytes, bytes]:
        """The predictions waiting in Redis (segments less the joined set), by digest; checked against the
        worker's own count, which /status shows."""
        stored = stored_waiting(self.redis, self.keys, model)
        assert int(self.redis.get(self.keys.pending_prediction_count(model)) or 0) == len(stored)
        return stored


def tuned(settings: Settings, monitor: dict[str, object] | None = None, **stream: object) -> Settings:
    return msgspec.structs.replace(
        settings,
        monitor=msgspec.structs.replace(settings.monitor, **(monitor or {})),
        stream=msgspec.structs.replace(settings.stream, **stream),
    )


def read_topic(settings: Settings, topic: str, expected: int, timeout: float = 30.0) -> list[bytes]:
    consumer = Consumer(client_config(settings, **{"group.id": f"read-{topic}-{time.monotonic_ns()}",
                                                   "auto.offset.reset": "earliest"}))
    consumer.subscribe([topic])
    values: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while len(values) < expected and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is not None and not msg.error():
                values.append(msg.value())
        tail = time.monotonic() + 1.0  # anything beyond the expected count would be a duplicate
        while time.monotonic() < tail:
            msg = consumer.poll(0.2)
            if msg is not None and not msg.error():
                values.append(msg.value())
    finally:
        consumer.close()
    return values


# -- delayed labels ------------------------------------------------------------------------------------

@pytest.mark.parametrize("redis_mode", ["single", "cluster"])  # cluster: a real three-master Redis Cluster
def test_labels_before_and_after_predictions_join_expire_and_are_measured(settings: Settings) -> None:
    feed = Feed(tuned(settings, label_ttl_s=100))
    m = "late"
    t0 = 1_000.0
    preds = [pred(m, i, t0 + i, x=float(i), version="1" if i < 5 else "2", prediction=i % 2) for i in range(10)]
    early = [Label(event_id=f"{m}-{i}", model=m, label=0, timestamp=t0 + i + 5) for i in range(3)]
    late = [Label(event_id=f"{m}-{i}", model=m, label=1, timestamp=t0 + i + 30) for i in range(3, 6)]

    feed.process(feed.labels(early))  # labels first: they wait for their predictions
    assert feed.redis.hlen(feed.keys.pending_labels(m)) == 3
    feed.process(feed.predictions(preds))
    feed.process(feed.labels(late))
    assert len(feed.waiting(m)) == 4  # 6..9 still wait
    assert feed.counters(m).get("expired_predictions", 0) == 0

    # Event time moves past the TTL of 6..9: they expire and are counted, once.
    feed.process(feed.predictions([pred(m, 100, t0 + 500)]))
    feed.process(feed.predictions([pred(m, 101, t0 + 501)]))
    assert feed.counters(m) == {"predictions": 12, "labels": 6, "expired_predictions": 4}
    assert set(feed.waiting(m)) == {digest(f"{m}-100"), digest(f"{m}-101")}
    assert feed.redis.scard(feed.keys.pending_prediction_joined(m)) == 0  # the joined rows' segment went
    assert feed.redis.hlen(feed.keys.pending_labels(m)) == 0

    state = feed.state(m)
    # Early labels are 0 on predictions 0, 1, 0 (2 right); late labels are 1 on 1, 0, 1 (2 right).
    assert {v: (p.n, p.total) for v, p in state.performance.items()} == {"1": (5, 3.0), "2": (1, 1.0)}
    assert state.outcomes == 6
    assert feed.redis.llen(feed.keys.samples(m)) == 6
    assert feed.metric("driftwarden_labels_joined_total", model=m) == 6
    assert feed.metric("driftwarden_labels_expired_total", model=m) == 4
    assert feed.metric("driftwarden_label_delay_seconds_count", model=m) == 6
    assert feed.metric("driftwarden_label_delay_seconds_sum", model=m) == 3 * 5 + 3 * 30
    assert feed.metric("driftwarden_label_delay_seconds_bucket", model=m, le="10.0") == 3
    assert feed.metric("driftwarden_model_performance", model=m, version="1", metric="accuracy") == 0.6


def test_waiting_predictions_are_capped_per_model_oldest_evicted_and_counted(settings: Settings) -> None:
    feed = Feed(tuned(settings, pending_max=100))
    m = "unlabelled"
    for b in range(4):  # four batches of 60 predictions that get no label (yet)
        feed.process(feed.predictions([pred(m, 60 * b + i, 60.0 * b + i) for i in range(60)], per_message=60))
        assert len(feed.waiting(m)) <= 100
    # Each batch over the cap evicts the oldest whole batch: 60, then 120, then 180 were evicted.
    pending = set(feed.waiting(m))
    assert pending == {digest(f"{m}-{i}") for i in range(180, 240)}
    assert feed.counters(m)["evicted_predictions"] == 180
    assert feed.metric("driftwarden_predictions_evicted_total", model=m) == 180
    assert feed.redis.zcard(feed.keys.pending_prediction_expiry(m)) == 1  # evicted batches left the index

    # A label for a kept prediction joins; one for an evicted prediction waits like an early label.
    feed.process(feed.labels([Label(event_id=f"{m}-200", model=m, label=0, timestamp=300.0),
                              Label(event_id=f"{m}-10", model=m, label=0, timestamp=300.0)]))
    assert feed.metric("driftwarden_labels_joined_total", model=m) == 1
    assert feed.redis.hkeys(feed.keys.pending_labels(m)) == [digest(f"{m}-10")]
    assert feed.counters(m).get("expired_predictions", 0) == 0  # eviction is not expiry


def test_waiting_predictions_keep_features_only_for_as_many_samples_as_retraining_keeps(settings: Settings) -> None:
    """At most ``samples_max`` waiting predictions hold their features, in arrival order; a slot frees when
    its prediction joins or expires. Every label still joins and counts; only slot holders become samples."""
    feed = Feed(tuned(settings, samples_max=20, label_ttl_s=100))
    m = "sampled"
    n = 400

    def holders() -> tuple[set[bytes], int]:
        stored = {k: decode_pending_prediction(v)
                  for k, v in feed.waiting(m).items()}
        assert all(p.version == "1" and p.prediction == 0 for p in stored.values())
        return {k for k, p in stored.items() if p.features is not None}, int(
            feed.redis.get(feed.keys.pending_prediction_features(m)) or 0)

    feed.process(feed.predictions([pred(m, i, 1_000.0 + i, x=float(i)) for i in range(n)], per_message=100))
    assert len(feed.waiting(m)) == n
    assert holders() == ({digest(f"{m}-{i}") for i in range(20)}, 20)

    # Labels for 0..9 and 300..309: ten slots free, every label joins, ten samples carry features.
    feed.process(feed.labels([Label(event_id=f"{m}-{i}", model=m, label=0, timestamp=1_050.0)
                              for i in [*range(10), *range(300, 310)]]))
    assert feed.state(m).outcomes == 20
    samples = [msgspec.json.decode(s) for s in feed.redis.lrange(feed.keys.samples(m), 0, -1)]
    assert [s["event_id"] for s in samples] == [f"{m}-{i}" for i in range(10)]
    assert all(s["features"] == {"x": float(i)} and s["label"] == 0 for i, s in enumerate(samples))
    assert holders() == ({digest(f"{m}-{i}") for i in range(10, 20)}, 10)

    # The next predictions take the free slots; then event time passes every TTL: all expire, slots free.
    feed.process(feed.predictions([pred(m, i, 1_060.0) for i in range(n, n + 15)], per_message=15))
    assert holders()[1] == 20
    assert holders()[0] == {digest(f"{m}-{i}") for i in [*range(10, 20), *range(n, n + 10)]}
    feed.process(feed.predictions([pred(m, n + 100, 2_000.0)], per_message=1))
    assert feed.counters(m)["expired_predictions"] == n - 20 + 15
    assert holders() == ({digest(f"{m}-{n + 100}")}, 1)  # expiry freed the slots before it took one


def test_a_worker_without_the_index_rebuilds_it_from_redis_and_a_stale_one_is_not_used(settings: Settings) -> None:
    """The id index of waiting predictions is this process's cache of Redis: another worker (a takeover, a
    restart) rebuilds it from the segments and the joined set, and a worker whose index is older than the
    model's state version rebuilds it too, so no label joins twice and none is lost."""
    s = tuned(settings, label_ttl_s=1_000)
    first, second = Feed(s), Feed(s)
    second.offsets = first.offsets  # one partition, two workers taking turns on it
    m = "handover"
    first.process(first.predictions([pred(m, i, 100.0 + i, x=float(i)) for i in range(300)], per_message=100))
    first.process(first.labels([Label(event_id=f"{m}-{i}", model=m, label=1, timestamp=200.0) for i in range(10)]))
    # The second worker has no index: it reads the three segments and the ten joined rows.
    second.process(second.labels([Label(event_id=f"{m}-{i}", model=m, label=1, timestamp=210.0)
                                  for i in range(5, 20)]))  # 5..9 joined already: they wait as early labels
    assert second.state(m).outcomes == 20
    assert set(second.waiting(m)) == {digest(f"{m}-{i}") for i in range(20, 300)}
    assert set(second.redis.hkeys(second.keys.pending_labels(m))) == {digest(f"{m}-{i}") for i in range(5, 10)}
    # The first worker's index is now stale (the model's version moved on): it must not use it.
    first.process(first.labels([Label(event_id=f"{m}-{i}", model=m, label=0, timestamp=220.0)
                                for i in range(15, 25)]))
    assert first.state(m).outcomes == 25  # 20..24 joined; 15..19 had joined on the second worker
    assert first.metric("driftwarden_labels_joined_total", model=m) == 15
    assert len(first.waiting(m)) == 275
    # A label for every remaining prediction empties every segment: nothing of them stays in Redis.
    second.process(second.labels([Label(event_id=f"{m}-{i}", model=m, label=1, timestamp=230.0)
                                  for i in range(25, 300)]))
    assert second.state(m).outcomes == 300 and second.waiting(m) == {}
    assert second.redis.zcard(second.keys.pending_prediction_expiry(m)) == 0
    assert second.redis.scard(second.keys.pending_prediction_joined(m)) == 0
    assert not [k for k in second.redis.scan_iter(f"{s.redis.key_prefix}:pending:seg:*")]


def test_waiting_predictions_stored_by_the_previous_version_are_rewritten_as_segments(settings: Settings) -> None:
    """Entries of the per-field layout (one hash field per prediction, one expiry member per batch) join,
    expire and hold their feature slots as before: the model's first batch rewrites them as segments."""
    feed = Feed(tuned(settings, label_ttl_s=100, samples_max=3))
    m = "upgraded"
    ids = msgspec.msgpack.Encoder()
    stored = {digest(f"{m}-{i}"): ids.encode(PendingPrediction(10.0 + i, i % 2, 0.5, "1",
                                                               {"x": float(i)} if i < 2 else None))
              for i in range(6)}
    feed.redis.hset(feed.keys.pending_predictions(m), mapping=stored)
    feed.redis.zadd(feed.keys.pending_prediction_expiry(m), {  # two old batches, the first one expiring first
        ids.encode([digest(f"{m}-{i}") for i in range(3)]): 112.0 + 100,
        ids.encode([digest(f"{m}-{i}") for i in range(3, 6)]): 115.0 + 100})
    feed.redis.set(feed.keys.pending_prediction_features(m), 2)
    feed.process(feed.labels([Label(event_id=f"{m}-{i}", model=m, label=1, timestamp=150.0) for i in (0, 4)]))
    assert feed.state(m).outcomes == 2
    samples = [msgspec.json.decode(v) for v in feed.redis.lrange(feed.keys.samples(m), 0, -1)]
    assert [(x["event_id"], x["features"]) for x in samples] == [(f"{m}-0", {"x": 0.0})]
    assert not feed.redis.exists(feed.keys.pending_predictions(m))
    assert set(feed.waiting(m)) == {digest(f"{m}-{i}") for i in (1, 2, 3, 5)}
    assert int(feed.redis.get(feed.keys.pending_prediction_features(m))) == 1  # 1 still holds its features
    # Event time passes the first old batch's expiry (212), not the second's (215): 1 and 2 expire.
    feed.process(feed.predictions([pred(m, 100, 213.0)], per_message=1))
    assert feed.counters(m)["expired_predictions"] == 2
    assert set(feed.waiting(m)) == {digest(f"{m}-{i}") for i in (3, 5, 100)}
    assert int(feed.redis.get(feed.keys.pending_prediction_features(m))) == 1  # the slot went to 100


# -- dead letters --------------------------------------------------------------------------------------

@pytest.mark.parametrize("redis_mode", ["single", "cluster"])  # cluster: a real three-master Redis Cluster
def test_every_kind_of_bad_input_is_a_dead_letter_and_the_batch_goes_on(settings: Settings) -> None:
    s = tuned(settings, max_message_bytes=2_000, onboarding=False)
    s = msgspec.structs.replace(s, models={"known": {}})
    feed = Feed(s)
    t = s.kafka.topics
    good = [pred("known", i, 1_000.0 + i) for i in range(3)]
    bad = bad_inputs("known")
    batch = [feed.record(t.predictions, encode(good[:2]))]
    where: dict[str, tuple[int, int]] = {}
    for reason, value in bad.items():
        r = feed.record(t.predictions, value, partition=1)
        where[reason] = (r.partition, r.offset)
        batch.append(r)
    batch.append(feed.record(t.predictions, encode(good[2])))
    batch.append(feed.record(t.labels, encode(Label(event_id="known-0", model="known", label=0, timestamp=5.0))))
    report = feed.process(batch)

    assert (report.processed, report.dead_letters) == (4, len(bad))
    assert feed.counters("known") == {"predictions": 3, "labels": 1}
    assert feed.state("known").outcomes == 1
    letters = [decode(DeadLetter, v) for v in read_topic(s, t.dead_letters, len(bad))]
    by_reason = {d.error.split(":")[0]: d for d in letters}
    assert set(by_reason) == set(bad) and len(letters) == len(bad)
    for reason, (partition, offset) in where.items():
        letter = by_reason[reason]
        assert (letter.source_topic, letter.partition, letter.offset) == (t.predictions, partition, offset)
        assert feed.metric("driftwarden_dead_letters_total", topic=t.predictions, reason=reason) == 1
    assert "stranger" in by_reason["unknown_model"].error

    # The same batch again (a replay after a crash) changes nothing and publishes nothing new.
    again = feed.process(batch)
    assert (again.processed, again.dead_letters, again.duplicates) == (0, 0, len(batch))
    skipped = {(t.predictions, "known"): 3, (t.labels, "known"): 1, (t.predictions, ""): len(bad)}
    for (topic, model), n in skipped.items():  # the replayed events by topic and model, like processed ones
        assert feed.metric("driftwarden_events_total", topic=topic, model=model, outcome="duplicate") == n
    assert feed.counters("known") == {"predictions": 3, "labels": 1}
    assert len(read_topic(s, t.dead_letters, len(bad) + 1, timeout=3)) == len(bad)


# -- Redis work per batch, fencing, the outbox ------------------------------------------------------------

def test_redis_commands_per_batch_do_not_grow_with_events(settings: Settings) -> None:
    feed = Feed(tuned(settings, {"reference_size": 100, "window_size": 10_000}))
    feed.process(feed.predictions([pred("rt", i, float(i)) for i in range(200)]))

    def commands(n: int, start: int) -> int:
        before = int(feed.redis.info("stats")["total_commands_processed"])
        feed.process(feed.predictions([pred("rt", start + i, float(start + i)) for i in range(n)], per_message=100))
        return int(feed.redis.info("stats")["total_commands_processed"]) - before - 1

    assert commands(100, 1_000) == commands(2_000, 10_000)


@pytest.mark.parametrize("redis_mode", ["single", "cluster"])  # cluster: a real three-master Redis Cluster
def test_a_worker_that_lost_its_partition_cannot_apply_a_stale_batch(settings: Settings) -> None:
    """Worker A has read its batch; worker B (the partition's new owner) applies the same records
    before A's transaction executes. A's EXEC fails on the fence, and its retry finds them applied."""
    a, b = Feed(settings), Feed(settings)
    batch = a.predictions([pred("fenced", i, float(i)) for i in range(300)])
    calls = count()

    def clock_that_lets_b_in_first() -> float:
        if next(calls) == 0:  # called by A between its reads and its MULTI
            assert b.process(batch).processed == 300
        return time.time()

    a.processor.clock = clock_that_lets_b_in_first
    report = a.process(batch)
    assert (report.attempts, report.processed, report.duplicates) == (2, 0, len(batch))
    assert a.counters("fenced") == {"predictions": 300, "labels": 0}
    assert a.state("fenced").observations == 300
    # Other partitions of the same topic do not conflict: B's write there leaves A's batch alone.
    other = [b.record(settings.kafka.topics.predictions, encode(pred("elsewhere", 0, 1.0)), partition=1)]
    calls = count()

    def clock_with_b_elsewhere() -> float:
        if next(calls) == 0:
            b.process(other)
        return time.time()

    a.processor.clock = clock_with_b_elsewhere
    more = a.predictions([pred("fenced", 1000 + i, 1000.0 + i) for i in range(10)])
    assert a.process(more).attempts == 1


@pytest.mark.parametrize("redis_mode", ["single", "cluster"])  # cluster: a real three-master Redis Cluster
def test_an_outbox_left_by_a_crash_is_published_when_its_partition_is_assigned(settings: Settings) -> None:
    service = StreamService(settings, CollectorRegistry())
    ensure_topics(settings)
    service.setup()
    keys = Keys(settings.redis.key_prefix, settings.redis.cluster).for_partition(settings.kafka.topics.predictions, 1)
    letter = Outgoing(settings.kafka.topics.dead_letters, b"k", b'{"left": "by a crash"}')
    with service.redis.pipeline(transaction=True) as tx:  # committed with state, never published
        queue_outbox(tx, keys, [((settings.kafka.topics.predictions, 1), letter)])
        tx.execute()
    assert service.flush_outboxes([(settings.kafka.topics.predictions, 0)]) == 0
    assert service.flush_outboxes([(settings.kafka.topics.predictions, 1)]) == 1
    assert service.redis.exists(keys.outbox(settings.kafka.topics.predictions, 1)) == 0
    assert read_topic(settings, settings.kafka.topics.dead_letters, 1) == [letter.value]


def test_a_state_written_by_another_worker_is_reloaded_not_taken_from_memory(settings: Settings) -> None:
    """The partition moves A -> B -> A: A's in-memory copy is stale and must not be used."""
    a, b = Feed(settings), Feed(settings)
    b.offsets = a.offsets  # one partition, consumed by whoever owns it
    a.process(a.predictions([pred("moving", i, float(i)) for i in range(100)]))
    b.process(b.predictions([pred("moving", 100 + i, 100.0 + i) for i in range(50)]))
    a.process(a.predictions([pred("moving", 150 + i, 150.0 + i) for i in range(10)]))
    state = a.state("moving")
    assert state.observations == 160
    assert ModelMonitor.from_bytes(state.monitor).status()["counts"]["observations"] == 160


# -- refused states (the step's side is in tests/unit/stream/test_step.py) --------------------------------

def test_an_undecodable_state_starts_the_model_over_instead_of_stalling_the_partition(settings: Settings) -> None:
    s = tuned(settings, {"reference_size": 100, "window_size": 50})
    feed = Feed(s)
    m = "garbled"
    feed.process(feed.predictions([pred(m, i, float(i), x=float(i % 7)) for i in range(120)]))
    feed.redis.set(feed.keys.state(m), b"\xc1 not msgpack")
    fresh = Feed(s)
    report = fresh.process([fresh.record(s.kafka.topics.predictions,
                                         encode([pred(m, 500 + i, 500.0 + i) for i in range(5)]), partition=1)])
    assert report.processed == 5
    assert fresh.metric("driftwarden_state_rejected_total", model=m) == 1
    assert ModelMonitor.from_bytes(fresh.state(m).monitor).n_observations == 5
    assert fresh.counters(m)["predictions"] == 125
