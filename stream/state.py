"""What the stream keeps in Redis (the keys: ``driftwarden.contract.storage``; see docs/architecture.md)."""

from __future__ import annotations

import msgspec

from driftwarden.contract.storage import (  # re-exported: the stream's modules import them from here
    Keys,
    Onboarding,
    ReferenceOrigin,
    decode_onboarding,
    decode_origin,
)
from stream.alerts import AlertBook

__all__ = ["Activity", "Keys", "ModelState", "Onboarding", "PendingLabel", "PendingPrediction", "ReferenceOrigin",
           "TrafficState", "VersionPerformance", "decode_activity", "decode_onboarding", "decode_origin",
           "decode_pending_label", "decode_pending_prediction", "decode_state", "encode_state"]


class VersionPerformance(msgspec.Struct):
    n: int = 0
    total: float = 0.0  # correct predictions (classification) or absolute error (regression)
    metric: str = ""  # accuracy | mae, fixed by the version's first joined label


class TrafficState(msgspec.Struct):
    """Prediction rate and label coverage of one model, in wall-clock buckets of ``monitor.silence_seconds``."""

    last_prediction_at: float = 0.0  # wall clock of the last applied prediction batch
    last_event_at: float = 0.0  # event time of the newest prediction
    partition: int = -1  # predictions partition the model's last batch came from
    bucket_start: float = 0.0
    bucket_predictions: int = 0
    bucket_joined: int = 0
    buckets: int = 0  # completed buckets
    usual_rate: float = 0.0  # predictions per second, exponentially weighted over completed buckets
    usual_coverage: float = 0.0  # joined labels per prediction, likewise
    last_rate: float | None = None
    last_coverage: float | None = None
    delays: list[float] = []  # the newest label delays (seconds), for p50/p95
    joined: int = 0  # predictions joined to their label, in all


class Activity(msgspec.Struct, array_like=True, frozen=True):
    """One model's entry in ``{p}:activity``: what the idle timer needs without reading the state."""

    last_prediction_at: float  # wall clock
    last_event_at: float  # event time of the newest prediction
    partition: int  # of the predictions topic
    window_start: float | None  # event time the open window started; None: no window open
    silent: bool  # a silence alert is firing


class ModelState(msgspec.Struct):
    """One model's whole stream state; written with the partition offsets in one transaction."""

    monitor: bytes
    version: str | None = None
    observations: int = 0
    windows_closed: int = 0
    outcomes: int = 0
    alerts: AlertBook = msgspec.field(default_factory=AlertBook)
    performance: dict[str, VersionPerformance] = {}
    reference_version: str | None = None
    reference_origin: ReferenceOrigin | None = None  # None: the first N predictions
    traffic: TrafficState = msgspec.field(default_factory=TrafficState)


class PendingPrediction(msgspec.Struct, array_like=True, omit_defaults=True):
    """What a prediction waiting for its label keeps: the join needs the first four; the features only
    while the prediction holds one of the model's ``samples_max`` slots (``stream.joins``)."""

    timestamp: float
    prediction: float | str
    score: float | dict[str, float] | None  # a multiclass model's per-class scores in the same slot (no extra byte)
    version: str | None
    features: dict[str, float | str | bool | None] | None = None


class PendingLabel(msgspec.Struct, array_like=True):
    timestamp: float
    label: int | float | str | bool  # the contract's LabelValue: an int stays an int in Redis


_state_encoder = msgspec.msgpack.Encoder()
_state_decoder = msgspec.msgpack.Decoder(ModelState)
_activity_decoder = msgspec.msgpack.Decoder(Activity)
_pred_decoder = msgspec.msgpack.Decoder(PendingPrediction)
_label_decoder = msgspec.msgpack.Decoder(PendingLabel)


def encode_state(state: msgspec.Struct) -> bytes:
    return _state_encoder.encode(state)


def decode_state(data: bytes) -> ModelState:
    return _state_decoder.decode(data)


def decode_activity(data: bytes) -> Activity:
    return _activity_decoder.decode(data)


def decode_pending_prediction(data: bytes) -> PendingPrediction:
    return _pred_decoder.decode(data)


def decode_pending_label(data: bytes) -> PendingLabel:
    return _label_decoder.decode(data)
