"""The stream's pure step (``stream.step``) without Redis or a broker: routing, dead letters, replays, alerts,
the reference switch, per-model settings, refused states and the join plan, each batch in milliseconds.

``Memory`` stands in for what the processor reads and writes: it carries each applied batch's states, offsets and
waiting predictions into the next batch's ``Snapshot``. The real-service side (WATCH fencing, the outbox, Redis
work per batch, joins across batches in Redis) is in ``tests/integration/test_stream_batches.py``.
"""

from __future__ import annotations

import hashlib
from itertools import count

import msgspec
import pytest
from stream_inputs import bad_inputs, pred, quantiles

from detectors.monitor import ModelMonitor, MonitorConfig, build_reference
from driftwarden.contract.columnar import decode_prediction_columns, encode_arrow
from driftwarden.contract.events import DeadLetter, DriftAlert, Label, Prediction, decode, encode
from driftwarden.contract.pending_segment import encode_segment, segment_digests, segment_rows, segment_size
from driftwarden.contract.prediction_columns import PredictionColumns
from driftwarden.contract.settings import Settings, load_settings
from stream.decoding import decode_record
from stream.joins import JoinReads, digest, digests, join_keys, plan_joins
from stream.pending_index import PendingIndex, Segment, as_keys
from stream.records import RawRecord
from stream.state import PendingPrediction, decode_pending_prediction, decode_state, encode_state
from stream.step import Applied, Loaded, Snapshot, load, models_of, route, step

NOW = 1_800_000_000.0


def settings_with(monitor: dict[str, object] | None = None, models: dict[str, object] | None = None,
                  **stream: object) -> Settings:
    s = load_settings(env={})
    return msgspec.structs.replace(
        s, monitor=msgspec.structs.replace(s.monitor, **(monitor or {})),
        stream=msgspec.structs.replace(s.stream, **stream), models=models if models is not None else s.models)


class Memory:
    """The stored side of the step, in a dict: states, versions, offsets and waiting predictions."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.states: dict[str, Loaded] = {}
        self.blobs: dict[str, bytes] = {}  # states as another worker would find them
        self.versions: dict[str, int] = {}
        self.applied: dict[str, dict[int, int]] = {}
        self.indexes: dict[str, PendingIndex] = {}  # what the processor holds
        self.segments: dict[str, dict[bytes, bytes]] = {}  # what Redis holds: name -> segment
        self.known: set[str] = set()
        self.switches: dict[str, str] = {}
        self.references: dict[str, bytes] = {}
        self.offsets: dict[tuple[str, int], count[int]] = {}

    def record(self, topic: str, value: bytes | None, partition: int = 0) -> RawRecord:
        offsets = self.offsets.setdefault((topic, partition), count())
        return RawRecord(topic, partition, next(offsets), b"m", value)

    def predictions(self, preds: list[Prediction], per_message: int = 100) -> list[RawRecord]:
        return [self.record(self.settings.kafka.topics.predictions, encode(preds[i:i + per_message]))
                for i in range(0, len(preds), per_message)]

    def labels(self, labels: list[Label]) -> list[RawRecord]:
        return [self.record(self.settings.kafka.topics.labels, encode(labels))]

    def snapshot(self, records: list[RawRecord]) -> tuple[Snapshot, list]:  # type: ignore[type-arg]
        decoded = [decode_record(r, self.settings) for r in records]
        _partitions, models = models_of(decoded, {})
        snapshot = Snapshot(applied={t: dict(p) for t, p in self.applied.items()}, known=set(self.known),
                            versions={m: self.versions.get(m, 0) for m in models},
                            cached={m: self.states[m] for m in models if m in self.states},
                            blobs={m: self.blobs.get(m) for m in models if m not in self.states},
                            switches={m: v for m, v in self.switches.items() if m in models},
                            labels_waiting={m: 0 for m in models})
        snapshot.references = {m: self.references.get(f"{m}:{v}") for m, v in snapshot.switches.items()}
        routed = route(snapshot, decoded, self.settings)
        for m in set(routed.preds) | set(routed.labels):
            reads = join_keys(routed.preds.get(m), routed.labels.get(m, []))
            reads.index = self.indexes.setdefault(m, PendingIndex())
            reads.name = str(snapshot.versions[m] + 1).encode()
            reads.label_locations = reads.index.find(as_keys(b"".join(reads.label_keys))).tolist()
            reads.waiting_preds = [None if loc < 0 else self.row(m, *reads.index.locate(loc))
                                   for loc in reads.label_locations]
            snapshot.joins[m] = reads
        return snapshot, decoded

    def process(self, records: list[RawRecord]) -> Applied:
        snapshot, decoded = self.snapshot(records)
        applied = step(snapshot, decoded, self.settings, NOW)
        for m, loaded in applied.states.items():  # what write() and the processor's cache do
            self.states[m] = loaded
            self.versions[m] = applied.versions[m]
            self.known.add(m)
        for t, offsets in applied.offsets.items():
            self.applied.setdefault(t, {}).update(offsets)
        for m in applied.switches_done:
            self.switches.pop(m, None)
        for m, names in applied.plan.dropped.items():
            for name in names:
                self.segments.get(m, {}).pop(name, None)
        for m, seg in applied.plan.segment.items():
            self.segments.setdefault(m, {})[seg.name] = seg.value
        applied.plan.advance()
        return applied

    def row(self, model: str, segment: Segment, row: int) -> bytes:
        return segment_rows(self.segments[model][segment.name])[row]


def messages(applied: Applied, topic: str) -> list[bytes]:
    return [o.value for _source, o in applied.outgoing if o.topic == topic]


def events(applied: Applied) -> list:  # type: ignore[type-arg]
    return [e for m in applied.results for e in applied.results[m][0]]


def alerts(applied: Applied) -> list[DriftAlert]:
    return [a for m in applied.results for a in applied.results[m][1]]


# -- alerts --------------------------------------------------------------------------------------------

def test_one_firing_alert_per_key_until_resolved_and_none_in_cooldown() -> None:
    s = settings_with({"reference_size": 1000, "window_size": 500, "n_bins": 5},
                      alert_resolve_windows=2, alert_cooldown_s=1000.0)
    memory = Memory(s)
    m = "alerting"
    clock = count()  # event time: one second per prediction

    def window(shift: float, n: int = 500) -> Applied:
        return memory.process(memory.predictions(
            [pred(m, t, float(t), x=x, prediction=t % 2) for x, t in zip(quantiles(n, shift), clock, strict=False)]))

    window(0.0, 1000)  # the reference
    drifted = [window(3.0) for _ in range(3)]
    fired = [a for r in drifted for a in alerts(r)]
    assert {(a.status, a.labels.kind, a.labels.feature) for a in fired} == {
        ("firing", "data_drift", "x"), ("firing", "data_quality", "x")}
    assert len(fired) == 2, "one firing alert per (model, kind, feature), not one per window"
    assert {(a.labels.kind, a.labels.severity) for a in fired} == {("data_drift", "critical"),
                                                                   ("data_quality", "warning")}
    assert sum(len(events(r)) for r in drifted) > len(fired)

    first_clean = window(0.0)
    assert alerts(first_clean) == [] and events(first_clean) == []
    resolved = alerts(window(0.0))
    assert sorted((a.status, a.labels.kind) for a in resolved) == [("resolved", "data_drift"),
                                                                  ("resolved", "data_quality")]
    assert {a.fingerprint for a in resolved} == {a.fingerprint for a in fired}

    in_cooldown = window(3.0)  # drift again 500 s (event time) after resolving; the cooldown is 1000 s
    assert events(in_cooldown) and alerts(in_cooldown) == []
    window(0.0)
    window(0.0)
    after_cooldown = window(3.0)  # 2000 s after resolving
    assert {(a.status, a.labels.kind) for a in alerts(after_cooldown)} == {("firing", "data_drift"),
                                                                          ("firing", "data_quality")}
    # what goes out (through the outbox) is exactly the alerts and events, encoded
    published = [decode(DriftAlert, v) for v in messages(after_cooldown, s.kafka.topics.drift_alerts)]
    assert published == alerts(after_cooldown)
    assert len(messages(after_cooldown, s.kafka.topics.drift_events)) == len(events(after_cooldown))


# -- dead letters and replays --------------------------------------------------------------------------

def test_every_kind_of_bad_input_is_a_dead_letter_and_the_batch_goes_on() -> None:
    s = settings_with(max_message_bytes=2_000, onboarding=False, models={"known": {}})
    memory = Memory(s)
    t = s.kafka.topics
    good = [pred("known", i, 1_000.0 + i) for i in range(3)]
    bad = bad_inputs("known")
    batch = [memory.record(t.predictions, encode(good[:2]))]
    where: dict[str, tuple[int, int]] = {}
    for reason, value in bad.items():
        r = memory.record(t.predictions, value, partition=1)
        where[reason] = (r.partition, r.offset)
        batch.append(r)
    batch.append(memory.record(t.predictions, encode(good[2])))
    batch.append(memory.record(t.labels, encode(Label(event_id="known-0", model="known", label=0, timestamp=5.0))))
    applied = memory.process(batch)

    assert {m: len(p) for m, p in applied.routed.preds.items()} == {"known": 3}
    assert {m: len(p) for m, p in applied.routed.labels.items()} == {"known": 1}
    assert applied.states["known"][0].outcomes == 1  # the label joined its prediction of the same batch
    letters = [decode(DeadLetter, v) for v in messages(applied, t.dead_letters)]
    by_reason = {d.error.split(":")[0]: d for d in letters}
    assert set(by_reason) == set(bad) and len(letters) == len(bad)
    for reason, (partition, offset) in where.items():
        letter = by_reason[reason]
        assert (letter.source_topic, letter.partition, letter.offset) == (t.predictions, partition, offset)
        assert [src for src, o in applied.outgoing if o.value == encode(letter)] == [(t.predictions, partition)]
    assert "stranger" in by_reason["unknown_model"].error
    assert applied.offsets == {t.predictions: {0: 1, 1: 6}, t.labels: {0: 0}}

    # The same batch again (a replay after a crash) changes nothing and sends nothing.
    again = memory.process(batch)
    assert again.routed.fresh == [] and len(again.routed.duplicates) == len(batch)
    assert again.outgoing == [] and again.states == {} and again.offsets == {}


# -- reference switch, per-model settings --------------------------------------------------------------

def test_a_promoted_versions_reference_replaces_the_old_and_concept_detection_restarts() -> None:
    s = settings_with({"reference_size": 1000, "window_size": 500, "n_bins": 5})
    memory = Memory(s)
    m = "switching"
    memory.process(memory.predictions([pred(m, i, float(i), x=x, prediction=i % 2)
                                       for i, x in enumerate(quantiles(1000))]))
    memory.process(memory.labels([Label(event_id=f"{m}-{i}", model=m, label=0, timestamp=float(i))
                                  for i in range(50)]))
    assert memory.states[m][1].errors.n == 50

    # The retrain worker stored the new version's reference (training data shifted by +3), then promoted it.
    config = MonitorConfig(reference_size=1000, window_size=500, n_bins=5)
    memory.references[f"{m}:2"] = build_reference([{"x": x} for x in quantiles(1000, 3.0)], config,
                                                  predictions=[i % 2 for i in range(1000)])
    memory.switches[m] = "2"
    applied = memory.process(memory.predictions([pred(m, 5000 + i, 5000.0 + i, x=x, version="2", prediction=i % 2)
                                                 for i, x in enumerate(quantiles(500))]))
    assert applied.switched == [m] and applied.switches_done == [m]
    assert {(e.kind, e.feature) for e in events(applied) if e.kind == "data_drift"} == {("data_drift", "x")}
    state = decode_state(applied.blobs[m])
    monitor = ModelMonitor.from_bytes(state.monitor)
    assert (state.reference_version, monitor.reference_source, monitor.errors.n) == ("2", "supplied", 0)
    later = memory.process(memory.predictions([pred(m, 6000 + i, 6000.0 + i, x=x, version="2", prediction=i % 2)
                                               for i, x in enumerate(quantiles(500, 3.0))]))
    assert later.switched == [] and events(later) == []


def test_a_switch_to_a_version_without_a_stored_reference_is_dropped_and_the_old_one_kept() -> None:
    s = settings_with({"reference_size": 100, "window_size": 50})
    memory = Memory(s)
    memory.process(memory.predictions([pred("m", i, float(i), x=float(i % 7)) for i in range(120)]))
    memory.switches["m"] = "9"
    applied = memory.process(memory.predictions([pred("m", 200, 200.0)]))
    assert applied.switched == [] and applied.switches_done == ["m"]
    assert applied.states["m"][0].reference_version is None


def test_models_use_their_own_section_or_the_defaults() -> None:
    s = settings_with({"reference_size": 100, "window_size": 100}, models={"small": {"window_size": 25}})
    memory = Memory(s)
    applied = memory.process([*memory.predictions([pred("small", i, float(i), x=float(i % 7)) for i in range(300)]),
                              *memory.predictions([pred("default", i, float(i), x=float(i % 7)) for i in range(300)])])
    assert applied.states["small"][0].windows_closed == 8
    assert applied.states["default"][0].windows_closed == 2
    assert applied.closed == {"small", "default"}


# -- refused states ------------------------------------------------------------------------------------

def test_snapshots_are_signed_with_the_configured_key_and_a_forged_one_starts_the_model_over() -> None:
    s = settings_with({"reference_size": 100, "window_size": 50, "snapshot_key": "s3cret"})
    memory = Memory(s)
    m = "signed"
    applied = memory.process(memory.predictions([pred(m, i, float(i), x=float(i % 7)) for i in range(150)]))
    blob = decode_state(applied.blobs[m]).monitor
    assert ModelMonitor.from_bytes(blob, b"s3cret").windows_closed == 1
    with pytest.raises(ValueError):
        ModelMonitor.from_bytes(blob)  # the stream never writes an unsigned snapshot once a key is set

    # Someone with Redis access but not the key replaces the snapshot (e.g. to silence a drifting model).
    state = decode_state(applied.blobs[m])
    state.monitor = ModelMonitor(MonitorConfig(reference_size=100, window_size=50)).to_bytes(b"guess")
    fresh = Memory(s)  # a worker with no copy of the state in memory reads the forged blob
    fresh.blobs[m] = encode_state(state)
    report = fresh.process([fresh.record(s.kafka.topics.predictions,
                                         encode([pred(m, 1000 + i, 1000.0 + i, x=1.0) for i in range(10)]))])
    assert [m_ for m_, _why in report.rejected] == [m] and "refused" in report.rejected[0][1]
    restarted = ModelMonitor.from_bytes(decode_state(report.blobs[m]).monitor, b"s3cret")
    assert (restarted.phase, restarted.n_observations) == ("reference", 10)


def test_an_undecodable_state_starts_the_model_over_instead_of_stalling_the_partition() -> None:
    s = settings_with({"reference_size": 100, "window_size": 50})
    (state, monitor), why = load("garbled", b"\xc1 not msgpack", s)
    assert why is not None and "cannot be decoded" in why
    assert (monitor.n_observations, state.observations) == (0, 0)
    memory = Memory(s)
    memory.blobs["garbled"] = b"\xc1 not msgpack"
    applied = memory.process(memory.predictions([pred("garbled", i, 500.0 + i) for i in range(5)]))
    assert [m for m, _ in applied.rejected] == ["garbled"]
    assert ModelMonitor.from_bytes(decode_state(applied.blobs["garbled"]).monitor).n_observations == 5


# -- the join plan -------------------------------------------------------------------------------------

def indexed(m: str, segments: list[list[tuple[int, bytes]]], keeps: list[int] | None = None) -> tuple[
        PendingIndex, dict[bytes, bytes]]:
    """An index (and the stored segments) holding ``segments``, each a list of (event number, packed row)."""
    index, stored = PendingIndex(), {}
    for k, rows in enumerate(segments):
        keep = (keeps or [0] * len(segments))[k]
        name = str(k + 1).encode()
        joined = b"".join(digest(f"{m}-{i}") for i, _row in rows)
        stored[name] = encode_segment(joined, [row for _i, row in rows], keep)
        index.add(name, as_keys(joined), keep)
    return index, stored


def read(reads: JoinReads, index: PendingIndex, stored: dict[bytes, bytes]) -> JoinReads:
    """What ``read_joins`` reads for the labels of ``reads``, from ``stored``."""
    reads.index = index
    reads.label_locations = index.find(as_keys(b"".join(reads.label_keys))).tolist()
    reads.waiting_preds = [None if loc < 0 else segment_rows(stored[index.locate(loc)[0].name])[index.locate(loc)[1]]
                           for loc in reads.label_locations]
    return reads


def test_labels_join_waiting_and_same_batch_predictions_and_wait_for_the_others() -> None:
    m = "late"
    stored_pred = PendingPrediction(10.0, 1, 0.9, "1", {"x": 1.0})
    preds = {m: PredictionColumns.from_events(m, [pred(m, 1, 20.0, prediction=0), pred(m, 2, 21.0)])}
    labels = {m: [Label(event_id=f"{m}-0", model=m, label=1, timestamp=30.0),  # waits in Redis
                  Label(event_id=f"{m}-1", model=m, label=0, timestamp=31.0),  # in this batch
                  Label(event_id=f"{m}-7", model=m, label=0, timestamp=32.0),  # its prediction is not here yet
                  Label(event_id=f"{m}-0", model=m, label=0, timestamp=33.0)]}  # again: joined already, so it waits
    index, stored = indexed(m, [[(0, encode_state(stored_pred)), (5, encode_state(stored_pred))]], keeps=[2])
    reads = read(join_keys(preds[m], labels[m]), index, stored)
    reads.name = b"9"
    plan = plan_joins({m: reads}, preds, labels, samples_max=10)
    assert [(o.prediction, o.label, o.predicted_at) for o in plan.outcomes[m]] == [(1, 1, 10.0), (0, 0, 20.0)]
    assert plan.delays[m] == [20.0, 11.0] and plan.versions[m] == ["1", "1"]
    assert plan.joined[m] == [index.find(as_keys(digest(f"{m}-0")))[0]]
    assert plan.dropped.get(m, []) == []  # row 5 still waits in that segment
    assert set(plan.add_labels[m]) == {digest(f"{m}-7"), digest(f"{m}-0")}
    assert segment_digests(plan.segment[m].value) == digest(f"{m}-2") and plan.segment[m].name == b"9"
    assert plan.feature_holders[m] == 2  # one freed by the join, one taken by the prediction left waiting
    assert plan.waiting[m] == 2
    assert plan.watermark[m] == 33.0
    index = plan.advance()[m]  # after the transaction: the index moved as the plan said
    assert (index.waiting, index.holders, len(index)) == (2, 2, 2)
    assert index.find(as_keys(digest(f"{m}-0")))[0] == -1


def test_a_segment_whose_every_row_joined_goes_at_once() -> None:
    m = "done"
    row = encode_state(PendingPrediction(10.0, 1, 0.9, "1"))
    index, stored = indexed(m, [[(0, row), (1, row)], [(2, row)]])
    labels = {m: [Label(event_id=f"{m}-{i}", model=m, label=1, timestamp=30.0) for i in (1, 0)]}
    plan = plan_joins({m: read(join_keys(None, labels[m]), index, stored)}, {}, labels)
    assert len(plan.outcomes[m]) == 2
    assert plan.dropped[m] == plan.emptied[m] == [b"1"]
    assert plan.joined[m] == []  # nothing to mark: the segment goes
    assert plan.expired.get(m, 0) == plan.evicted.get(m, 0) == 0 and plan.waiting[m] == 1


@pytest.mark.parametrize("wire", ["json", "arrow"])
def test_waiting_predictions_are_stored_as_before_and_only_free_slots_keep_features(wire: str) -> None:
    m = "slots"
    events = [Prediction(event_id=f"{m}-{i}", model=m, timestamp=100.0 + i, features={"x": float(i), "k": "a"},
                         prediction=([1, 0.5, "cat"] if wire == "json" else [1.0, 0.5, 2.0])[i % 3],
                         model_version=[None, "2"][i % 2], score=[None, 0.25][i % 2]) for i in range(6)]
    batch = (PredictionColumns.from_events(m, events) if wire == "json"
             else decode_prediction_columns(encode_arrow(events)))
    reads = join_keys(batch, [])
    reads.index, _stored = indexed(m, [[(100 + i, encode_state(PendingPrediction(1.0, 0, None, "1", {"x": 0.0})))
                                        for i in range(3)]], keeps=[3])
    plan = plan_joins({m: reads}, {m: batch}, {}, samples_max=5)
    # the two free slots go to the first rows, in arrival order; the others keep what the join needs
    expected = [PendingPrediction(float(e.timestamp), e.prediction, e.score, e.model_version,
                                  e.features if i < 2 else None) for i, e in enumerate(events)]
    seg = plan.segment[m]
    assert segment_digests(seg.value) == b"".join(digest(e.event_id) for e in events)
    assert segment_size(seg.value) == (6, 2) and seg.keep == 2
    stored = segment_rows(seg.value)
    assert [decode_pending_prediction(v) for v in stored] == expected
    assert plan.feature_holders[m] == 5
    # without features a row is a 4-item array, one byte less than the struct's (a trailing nil), which stays
    # readable: entries written before keep joining
    for value, struct in zip(stored, expected, strict=True):
        old = encode_state(struct)
        assert len(value) == len(old) - (struct.features is None)
        if struct.features is not None:  # from columns too, the bytes a mapping of its features gives
            assert value == old
        assert decode_pending_prediction(old) == struct


def test_a_batch_digests_its_ids_as_one_id_is_digested() -> None:
    ids = ["e-0", "", "événement-1", "x" * 300]
    assert digests(ids) == [digest(i) for i in ids]  # stored entries (and replays of old data) keep joining
    assert digest("e-0") == hashlib.blake2b(b"e-0", digest_size=8).digest()  # the stored format, pinned


def test_a_model_over_its_cap_evicts_its_oldest_batches_and_counts_only_the_unjoined() -> None:
    m = "capped"
    row = encode_state(PendingPrediction(1.0, 0, None, "1"))
    index, stored = indexed(m, [[(i, row) for i in range(b * 3, b * 3 + 3)] for b in range(3)])
    preds = {m: PredictionColumns.from_events(m, [pred(m, 100 + i, 100.0 + i) for i in range(4)])}
    labels = {m: [Label(event_id=f"{m}-1", model=m, label=0, timestamp=100.0)]}
    reads = read(join_keys(preds[m], labels[m]), index, stored)
    reads.oldest = [b"1", b"2", b"3"]
    plan = plan_joins({m: reads}, preds, labels, pending_max=10)
    # 9 waiting - 1 joined + 4 new = 12 > 10: evict 2, which takes the whole oldest batch (two left of it)
    assert plan.evicted_batches[m] == [b"1"] and plan.dropped[m] == [b"1"]
    assert plan.evicted[m] == 2 and plan.expired.get(m, 0) == 0
    assert len(plan.outcomes[m]) == 1 and plan.joined[m] == []  # joined, in a segment that goes anyway
    assert plan.waiting[m] == 10


@pytest.mark.parametrize("holds", [False, True])
def test_an_evicted_or_expired_prediction_frees_its_feature_slot(holds: bool) -> None:
    m = "freed"
    features = {"x": None} if holds else None
    index, stored = indexed(m, [[(i, encode_state(PendingPrediction(float(i), 0, 0.5, "1", features)))
                                 for i in range(2)]], keeps=[2 if holds else 0])
    preds = {m: PredictionColumns.from_events(m, [pred(m, 100, 100.0)])}
    reads = read(join_keys(preds[m], []), index, stored)
    reads.oldest = [b"1"]
    plan = plan_joins({m: reads}, preds, {}, pending_max=2, samples_max=2)
    assert plan.evicted[m] == 2
    # the two slots freed (if they were held) go to the new prediction, which takes one
    assert plan.feature_holders[m] == 1
    reads = read(join_keys(preds[m], []), index, stored)
    reads.expired_preds = [b"1"]
    plan = plan_joins({m: reads}, preds, {}, samples_max=2)
    assert plan.expired[m] == 2 and plan.feature_holders[m] == 1 and plan.waiting[m] == 1


def test_the_index_follows_joins_drops_and_ids_sent_twice() -> None:
    index = PendingIndex()
    keys = as_keys(b"".join(digest(f"e-{i}") for i in range(5000)))
    index.add(b"1", keys[:3000], 10)
    index.add(b"2", keys[2990:], 0)  # ten ids sent again: their older rows no longer wait
    assert (index.waiting, index.holders) == (5000, 10)
    where = index.find(keys)
    assert [index.locate(int(loc))[0].name for loc in where[[0, 2989, 2990, 4999]]] == [b"1", b"1", b"2", b"2"]
    index.join(where[:5].tolist())
    assert (index.waiting, index.holders) == (4995, 5) and (index.find(keys[:5]) == -1).all()
    first = index.segment(b"1")
    assert first is not None and sorted(first.joined_rows()) == [0, 1, 2, 3, 4]  # not the ten replaced
    assert index.drop(b"1").waiting == 2985  # 3000 - 5 joined - 10 replaced
    assert (index.waiting, index.holders, len(index)) == (2010, 0, 1)
    assert (index.find(keys[:2990]) == -1).all() and (index.find(keys[2990:]) >= 0).all()
    index.drop(b"2")
    assert index.waiting == 0 and (index.find(keys) == -1).all()
    for k in range(50):  # the table reuses its slots and grows and shrinks with what waits
        index.add(str(k).encode(), as_keys(b"".join(digest(f"{k}-{i}") for i in range(1000))), 0)
        if k >= 5:
            index.drop(str(k - 5).encode())
    assert index.waiting == 5000 and index.nbytes() < 400_000

