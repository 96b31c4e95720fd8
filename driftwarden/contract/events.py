"""The driftwarden event contract: one frozen, typed struct per message on every topic.

Producers, the stream, the retrain worker and on-call tooling all import this module; nothing passes
raw dicts across a topic. Decoding validates while it parses (msgspec), so a malformed message is a
``ContractError`` carrying a reason, never a half-built object. The human-readable version of this
contract is ``docs/events.md``; keep the two in step.
"""

from __future__ import annotations

import hashlib
import math
from datetime import UTC, datetime
from operator import attrgetter
from typing import Any, Literal, TypeVar

import msgspec

from detectors.task import class_name

Timestamp = str | float
FeatureValue = float | str | bool | None
# JSON ``1`` decodes as int, ``1.0`` as float, ``true`` as bool: the value, not its spelling, decides
# whether it is a class (``detectors.task``: an integer-valued number is one, 1.0 included).
LabelValue = int | float | str | bool

DriftKind = Literal["data_drift", "prediction_drift", "concept_drift", "data_quality", "performance"]
Severity = Literal["warning", "critical"]
AlertStatus = Literal["firing", "resolved"]

SCHEMA_VERSION = 1
SCORES_SUM_TOLERANCE = 0.01  # per-class scores rounded to two decimals still pass
# Kafka header naming a predictions/labels message's format; absent means JSON. ``arrow``: one Arrow IPC
# stream of the model's batch (``driftwarden.contract.columnar``).
FORMAT_HEADER = "driftwarden-format"
JSON_FORMAT = "json"
ARROW_FORMAT = "arrow"


class ContractError(ValueError):
    """A message does not satisfy the event contract; ``reason`` is a short machine-readable code."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class Prediction(msgspec.Struct, frozen=True, forbid_unknown_fields=False):
    """One prediction a model made (topic ``predictions``)."""

    event_id: str
    model: str
    timestamp: Timestamp
    features: dict[str, FeatureValue]
    prediction: float | str
    model_version: str | None = None
    score: float | None = None
    # a multiclass model's probability per class, e.g. ``dict(zip(model.classes_, model.predict_proba(x)[0]))``:
    # finite, in [0, 1], summing to 1 within ``SCORES_SUM_TOLERANCE``, the predicted class among them
    scores: dict[str, float] | None = None


class Label(msgspec.Struct, frozen=True):
    """The ground truth for an earlier prediction (topic ``labels``), joined by ``event_id``."""

    event_id: str
    model: str
    label: LabelValue
    timestamp: Timestamp


class WindowSpan(msgspec.Struct, frozen=True):
    """Which window an event is about: its index, event-time span and size (the monitor's open window itself is
    ``detectors.window.Window``)."""

    index: int
    start: float
    end: float
    n: int


class DriftEvent(msgspec.Struct, frozen=True):
    """A detection (topic ``drift-events``). ``drift_id`` is deterministic: replaying the same data
    yields the same id, so consumers deduplicate on it."""

    drift_id: str
    model: str
    model_version: str | None
    kind: DriftKind
    signal: str
    feature: str | None
    score: float
    threshold: float
    severity: Severity
    window: WindowSpan
    detected_at: float
    details: dict[str, Any] = {}


class PerformanceEstimate(msgspec.Struct, frozen=True, omit_defaults=True):
    """A window's performance estimated from its calibrated scores, before its labels (topic
    ``performance-estimates``, one per closed window of a model whose scores are calibrated). ``estimated`` holds
    accuracy, precision, recall, f1 and roc_auc (null where undefined, e.g. precision with nothing predicted
    positive); ``accuracy_drop`` is ``reference_accuracy - estimated["accuracy"]``. ``estimate_id`` is deterministic
    like ``drift_id``."""

    estimate_id: str
    model: str
    model_version: str | None
    window: WindowSpan
    n_scored: int  # rows with a usable score: the estimate's sample
    unscored: int
    estimated: dict[str, float | None]
    reference_accuracy: float  # realised on the reference's labelled predictions
    accuracy_drop: float
    calibration: str  # binned | isotonic (multiclass: mixed when the classes' methods differ)
    detected_at: float
    # a multiclass model (``Prediction.scores``): its classes and the window's expected confusion matrix (absent
    # from a binary model's record, so its wire form is what it was before multiclass),
    # ``confusion[predicted][label]`` in expected rows; the metrics are then macro averages over the classes
    classes: list[str] | None = None
    confusion: list[list[float]] | None = None


class AlertLabels(msgspec.Struct, frozen=True):
    alertname: str
    model: str
    kind: str
    feature: str
    severity: Severity


class AlertAnnotations(msgspec.Struct, frozen=True):
    summary: str
    description: str


class DriftAlert(msgspec.Struct, frozen=True):
    """Alertmanager-shaped alert for on-call tooling (topic ``drift-alerts``)."""

    status: AlertStatus
    labels: AlertLabels
    annotations: AlertAnnotations
    startsAt: str  # noqa: N815 - Alertmanager's field names
    endsAt: str  # noqa: N815
    fingerprint: str
    drift_id: str


class ModelUpdate(msgspec.Struct, frozen=True):
    """A retrain decision or a rollback (topic ``model-updates``)."""

    model: str
    version: str | None
    previous_version: str | None
    alias: str
    promoted: bool
    run_id: str | None
    drift_id: str | None
    metrics: dict[str, float]
    reason: str


class DeadLetter(msgspec.Struct, frozen=True):
    """An input that could not be processed (topic ``dead-letters``), with where it came from."""

    source_topic: str
    partition: int
    offset: int
    key: str | None
    error: str
    payload: str
    received_at: str


T = TypeVar("T", Prediction, Label)

_encoder = msgspec.json.Encoder()
_decoders: dict[type[Any], msgspec.json.Decoder[Any]] = {  # one object or an array of them
    Prediction: msgspec.json.Decoder(Prediction | list[Prediction]),
    Label: msgspec.json.Decoder(Label | list[Label]),
}
_single_decoders: dict[type[Any], msgspec.json.Decoder[Any]] = {
    t: msgspec.json.Decoder(t)
    for t in (DriftEvent, DriftAlert, PerformanceEstimate, ModelUpdate, DeadLetter, Prediction, Label)
}


def encode(message: msgspec.Struct | list[Any]) -> bytes:
    """JSON bytes of any contract struct (or a list of them, for batched producers)."""
    return _encoder.encode(message)


def decode(kind: type[Any], data: bytes) -> Any:
    """Decode one message of ``kind`` (a contract struct), raising ``ContractError`` when invalid."""
    try:
        return _single_decoders[kind].decode(data)
    except msgspec.DecodeError as exc:
        raise ContractError(_reason_of(exc), str(exc)) from exc


def decode_batch(kind: type[T], data: bytes) -> list[T]:
    """Decode a ``predictions`` or ``labels`` message: one object or a JSON array of objects.

    The whole message is rejected if any element is invalid: the producer sent it as one unit, and
    a partial apply would make the dead letter ambiguous.
    """
    try:
        value = _decoders[kind].decode(data)
    except msgspec.DecodeError as exc:
        raise ContractError(_reason_of(exc), str(exc)) from exc
    items: list[T] = value if isinstance(value, list) else [value]
    check_all(items)
    return items


def check_all(items: list[Prediction] | list[Label]) -> None:
    """``check_semantics`` of every item: column by column, then item by item only if something fails, so the
    first bad item in order raises its own error."""
    if not all_sound(items):
        for item in items:
            check_semantics(item)


def wire_format(headers: Any) -> str:
    """The format a message's Kafka headers name (a list of (key, value) pairs or a mapping)."""
    if not headers:
        return JSON_FORMAT
    pairs = headers.items() if hasattr(headers, "items") else headers
    for key, value in pairs:
        if key == FORMAT_HEADER:
            return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else str(value)
    return JSON_FORMAT


def _reason_of(exc: msgspec.DecodeError) -> str:
    text = str(exc)
    if isinstance(exc, msgspec.ValidationError):
        return "missing_field" if "missing required field" in text else "invalid_field"
    return "invalid_json"


def all_sound(items: list[Prediction] | list[Label]) -> bool:
    """``check_semantics`` of every item, column by column without a Python call per item where it can: False
    when some item would fail (the caller then finds which, in order, for the same error). An item may be any
    struct with the contract's fields (a prediction decoded against its features' schema)."""
    if "" in map(_event_id, items) or "" in map(_model, items):
        return False
    stamps = list(map(_timestamp, items))
    if set(map(type, stamps)) <= {float}:
        if not all(map(math.isfinite, stamps)):
            return False
    else:
        try:
            for ts in stamps:
                to_epoch(ts)
        except ContractError:
            return False
    if items and not isinstance(items[0], Label):
        try:
            for item in items:
                if item.scores is not None:
                    check_scores(item.scores, item.prediction)
        except ContractError:
            return False
    return True


_event_id = attrgetter("event_id")
_model = attrgetter("model")
_timestamp = attrgetter("timestamp")


def check_semantics(item: Prediction | Label) -> None:
    """The checks a type cannot express: non-empty ids and model, a valid timestamp."""
    if not item.event_id:
        raise ContractError("invalid_field", "event_id must not be empty")
    if not item.model:
        raise ContractError("invalid_field", "model must not be empty")
    to_epoch(item.timestamp)  # raises ContractError on a bad timestamp
    if isinstance(item, Prediction) and item.scores is not None:
        check_scores(item.scores, item.prediction)


def check_scores(scores: dict[str, float], prediction: object) -> None:
    """Per-class scores are probabilities of distinct classes that sum to 1 and include the predicted class."""
    if len(scores) < 2:
        raise ContractError("invalid_scores", f"scores need at least two classes, got {len(scores)}")
    names = [class_name(k) for k in scores]
    if any(not k for k in scores) or len(set(names)) != len(names):
        raise ContractError("invalid_scores", f"scores name a class twice or name an empty one: {list(scores)}")
    total = 0.0
    for key, value in scores.items():
        if not math.isfinite(value) or not 0.0 <= value <= 1.0:
            raise ContractError("invalid_scores", f"score of class {key!r} is {value!r}; expected 0 to 1")
        total += value
    if abs(total - 1.0) > SCORES_SUM_TOLERANCE:
        raise ContractError("invalid_scores", f"scores sum to {total:.6g}, not 1 (within {SCORES_SUM_TOLERANCE})")
    if class_name(prediction) not in names:
        raise ContractError("invalid_scores",
                            f"prediction {prediction!r} is not one of the scores' classes {list(scores)}")


def to_epoch(ts: Timestamp) -> float:
    """Epoch seconds from the contract's timestamp (ISO-8601 string or epoch seconds)."""
    if isinstance(ts, bool):
        raise ContractError("invalid_field", "timestamp must be ISO-8601 or epoch seconds, got a bool")
    if isinstance(ts, int | float):
        value = float(ts)
        if not math.isfinite(value):
            raise ContractError("invalid_field", f"timestamp is not finite: {ts!r}")
        return value
    try:
        parsed = datetime.fromisoformat(ts.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ContractError("invalid_field", f"timestamp is not ISO-8601: {ts!r}") from exc
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def iso(epoch: float) -> str:
    """RFC 3339 UTC string, the form Alertmanager and most dashboards expect."""
    return datetime.fromtimestamp(epoch, tz=UTC).isoformat().replace("+00:00", "Z")


def drift_id(model: str, model_version: str | None, kind: str, signal: str, feature: str | None,
             window_index: int) -> str:
    """Deterministic id of a detection: the same model, signal, feature and window give the same id."""
    raw = "|".join([model, model_version or "", kind, signal, feature or "", str(window_index)])
    return hashlib.sha256(raw.encode()).hexdigest()[:32]
