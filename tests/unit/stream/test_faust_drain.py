"""``faust_path.drain_messages`` hands fetched messages to the streams as Faust's own drain does.

Each scenario runs twice on a real (unstarted) Faust app, whose consumer is fed fetches by hand: once
through Faust's ``Consumer._drain_messages`` and once through ours. Both must leave the same events in
the same order in the stream's queue and the same read offsets; ours must skip ``wait_first`` whenever
the handler cannot wait, and use it (dropping the message when a rebalance starts) when it can.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import faust
import pytest
from aiokafka.structs import ConsumerRecord, TopicPartition
from faust.transport import conductor as faust_conductor
from faust.transport.consumer import Consumer
from faust.types import TP

from stream import faust_path

TP0, TP1 = TP("t", 0), TP("t", 1)
ORIGINAL_DRAIN = inspect.unwrap(Consumer._drain_messages)


def _record(tp: TP, offset: int) -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord(tp.topic, tp.partition, offset, 1_700_000_000_000, 0, b'"k"', b'"v%d"' % offset,
                          None, 1, 2, [("h", b"1")])


@dataclass
class Outcome:
    delivered: list[tuple[int, int]]  # (partition, offset) in queue order
    read_offsets: dict[TP, int | None]
    wait_first_calls: int
    end_offsets: dict[TP, int] = field(default_factory=dict)
    events: list[tuple[Any, ...]] = field(default_factory=list)  # what a stream sees of each
    paused: set[TP] = field(default_factory=set)  # partitions paused for a full buffer
    buffer_full: dict[TP, int] = field(default_factory=dict)  # the sensor's count
    active_after: set[tuple[type, TP]] = field(default_factory=set)  # fetched from, once the queue is read
    waits: list[float] = field(default_factory=list)  # the timeout of each request for records


async def _drive(ours: bool, fetches: list[dict[TP, list[int]]], maxsize: int = 1000,
                 during: Callable[[faust.App, Any], Awaitable[None]] | None = None, raw: bool = True) -> Outcome:
    """Run one drain over ``fetches`` (partition -> offsets), then stop it; ``during`` runs beside it.

    ``raw``: the topic of bytes with the raw codec the stream uses, else JSON values (Faust's handler)."""
    app = faust.App(f"drain-{time.monotonic_ns()}", broker="kafka://127.0.0.1:1", value_serializer="raw",
                    key_serializer="raw")
    if ours:
        faust_path.tune_app(app)
    topic = (app.topic("t", value_type=bytes, key_type=bytes) if raw
             else app.topic("t", key_type=bytes, value_serializer="json"))
    stream = app.stream(topic)
    await app.topics._update_indices()
    await app.topics.on_partitions_assigned({TP0, TP1})
    app.flow_control.resume()
    consumer = app.consumer
    stream.channel.queue._maxsize = maxsize
    fetcher = SimpleNamespace(_stopped=asyncio.Event())
    pending = list(fetches)

    waits: list[float] = []

    async def next_records(timeout: float) -> tuple[dict[TP, list[Any]], set[TP]]:
        waits.append(timeout)
        await asyncio.sleep(0)
        if not pending:
            fetcher._stopped.set()
            return {}, {TP0, TP1}
        # A real fetch names partitions with aiokafka's TopicPartition, not Faust's TP.
        return ({TopicPartition(tp.topic, tp.partition): [_record(tp, o) for o in offsets]
                 for tp, offsets in pending.pop(0).items()}, {TP0, TP1})

    calls = 0
    wait_first = consumer.wait_first

    async def counting_wait_first(*coros: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        return await wait_first(*coros, **kwargs)

    consumer._wait_next_records = next_records  # type: ignore[method-assign]
    consumer.highwater = lambda tp: 100 + tp.partition  # type: ignore[method-assign]
    consumer.wait_first = counting_wait_first  # type: ignore[method-assign]
    consumer._active_partitions = {TP0, TP1}  # what the started consumer's assignment would give
    app.sensors.add(app.monitor)  # as a started app has it
    drain = consumer._drain_messages(fetcher) if ours else ORIGINAL_DRAIN(consumer, fetcher)
    if during is None:
        await asyncio.wait_for(drain, 5)
    else:
        await asyncio.wait_for(asyncio.gather(drain, during(app, stream)), 5)
    queue = stream.channel.queue
    paused, buffer_full = set(consumer._buffered_partitions), dict(app.monitor.topic_buffer_full)
    delivered, events = [], []
    while not queue.empty():
        event = queue.get_nowait()
        message = event.message
        delivered.append((message.partition, message.offset))
        events.append((type(event), event.key, event.value, event.headers, message.refcount, message.acked))
    active_after = {(type(tp), tp) for tp in consumer._get_active_partitions()}
    return Outcome(delivered, dict(consumer._read_offset), calls, dict(app.monitor.tp_end_offsets), events,
                   paused, buffer_full, active_after, waits)


def _both(*args: Any, **kwargs: Any) -> tuple[Outcome, Outcome]:
    async def run() -> tuple[Outcome, Outcome]:
        return await _drive(False, *args, **kwargs), await _drive(True, *args, **kwargs)

    return asyncio.run(run())


@pytest.mark.parametrize("raw", [True, False], ids=["raw bytes, put inline", "json, Faust's handler"])
def test_messages_arrive_in_fausts_order_without_a_wait_first_each(raw: bool) -> None:
    fetches = [{TP0: [0, 1, 2], TP1: [0, 1]}, {TP0: [3], TP1: [2, 3, 4]}]
    faust_out, ours = _both(fetches, raw=raw)
    assert ours.delivered == faust_out.delivered  # the scheduler's round robin, kept
    assert ours.delivered[:5] == [(0, 0), (1, 0), (0, 1), (1, 1), (0, 2)]
    assert ours.events == faust_out.events  # same event type, key, value, headers, one reference each
    assert ours.events[0][1:5] == ((b'"k"', b'"v0"', {"h": b"1"}, 1) if raw else (b'"k"', "v0", {"h": b"1"}, 1))
    assert ours.read_offsets == faust_out.read_offsets == {TP0: 3, TP1: 4}
    assert ours.end_offsets == faust_out.end_offsets == {TP0: 100, TP1: 101}
    assert faust_out.wait_first_calls == 9 and ours.wait_first_calls == 0


def test_a_filling_queue_pauses_its_partition_as_fausts_handler_does() -> None:
    # maxsize 4: the fourth put (TP0's offset 2, after TP1's 0) finds 3 queued, the high-pressure mark
    # (4 / 1.25), and pauses TP0.
    faust_out, ours = _both([{TP0: [0, 1, 2], TP1: [0]}], maxsize=4)
    assert ours.paused == faust_out.paused == {TP0}
    assert ours.buffer_full == faust_out.buffer_full == {TP0: 1}
    assert ours.delivered == faust_out.delivered
    # Reading the queue resumed TP0, named with Faust's TP type (the consumer asserts it).
    assert ours.active_after == faust_out.active_after == {(TP, TP0), (TP, TP1)}


def test_a_paused_partition_is_asked_for_again_within_a_fetch_wait() -> None:
    # A partition paused for a full buffer is resumed only in the partition set of the next request for
    # records; Faust's requests wait a second on the idle partitions meanwhile, ours a fetch wait.
    faust_out, ours = _both([{TP0: [0, 1, 2], TP1: [0]}], maxsize=4)
    assert ours.paused == faust_out.paused == {TP0}
    assert faust_out.waits and set(faust_out.waits) == {1.0}
    assert len(ours.waits) == len(faust_out.waits)
    assert set(ours.waits) == {faust_path.RECHECK_S} and faust_path.RECHECK_S <= faust_path.FETCH_MAX_WAIT_MS / 1000


def test_messages_read_already_are_skipped_as_faust_skips_them() -> None:
    fetches = [{TP0: [0, 1, 2]}, {TP0: [1, 2, 3]}]  # a fetch that overlaps the last (after a seek)
    faust_out, ours = _both(fetches)
    # Faust skips what is below the last offset read, not the last offset itself: 2 comes twice (the
    # stream's Redis offsets make that harmless), and ours must not differ.
    assert ours.delivered == faust_out.delivered == [(0, 0), (0, 1), (0, 2), (0, 2), (0, 3)]
    assert ours.read_offsets == faust_out.read_offsets


def test_a_full_queue_goes_through_fausts_wait_and_loses_nothing() -> None:
    taken: list[list[tuple[int, int]]] = [[], []]

    def slow_reader(slot: int) -> Callable[[faust.App, Any], Awaitable[None]]:
        async def read(app: faust.App, stream: Any) -> None:
            while len(taken[slot]) < 6:
                await asyncio.sleep(0.01)
                message = (await stream.channel.queue.get()).message
                taken[slot].append((message.partition, message.offset))
        return read

    async def run() -> tuple[Outcome, Outcome]:
        fetches = [{TP0: [0, 1, 2, 3, 4, 5]}]
        return (await _drive(False, fetches, maxsize=2, during=slow_reader(0)),
                await _drive(True, fetches, maxsize=2, during=slow_reader(1)))

    faust_out, ours = asyncio.run(run())
    assert taken[0] == taken[1] == [(0, o) for o in range(6)]
    assert 1 <= ours.wait_first_calls < faust_out.wait_first_calls == 6


def test_a_rebalance_while_a_message_waits_drops_it_and_the_rest_of_the_fetch_as_faust_does() -> None:
    async def rebalance(app: faust.App, stream: Any) -> None:
        await asyncio.sleep(0.05)  # the drain now waits on a full queue with offset 1
        app.consumer.stop_flow()
        app.flow_control.suspend()
        app.consumer_generation_id += 1

    faust_out, ours = _both([{TP0: [0, 1, 2, 3]}], maxsize=1, during=rebalance)
    assert ours.delivered == faust_out.delivered == [(0, 0)]
    # Offset 1 counts as read (the seek to the committed offset resets it); 2 and 3 were never handed on.
    assert ours.read_offsets == faust_out.read_offsets == {TP0: 1}
    assert ours.wait_first_calls == 1


def test_an_app_that_is_not_tuned_keeps_fausts_drain() -> None:
    faust_path.install()
    assert getattr(Consumer._drain_messages, faust_path._PATCH_MARK, False)

    async def run() -> Outcome:
        return await _drive(False, [{TP0: [0, 1]}])

    assert asyncio.run(run()).wait_first_calls == 2  # the original, through the installed wrapper


def test_the_faust_internals_drain_messages_mirrors_are_unchanged() -> None:
    """drain_messages copies Faust's loop; when any of these change, re-read them and update it."""
    drain = inspect.getsource(ORIGINAL_DRAIN)
    for piece in ("getmany(timeout=1.0)", "await self.sleep(0)", "yield_every = 100",
                  "r_offset is None or offset >= r_offset", "gap > 1 and r_offset",
                  "await self._add_gap(tp, r_offset + 1, offset)", "self._n_acked >= commit_every",
                  "callback(message), self.suspend_flow.wait()", "set_read_offset(tp, offset)",
                  "except self.consumer_stopped_errors:", "unset_flag(flag_consumer_fetching)"):
        assert piece in drain, piece
    getmany = inspect.getsource(Consumer.getmany)
    for piece in ("await self._wait_next_records(timeout)", "generation_id = self.app.consumer_generation_id",
                  "self.scheduler.iterate(records)", "if not self.flow_active:",
                  "tp in active_partitions", "tp in self._buffered_partitions",
                  "track_tp_end_offset(tp, highwater_mark)", "yield tp, to_message(tp, record)"):
        assert piece in getmany, piece
    # A partition's handler (Python, or the Cython one Faust prefers when built) waits only on flow
    # control, the producer's buffer and a full queue, which handler_for checks; decoding raw bytes
    # does not wait.
    python_handler = inspect.getsource(faust_conductor.ConductorCompiler.build)
    assert _awaits(python_handler) == [
        "await acquire_flow_control()", "await wait_until_producer_ebb()",
        "event = await chan.decode(message, propagate=True)",
        "dest_event = await chan.decode(message, propagate=True)", "await asyncio.wait(",
        "await channel.on_key_decode_error(exc, message)", "await channel.on_value_decode_error(exc, message)"]
    if faust_conductor.ConductorHandler is not None:
        pyx = Path(inspect.getfile(faust_conductor.ConductorHandler)).with_name("conductor.pyx")
        assert _awaits(pyx.read_text()) == [
            "await self.acquire_flow_control()", "await self.wait_until_producer_ebb()",
            "event = await chan.decode(message, propagate=True)",
            "dest_event = await chan.decode(message, propagate=True)",
            "await wait([ensure_future(self._handle_full(event, chan, delivered))",
            "await channel.on_key_decode_error(exc, message)", "await channel.on_value_decode_error(exc, message)",
            "await chan.put(event)"]
        assert "if queue.full():" in pyx.read_text()
    assert "if self.size > self.max_messages:" in inspect.getsource(faust.transport.producer.ProducerBuffer)
    assert "self._tp_to_callback.update(" in inspect.getsource(faust_conductor.Conductor._update_callback_map)
    assert "async with self._tp_to_callback_lock:" in inspect.getsource(faust_conductor.Conductor._update_indices)
    assert "async def acquire" in inspect.getsource(type(faust.App("x").flow_control))


def _awaits(source: str) -> list[str]:
    return [line.strip() for line in source.splitlines() if "await " in line and not line.strip().startswith("#")]


def test_the_fetcher_calls_the_drain_through_the_consumer() -> None:
    from faust.transport.consumer import Fetcher

    assert "await consumer._drain_messages(self)" in inspect.getsource(Fetcher._fetcher.fun)
