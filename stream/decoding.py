"""Consumed records to contract events: a bad record becomes a value carrying its reason, never a raise."""

from __future__ import annotations

import base64
from collections import Counter
from collections.abc import KeysView
from dataclasses import dataclass, field
from operator import attrgetter

import msgspec

from driftwarden.contract.columnar import decode_message, decode_prediction_columns
from driftwarden.contract.events import (
    ARROW_FORMAT,
    JSON_FORMAT,
    ContractError,
    DeadLetter,
    Label,
    Prediction,
    Timestamp,
    all_sound,
    encode,
    iso,
    to_epoch,
)
from driftwarden.contract.feature_schema import SchemaCache, schema_of_features
from driftwarden.contract.prediction_columns import PredictionColumns
from driftwarden.contract.settings import Settings
from stream.outbox import Outgoing
from stream.records import RawRecord

_model = attrgetter("model")
PAYLOAD_LIMIT = 10_000  # characters of a bad payload kept in its dead letter
_schemas = SchemaCache()  # per Kafka key, the features its JSON predictions last had
# A JSON message of this many rows of one schema becomes columns as it is decoded, while its rows are in the
# cache: its structs are dropped at once (freeing them after a batch of 100k rows cost 0.75 us/event); fewer rows
# (single events) stay structs until the batch's rows of a model become columns together (``step.route``).
COLUMNS_FROM = 50


@dataclass
class Decoded:
    """One record's events: predictions as structs or as columns (one batch per model), never both.

    Arrow messages, and JSON arrays of ``COLUMNS_FROM`` rows or more that fit the features their key last sent
    (``driftwarden.contract.feature_schema``), are columns. Other JSON predictions are structs with the contract's
    fields, whose ``features`` are a mapping or a schema's struct."""

    record: RawRecord
    predictions: list[Prediction] = field(default_factory=list)
    labels: list[Label] = field(default_factory=list)
    error: ContractError | None = None
    columns: list[PredictionColumns] = field(default_factory=list)
    _counts: dict[str, int] | None = field(default=None, repr=False, compare=False)

    def counts(self) -> dict[str, int]:
        """Model -> events of the record (predictions and labels), counted once (the batch asks ~5 times per
        record; a single prediction, the usual record of single-event traffic, skips the ``Counter``)."""
        if self._counts is None:
            if len(self.predictions) == 1 and not self.labels and not self.columns:
                self._counts = {self.predictions[0].model: 1}
            else:
                counts: Counter[str] = Counter({c.model: len(c) for c in self.columns})
                counts.update(map(_model, self.predictions))
                counts.update(map(_model, self.labels))
                self._counts = dict(counts)
        return self._counts

    def models(self) -> KeysView[str]:
        """The models of ``counts``: a view of its keys, not a set built per call (asked ~4 times per record)."""
        return self.counts().keys()

    def only(self, model: str) -> Decoded:
        """The view of this record that concerns ``model``."""
        return Decoded(self.record, [p for p in self.predictions if p.model == model],
                       [lab for lab in self.labels if lab.model == model], self.error,
                       [c for c in self.columns if c.model == model])


def decode_record(record: RawRecord, settings: Settings) -> Decoded:
    item = Decoded(record)
    topics = settings.kafka.topics
    try:
        if record.value is None:
            raise ContractError("empty_message", "the message has no value")
        limit = settings.stream.max_message_bytes
        if len(record.value) > limit:
            raise ContractError("oversize", f"{len(record.value)} bytes exceeds {limit}")
        if record.topic == topics.predictions and record.wire_format == ARROW_FORMAT:
            batch = decode_prediction_columns(record.value)
            item.columns = list(batch.split().values()) if len(batch) else []
        elif record.topic == topics.predictions and record.wire_format == JSON_FORMAT:
            preds = _json_predictions(record.key, record.value)
            if len(preds) >= COLUMNS_FROM and schema_of_features(preds[0].features) is not None:
                item.columns = _columns_by_model(preds)
            else:
                item.predictions = preds
        elif record.topic == topics.predictions:
            item.predictions = decode_message(Prediction, record.value, record.wire_format)
        elif record.topic == topics.labels:
            item.labels = decode_message(Label, record.value, record.wire_format)
        else:
            raise ContractError("unknown_topic", f"no handler for topic {record.topic}")
    except ContractError as exc:
        item.error = _undecodable(record.value) if exc.reason == "invalid_json" else exc
        if item.error is None:
            item.error = exc
    return item


def _json_predictions(key: bytes | None, value: bytes) -> list[Prediction]:
    """A JSON predictions message: decoded with a schema its key sent when it fits one and is sound, else the
    contract's way (which raises the reason of bad input) and its schema learned."""
    for schema in _schemas.get(key):  # a message that does not fit fails fast, at its first row as a rule
        try:
            items = schema.decode(value)
        except msgspec.DecodeError:
            continue
        if all_sound(items):
            return items
        break  # it fits, but is not sound: the contract's way says why
    preds = decode_message(Prediction, value, JSON_FORMAT)
    _schemas.learn(key, preds)
    return preds


def _columns_by_model(preds: list[Prediction]) -> list[PredictionColumns]:
    """One model's rows of a message as columns, per model, each in the message's order."""
    models = list(map(_model, preds))
    if models.count(models[0]) == len(models):
        return [PredictionColumns.from_events(models[0], preds)]
    groups: dict[str, list[Prediction]] = {}
    for model, pred in zip(models, preds, strict=True):
        groups.setdefault(model, []).append(pred)
    return [PredictionColumns.from_events(model, group) for model, group in groups.items()]


def _undecodable(value: bytes | None) -> ContractError | None:
    """Bytes that are not UTF-8 at all get their own reason: the producer is broken, not the JSON."""
    try:
        (value or b"").decode("utf-8")
    except UnicodeDecodeError as exc:
        return ContractError("undecodable", f"not UTF-8: {exc}")
    return None


def epoch(ts: Timestamp) -> float:
    """``to_epoch`` with a fast path for the common case, epoch seconds already (decoding checked it)."""
    return ts if type(ts) is float else to_epoch(ts)


def dead_letter(item: Decoded, topic: str, now: float) -> Outgoing:
    r = item.record
    assert item.error is not None
    if r.wire_format == JSON_FORMAT:
        payload = (r.value or b"")[:PAYLOAD_LIMIT].decode("utf-8", errors="replace")
    else:  # binary: kept exactly, as base64 of its first bytes
        payload = f"base64:{base64.b64encode((r.value or b'')[:PAYLOAD_LIMIT * 3 // 4]).decode()}"
    letter = DeadLetter(source_topic=r.topic, partition=r.partition, offset=r.offset,
                        key=r.key.decode("utf-8", errors="replace") if r.key is not None else None,
                        error=f"{item.error.reason}: {item.error.detail}"[:2000], payload=payload,
                        received_at=iso(now))
    return Outgoing(topic, r.key, encode(letter))
