"""What the stream keeps in Redis, and under which keys (see docs/architecture.md)."""

from __future__ import annotations

from dataclasses import dataclass

import msgspec

from stream.alerts import AlertBook


class VersionPerformance(msgspec.Struct):
    n: int = 0
    total: float = 0.0  # correct predictions (classification) or absolute error (regression)
    metric: str = ""  # accuracy | mae, fixed by the version's first joined label


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


class PendingPrediction(msgspec.Struct, array_like=True, omit_defaults=True):
    """What a prediction waiting for its label keeps: the join needs the first four; the features only
    while the prediction holds one of the model's ``samples_max`` slots (``stream.joins``)."""

    timestamp: float
    prediction: float | str
    score: float | None
    version: str | None
    features: dict[str, float | str | bool | None] | None = None


class PendingLabel(msgspec.Struct, array_like=True):
    timestamp: float
    label: float | str


_state_encoder = msgspec.msgpack.Encoder()
_state_decoder = msgspec.msgpack.Decoder(ModelState)
_pred_decoder = msgspec.msgpack.Decoder(PendingPrediction)
_label_decoder = msgspec.msgpack.Decoder(PendingLabel)


def encode_state(state: ModelState | PendingPrediction | PendingLabel) -> bytes:
    return _state_encoder.encode(state)


def decode_state(data: bytes) -> ModelState:
    return _state_decoder.decode(data)


def decode_pending_prediction(data: bytes) -> PendingPrediction:
    return _pred_decoder.decode(data)


def decode_pending_label(data: bytes) -> PendingLabel:
    return _label_decoder.decode(data)


@dataclass(frozen=True)
class Keys:
    prefix: str

    def state(self, model: str) -> str:
        return f"{self.prefix}:monitor:{model}"

    def offsets(self, topic: str) -> str:
        return f"{self.prefix}:offsets:{topic}"

    def state_version(self, model: str) -> str:
        return f"{self.prefix}:monitor-version:{model}"

    def fence(self, topic: str, partition: int) -> str:
        return f"{self.prefix}:fence:{topic}:{partition}"

    def pending_predictions(self, model: str) -> str:
        return f"{self.prefix}:pending:pred:{model}"

    def pending_prediction_expiry(self, model: str) -> str:
        return f"{self.prefix}:pending:pred-exp:{model}"

    def pending_prediction_features(self, model: str) -> str:
        return f"{self.prefix}:pending:pred-feat:{model}"

    def pending_labels(self, model: str) -> str:
        return f"{self.prefix}:pending:label:{model}"

    def pending_label_expiry(self, model: str) -> str:
        return f"{self.prefix}:pending:label-exp:{model}"

    def samples(self, model: str) -> str:
        return f"{self.prefix}:samples:{model}"

    def models(self) -> str:
        return f"{self.prefix}:models"

    def outbox(self, topic: str, partition: int) -> str:
        return f"{self.prefix}:outbox:{topic}:{partition}"

    def reference_switch(self, model: str) -> str:
        return f"{self.prefix}:switch:{model}"

    def reference(self, model: str, version: str) -> str:
        return f"{self.prefix}:reference:{model}:{version}"

    def counters(self, model: str) -> str:
        return f"{self.prefix}:counters:{model}"
