"""The Faust application: agents, web pages and the worker entry point.

One agent consumes ``predictions`` and ``labels`` together. Both are keyed by model name and have the
same partition count, so Faust's co-partitioning assignor gives one worker both partitions of a model
and a single Redis transaction covers the model's whole state. Batches run on one worker thread so the
event loop keeps heartbeating while Redis and the producer are busy.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import faust
import redis
from prometheus_client import CollectorRegistry, generate_latest

from driftwarden.contract.errors import ConfigError
from driftwarden.contract.events import ContractError, ModelUpdate, decode, wire_format
from driftwarden.contract.kafka import ensure_topics
from driftwarden.contract.settings import Settings, snapshot_key
from driftwarden.contract.storage import connect
from stream.credentials import broker_credentials
from stream.exceptions import StreamError
from stream.faust_path import (
    MIN_BUFFER_MESSAGES,
    app_settings,
    freeze_startup,
    gc_paused,
    take_batches,
    tune_app,
    use_uvloop,
)
from stream.metrics import build_metrics
from stream.outbox import flush_outbox, outbox_shards
from stream.processor import BatchProcessor
from stream.publisher import KafkaPublisher
from stream.records import RawRecord
from stream.state import Keys
from stream.status import model_status
from stream.watch import WatchPolicy

log = logging.getLogger(__name__)
EXIT_UNAPPLIED = 70  # stop without committing: the batch is replayed by whoever takes the partition


class StreamService:
    """Everything the agents share; built in ``setup()`` so that importing this module does no IO."""

    def __init__(self, settings: Settings, registry: CollectorRegistry | None = None) -> None:
        self.settings = settings
        self.metrics = build_metrics(registry)
        self.executor = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="batch")
        self.stopping = threading.Event()
        self.redis: redis.Redis | None = None
        self.keys = Keys(settings.redis.key_prefix, settings.redis.cluster)
        self.processor: BatchProcessor | None = None
        self.publisher: KafkaPublisher | None = None

    def setup(self) -> None:
        self.redis = connect(self.settings.redis.url, self.settings.redis.cluster, socket_timeout=10,
                             health_check_interval=30)
        self.publisher = KafkaPublisher(self.settings)
        self.processor = BatchProcessor(self.settings, self.redis, self.publisher, self.metrics)

    def process_until_applied(self, records: list[RawRecord]) -> None:
        """Apply a batch, retrying through Redis or broker outages; never drop it."""
        assert self.processor is not None
        delay = 0.2
        while True:
            try:
                with gc_paused():
                    self.processor.process(records)
                return
            except (redis.RedisError, OSError, Exception) as exc:  # noqa: BLE001 - retried, then fatal
                self.metrics.state_write_errors.inc()
                if self.stopping.is_set():
                    raise
                log.error("batch of %d records not applied (%s); retrying in %.1fs", len(records), exc, delay)
                time.sleep(delay)
                delay = min(delay * 2, 10.0)

    async def run_batch(self, records: list[RawRecord]) -> None:
        future = self.executor.submit(self.process_until_applied, records)
        try:
            await asyncio.wrap_future(future)
        except asyncio.CancelledError:
            # Faust acks a batch's events when the loop body ends, even on cancellation: make the ack
            # true by finishing the batch, or exit without committing so that it is replayed.
            self.stopping.set()
            try:
                future.result(timeout=30)
            except Exception:  # noqa: BLE001
                log.critical("stopping with an unapplied batch; exiting without commit")
                os._exit(EXIT_UNAPPLIED)
            raise
        except Exception:  # noqa: BLE001
            log.critical("batch failed permanently; exiting without commit")
            os._exit(EXIT_UNAPPLIED)

    def flush_outboxes(self, partitions: list[tuple[str, int]]) -> int:
        """Publish what a crash left in the outboxes of newly assigned partitions, without waiting for
        their next record (a quiet partition would otherwise hold its drift events back)."""
        if self.redis is None or self.publisher is None or not partitions:
            return 0
        try:
            return sum(flush_outbox(self.redis, keys, self.publisher, partitions)
                       for keys in outbox_shards(self.redis, self.keys, partitions))
        except (redis.RedisError, StreamError) as exc:  # the partition's next batch flushes it again
            log.warning("could not flush outboxes on assignment: %s", exc)
            return 0

    def record_lag(self, consumer: Any, records: list[RawRecord]) -> None:
        """Messages behind the high watermark, per partition of the batch just applied."""
        last: dict[tuple[str, int], int] = {}
        for r in records:
            last[(r.topic, r.partition)] = r.offset
        for (topic, partition), offset in last.items():
            try:
                highwater = consumer.highwater(faust.types.TP(topic, partition))
            except Exception:  # noqa: BLE001 - lag is best effort; the batch is already applied
                continue
            if highwater is not None:
                self.metrics.consumer_lag.labels(topic=topic, partition=str(partition)).set(
                    max(0, highwater - offset - 1))

    def tick(self, partitions: set[int]) -> None:
        """The idle timer's work (on the batch thread, so never beside a batch of this worker)."""
        if self.processor is None:
            return
        try:
            self.processor.tick(partitions)
        except (redis.RedisError, StreamError, OSError) as exc:  # the next tick tries again
            log.warning("idle timer: %s", exc)

    def switch_reference(self, update: ModelUpdate) -> None:
        """Mark a promoted version: the next batch of the model adopts its reference histograms."""
        assert self.redis is not None
        if update.promoted and update.version:
            self.redis.set(self.keys.reference_switch(update.model), update.version)

    def status(self) -> dict[str, Any]:
        assert self.redis is not None
        keys = self.keys
        models = sorted(m.decode() for m in self.redis.smembers(keys.all_models()))
        key = snapshot_key(self.settings)
        return {"models": {m: model_status(self.redis, keys, m, key, self.settings.monitor_for(m).reference_size)
                           for m in models},
                "generated_at": time.time()}


def timer_interval(settings: Settings) -> float | None:
    """Seconds between idle checks: a quarter of the shortest window or silence time, 0.5 s to 30 s;
    None when no model has either."""
    monitors = [settings.monitor, *(settings.monitor_for(m) for m in settings.models)]
    for ms in monitors:  # an invalid watch setting fails the worker's start, not every batch after it
        try:
            WatchPolicy.from_settings(ms)
        except ValueError as exc:
            raise ConfigError(str(exc)) from exc
    spans = [s for ms in monitors for s in (ms.window_seconds, ms.silence_seconds) if s is not None]
    return min(30.0, max(0.5, min(spans) / 4)) if spans else None


def _broker_urls(bootstrap: str) -> list[str]:
    return [f"kafka://{host.strip()}" for host in bootstrap.split(",") if host.strip()]


def data_dir(settings: Settings) -> Path:
    """Faust's working folder: configured, or per app id under the temp dir (never the current one)."""
    if settings.stream.data_dir:
        return Path(settings.stream.data_dir)
    return Path(tempfile.gettempdir()) / "driftwarden-stream" / settings.stream.app_id


def first_buffer_messages(settings: Settings) -> int:
    """The channel buffer's size in messages until ``take_batches`` has seen the traffic and fits it to
    ``stream.buffer_mib``: as many of the largest accepted messages as fit in it, so that a backlog does not
    queue thousands of big messages before the first batch is applied (4,096 JSON arrays of 100 events
    were ~170 MiB, the worker's peak). Faust's per-event fallback never refits: it keeps a fixed count."""
    stream = settings.stream
    if not stream.fast_batches:
        return max(4096, 2 * stream.batch_size)
    return max(MIN_BUFFER_MESSAGES, stream.buffer_mib * 2**20 // stream.max_message_bytes)


def create_app(settings: Settings, registry: CollectorRegistry | None = None) -> tuple[faust.App, StreamService]:
    service = StreamService(settings, registry)
    topics = settings.kafka.topics
    datadir = data_dir(settings)
    datadir.parent.mkdir(parents=True, exist_ok=True)  # Faust creates only the last level
    app = faust.App(
        settings.stream.app_id,
        broker=_broker_urls(settings.kafka.bootstrap_servers),
        store="memory://",
        value_serializer="raw",
        key_serializer="raw",
        topic_partitions=settings.kafka.partitions,
        consumer_auto_offset_reset="earliest",
        web_port=settings.stream.web_port,
        web_host=settings.stream.web_host,
        stream_buffer_maxsize=first_buffer_messages(settings),
        broker_commit_interval=settings.stream.commit_interval_s,
        broker_credentials=broker_credentials(settings.kafka.client_config),
        broker_session_timeout=settings.stream.session_timeout_s,
        broker_heartbeat_interval=max(0.5, settings.stream.session_timeout_s / 10),
        # Static membership: a restarted worker with the same id takes its partitions back at once.
        consumer_group_instance_id=settings.stream.group_instance_id or None,
        datadir=str(datadir),
        **app_settings(),
    )
    tune_app(app)
    inputs = app.topic(topics.predictions, topics.labels, value_type=bytes, key_type=bytes)
    updates = app.topic(topics.model_updates, value_type=bytes, key_type=bytes)

    @app.task
    async def on_start() -> None:
        await asyncio.get_running_loop().run_in_executor(None, service.setup)
        freeze_startup()

    @app.on_partitions_assigned.connect
    async def on_assigned(sender: Any, assigned: set[faust.types.TP], **_: Any) -> None:
        mine = sorted((tp.topic, tp.partition) for tp in assigned if tp.topic in (topics.predictions, topics.labels))
        await asyncio.get_running_loop().run_in_executor(service.executor, service.flush_outboxes, mine)

    @app.agent(inputs, concurrency=1)
    async def consume(stream: faust.StreamT) -> None:
        while service.processor is None:
            await asyncio.sleep(0.05)
        batches = (take_batches(stream, settings.stream.batch_size, settings.stream.batch_timeout_s,
                                settings.stream.buffer_mib * 2**20) if settings.stream.fast_batches
                   else stream.take_events(settings.stream.batch_size, within=settings.stream.batch_timeout_s))
        async for events in batches:
            records = [RawRecord(m.topic, m.partition, m.offset, m.key, m.value, m.timestamp, wire_format(m.headers))
                       for m in [e.message for e in events]]
            await service.run_batch(records)
            service.record_lag(app.consumer, records)

    interval = timer_interval(settings)
    if interval is not None:
        @app.timer(interval)
        async def idle_models() -> None:
            if service.processor is None:
                return
            try:  # best effort: the next tick tries again, and an error here must not stop the worker
                mine = {tp.partition for tp in app.consumer.assignment() if tp.topic == topics.predictions}
                if mine:
                    await asyncio.get_running_loop().run_in_executor(service.executor, service.tick, mine)
            except Exception:  # noqa: BLE001
                log.exception("idle timer tick failed")

    @app.agent(updates)
    async def model_updates(stream: faust.StreamT) -> None:
        async for value in stream:
            try:
                update = decode(ModelUpdate, value)
            except ContractError as exc:
                log.warning("ignoring an invalid model update: %s", exc)
                continue
            await asyncio.get_running_loop().run_in_executor(None, service.switch_reference, update)

    @app.page("/metrics")
    async def metrics(web: Any, request: Any) -> Any:
        return web.bytes(generate_latest(service.metrics.registry), content_type="text/plain; version=0.0.4")

    @app.page("/healthz")
    async def healthz(web: Any, request: Any) -> Any:
        ok = service.processor is not None
        return web.json({"ok": ok}, status=200 if ok else 503)

    @app.page("/status")
    async def status(web: Any, request: Any) -> Any:
        if service.redis is None:
            return web.json({"models": {}, "starting": True}, status=503)
        body = await asyncio.get_running_loop().run_in_executor(None, service.status)
        return web.json(body)

    return app, service


def run_worker(settings: Settings) -> None:
    """``driftwarden stream``: create missing topics, then run the Faust worker until SIGTERM."""
    ensure_topics(settings)
    use_uvloop()
    app, _service = create_app(settings)
    worker = faust.Worker(app, loglevel=settings.log_level.upper(),
                          override_logging=False)
    worker.execute_from_commandline()
