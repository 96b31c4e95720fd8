"""Producer SDK for teams that publish their model's predictions and labels to driftwarden.

    from driftwarden.sdk.producer import DriftwardenProducer

    with DriftwardenProducer(bootstrap_servers="kafka:9092") as dw:
        event_id = dw.log_prediction("churn", {"age": 41, "plan": "pro"}, 1, score=0.83)
        ...
        dw.log_label("churn", event_id, 0)   # later, when the truth is known

Every event is checked against the contract (``driftwarden.contract.events``) before it is buffered, so a bad
call fails in the caller's code, not as a dead letter minutes later. Events are batched per model into
JSON arrays (one Kafka message per batch, keyed by the model so a model's events stay in order in one
partition), or with ``wire_format="arrow"`` into one Arrow record batch per message, which the stream
decodes several times faster per event (``driftwarden.contract.columnar``; a batch whose columns mix types
falls back to JSON). A batch is sent when it is full, when its oldest event is ``linger_s`` old, on ``flush()``
and on exit (context manager or ``atexit``).
"""

from __future__ import annotations

import atexit
import functools
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import msgspec
from confluent_kafka import KafkaError, Message, Producer

from driftwarden.contract.columnar import encode_arrow
from driftwarden.contract.errors import DriftwardenError
from driftwarden.contract.events import (
    ARROW_FORMAT,
    FORMAT_HEADER,
    JSON_FORMAT,
    ContractError,
    Label,
    Prediction,
    check_semantics,
    decode_batch,
    encode,
)
from driftwarden.contract.kafka import make_producer
from driftwarden.contract.settings import Settings, load_settings


class ProducerClosedError(DriftwardenError):
    """An event was logged after ``close()``."""


@dataclass(frozen=True)
class DeliveryReport:
    """The outcome of one Kafka message, i.e. one batch of ``count`` events of ``model``."""

    topic: str
    model: str
    count: int
    error: str | None
    partition: int | None
    offset: int | None

    @property
    def ok(self) -> bool:
        return self.error is None


class _Batch:
    """Encoded events waiting to be sent as one JSON array."""

    __slots__ = ("events", "items", "nbytes", "started")

    def __init__(self, started: float) -> None:
        self.items: list[bytes] = []
        self.events: list[Prediction | Label] = []  # kept for the Arrow format only
        self.nbytes = 2  # the brackets
        self.started = started


class DriftwardenProducer:
    """Validates, batches and publishes prediction and label events.

    ``settings`` defaults to ``load_settings()`` (config file plus environment); ``bootstrap_servers``
    overrides its Kafka address. ``producer`` lets tests hand in a mock; ``background=False`` turns off
    the thread that sends lingering batches and serves delivery callbacks (call ``poll()`` instead).
    """

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        bootstrap_servers: str | None = None,
        max_batch_size: int = 500,
        max_batch_bytes: int = 900_000,
        linger_s: float = 0.5,
        on_delivery: Callable[[DeliveryReport], None] | None = None,
        producer_config: Mapping[str, Any] | None = None,
        producer: Producer | None = None,
        background: bool = True,
        clock: Callable[[], float] = time.monotonic,
        wire_format: str = JSON_FORMAT,
    ) -> None:
        if max_batch_size < 1:
            raise ValueError(f"max_batch_size must be >= 1, got {max_batch_size}")
        if max_batch_bytes < 64:
            raise ValueError(f"max_batch_bytes must be >= 64, got {max_batch_bytes}")
        if linger_s < 0:
            raise ValueError(f"linger_s must be >= 0, got {linger_s}")
        if wire_format not in (JSON_FORMAT, ARROW_FORMAT):
            raise ValueError(f"wire_format must be {JSON_FORMAT!r} or {ARROW_FORMAT!r}, got {wire_format!r}")
        settings = settings or load_settings()
        if bootstrap_servers:
            kafka = msgspec.structs.replace(settings.kafka, bootstrap_servers=bootstrap_servers)
            settings = msgspec.structs.replace(settings, kafka=kafka)
        self.settings = settings
        self.max_batch_size = max_batch_size
        self.max_batch_bytes = max_batch_bytes
        self.linger_s = linger_s
        self.on_delivery = on_delivery
        self.background = background
        self.wire_format = wire_format
        if producer is None:
            producer = make_producer(settings, **(producer_config or {}))
        self._producer = producer
        self._clock = clock
        # Re-entrant: a user delivery callback served inside poll() may log more events.
        self._lock = threading.RLock()
        self._batches: dict[tuple[str, str], _Batch] = {}
        self._delivered = 0
        self._failed = 0
        self._closed = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        atexit.register(self.close)

    # -- public API ------------------------------------------------------------------------------------

    def log_prediction(
        self,
        model: str,
        features: Mapping[str, Any],
        prediction: float | str,
        *,
        event_id: str | None = None,
        model_version: str | None = None,
        score: float | None = None,
        timestamp: float | str | datetime | None = None,
        scores: Mapping[Any, float] | None = None,
    ) -> str:
        """Buffer one prediction and return its ``event_id`` (generated when not given).

        ``score`` is a binary model's confidence in its positive class; a multiclass model sends ``scores``
        instead, one probability per class: ``dict(zip(model.classes_, model.predict_proba(X)[i]))`` (class
        names become strings; numpy numbers become floats)."""
        event_id = uuid.uuid4().hex if event_id is None else event_id
        event = Prediction(
            event_id=event_id,
            model=model,
            timestamp=_timestamp(timestamp),
            features={str(k): _plain(v) for k, v in features.items()},
            prediction=_plain(prediction),
            model_version=model_version,
            score=None if score is None else _plain(score),
            scores=None if scores is None else {str(_plain(k)): float(v) for k, v in scores.items()},
        )
        self._add(self.settings.kafka.topics.predictions, model, _validated(event), event)
        return event_id

    def log_label(
        self,
        model: str,
        event_id: str,
        label: float | str | bool,
        *,
        timestamp: float | str | datetime | None = None,
    ) -> None:
        """Buffer the ground truth of the prediction ``event_id`` of ``model``."""
        event = Label(event_id=event_id, model=model, label=_plain(label), timestamp=_timestamp(timestamp))
        self._add(self.settings.kafka.topics.labels, model, _validated(event), event)

    def poll(self, timeout: float = 0.0) -> None:
        """Send batches older than ``linger_s`` and serve delivery callbacks."""
        self._send_expired()
        self._producer.poll(timeout)

    def flush(self, timeout: float = 10.0) -> int:
        """Send every buffered batch and wait for delivery; return the messages still undelivered."""
        with self._lock:
            for key in list(self._batches):
                self._send(key)
        return int(self._producer.flush(timeout))

    def close(self, timeout: float = 10.0) -> int:
        """Flush and stop; later ``log_*`` calls raise. Safe to call more than once."""
        with self._lock:
            if self._closed:
                return 0
            self._closed = True
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5.0)
        atexit.unregister(self.close)
        return self.flush(timeout)

    def __enter__(self) -> DriftwardenProducer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def delivered(self) -> int:
        """Events the broker acknowledged."""
        return self._delivered

    @property
    def failed(self) -> int:
        """Events whose message failed for good (after librdkafka's retries)."""
        return self._failed

    @property
    def buffered(self) -> int:
        """Events waiting in local batches, not yet handed to Kafka."""
        with self._lock:
            return sum(len(b.items) for b in self._batches.values())

    # -- batching --------------------------------------------------------------------------------------

    def _add(self, topic: str, model: str, data: bytes, event: Prediction | Label) -> None:
        with self._lock:
            if self._closed:
                raise ProducerClosedError("log_* called after close()")
            key = (topic, model)
            batch = self._batches.get(key)
            # Keep a message under the broker's size limit: send what we have before it overflows.
            if batch is not None and batch.nbytes + len(data) + 1 > self.max_batch_bytes:
                self._send(key)
                batch = None
            if batch is None:
                batch = self._batches[key] = _Batch(self._clock())
            batch.items.append(data)
            if self.wire_format == ARROW_FORMAT:
                batch.events.append(event)
            batch.nbytes += len(data) + 1
            if len(batch.items) >= self.max_batch_size:
                self._send(key)
        if self.background:
            self._ensure_thread()
        else:
            self._send_expired()
        self._producer.poll(0)

    def _send_expired(self) -> None:
        now = self._clock()
        with self._lock:
            for key in [k for k, b in self._batches.items() if now - b.started >= self.linger_s]:
                self._send(key)

    def _send(self, key: tuple[str, str]) -> None:
        """Hand one batch to librdkafka (caller holds the lock)."""
        batch = self._batches.pop(key, None)
        if batch is None or not batch.items:
            return
        topic, model = key
        payload, headers = self._payload(batch)
        callback = functools.partial(self._delivery, topic, model, len(batch.items))
        deadline = time.monotonic() + 30.0
        while True:
            try:
                self._producer.produce(topic, value=payload, key=model.encode(), on_delivery=callback,
                                       headers=headers)
                return
            except BufferError:
                # librdkafka's local queue is full: let it drain, then retry; give up only if stuck.
                if time.monotonic() > deadline:
                    raise
                self._producer.poll(0.1)

    def _payload(self, batch: _Batch) -> tuple[bytes, list[tuple[str, str | bytes | None]] | None]:
        """The batch's message value and headers: an Arrow record batch, or a JSON array."""
        if batch.events:
            try:
                return encode_arrow(batch.events), [(FORMAT_HEADER, ARROW_FORMAT.encode())]  # type: ignore[arg-type]
            except ContractError:
                pass  # a column mixing numbers and strings: JSON carries it
        return b"[" + b",".join(batch.items) + b"]", None

    def _delivery(self, topic: str, model: str, count: int, err: KafkaError | None, msg: Message) -> None:
        with self._lock:
            if err is None:
                self._delivered += count
            else:
                self._failed += count
        if self.on_delivery is not None:
            self.on_delivery(DeliveryReport(
                topic=topic, model=model, count=count, error=None if err is None else str(err),
                partition=msg.partition() if err is None else None,
                offset=msg.offset() if err is None else None,
            ))

    def _ensure_thread(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            with self._lock:
                if self._thread is None or not self._thread.is_alive():
                    self._thread = threading.Thread(target=self._run, name="driftwarden-sdk", daemon=True)
                    self._thread.start()

    def _run(self) -> None:
        # Wake often enough that a batch waits about linger_s, not up to 2 * linger_s.
        interval = min(max(self.linger_s / 4, 0.01), 0.25)
        while not self._stop.wait(interval):
            self.poll(0)


def _validated(event: Prediction | Label) -> bytes:
    """The event's JSON, after the same decode and checks the stream applies (raises ContractError)."""
    check_semantics(event)  # before encoding, which would turn a NaN score into a less telling null
    try:
        data = encode(event)
    except (TypeError, msgspec.EncodeError) as exc:
        raise ContractError("invalid_field", f"not JSON-encodable: {exc}") from exc
    if isinstance(event, Prediction):
        decode_batch(Prediction, data)
    else:
        decode_batch(Label, data)
    return data


def _timestamp(value: float | str | datetime | None) -> float | str:
    if value is None:
        return time.time()
    if isinstance(value, datetime):
        return value.isoformat()
    plain: float | str = _plain(value)  # checked by the contract decode
    return plain


def _plain(value: Any) -> Any:
    """numpy and pandas scalars to Python ones, so callers can pass what their model returned."""
    # Exact types: msgspec refuses subclasses such as numpy.float64, which ``.item()`` turns into float.
    if value is None or type(value) in (bool, int, float, str):
        return value
    item = getattr(value, "item", None)
    if callable(item):
        return item()
    return value  # left to the contract check to reject
