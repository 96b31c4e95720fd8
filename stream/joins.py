"""Delayed labels: predictions wait for their label, and early labels for their prediction.

Pending items live in one Redis hash per model (event id -> packed item) with a sorted set of expiry
times beside it. Expiry is swept in event time (the newest timestamp in the batch), not wall time, so
that replaying a topic gives the same joins and the same count of expired predictions.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import msgspec
import redis

from detectors.monitor import Outcome
from driftwarden.events import Label, Prediction, to_epoch
from stream.state import (
    Keys,
    PendingLabel,
    PendingPrediction,
    decode_pending_label,
    decode_pending_prediction,
    encode_state,
)

_json = msgspec.json.Encoder()


@dataclass
class JoinPlan:
    outcomes: dict[str, list[Outcome]] = field(default_factory=lambda: defaultdict(list))
    samples: dict[str, list[bytes]] = field(default_factory=lambda: defaultdict(list))
    delays: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    versions: dict[str, list[str | None]] = field(default_factory=lambda: defaultdict(list))
    expired: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    add_preds: dict[str, dict[str, bytes]] = field(default_factory=lambda: defaultdict(dict))
    add_pred_expiry: dict[str, dict[str, float]] = field(default_factory=lambda: defaultdict(dict))
    add_labels: dict[str, dict[str, bytes]] = field(default_factory=lambda: defaultdict(dict))
    add_label_expiry: dict[str, dict[str, float]] = field(default_factory=lambda: defaultdict(dict))
    drop_preds: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    drop_labels: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))

    def join(self, model: str, event_id: str, pred: PendingPrediction, label: PendingLabel) -> None:
        self.outcomes[model].append(Outcome(label.timestamp, pred.prediction, label.label))
        self.delays[model].append(label.timestamp - pred.timestamp)
        self.versions[model].append(pred.version)
        self.samples[model].append(_json.encode({
            "event_id": event_id, "timestamp": pred.timestamp, "features": pred.features,
            "prediction": pred.prediction, "label": label.label, "model_version": pred.version,
        }))

    def write(self, tx: Any, keys: Keys, samples_max: int) -> None:
        """Queue this plan's writes on an open MULTI."""
        for m, items in self.add_preds.items():
            if items:
                tx.hset(keys.pending_predictions(m), mapping=items)
                tx.zadd(keys.pending_prediction_expiry(m), self.add_pred_expiry[m])
        for m, items in self.add_labels.items():
            if items:
                tx.hset(keys.pending_labels(m), mapping=items)
                tx.zadd(keys.pending_label_expiry(m), self.add_label_expiry[m])
        for m, ids in self.drop_preds.items():
            if ids:
                tx.hdel(keys.pending_predictions(m), *ids)
                tx.zrem(keys.pending_prediction_expiry(m), *ids)
        for m, ids in self.drop_labels.items():
            if ids:
                tx.hdel(keys.pending_labels(m), *ids)
                tx.zrem(keys.pending_label_expiry(m), *ids)
        for m, samples in self.samples.items():
            if samples:
                tx.rpush(keys.samples(m), *samples)
                tx.ltrim(keys.samples(m), -samples_max, -1)
        for m, n in self.expired.items():
            if n:
                tx.hincrby(keys.counters(m), "expired_predictions", n)


def plan_joins(client: redis.Redis, keys: Keys, preds: dict[str, list[Prediction]],
               labels: dict[str, list[Label]], ttl_s: float) -> JoinPlan:
    """Read what is pending for this batch's event ids (one round trip) and plan every join."""
    plan = JoinPlan()
    models = sorted(set(preds) | set(labels))
    watermark = {m: max([to_epoch(e.timestamp) for e in (*preds.get(m, []), *labels.get(m, []))])
                 for m in models}
    reads = client.pipeline(transaction=False)
    for m in models:
        reads.hmget(keys.pending_labels(m), [p.event_id for p in preds.get(m, [])] or ["-"])
        reads.hmget(keys.pending_predictions(m), [lab.event_id for lab in labels.get(m, [])] or ["-"])
        reads.zrangebyscore(keys.pending_prediction_expiry(m), "-inf", watermark[m])
        reads.zrangebyscore(keys.pending_label_expiry(m), "-inf", watermark[m])
    raw = reads.execute()
    for i, m in enumerate(models):
        waiting_labels, waiting_preds, expired_preds, expired_labels = raw[4 * i: 4 * i + 4]
        batch_preds: dict[str, PendingPrediction] = {}
        for p, stored_label in zip(preds.get(m, []), waiting_labels, strict=False):
            pending = PendingPrediction(to_epoch(p.timestamp), p.features, p.prediction, p.model_version)
            if stored_label is not None:
                plan.join(m, p.event_id, pending, decode_pending_label(stored_label))
                plan.drop_labels[m].add(p.event_id)
            else:
                batch_preds[p.event_id] = pending
        for lab, stored_pred in zip(labels.get(m, []), waiting_preds, strict=False):
            label = PendingLabel(to_epoch(lab.timestamp), lab.label)
            if lab.event_id in batch_preds:
                plan.join(m, lab.event_id, batch_preds.pop(lab.event_id), label)
            elif stored_pred is not None and lab.event_id not in plan.drop_preds[m]:
                plan.join(m, lab.event_id, decode_pending_prediction(stored_pred), label)
                plan.drop_preds[m].add(lab.event_id)
            else:
                plan.add_labels[m][lab.event_id] = encode_state(label)
                plan.add_label_expiry[m][lab.event_id] = label.timestamp + ttl_s
        for event_id, pending in batch_preds.items():
            plan.add_preds[m][event_id] = encode_state(pending)
            plan.add_pred_expiry[m][event_id] = pending.timestamp + ttl_s
        expired = {e.decode() for e in expired_preds} - plan.drop_preds[m]
        plan.expired[m] = len(expired)
        plan.drop_preds[m] |= expired
        plan.drop_labels[m] |= {e.decode() for e in expired_labels}
    return plan
