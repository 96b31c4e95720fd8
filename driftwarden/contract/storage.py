"""The Redis storage contract of the two workers: every key, the joined sample, the reference format.

The stream writes and the retrain worker, ``driftwarden onboard`` and ``/status`` read the same keys;
each is built here, never by hand elsewhere (docs/architecture.md has the table).

Layout. On one Redis node every key is ``<prefix>:<name>:...``, as it always was. On a Redis Cluster
(``redis.cluster``) a batch's transaction must stay in one hash slot, so the keys are grouped in
*shards*, each under a hash tag: one shard per model (``<prefix>:{m:<model>}:...``: its state, pending
joins, samples, counters, reference, retrain record, and the offsets, fences and outbox of the part of
each partition that concerns it) and one per source partition for records that name no model
(``<prefix>:{t:<topic>/<partition>}:...``: the dead letters). A one-node deployment is a single shard
with no tag, so its keys do not move. Only ``all_models`` is outside every shard.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from typing import Any

import msgspec
import redis
import redis.cluster

from detectors.monitor import MonitorConfig, build_reference
from driftwarden.contract.command_packer import command_packer

# -- the keys ----------------------------------------------------------------------------------------


def model_tag(model: str) -> str:
    """The hash tag of a model's shard. A name holding a brace would end the tag early (or make it empty,
    which hashes the whole key): such names are tagged by a digest instead."""
    if "{" in model or "}" in model:
        return "h:" + hashlib.blake2b(model.encode(), digest_size=10).hexdigest()
    return f"m:{model}"


def partition_tag(topic: str, partition: int) -> str:
    """The hash tag of a source partition's shard (records that name no model)."""
    return f"t:{topic}/{partition}" if "{" not in topic and "}" not in topic else \
        "h:" + hashlib.blake2b(f"{topic}/{partition}".encode(), digest_size=10).hexdigest()


@dataclass(frozen=True)
class Keys:
    """Every Redis key. ``Keys(prefix)`` addresses a one-node Redis; ``Keys(prefix, cluster=True)`` the
    cluster layout, where ``for_model``/``for_partition`` give a shard's keys (all in one slot) and the
    per-model methods of the unbound object route each model to its own shard."""

    prefix: str
    cluster: bool = False
    tag: str | None = None  # the shard these keys are bound to (cluster only)

    def __post_init__(self) -> None:
        if self.cluster and ("{" in self.prefix or "}" in self.prefix):
            raise ValueError(f"on a Redis Cluster, redis.key_prefix must not contain braces (hash tags): "
                             f"{self.prefix!r}")

    # -- shards
    def for_model(self, model: str) -> Keys:
        """The keys of ``model``'s shard: what a transaction touching the model may touch."""
        return replace(self, tag=model_tag(model)) if self.cluster else self

    def for_partition(self, topic: str, partition: int) -> Keys:
        """The keys of a source partition's shard (dead letters of records naming no model)."""
        return replace(self, tag=partition_tag(topic, partition)) if self.cluster else self

    def _shard(self, *parts: str) -> str:
        base = self.prefix if self.tag is None else f"{self.prefix}:{{{self.tag}}}"
        return ":".join([base, *parts])

    def _model(self, model: str, *parts: str) -> str:
        if not self.cluster:
            return ":".join([self.prefix, *parts])
        tag = model_tag(model)
        if self.tag is not None and self.tag != tag:
            raise ValueError(f"model {model!r} is not in shard {self.tag!r}")
        return ":".join([f"{self.prefix}:{{{tag}}}", *parts])

    # -- per model (always in the model's shard)
    def state(self, model: str) -> str:
        return self._model(model, "monitor", model)

    def state_version(self, model: str) -> str:
        return self._model(model, "monitor-version", model)

    def pending_predictions(self, model: str) -> str:
        """Waiting predictions as written before segments, one hash field each: read once, to rewrite them."""
        return self._model(model, "pending", "pred", model)

    def pending_segment(self, model: str, name: bytes | str) -> str:
        """One batch's waiting predictions (``driftwarden.contract.pending_segment``)."""
        return self._model(model, "pending", "seg", model, name.decode() if isinstance(name, bytes) else name)

    def pending_prediction_joined(self, model: str) -> str:
        return self._model(model, "pending", "pred-joined", model)

    def pending_prediction_count(self, model: str) -> str:
        return self._model(model, "pending", "pred-n", model)

    def pending_prediction_expiry(self, model: str) -> str:
        return self._model(model, "pending", "pred-exp", model)

    def pending_prediction_features(self, model: str) -> str:
        return self._model(model, "pending", "pred-feat", model)

    def pending_labels(self, model: str) -> str:
        return self._model(model, "pending", "label", model)

    def pending_label_expiry(self, model: str) -> str:
        return self._model(model, "pending", "label-exp", model)

    def samples(self, model: str) -> str:
        return self._model(model, "samples", model)

    def counters(self, model: str) -> str:
        return self._model(model, "counters", model)

    def reference_switch(self, model: str) -> str:
        return self._model(model, "switch", model)

    def reference(self, model: str, version: str) -> str:
        return self._model(model, "reference", model, version)

    def reference_origin(self, model: str, version: str) -> str:
        return self._model(model, "reference-origin", model, version)

    def onboarding(self, model: str) -> str:
        return self._model(model, "onboard", model)

    def retrain(self, model: str) -> str:
        return self._model(model, "retrain", model)

    # -- per shard (a one-node Redis is one shard)
    def offsets(self, topic: str) -> str:
        return self._shard("offsets", topic)

    def fence(self, topic: str, partition: int) -> str:
        return self._shard("fence", topic, str(partition))

    def outbox(self, topic: str, partition: int) -> str:
        return self._shard("outbox", topic, str(partition))

    def models(self) -> str:
        """The shard's models (onboarding off: the ones accepted), written in the batch's transaction."""
        return self._shard("models")

    def activity(self) -> str:
        return self._shard("activity")

    # -- outside every shard
    def all_models(self) -> str:
        """Every model seen. One node: the same set as ``models``; cluster: written after each transaction."""
        return f"{self.prefix}:models"


# -- the client ----------------------------------------------------------------------------------------


def connect(url: str, cluster: bool = False, **options: Any) -> redis.Redis:
    """A client for ``url``: a ``RedisCluster`` (any node's address; it discovers the others) when
    ``cluster``, else a one-node ``Redis``. Both take the same calls; a cluster transaction (WATCH,
    MULTI/EXEC in ``pipeline(transaction=True)``) must keep to one slot, which ``Keys`` shards ensure."""
    if cluster:
        options.pop("health_check_interval", None)  # not a cluster option
        return redis.cluster.RedisCluster.from_url(url, **options)  # type: ignore[return-value]
    packer = command_packer()
    if packer is not None:
        options.setdefault("command_packer", packer)  # big commands packed in one hiredis call
    return redis.Redis.from_url(url, **options)


# -- the values the sides exchange ----------------------------------------------------------------------


class JoinedSample(msgspec.Struct, frozen=True, kw_only=True):
    """One joined (prediction, label) pair in ``samples``: JSON, written by the stream (``stream.joins``),
    read oldest first by the retrain worker (``retrain_worker.dataset``)."""

    event_id: str
    timestamp: float  # the prediction's time, epoch seconds
    features: dict[str, float | str | bool | None]
    prediction: float | str | bool | None = None
    label: int | float | str | bool
    model_version: str | None = None


_sample_encoder = msgspec.json.Encoder()
_sample_decoder = msgspec.json.Decoder(JoinedSample)


def encode_sample(sample: JoinedSample) -> bytes:
    return _sample_encoder.encode(sample)


def decode_sample(data: bytes) -> JoinedSample:
    """Raises ``msgspec.DecodeError`` (a ``ValueError``) when ``data`` is not a joined sample."""
    return _sample_decoder.decode(data)


REFERENCE_FILENAME = "reference.bin"  # the run artifact holding the same bytes as ``reference``


def reference_bytes(rows: list[dict[str, Any]], config: MonitorConfig) -> bytes:
    """The one reference format under ``reference`` and ``onboard``: ``detectors.monitor.build_reference``
    bytes (histograms plus each field's noise calibration), which ``ModelMonitor.start_version`` adopts."""
    return bytes(build_reference(rows, config))


class ReferenceOrigin(msgspec.Struct, frozen=True):
    """Where a model's reference came from: a training file (``driftwarden onboard``), a version's
    training data (promotion, rollback) or, when the state has none, its first N predictions."""

    kind: str  # training_file | version_training
    version: str | None = None
    file: str | None = None  # the training file's name (no folder)
    sha256: str | None = None  # of the training file's bytes
    rows: int = 0
    at: float = 0.0  # when it was built (epoch seconds)


class Onboarding(msgspec.Struct, frozen=True):
    """A reference built from training data, waiting in ``onboarding`` for the model's next batch (or the
    idle timer) to adopt it."""

    reference: bytes  # reference_bytes of the training file, as they came
    origin: ReferenceOrigin


_onboarding_decoder = msgspec.msgpack.Decoder(Onboarding)
_origin_decoder = msgspec.msgpack.Decoder(ReferenceOrigin)
_encoder = msgspec.msgpack.Encoder()


def encode_onboarding(value: Onboarding | ReferenceOrigin) -> bytes:
    return _encoder.encode(value)


def decode_onboarding(data: bytes) -> Onboarding:
    return _onboarding_decoder.decode(data)


def decode_origin(data: bytes) -> ReferenceOrigin:
    return _origin_decoder.decode(data)


class _StateMonitor(msgspec.Struct):
    """The one field of a model's stream state (``stream.state.ModelState``, a msgpack map) that another side
    reads: onboarding checks the features the stream already sees. Other fields are ignored on decode."""

    monitor: bytes


_state_monitor_decoder = msgspec.msgpack.Decoder(_StateMonitor)


def state_monitor(blob: bytes) -> bytes:
    """The monitor snapshot inside a model's stream state, without the stream's own types."""
    return _state_monitor_decoder.decode(blob).monitor
