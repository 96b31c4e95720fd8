"""Our use of Faust's internals, all in one place (tested with the faust-streaming range pinned in
pyproject.toml; ``tests/unit/stream/test_faust_path.py`` and ``test_faust_drain.py`` fail loudly when an
internal used here changes).

Faust's per-message machinery, not driftwarden's code, bounds a worker fed single events (issue 12):

* ``take_batches`` takes whole batches from the channel queue. ``Stream.take_events`` runs every
  message through ``Stream.__aiter__`` (a ``sleep(0)``, processors, a ``wait_first`` on the buffer and
  about 100 us per message); here a batch is drained with ``get_nowait`` and acked in one pass, doing
  what ``__aiter__`` does per event (drop events of an old generation or taken while a rebalance stops
  the flow, track the message for commit, ack once applied) with one difference: a dropped event is
  not acked, so its offset cannot be committed before the partition's owner reads it again.
* ``fit_buffer`` sizes the channel buffer in bytes (``stream.buffer_mib``), about a second of
  traffic, instead of Faust's fixed message count: 4,096 single events pause the partition within a
  fraction of a second, while 4,096 arrays of 1,000 events would hold gigabytes.
* ``install`` lowers the consumer's fetch wait from the 1,500 ms Faust hard-codes to
  ``FETCH_MAX_WAIT_MS``: a long-poll of an idle partition otherwise delays the busy one.
* ``drain_messages`` replaces ``Consumer._drain_messages``, the loop that hands fetched messages to
  the conductor: it hands each to its partition's handler directly when that cannot block, instead of
  through ``wait_first(handler, suspend_flow.wait())`` (four tasks and an ``asyncio.wait`` per message).
  It also asks for records with a ``RECHECK_S`` wait, not Faust's second: a partition paused because
  its buffer filled is resumed only in the partition set of the next ``getmany``, and one that waits a
  second on the idle partitions left the batch thread without work a third of the time (a backlog of
  JSON arrays: 72k events/s with the second, 121-125k with 0.05-0.1 s, same run).
* ``use_uvloop`` and ``gc_paused``/``freeze_startup`` take the event loop's and the garbage
  collector's share off each message.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import logging
import math
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import faust
from faust.serializers.codecs import get_codec
from faust.transport.consumer import CONSUMER_FETCHING, Consumer
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread
from faust.types import TP
from faust.types.tuples import ConsumerMessage, ack_lock
from mode.utils.futures import notify
from mode.utils.queues import FlowControlQueue

log = logging.getLogger(__name__)

FETCH_MAX_WAIT_MS = 100  # Faust hard-codes 1,500
FETCH_MAX_BYTES = 4 * 2**20  # per partition and fetch (Faust: 1 MiB); 16 MiB cost ~70 MiB of RSS, no speed
MIN_BUFFER_MESSAGES = 64
MAX_BUFFER_MESSAGES = 65_536
# How long one getmany waits for records before the drain looks at the active partitions again (Faust: 1 s)
RECHECK_S = FETCH_MAX_WAIT_MS / 1000
YIELD_EVERY = 100  # messages handed over between two turns of the event loop (as Faust's drain)
_PATCH_MARK = "_driftwarden_fetch_wait"


def install() -> None:
    """Lower the worker consumer's fetch wait and replace its drain with ``drain_messages``
    (idempotent; only for apps marked by ``tune_app``, other apps in the process keep Faust's own)."""
    original = AIOKafkaConsumerThread._create_worker_consumer
    if getattr(original, _PATCH_MARK, False):
        return

    @functools.wraps(original)
    def _create_worker_consumer(self: Any, transport: Any) -> Any:
        consumer = original(self, transport)
        wait_ms = getattr(self.app, _PATCH_MARK, None)
        if wait_ms is not None:
            # Read by AIOKafkaConsumer.start() when it builds its Fetcher, which has not happened yet.
            consumer._fetch_max_wait_ms = wait_ms
        return consumer

    setattr(_create_worker_consumer, _PATCH_MARK, True)
    AIOKafkaConsumerThread._create_worker_consumer = _create_worker_consumer  # type: ignore[method-assign]

    original_drain = Consumer._drain_messages

    @functools.wraps(original_drain)
    async def _drain_messages(self: Any, fetcher: Any) -> None:
        if getattr(self.app, _PATCH_MARK, None) is None:
            await original_drain(self, fetcher)
        else:
            await drain_messages(self, fetcher)

    setattr(_drain_messages, _PATCH_MARK, True)
    Consumer._drain_messages = _drain_messages  # type: ignore[method-assign]


def tune_app(app: faust.App, fetch_max_wait_ms: int = FETCH_MAX_WAIT_MS) -> None:
    """Mark ``app`` for the short fetch wait and our drain (the patches leave other apps alone)."""
    install()
    setattr(app, _PATCH_MARK, fetch_max_wait_ms)


def app_settings() -> dict[str, Any]:
    """Faust settings of the consumer path, merged into ``faust.App(...)``."""
    return {"consumer_max_fetch_size": FETCH_MAX_BYTES}


def use_uvloop() -> bool:
    """Run the worker on uvloop when it is installed (it is a Linux/macOS dependency)."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - optional on other platforms
        return False
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return True


def freeze_startup() -> None:
    """Move everything alive after start-up out of the collector's reach: the worker's ~265k
    long-lived objects otherwise make every full collection cost milliseconds."""
    gc.collect()
    gc.freeze()


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """No collection while a batch is applied (a batch makes garbage in bulk, then drops it)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def fit_buffer(queue: FlowControlQueue[Any], buffer_bytes: int, mean_message_bytes: float) -> int:
    """Resize a channel queue to hold ``buffer_bytes`` of messages of the size seen so far.

    Faust pauses fetching a partition when the queue reaches ``pressure_high_size`` and resumes it at
    ``pressure_drop_size``; both are cached from the maxsize when first read, so they are set too.
    """
    size = int(min(MAX_BUFFER_MESSAGES, max(MIN_BUFFER_MESSAGES, buffer_bytes / max(mean_message_bytes, 1.0))))
    queue._maxsize = size  # type: ignore[attr-defined]
    queue.__dict__["pressure_high_size"] = math.floor(size / queue.pressure_high_ratio)
    queue.__dict__["pressure_drop_size"] = math.floor(size * queue.pressure_drop_ratio)
    return size


async def take_batches(stream: Any, max_events: int, within: float,
                       buffer_bytes: int = 0) -> AsyncIterator[list[Any]]:
    """Yield lists of up to ``max_events`` events (messages): what the channel holds, else what arrives
    within ``within`` seconds of the first. With ``buffer_bytes``, a batch also stops at a quarter of
    it: a thousand messages of a thousand events would otherwise be a million events in memory at once.

    What ``Stream.__aiter__`` does per event, done here per batch:

    * An event fetched before a rebalance (an old generation) or taken while flow is stopped (a
      rebalance or shutdown in progress) is dropped, checked when it is taken off the queue and again
      just before the batch is yielded. Faust acks such an event; here it is neither tracked nor acked,
      so its offset cannot be committed before it is applied: Faust seeks every partition back to its
      committed offset when flow resumes, so the partition's owner reads it again.
    * The events of a yielded batch are tracked (the rebalance's ``wait_empty`` waits for them) and
      acked when the caller asks for the next batch or ends the iteration, as ``take_events`` does: a
      caller that could not apply a batch must not end the iteration normally (the stream's agent
      exits the process without committing instead).
    * ``StopAsyncIteration`` thrown into the channel (``Actor.cancel`` on stop) ends the iteration.
    """
    app = stream.app
    started_by_aiter = await stream.maybe_start()
    channel = stream.channel
    queue = channel.queue  # the iterator clone the conductor feeds (``Stream.__init__`` got ``aiter(topic)``)
    consumer = app.consumer
    unacked = consumer.unacked
    acking_topics = app.topics.acking_topics
    on_message_in = stream._on_message_in
    on_message_out = stream._on_message_out
    flow_control = app.flow_control
    inbound_time = app.monitor.stream_inbound_time
    seen_bytes, seen_messages = 0, 0
    max_bytes = buffer_bytes // 4 if buffer_bytes else 0

    def current(event: Any) -> bool:
        return bool(flow_control.is_active() and event.message.generation_id == app.consumer_generation_id)

    try:
        while not stream.should_stop:
            batch: list[Any] = []  # faust Events
            size = 0
            deadline = 0.0  # set by the batch's first event: it waits at most ``within`` for company
            while len(batch) < max_events and not (max_bytes and size >= max_bytes):
                if queue._errors:
                    raise queue._errors.popleft()
                waiting = queue.qsize()
                if not waiting:
                    remaining = deadline - time.monotonic() if batch else within
                    if remaining <= 0:
                        break
                    try:
                        event = await asyncio.wait_for(queue.get(), timeout=remaining)
                    except TimeoutError:
                        if batch or stream.should_stop:
                            break
                        continue
                    if current(event):
                        deadline = deadline or time.monotonic() + within
                        batch.append(event)
                        size += len(event.message.value or b"")
                    continue
                # What the queue holds is taken without a turn of the event loop in between (each
                # ``get_nowait`` still wakes the conductor if it waits for room, and raises a thrown error).
                is_current = flow_control.is_active()
                generation = app.consumer_generation_id
                for _ in range(min(waiting, max_events - len(batch))):
                    event = queue.get_nowait()
                    if is_current and event.message.generation_id == generation:
                        batch.append(event)
                        size += len(event.message.value or b"")
                        if max_bytes and size >= max_bytes:
                            break
                if batch and not deadline:
                    deadline = time.monotonic() + within
            if not batch:
                continue
            # The last await may have let a rebalance start: what it made stale is not applied here.
            kept = [event for event in batch if current(event)]
            if len(kept) != len(batch):
                batch = kept
                size = sum(len(event.message.value or b"") for event in batch)
            if not batch:
                continue
            inbound = time.monotonic()
            for event in batch:
                message = event.message
                # Faust's liveness check reads this (set per event by the monitor sensor, which is skipped
                # here): without it every busy partition is logged as "has not started processing".
                inbound_time[message.tp] = inbound
                if message.topic in acking_topics and not message.tracked:
                    message.tracked = True
                    unacked.add(message)
                    on_message_in(message.tp, message.offset, message)
            seen_bytes += size
            seen_messages += len(batch)
            stream.events_total += len(batch)
            try:
                yield batch
            finally:
                _ack_all(batch, consumer, on_message_out)
            if buffer_bytes:
                fit_buffer(queue, buffer_bytes, seen_bytes / seen_messages)
    except StopAsyncIteration:
        return  # as Stream.__aiter__: the actor was told to stop reading
    finally:
        stream._channel_stop_iteration(channel)
        if started_by_aiter:
            await stream.stop()
            stream.service_reset()


class _Handover:
    """Hands a fetched message to its partition's streams without waiting, when nothing could wait.

    Faust's handler for a partition waits on flow control, on the producer's buffer and on a full
    queue; when none of these can happen it runs to its end without yielding, and ``handler`` returns
    it to be awaited directly. When the partition feeds a single channel that decodes to the message's
    own key and value (our raw-bytes topics), ``put`` does that handler's work inline: count the
    reference, build the event, put it with the same pressure callbacks (the partition is paused when
    its queue fills, resumed when it drains).
    """

    def __init__(self, app: Any, consumer: Any) -> None:
        conductor = app.topics
        self.app = app
        self.handlers = conductor._tp_to_callback
        self.channels_of = conductor._tp_index
        self.handlers_lock = conductor._tp_to_callback_lock
        self.flow_control = app.flow_control
        self.suspend_flow = consumer.suspend_flow
        self.producer_buffer = app.producer.buffer
        # Read once: ``ProducerBuffer.size`` and ``App.create_event`` look these up in the settings
        # on every call, a tenth of the event loop's time on single events.
        self.producer_threaded = bool(app.conf.producer_threaded)
        self.event_type = app.conf.Event
        self.raw = get_codec("raw")
        self.routes: dict[Any, tuple[Any, Any, Any, Any]] = {}
        self.on_topic_buffer_full = app.sensors.on_topic_buffer_full
        self.on_buffer_full = consumer.on_buffer_full
        self.on_buffer_drop = consumer.on_buffer_drop

    def can_wait(self, channels: Any) -> bool:
        return self._blocked() or any(channel.queue.full() for channel in channels)

    def _blocked(self) -> bool:
        """Flow stopped or stopping, handlers being rebuilt, or the producer's buffer over its limit."""
        if self.handlers_lock.locked() or not self.flow_control.is_active() or self.suspend_flow.is_set():
            return True
        buffer = self.producer_buffer
        if self.producer_threaded:
            queued = len(buffer.queue._queue) if buffer.queue else 0
        else:
            queued = len(buffer.pending._queue)
        return bool(queued > buffer.max_messages)

    def handler(self, tp: Any) -> Any:
        """The partition's handler when awaiting it cannot wait, else None."""
        return None if self.can_wait(self.channels_of.get(tp, ())) else self.handlers.get(tp)

    def put(self, tp: Any, message: Any) -> bool:
        """Deliver ``message`` as the handler would, if it has one raw channel and nothing could wait."""
        channels = self.channels_of.get(tp)
        route = self.routes.get(tp)
        if route is None or route[0] is not channels:  # first message, or a rebalance rebuilt the index
            route = self.routes[tp] = self._route(tp, channels)
        queue = route[1]
        if queue is None or queue.full() or self._blocked() or tp not in self.handlers:
            return False
        message.refcount += 1  # the handler's incref: one channel holds it
        event = self.event_type(self.app, message.key, message.value, message.headers, message)
        queue.put_nowait_enhanced(event, on_pressure_high=route[2], on_pressure_drop=route[3])
        return True

    def _route(self, fetched_tp: Any, channels: Any) -> tuple[Any, Any, Any, Any]:
        """(the partition's channel set, the queue ``put`` fills or None, its pressure callbacks)."""
        if not channels or len(channels) != 1:
            return channels, None, None, None
        (channel,) = channels
        if not self._decodes_to_itself(channel):
            return channels, None, None, None
        # A fetch names partitions with aiokafka's TopicPartition; the consumer's partition sets hold
        # Faust's TP (equal, but the consumer asserts the type).
        tp = TP(fetched_tp.topic, fetched_tp.partition)

        def on_pressure_high() -> None:
            self.on_topic_buffer_full(tp)
            self.on_buffer_full(tp)

        def on_pressure_drop() -> None:
            self.on_buffer_drop(tp)

        return channels, channel.queue, on_pressure_high, on_pressure_drop

    def _decodes_to_itself(self, channel: Any) -> bool:
        """A plain topic of bytes keys and values with the raw codec (or none): its schema's decode
        hands the message's key and value to the event unchanged."""
        if type(channel) is not faust.Topic or type(channel.schema) is not faust.Schema:
            return False
        schema, registry = channel.schema, self.app.serializers
        if schema.key_type is not bytes or schema.value_type is not bytes:
            return False
        key_codec = schema.key_serializer or registry.key_serializer
        value_codec = schema.value_serializer or registry.value_serializer or "raw"
        return all(codec is None or get_codec(codec) is self.raw for codec in (key_codec, value_codec))


async def drain_messages(consumer: Any, fetcher: Any) -> None:
    """``Consumer._drain_messages`` (with the ``getmany`` it iterates) for a tuned app.

    The same loop: messages in the scheduler's round-robin order, dropped when flow stops or the
    generation changes mid-fetch, read offsets and gaps tracked, a commit every ``broker_commit_every``
    acks. What differs: a message whose partition's handler cannot wait is handed over without
    yielding (``_Handover``), not through ``wait_first(handler, suspend_flow.wait())``; otherwise
    Faust's own ``wait_first``, which drops the message when a rebalance starts while it waits. The
    partition's end offset goes to the monitor once per fetch rather than once per message (a fetch
    holds one value).
    """
    app = consumer.app
    handover = _Handover(app, consumer)
    on_message = consumer.callback  # the conductor's handler of any partition, under its lock
    suspend_flow = consumer.suspend_flow
    read_offset = consumer._read_offset
    commit_every = consumer._commit_every
    acks_enabled_for = app.topics.acks_enabled_for
    to_message = consumer._to_message
    track_end_offset = app.monitor.track_tp_end_offset
    consumer_should_stop = consumer._stopped.is_set
    fetcher_should_stop = fetcher._stopped.is_set
    set_flag, unset_flag = consumer.diag.set_flag, consumer.diag.unset_flag
    since_yield = 0

    try:
        while not (consumer_should_stop() or fetcher_should_stop()):
            set_flag(CONSUMER_FETCHING)
            await consumer.sleep(0)  # as Faust: a fetch loop that never waits would starve the others
            if consumer.should_stop:
                continue
            records, active = await consumer._wait_next_records(RECHECK_S)
            generation = app.consumer_generation_id
            if records and not consumer.should_stop and consumer.flow_active:
                ended: set[Any] = set()
                for tp, record in consumer.scheduler.iterate(records):
                    if not consumer.flow_active or app.consumer_generation_id != generation:
                        break
                    if active is not None and tp not in active and tp not in consumer._buffered_partitions:
                        continue
                    if tp not in ended:
                        track_end_offset(tp, consumer.highwater(tp))
                        ended.add(tp)
                    message = to_message(tp, record)
                    since_yield += 1
                    if since_yield > YIELD_EVERY:
                        await asyncio.sleep(0)
                        since_yield = 0
                    offset = message.offset
                    r_offset = read_offset[tp]
                    if r_offset is not None and offset < r_offset:
                        continue  # read already (Faust logs it at its "dev" level)
                    if offset - (r_offset or 0) > 1 and r_offset and acks_enabled_for(message.topic):
                        await consumer._add_gap(tp, r_offset + 1, offset)
                    if commit_every is not None and consumer._n_acked >= commit_every:
                        consumer._n_acked = 0
                        await consumer.commit()
                    if not handover.put(tp, message):
                        handler = handover.handler(tp)
                        if handler is not None:
                            await handler(message)
                        else:
                            await consumer.wait_first(on_message(message), suspend_flow.wait())
                    read_offset[tp] = offset
            unset_flag(CONSUMER_FETCHING)
    except consumer.consumer_stopped_errors:
        if consumer.transport.app.should_stop:
            consumer.log.info("Broker stopped consumer, shutting down...")
            return
        raise
    except asyncio.CancelledError:
        if consumer.transport.app.should_stop:
            consumer.log.info("Consumer shutting down for user cancel.")
            return
        raise
    except Exception as exc:
        consumer.log.exception("Drain messages raised: %r", exc)
        raise
    finally:
        unset_flag(CONSUMER_FETCHING)


def _ack_all(events: list[Any], consumer: Any, on_message_out: Any) -> None:
    """``Stream.ack`` of each event, for a whole batch under one hold of Faust's ack lock.

    Faust's chain per event (``Event.ack`` -> ``Message.ack`` -> ``decref`` ->
    ``ConsumerMessage.on_final_ack`` -> ``Consumer.ack``, three re-entries of the lock and a settings
    lookup) was a sixth of the event loop's time on single events; its bookkeeping is done here inline,
    unchanged: the last reference's ack marks the offset committable once, unless it is below the
    committed offset or acked already, and wakes ``wait_empty``. The stream's per-event sensor call
    goes with it. A message or consumer of another type takes Faust's own path.
    """
    if type(consumer).ack is not Consumer.ack:
        with ack_lock:
            for event in events:
                message = event.message
                if message.ack(consumer):
                    on_message_out(message.tp, message.offset, message)
        return
    acks_enabled_for = consumer.app.topics.acks_enabled_for
    enabled: dict[str, bool] = {}
    committed_of, index_of, acked_of = consumer._committed_offset, consumer._acked_index, consumer._acked
    unacked = consumer._unacked_messages
    newly_acked = 0
    notify_waiter = False
    with ack_lock:
        try:
            for event in events:
                message = event.message
                if type(message) is not ConsumerMessage:
                    if message.ack(consumer):
                        on_message_out(message.tp, message.offset, message)
                    continue
                if message.acked:
                    continue
                message.refcount = max(message.refcount - 1, 0)
                if message.refcount:
                    continue  # another stream holds it
                message.acked = True
                topic = message.topic
                acking = enabled.get(topic)
                if acking is None:
                    acking = enabled[topic] = acks_enabled_for(topic)
                if not acking:
                    continue
                notify_waiter = True
                tp, offset = message.tp, message.offset
                committed = committed_of[tp]
                if committed is None or offset >= committed:
                    index = index_of[tp]
                    if offset not in index:
                        unacked.discard(message)
                        index.add(offset)
                        acked_of[tp].append(offset)
                        newly_acked += 1
                        on_message_out(tp, offset, message)
        finally:
            consumer._n_acked += newly_acked
            if notify_waiter:
                notify(consumer._waiting_for_ack)
