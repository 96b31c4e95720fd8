"""Delayed labels: predictions wait for their label, and early labels for their prediction.

Pending items live in one Redis hash per model (event id -> packed item). Expiry is indexed per batch,
not per event: one sorted-set member per model and batch (the packed list of the ids it left pending)
scored by the batch's newest timestamp plus the TTL, so an item may outlive its TTL by the span of its
batch. Expiry is swept in event time (the newest timestamp in the batch), not wall time, so replaying
a topic gives the same joins and the same count of expired predictions.

At most ``stream.pending_max`` predictions wait per model: beyond it the oldest batches' entries are
evicted (counted apart from expiry), so a model whose labels never come cannot fill Redis.

Redis work per batch is a constant number of round trips and about two arguments per prediction (its
hash field and value); a prediction's id is looked up among waiting labels only when labels wait.

Hash fields and expiry members hold an 8-byte digest of the event id, not the id (64-bit: two ids of
one model's ~1M waiting events collide with probability ~3e-8). A waiting prediction keeps its
timestamp, prediction, score and version (~100 bytes of Redis with its field and expiry share), and
its features only if it may become one of the ``stream.samples_max`` samples retraining keeps: at most
``samples_max`` waiting predictions of a model hold features (counted in ``pending_prediction_features``,
written in the batch's transaction, so a replayed batch decides the same way). A slot is taken in
arrival order and freed when its prediction joins, expires or is evicted, so a model with fewer than
``samples_max`` waiting keeps every feature as before, and a busy one still refills the samples list.
"""

from __future__ import annotations

import hashlib
import math
from collections import defaultdict
from dataclasses import dataclass, field
from itertools import filterfalse, repeat
from typing import Any

import msgspec
import redis

from detectors.monitor import Outcome
from driftwarden.contract.events import Label
from driftwarden.contract.prediction_columns import PredictionColumns
from driftwarden.contract.storage import JoinedSample, encode_sample
from stream.decoding import epoch
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
class JoinReads:
    """What one model's joins of a batch need from Redis (``read_joins``); ``plan_joins`` decides from it."""

    pred_keys: list[bytes]  # digests of the batch's prediction ids, in order
    pred_times: list[float]
    label_keys: list[bytes]
    label_times: list[float]
    watermark: float  # the batch's newest event time: expiry is swept up to it
    waiting_labels: list[bytes | None] = field(default_factory=list)  # per prediction; empty: no label waits
    waiting_preds: list[bytes | None] = field(default_factory=list)  # per label
    expired_preds: list[bytes] = field(default_factory=list)  # expiry members at or below the watermark
    expired_labels: list[bytes] = field(default_factory=list)
    n_pending: int = 0  # predictions waiting before this batch
    holders: int = 0  # of them, those holding their features
    oldest: list[bytes] = field(default_factory=list)  # the oldest non-expiring batches (read when over the cap)
    stored: dict[bytes | str, bytes | None] = field(default_factory=dict)  # waiting predictions by id, as read


@dataclass
class JoinPlan:
    outcomes: dict[str, list[Outcome]] = field(default_factory=lambda: defaultdict(list))
    samples: dict[str, list[bytes]] = field(default_factory=lambda: defaultdict(list))
    delays: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    versions: dict[str, list[str | None]] = field(default_factory=lambda: defaultdict(list))
    expired: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    evicted: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    evicted_batches: dict[str, list[bytes]] = field(default_factory=lambda: defaultdict(list))
    watermark: dict[str, float] = field(default_factory=dict)
    feature_holders: dict[str, int] = field(default_factory=dict)  # waiting predictions holding features
    add_preds: dict[str, dict[bytes, bytes]] = field(default_factory=lambda: defaultdict(dict))
    add_labels: dict[str, dict[bytes, bytes]] = field(default_factory=lambda: defaultdict(dict))
    drop_preds: dict[str, set[bytes | str]] = field(default_factory=lambda: defaultdict(set))
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
        for m, watermark in self.watermark.items():
            # Entries at or below the watermark were swept by plan_joins: their ids are in drop_*.
            tx.zremrangebyscore(keys.pending_prediction_expiry(m), "-inf", watermark)
            tx.zremrangebyscore(keys.pending_label_expiry(m), "-inf", watermark)
        for m, members in self.evicted_batches.items():
            if members:
                tx.zrem(keys.pending_prediction_expiry(m), *members)
        for m, items in self.add_preds.items():
            if items:
                tx.hset(keys.pending_predictions(m), mapping=items)
                tx.zadd(keys.pending_prediction_expiry(m),
                        {_ids_encoder.encode(list(items)): self.watermark[m] + ttl_s})
        for m, items in self.add_labels.items():
            if items:
                tx.hset(keys.pending_labels(m), mapping=items)
                tx.zadd(keys.pending_label_expiry(m), {_ids_encoder.encode(list(items)): self.watermark[m] + ttl_s})
        for m, ids in self.drop_preds.items():
            if ids:
                tx.hdel(keys.pending_predictions(m), *ids)
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


def join_keys(preds: PredictionColumns | None, labels: list[Label]) -> JoinReads:
    """The digests, event times and watermark of one model's records in a batch; nothing read yet."""
    pred_times: list[float] = preds.timestamps.tolist() if preds else []
    label_times = [epoch(lab.timestamp) for lab in labels]
    return JoinReads(pred_keys=digests(preds.event_ids) if preds else [], pred_times=pred_times,
                     label_keys=digests([lab.event_id for lab in labels]), label_times=label_times,
                     watermark=max(max(pred_times, default=-math.inf), max(label_times, default=-math.inf)))


def read_joins(client: redis.Redis, keys: Keys, preds: dict[str, PredictionColumns],
               labels: dict[str, list[Label]], labels_waiting: dict[str, int],
               pending_max: int = 0) -> dict[str, JoinReads]:
    """Everything ``plan_joins`` needs from Redis for this batch's event ids.

    One round trip, plus one more in a batch where pending predictions expire or a model may go over
    ``pending_max`` (its oldest batches), plus one when it may evict (the evicted batches' predictions,
    to count those that never got their label). ``labels_waiting`` is the size of each model's early-label
    hash: a prediction's id is looked up among waiting labels only when labels wait.
    """
    models = sorted(set(preds) | set(labels))
    out = {m: join_keys(preds.get(m), labels.get(m, [])) for m in models}
    reads = client.pipeline(transaction=False)
    for m in models:
        r = out[m]
        if labels_waiting.get(m) and preds.get(m):
            reads.hmget(keys.pending_labels(m), r.pred_keys)
        else:
            # Keeps six replies per model, no ids sent when no label waits; a command on a key of the
            # model's slot, since a cluster pipeline routes every command by its key (ECHO has none).
            reads.hlen(keys.pending_labels(m))
        reads.hmget(keys.pending_predictions(m), r.label_keys or ["-"])
        reads.zrangebyscore(keys.pending_prediction_expiry(m), "-inf", r.watermark)
        reads.zrangebyscore(keys.pending_label_expiry(m), "-inf", r.watermark)
        reads.hlen(keys.pending_predictions(m))
        reads.get(keys.pending_prediction_features(m))
    raw = reads.execute()
    for i, m in enumerate(models):
        r = out[m]
        waiting_labels, waiting_preds, r.expired_preds, r.expired_labels, n_pending, holders = raw[6 * i: 6 * i + 6]
        r.waiting_labels = waiting_labels if isinstance(waiting_labels, list) else []
        r.waiting_preds = waiting_preds
        r.n_pending, r.holders = int(n_pending), int(holders or 0)
    # Whether a model goes over the cap depends on the joins; a bound that holds whatever they are decides
    # whether its oldest batches are read.
    over = {m: r.n_pending + len(preds.get(m, ())) - pending_max for m, r in out.items()
            if pending_max and r.n_pending + len(preds.get(m, ())) > pending_max}
    expiring = {m: [i for blob in r.expired_preds for i in _ids_decoder.decode(blob)] for m, r in out.items()}
    lookups = [(m, ids) for m, ids in expiring.items() if ids]
    if over or lookups:
        pipe = client.pipeline(transaction=False)
        for m in over:
            # Batches already expiring this time sort first; skip them, they are dropped anyway.
            skip = len(out[m].expired_preds)
            pipe.zrange(keys.pending_prediction_expiry(m), skip, skip + 1023)
        for m, ids in lookups:
            pipe.hmget(keys.pending_predictions(m), ids)
        found = iter(pipe.execute())
        for m in over:
            out[m].oldest = next(found)
        for m, ids in lookups:
            out[m].stored.update(zip(ids, next(found), strict=True))
    evict_lookups: list[tuple[str, list[bytes | str]]] = []
    for m, excess in over.items():
        # A label of this batch may have joined (and so dropped) some of these ids: read that many more.
        enough = excess + len(labels.get(m, ()))
        unread: list[bytes | str] = []
        seen = 0
        for member in out[m].oldest:
            if seen >= enough:
                break
            members = _ids_decoder.decode(member)
            seen += len(members)
            unread.extend(filterfalse(out[m].stored.__contains__, members))
        if unread:
            evict_lookups.append((m, unread))
    if evict_lookups:
        pipe = client.pipeline(transaction=False)
        for m, ids in evict_lookups:
            pipe.hmget(keys.pending_predictions(m), ids)
        for (m, ids), stored in zip(evict_lookups, pipe.execute(), strict=True):
            out[m].stored.update(zip(ids, stored, strict=True))
    return out


def plan_joins(reads: dict[str, JoinReads], preds: dict[str, PredictionColumns],
               labels: dict[str, list[Label]], pending_max: int = 0, samples_max: int = 0) -> JoinPlan:
    """Plan every join, expiry and eviction of a batch from what ``read_joins`` read (pure: no Redis).

    ``samples_max`` bounds the waiting predictions that hold their features (0: all do).
    """
    plan = JoinPlan()
    models = sorted(set(preds) | set(labels))
    expiring: dict[str, list[bytes | str]] = {}
    waiting: dict[str, dict[bytes, int]] = {}  # this batch's predictions left waiting
    over: dict[str, tuple[int, int]] = {}  # model -> (excess, batches already expiring)
    for m in models:
        r = reads[m]
        plan.watermark[m] = r.watermark
        plan.feature_holders[m] = r.holders
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
        for j, (lab, stored_pred) in enumerate(zip(labels.get(m, ()), r.waiting_preds, strict=False)):
            key = r.label_keys[j]
            label = PendingLabel(r.label_times[j], lab.label)
            if key in batch_preds and model_preds:
                k = batch_preds.pop(key)
                plan.join(m, lab.event_id, _pending(model_preds, k, r.pred_times[k]), label)
            elif stored_pred is not None and key not in plan.drop_preds[m]:
                joined = decode_pending_prediction(stored_pred)
                plan.join(m, lab.event_id, joined, label)
                plan.drop_preds[m].add(key)
                if joined.features is not None:
                    plan.feature_holders[m] -= 1
            else:
                plan.add_labels[m][key] = encode_state(label)
        waiting[m] = batch_preds
        candidates = [i for blob in r.expired_preds for i in _ids_decoder.decode(blob)]
        if candidates:
            expiring[m] = [i for i in candidates if i not in plan.drop_preds[m]]
        plan.drop_labels[m] |= {i for blob in r.expired_labels for i in _ids_decoder.decode(blob)}
        plan.drop_labels[m] -= set(plan.add_labels[m])
        # Predictions expiring in this batch are not subtracted (they are found below): a model over the
        # cap while some of its predictions expire may evict more than it needs to.
        projected = r.n_pending + len(batch_preds) - len(plan.drop_preds[m])
        if pending_max and projected > pending_max:
            over[m] = (projected - pending_max, len(r.expired_preds))
    evicting = _oldest_batches(reads, plan, over)
    _count_expired(reads, plan, expiring, evicting)
    for m, batch_preds in waiting.items():  # after expiry and eviction, which free feature slots
        plan.add_preds[m] = _waiting(plan, m, preds.get(m), reads[m].pred_times, batch_preds, samples_max)
    return plan


def _pending(preds: PredictionColumns, j: int, timestamp: float) -> PendingPrediction:
    """Row ``j`` as a waiting prediction, with its features (a join of this batch: the sample needs them)."""
    return PendingPrediction(timestamp, preds.predictions[j], _score_slot(preds, j), preds.versions[j],
                             preds.feature_rows([j])[0])


def _score_slot(preds: PredictionColumns, j: int) -> float | dict[str, float] | None:
    # a multiclass model's per-class scores go in the score slot (a binary model's bytes do not grow)
    per_class = None if preds.class_scores is None else preds.class_scores[j]
    return preds.scores[j] if per_class is None else per_class


def _waiting(plan: JoinPlan, model: str, preds: PredictionColumns | None, times: list[float],
             batch_preds: dict[bytes, int], samples_max: int) -> dict[bytes, bytes]:
    """The predictions left waiting, packed: with their features while a slot is free (in arrival order), else
    without them.

    Without features a waiting prediction is packed as a plain 4-tuple, without a struct per row: the msgpack
    array of the array-like ``PendingPrediction`` less its trailing nil (``features``, a default when decoded), so
    one byte shorter; entries written as 5 items decode as before. The features become a mapping only for the
    rows that keep them."""
    if not batch_preds or preds is None:
        return {}
    holders = plan.feature_holders[model]
    keys = list(batch_preds)
    rows = list(batch_preds.values())
    keep = len(rows) if not samples_max else max(0, min(len(rows), samples_max - holders))
    plan.feature_holders[model] = holders + keep
    encode = _ids_encoder.encode
    every = len(rows) == len(preds)  # no row joined: the columns as they are, in order
    scores = preds.scores if preds.class_scores is None else [_score_slot(preds, j) for j in range(len(preds))]
    if every:
        slots = zip(times, preds.predictions, scores, preds.versions, strict=True)
    else:
        slots = ((times[j], preds.predictions[j], scores[j], preds.versions[j]) for j in rows)
    packed = list(map(encode, slots))
    if keep:  # a 5-tuple packs as the array-like PendingPrediction with its features
        for i, features in enumerate(preds.feature_records(rows[:keep])):
            j = rows[i]
            packed[i] = encode((times[j], preds.predictions[j], scores[j], preds.versions[j], features))
    return dict(zip(keys, packed, strict=True))


def _oldest_batches(reads: dict[str, JoinReads], plan: JoinPlan,
                    over: dict[str, tuple[int, int]]) -> dict[str, list[bytes | str]]:
    """For each model over the cap, the ids of its oldest pending batches that make up the excess."""
    evicting: dict[str, list[bytes | str]] = {}
    for m, (excess, _expiring) in over.items():
        ids: list[bytes | str] = []
        for member in reads[m].oldest:
            if len(ids) >= excess:
                break
            plan.evicted_batches[m].append(member)
            ids.extend(i for i in _ids_decoder.decode(member) if i not in plan.drop_preds[m])
        evicting[m] = ids
    return evicting


def _count_expired(reads: dict[str, JoinReads], plan: JoinPlan, expiring: dict[str, list[bytes | str]],
                   evicting: dict[str, list[bytes | str]]) -> None:
    """Of the predictions whose expiry passed or that are evicted, those still pending never got a
    label: drop them and count them (expired and evicted apart)."""
    lookups = [(m, ids, plan.expired) for m, ids in expiring.items() if ids]
    lookups += [(m, ids, plan.evicted) for m, ids in evicting.items() if ids]
    for m, ids, counts in lookups:
        stored = reads[m].stored
        dropped = plan.drop_preds[m]
        # C-level passes over what may be a whole batch of ids: those still stored and not dropped yet
        found = dict(zip(ids, map(stored.get, ids), strict=True))
        values: dict[bytes | str, bytes] = (  # a None: joined before, no longer stored
            {i: value for i, value in found.items() if value is not None} if None in found.values()
            else found)  # type: ignore[assignment]
        for i in dropped.intersection(values):
            del values[i]
        counts[m] += len(values)
        dropped.update(values)
        plan.feature_holders[m] -= _holding_features(list(values.values()))


def _holding_features(values: list[bytes]) -> int:
    """How many stored waiting predictions hold their features. A 4-item array (0x94, how ``_waiting`` packs one
    without them) cannot: only the others are decoded, so an eviction does not decode every evicted entry."""
    plain = sum(map(bytes.startswith, values, repeat(b"\x94")))
    if plain == len(values):
        return 0
    return sum(1 for v in values if v[:1] != b"\x94" and _pred_features.decode(v).features is not None)
