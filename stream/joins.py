"""Delayed labels: predictions wait for their label, and early labels for their prediction.

A batch's waiting predictions are stored as one *segment* (``driftwarden.contract.pending_segment``: one string
per model and batch, named after the model's new state version), not as one hash field each: the per-field
``HSET`` and its ``HDEL`` on eviction were most of the Arrow worker's time. Redis has no per-id index of them;
the worker that owns the model keeps one in memory (``stream.pending_index``), rebuilt from the segments and the
joined set (``load_index``) when it does not hold the one matching the model's state version, and advanced only
after the batch's transaction succeeded. A label reads its prediction's row by offset (``READ_ROWS``); the
joined row's digest goes in the model's joined set until its segment goes, so a rebuilt index skips it. A
segment goes whole: when every row joined, when its expiry passes or when it is evicted; its rows still waiting
are then counted as expired or evicted. So a segment with some rows joined keeps their bytes until it goes.

Early labels live in one Redis hash per model (event id digest -> packed label), as before.

Expiry is indexed per batch, not per event: one sorted-set member per model and batch (a segment's name; the
packed list of ids for early labels) scored by the batch's newest timestamp plus the TTL, so an item may
outlive its TTL by the span of its batch. Expiry is swept in event time (the newest timestamp in the batch),
not wall time, so replaying a topic gives the same joins and the same count of expired predictions.

At most ``stream.pending_max`` predictions wait per model: beyond it the oldest segments are evicted (counted
apart from expiry), so a model whose labels never come cannot fill Redis.

Redis work per batch is a constant number of round trips and a constant number of arguments per batch for its
waiting predictions (one segment), and about one per label; a prediction's id is looked up among waiting labels
only when labels wait.

Ids are stored as an 8-byte digest of the event id, not the id (64-bit: two ids of one model's ~1M waiting
events collide with probability ~3e-8). Ids are meant to be unique per model: a prediction whose id is sent
again while it waits is replaced by the newer one (which alone can join). A waiting prediction keeps its
timestamp, prediction, score and version, and its features only if it may become one of the
``stream.samples_max`` samples retraining keeps: at most
``samples_max`` waiting predictions of a model hold features (counted in ``pending_prediction_features``,
written in the batch's transaction, so a replayed batch decides the same way). A slot is taken in arrival order
and freed when its prediction joins, expires or is evicted, so a model with fewer than ``samples_max`` waiting
keeps every feature, and a busy one still refills the samples list.
"""

from __future__ import annotations

import hashlib
import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import msgspec
import numpy as np
import redis

from detectors.monitor import Outcome
from driftwarden.contract.events import Label
from driftwarden.contract.pending_segment import READ_ROWS, encode_segment, segment_digests, segment_rows, segment_size
from driftwarden.contract.prediction_columns import PredictionColumns
from driftwarden.contract.storage import JoinedSample, encode_sample
from stream.decoding import epoch
from stream.pending_index import U64, PendingIndex, as_keys
from stream.state import (
    Keys,
    PendingLabel,
    PendingPrediction,
    decode_pending_label,
    decode_pending_prediction,
    encode_state,
)


class _FeaturesOnly(msgspec.Struct, array_like=True):
    """A stored ``PendingPrediction`` read only far enough to see whether it holds features."""

    timestamp: float
    prediction: Any
    score: Any
    version: Any
    features: Any = None


_ids_encoder = msgspec.msgpack.Encoder()
_ids_decoder = msgspec.msgpack.Decoder(list[Any])  # bytes digests; str ids in members written before them
_pred_features = msgspec.msgpack.Decoder(_FeaturesOnly)


def digest(event_id: str) -> bytes:
    """The 8 bytes that stand for an event id in Redis (hash field, expiry member)."""
    return hashlib.blake2b(event_id.encode(), digest_size=8).digest()


_blake2b_8 = hashlib.blake2b(digest_size=8)  # copied per id: a third cheaper than building one with its parameters


def digests(event_ids: list[str]) -> list[bytes]:
    """``digest`` of each id, in one loop."""
    out: list[bytes] = []
    append, fresh = out.append, _blake2b_8.copy
    for event_id in event_ids:
        h = fresh()
        h.update(event_id.encode())
        append(h.digest())
    return out


@dataclass
class Migration:
    """Waiting predictions stored as hash fields by an earlier version (``Keys.pending_predictions``): rewritten
    as segments in the transaction of the first batch that indexes the model, one per old expiry member, with
    its score; then the hash and those members go."""

    segments: list[tuple[bytes, bytes, float]] = field(default_factory=list)  # (name, segment, expiry score)
    members: list[bytes] = field(default_factory=list)  # the old expiry members


@dataclass
class JoinReads:
    """What one model's joins of a batch need from Redis (``read_joins``); ``plan_joins`` decides from it."""

    pred_keys: list[bytes]  # digests of the batch's prediction ids, in order
    pred_times: list[float]
    label_keys: list[bytes]
    label_times: list[float]
    watermark: float  # the batch's newest event time: expiry is swept up to it
    index: PendingIndex = field(default_factory=PendingIndex)  # the model's waiting predictions (read only here)
    name: bytes = b"0"  # the segment this batch's waiting predictions go to (the model's new state version)
    waiting_labels: list[bytes | None] = field(default_factory=list)  # per prediction; empty: no label waits
    label_locations: list[int] = field(default_factory=list)  # per label: where its prediction waits, or -1
    waiting_preds: list[bytes | None] = field(default_factory=list)  # per label: that prediction, as stored
    expired_preds: list[bytes] = field(default_factory=list)  # segments whose expiry is at or below the watermark
    expired_labels: list[bytes] = field(default_factory=list)
    oldest: list[bytes] = field(default_factory=list)  # the oldest segments (read when over the cap)
    migration: Migration | None = None


@dataclass
class NewSegment:
    name: bytes
    value: bytes
    keys: U64
    keep: int


@dataclass
class JoinPlan:
    outcomes: dict[str, list[Outcome]] = field(default_factory=lambda: defaultdict(list))
    samples: dict[str, list[bytes]] = field(default_factory=lambda: defaultdict(list))
    delays: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    versions: dict[str, list[str | None]] = field(default_factory=lambda: defaultdict(list))
    expired: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    evicted: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    evicted_batches: dict[str, list[bytes]] = field(default_factory=lambda: defaultdict(list))  # expiry members
    watermark: dict[str, float] = field(default_factory=dict)
    feature_holders: dict[str, int] = field(default_factory=dict)  # waiting predictions holding features
    waiting: dict[str, int] = field(default_factory=dict)  # predictions waiting after the batch
    segment: dict[str, NewSegment] = field(default_factory=dict)  # this batch's waiting predictions
    joined: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))  # locations that got a label
    dropped: dict[str, list[bytes]] = field(default_factory=lambda: defaultdict(list))  # segments that go
    emptied: dict[str, list[bytes]] = field(default_factory=lambda: defaultdict(list))  # of them: all rows joined
    indexes: dict[str, PendingIndex] = field(default_factory=dict)
    migrations: dict[str, Migration] = field(default_factory=dict)
    add_labels: dict[str, dict[bytes, bytes]] = field(default_factory=lambda: defaultdict(dict))
    drop_labels: dict[str, set[bytes | str]] = field(default_factory=lambda: defaultdict(set))

    def join(self, model: str, event_id: str, pred: PendingPrediction, label: PendingLabel) -> None:
        score, per_class = (None, pred.score) if isinstance(pred.score, dict) else (pred.score, None)
        self.outcomes[model].append(Outcome(label.timestamp, pred.prediction, label.label, score, pred.timestamp,
                                            per_class))
        self.delays[model].append(label.timestamp - pred.timestamp)
        self.versions[model].append(pred.version)
        if pred.features is None:  # not kept for retraining (see the module's docstring)
            return
        self.samples[model].append(encode_sample(JoinedSample(
            event_id=event_id, timestamp=pred.timestamp, features=pred.features, prediction=pred.prediction,
            label=label.label, model_version=pred.version)))

    def write(self, tx: Any, keys: Keys, samples_max: int, ttl_s: float) -> None:
        """Queue this plan's writes on an open MULTI."""
        for m, migration in self.migrations.items():
            for name, value, score in migration.segments:
                tx.set(keys.pending_segment(m, name), value)
                tx.zadd(keys.pending_prediction_expiry(m), {name: score})
            if migration.members:
                tx.zrem(keys.pending_prediction_expiry(m), *migration.members)
            tx.delete(keys.pending_predictions(m))
        for m, watermark in self.watermark.items():
            # Segments at or below the watermark were swept by plan_joins: they are in dropped.
            tx.zremrangebyscore(keys.pending_prediction_expiry(m), "-inf", watermark)
            tx.zremrangebyscore(keys.pending_label_expiry(m), "-inf", watermark)
        for m in self.evicted_batches.keys() | self.emptied.keys():  # the segments that go before their expiry
            members = self.evicted_batches.get(m, []) + self.emptied.get(m, [])
            if members:
                tx.zrem(keys.pending_prediction_expiry(m), *members)
        for m, names in self.dropped.items():
            if not names:
                continue
            tx.delete(*[keys.pending_segment(m, n) for n in names])
            index = self.indexes[m]
            marked = [_member(s.keys[r]) for n in names if (s := index.segment(n)) is not None
                      for r in s.joined_rows()]
            if marked:
                tx.srem(keys.pending_prediction_joined(m), *marked)
        for m, locations in self.joined.items():
            if locations:
                index = self.indexes[m]
                tx.sadd(keys.pending_prediction_joined(m),
                        *[_member(s.keys[r]) for s, r in map(index.locate, locations)])
        for m, seg in self.segment.items():
            tx.set(keys.pending_segment(m, seg.name), seg.value)
            tx.zadd(keys.pending_prediction_expiry(m), {seg.name: self.watermark[m] + ttl_s})
        for m, items in self.add_labels.items():
            if items:
                tx.hset(keys.pending_labels(m), mapping=items)
                tx.zadd(keys.pending_label_expiry(m), {_ids_encoder.encode(list(items)): self.watermark[m] + ttl_s})
        for m, ids in self.drop_labels.items():
            if ids:
                tx.hdel(keys.pending_labels(m), *ids)
        for m, samples in self.samples.items():
            if samples:
                tx.rpush(keys.samples(m), *samples)
                tx.ltrim(keys.samples(m), -samples_max, -1)
        for m, n in self.expired.items():
            if n:
                tx.hincrby(keys.counters(m), "expired_predictions", n)
        for m, n in self.evicted.items():
            if n:
                tx.hincrby(keys.counters(m), "evicted_predictions", n)
        for m, n in self.feature_holders.items():
            tx.set(keys.pending_prediction_features(m), max(n, 0))
        for m, n in self.waiting.items():
            tx.set(keys.pending_prediction_count(m), n)

    def advance(self) -> dict[str, PendingIndex]:
        """After the transaction: the indexes moved by the same changes, which they now match."""
        for m, index in self.indexes.items():
            index.join(self.joined.get(m, []))  # only rows of segments that stay (plan_joins)
            for name in self.dropped.get(m, ()):
                if index.segment(name) is not None:
                    index.drop(name)
            seg = self.segment.get(m)
            if seg is not None:
                index.add(seg.name, seg.keys, seg.keep)
        return self.indexes


def _member(key: np.uint64) -> bytes:
    """A table key as a member of the joined set."""
    return int(key).to_bytes(8, "little")


def join_keys(preds: PredictionColumns | None, labels: list[Label]) -> JoinReads:
    """The digests, event times and watermark of one model's records in a batch; nothing read yet."""
    pred_times: list[float] = preds.timestamps.tolist() if preds else []
    label_times = [epoch(lab.timestamp) for lab in labels]
    return JoinReads(pred_keys=digests(preds.event_ids) if preds else [], pred_times=pred_times,
                     label_keys=digests([lab.event_id for lab in labels]), label_times=label_times,
                     watermark=max(max(pred_times, default=-math.inf), max(label_times, default=-math.inf)))


def stored_waiting(client: redis.Redis, keys: Keys, model: str) -> dict[bytes, bytes]:
    """Every prediction of ``model`` waiting in Redis, digest -> its stored row, read from the segments less the
    joined set (for the bench, the tests and audits: the worker reads rows by offset)."""
    names: list[bytes] = client.zrange(keys.pending_prediction_expiry(model), 0, -1)  # type: ignore[assignment]
    values = [v for _n, v in _segments(client, keys, model, [n for n in names if _is_segment(n)])]
    joined: set[bytes] = client.smembers(keys.pending_prediction_joined(model))  # type: ignore[assignment]
    out: dict[bytes, bytes] = {}
    for value in values:
        ids = segment_digests(value)
        table = as_keys(ids)
        for i, row in enumerate(segment_rows(value)):
            if _member(table[i]) not in joined:
                out[ids[8 * i:8 * i + 8]] = row
    return out


def _segments(client: redis.Redis, keys: Keys, model: str, names: list[bytes]) -> list[tuple[bytes, bytes]]:
    """The stored segments named, in order, in one round trip (a name whose key is gone is left out)."""
    if not names:
        return []
    pipe = client.pipeline(transaction=False)
    for n in names:
        pipe.get(keys.pending_segment(model, n))
    return [(n, v) for n, v in zip(names, pipe.execute(), strict=True) if v is not None]


def _is_segment(member: bytes) -> bool:
    """A segment's name (a state version, maybe with a suffix) against an old member (a msgpack array)."""
    return member[:1].isdigit()


def load_index(client: redis.Redis, keys: Keys, model: str, version: int) -> tuple[PendingIndex, Migration | None]:
    """A model's index rebuilt from Redis: every segment in expiry order, less the rows in the joined set; and
    the rewrite of entries an earlier version stored one per hash field. Read under the batch's WATCH, so a
    change in between fails its transaction (which then drops this index)."""
    pipe = client.pipeline(transaction=False)
    pipe.zrange(keys.pending_prediction_expiry(model), 0, -1, withscores=True)
    pipe.smembers(keys.pending_prediction_joined(model))
    pipe.exists(keys.pending_predictions(model))
    members, joined, legacy = pipe.execute()
    index = PendingIndex()
    for n, value in _segments(client, keys, model, [n for n, _score in members if _is_segment(n)]):
        index.add(n, as_keys(segment_digests(value)), segment_size(value)[1])
    if joined:
        index.join([loc for loc in index.find(as_keys(b"".join(joined))).tolist() if loc >= 0])
    old = [(n, score) for n, score in members if not _is_segment(n)]
    if not legacy and not old:
        return index, None
    stored: dict[bytes | str, bytes] = client.hgetall(keys.pending_predictions(model))  # type: ignore[assignment]
    migration = Migration(members=[n for n, _ in old])
    for k, (member, score) in enumerate(old):
        ids = [i for i in _ids_decoder.decode(member) if i in stored]
        rows = [(i if isinstance(i, bytes) else digest(i), stored.pop(i)) for i in ids]
        if rows:
            migration.segments.append(_legacy_segment(f"{version}.{k}".encode(), rows, score))
    if stored:  # fields no member lists (cannot happen unless written by hand): they expire with the first batch
        rest = [(k if isinstance(k, bytes) else digest(k), v) for k, v in stored.items()]
        migration.segments.append(_legacy_segment(f"{version}.{len(old)}".encode(), rest, -math.inf))
    for name, value, _score in migration.segments:
        index.add(name, as_keys(segment_digests(value)), segment_size(value)[1])
    return index, migration


def _legacy_segment(name: bytes, rows: list[tuple[bytes, bytes]], score: float) -> tuple[bytes, bytes, float]:
    holds = {k: v[:1] != b"\x94" and _pred_features.decode(v).features is not None for k, v in rows}
    rows.sort(key=lambda kv: not holds[kv[0]])  # those holding features first: rows 0..keep-1 (a 4-item array has none)
    keep = sum(holds.values())
    keys = b"".join(k for k, _v in rows)
    return name, encode_segment(keys, [v for _k, v in rows], keep), score


def read_joins(client: redis.Redis, keys: Keys, preds: dict[str, PredictionColumns],
               labels: dict[str, list[Label]], labels_waiting: dict[str, int], pending_max: int = 0,
               indexes: dict[str, tuple[PendingIndex, Migration | None]] | None = None,
               versions: dict[str, int] | None = None) -> dict[str, JoinReads]:
    """Everything ``plan_joins`` needs from Redis for this batch's event ids, given each model's index.

    One round trip, plus one in a batch where a model may go over ``pending_max`` (its oldest segments).
    ``labels_waiting`` is the size of each model's early-label hash: a prediction's id is looked up among
    waiting labels only when labels wait. A label's prediction is read by offset from its segment.
    """
    models = sorted(set(preds) | set(labels))
    indexes = indexes or {}
    out: dict[str, JoinReads] = {}
    reads = client.pipeline(transaction=False)
    asked: list[tuple[str, str]] = []
    asked_rows: dict[str, list[int]] = {}  # per model: the labels whose rows READ_ROWS returns, in order
    for m in models:
        r = out[m] = join_keys(preds.get(m), labels.get(m, []))
        r.index, r.migration = indexes.get(m, (PendingIndex(), None))
        r.name = str((versions or {}).get(m, 0) + 1).encode()
        if labels_waiting.get(m) and preds.get(m):
            reads.hmget(keys.pending_labels(m), r.pred_keys)
            asked.append((m, "labels"))
        if r.label_keys:
            r.label_locations = r.index.find(as_keys(b"".join(r.label_keys))).tolist()
            r.waiting_preds = [None] * len(r.label_keys)
            found = [(j, *r.index.locate(loc)) for j, loc in enumerate(r.label_locations) if loc >= 0]
            if r.migration is not None:  # segments this transaction writes: their rows are at hand
                rewritten = {name: segment_rows(value) for name, value, _score in r.migration.segments}
                for j, segment, row in found:
                    if segment.name in rewritten:
                        r.waiting_preds[j] = rewritten[segment.name][row]
                found = [f for f in found if f[1].name not in rewritten]
            if found:
                names = sorted({s.name for _j, s, _row in found})
                slot = {n: i + 1 for i, n in enumerate(names)}
                args = [x for _j, s, row in found for x in (slot[s.name], row)]
                # EVAL by name: a cluster pipeline's eval() is not the command
                asked_rows[m] = [j for j, _s, _row in found]
                reads.execute_command(  # type: ignore[no-untyped-call]
                    "EVAL", READ_ROWS, len(names), *[keys.pending_segment(m, n) for n in names], *args)
                asked.append((m, "preds"))
        reads.zrangebyscore(keys.pending_prediction_expiry(m), "-inf", r.watermark)
        reads.zrangebyscore(keys.pending_label_expiry(m), "-inf", r.watermark)
        asked += [(m, "expired_preds"), (m, "expired_labels")]
    for (m, what), reply in zip(asked, reads.execute(), strict=True):
        r = out[m]
        if what == "labels":
            r.waiting_labels = reply
        elif what == "preds":
            rows = iter(reply)
            for j in asked_rows[m]:
                r.waiting_preds[j] = next(rows) or None
        elif what == "expired_preds":
            r.expired_preds = reply
        else:
            r.expired_labels = reply
    # Whether a model goes over the cap depends on the joins; a bound that holds whatever they are decides
    # whether its oldest segments are read.
    over = [m for m, r in out.items() if pending_max and r.index.waiting + len(preds.get(m, ())) > pending_max]
    if over:
        pipe = client.pipeline(transaction=False)
        for m in over:
            # Segments already expiring this time sort first; skip them, they are dropped anyway.
            skip = len(out[m].expired_preds)
            pipe.zrange(keys.pending_prediction_expiry(m), skip, skip + 1023)
        for m, oldest in zip(over, pipe.execute(), strict=True):
            out[m].oldest = oldest
    return out


def plan_joins(reads: dict[str, JoinReads], preds: dict[str, PredictionColumns],
               labels: dict[str, list[Label]], pending_max: int = 0, samples_max: int = 0) -> JoinPlan:
    """Plan every join, expiry and eviction of a batch from what ``read_joins`` read (pure: no Redis; the
    indexes are read, not changed: ``JoinPlan.advance`` does that once the transaction succeeded).

    ``samples_max`` bounds the waiting predictions that hold their features (0: all do).
    """
    plan = JoinPlan()
    models = sorted(set(preds) | set(labels))
    for m in models:
        r = reads[m]
        index = plan.indexes[m] = r.index
        if r.migration is not None:
            plan.migrations[m] = r.migration
        plan.watermark[m] = r.watermark
        holders = index.holders
        model_preds = preds.get(m)
        batch_preds: dict[bytes, int] = {}  # digest -> row in model_preds (packed only if it waits)
        if r.waiting_labels and model_preds:
            for j, (key, stored_label) in enumerate(zip(r.pred_keys, r.waiting_labels, strict=True)):
                if stored_label is not None:
                    plan.join(m, model_preds.event_ids[j], _pending(model_preds, j, r.pred_times[j]),
                              decode_pending_label(stored_label))
                    plan.drop_labels[m].add(key)
                else:
                    batch_preds[key] = j
        else:
            batch_preds = dict(zip(r.pred_keys, range(len(r.pred_keys)), strict=True))
        joined: dict[bytes, set[int]] = defaultdict(set)  # segment -> rows joined by this batch
        locations = r.label_locations or [-1] * len(r.label_keys)
        stored_preds = r.waiting_preds or [None] * len(r.label_keys)
        for j, lab in enumerate(labels.get(m, ())):
            key = r.label_keys[j]
            label = PendingLabel(r.label_times[j], lab.label)
            loc, stored_pred = locations[j], stored_preds[j]
            if key in batch_preds and model_preds:
                k = batch_preds.pop(key)
                plan.join(m, lab.event_id, _pending(model_preds, k, r.pred_times[k]), label)
                continue
            if loc >= 0 and stored_pred is not None:
                segment, row = index.locate(loc)
                if row not in joined[segment.name]:
                    plan.join(m, lab.event_id, decode_pending_prediction(stored_pred), label)
                    joined[segment.name].add(row)
                    plan.joined[m].append(loc)
                    holders -= row < segment.keep
                    continue
            plan.add_labels[m][key] = encode_state(label)
        plan.drop_labels[m] |= {i for blob in r.expired_labels for i in _ids_decoder.decode(blob)}
        plan.drop_labels[m] -= set(plan.add_labels[m])
        before = waiting = index.waiting - len(plan.joined[m])  # waiting before expiry and eviction
        for name in r.expired_preds:
            n, freed = _leave(plan, m, name, joined, plan.expired)
            waiting -= n
            holders -= freed
        # Predictions expiring in this batch are not subtracted: a model over the cap while some of its
        # predictions expire may evict more than it needs to.
        projected = before + len(batch_preds)
        if pending_max and projected > pending_max:
            excess = projected - pending_max
            for name in r.oldest:
                if excess <= 0:
                    break
                if name in plan.dropped[m]:
                    continue
                plan.evicted_batches[m].append(name)
                n, freed = _leave(plan, m, name, joined, plan.evicted)
                excess -= n
                waiting -= n
                holders -= freed
        for name, rows in joined.items():  # every row joined: the segment goes now, not at its expiry
            emptied = index.segment(name)
            if emptied is not None and emptied.waiting == len(rows):
                plan.dropped[m].append(name)
                plan.emptied[m].append(name)
        gone = set(plan.dropped[m])
        plan.joined[m] = [loc for loc in plan.joined[m] if index.locate(loc)[0].name not in gone]
        plan.feature_holders[m] = holders
        if batch_preds and model_preds is not None:  # after expiry and eviction, which free feature slots
            plan.segment[m] = _waiting(plan, m, r.name, model_preds, r.pred_times, batch_preds, samples_max)
            waiting += len(batch_preds)
        plan.waiting[m] = waiting
    return plan


def _leave(plan: JoinPlan, model: str, name: bytes, joined: dict[bytes, set[int]],
           counts: dict[str, int]) -> tuple[int, int]:
    """Drops a segment (expired or evicted): counts in ``counts`` its rows that never got a label; returns how
    many those are and how many feature slots they held. Rows this batch joined (``joined``) are neither."""
    segment = plan.indexes[model].segment(name)
    plan.dropped[model].append(name)
    if segment is None:  # not indexed: nothing of it waits (its key goes all the same)
        return 0, 0
    mine = joined.pop(name, set())
    unjoined = segment.waiting - len(mine)
    counts[model] += unjoined
    return unjoined, segment.holders - sum(1 for row in mine if row < segment.keep)


def _pending(preds: PredictionColumns, j: int, timestamp: float) -> PendingPrediction:
    """Row ``j`` as a waiting prediction, with its features (a join of this batch: the sample needs them)."""
    return PendingPrediction(timestamp, preds.predictions[j], _score_slot(preds, j), preds.versions[j],
                             preds.feature_rows([j])[0])


def _score_slot(preds: PredictionColumns, j: int) -> float | dict[str, float] | None:
    # a multiclass model's per-class scores go in the score slot (a binary model's bytes do not grow)
    per_class = None if preds.class_scores is None else preds.class_scores[j]
    return preds.scores[j] if per_class is None else per_class


def _waiting(plan: JoinPlan, model: str, name: bytes, preds: PredictionColumns, times: list[float],
             batch_preds: dict[bytes, int], samples_max: int) -> NewSegment:
    """The predictions left waiting, as one segment: with their features while a slot is free (in arrival
    order), else without them.

    Without features a waiting prediction is packed as a plain 4-tuple, without a struct per row: the msgpack
    array of the array-like ``PendingPrediction`` less its trailing nil (``features``, a default when decoded), so
    one byte shorter; entries written as 5 items decode as before. The features become a mapping only for the
    rows that keep them."""
    holders = plan.feature_holders[model]
    keys = list(batch_preds)
    rows = list(batch_preds.values())
    keep = len(rows) if not samples_max else max(0, min(len(rows), samples_max - holders))
    plan.feature_holders[model] = holders + keep
    encode = _ids_encoder.encode
    every = len(rows) == len(preds)  # no row joined: the columns as they are, in order
    scores = preds.scores if preds.class_scores is None else [_score_slot(preds, j) for j in range(len(preds))]
    slots: Iterable[tuple[float, Any, Any, Any]]
    if every:
        slots = zip(times, preds.predictions, scores, preds.versions, strict=True)
    else:
        slots = ((times[j], preds.predictions[j], scores[j], preds.versions[j]) for j in rows)
    packed = list(map(encode, slots))
    if keep:  # a 5-tuple packs as the array-like PendingPrediction with its features
        for i, features in enumerate(preds.feature_records(rows[:keep])):
            j = rows[i]
            packed[i] = encode((times[j], preds.predictions[j], scores[j], preds.versions[j], features))
    joined_keys = b"".join(keys)
    return NewSegment(name, encode_segment(joined_keys, packed, keep), as_keys(joined_keys), keep)
