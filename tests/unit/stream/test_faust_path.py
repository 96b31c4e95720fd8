"""The Faust internals stream/faust_path.py relies on still exist with the shape it uses.

A faust-streaming or mode release that renames or reshapes one of them fails here, by name, instead of
as a worker that silently stops committing or fetching.
"""

from __future__ import annotations

import asyncio
import gc
import inspect
import threading
import time
import tomllib
from importlib.metadata import version
from pathlib import Path
from typing import Any

import faust
import pytest
from faust.agents.actor import Actor
from faust.sensors.monitor import Monitor
from faust.streams import Stream
from faust.transport.consumer import ConsumerMessage
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread
from mode.utils.objects import cached_property
from mode.utils.queues import FlowControlEvent, FlowControlQueue, ThrowableQueue
from packaging.specifiers import SpecifierSet

from stream import faust_path
from stream.faust_path import take_batches


def test_the_installed_faust_is_in_the_pinned_range() -> None:
    pyproject = tomllib.loads((Path(__file__).resolve().parents[3] / "pyproject.toml").read_text())
    spec = next(d for d in pyproject["project"]["optional-dependencies"]["service"] if d.startswith("faust-streaming"))
    assert version("faust-streaming") in SpecifierSet(spec.removeprefix("faust-streaming"))


def test_the_consumer_factory_still_hard_codes_the_fetch_wait_we_override() -> None:
    original = inspect.unwrap(AIOKafkaConsumerThread._create_worker_consumer)  # before or after install()
    assert "fetch_max_wait_ms=1500" in inspect.getsource(original)
    assert list(inspect.signature(original).parameters) == ["self", "transport"]
    import aiokafka

    consumer_init = inspect.getsource(aiokafka.AIOKafkaConsumer.__init__)
    assert "self._fetch_max_wait_ms = fetch_max_wait_ms" in consumer_init
    assert "fetch_max_wait_ms=self._fetch_max_wait_ms" in inspect.getsource(aiokafka.AIOKafkaConsumer.start)


def test_the_stream_internals_take_batches_uses_exist() -> None:
    source = inspect.getsource(Stream._py_aiter)
    for name in ("_on_message_in", "_on_message_out", "consumer_generation_id", "flow_control.is_active",
                 "acking_topics", "message.tracked", "add_unacked", "event.ack()", "chan_queue._errors",
                 "chan_queue = chan.queue", "started_by_aiter = await self.maybe_start()",
                 "self._channel_stop_iteration(channel)", "except StopAsyncIteration"):
        assert name in source, name
    assert {"maybe_start", "should_stop", "events_total"} <= set(dir(Stream))
    assert "self.channel = channel" in inspect.getsource(Stream.__init__)
    assert "acking_topics" in inspect.getsource(type(faust.App("x").topics))


def test_the_queue_resizes_through_the_attributes_faust_reads() -> None:
    assert isinstance(FlowControlQueue.__dict__["pressure_high_size"], cached_property)
    assert isinstance(FlowControlQueue.__dict__["pressure_drop_size"], cached_property)

    async def build() -> ThrowableQueue[int]:
        return ThrowableQueue(maxsize=4096, flow_control=FlowControlEvent())

    queue = asyncio.run(build())
    assert queue.pressure_high_size == 3276  # cached from the first maxsize...
    size = faust_path.fit_buffer(queue, 32 * 2**20, 1000.0)
    assert size == 33554  # ...and replaced by fit_buffer: 32 MiB of 1,000-byte messages
    assert queue.maxsize == size and queue.full() is False
    assert queue.pressure_high_size == int(size / queue.pressure_high_ratio)
    assert queue.pressure_drop_size == int(size * queue.pressure_drop_ratio)
    assert faust_path.fit_buffer(queue, 32 * 2**20, 10**9) == faust_path.MIN_BUFFER_MESSAGES
    assert faust_path.fit_buffer(queue, 32 * 2**20, 1.0) == faust_path.MAX_BUFFER_MESSAGES


def test_the_fetch_wait_applies_only_to_tuned_apps() -> None:
    seen: list[int] = []

    class Fake:
        _fetch_max_wait_ms = 1500

    def factory(self: object, transport: object) -> Fake:
        return Fake()

    saved = AIOKafkaConsumerThread._create_worker_consumer
    AIOKafkaConsumerThread._create_worker_consumer = factory  # type: ignore[method-assign,assignment]
    try:
        tuned, plain = faust.App("tuned"), faust.App("plain")
        faust_path.tune_app(tuned, 100)
        for app in (tuned, plain):
            thread = AIOKafkaConsumerThread.__new__(AIOKafkaConsumerThread)
            thread.app = app  # type: ignore[misc]
            seen.append(AIOKafkaConsumerThread._create_worker_consumer(thread, None)._fetch_max_wait_ms)
    finally:
        AIOKafkaConsumerThread._create_worker_consumer = saved  # type: ignore[method-assign]
    assert seen == [100, 1500]


def test_gc_is_paused_inside_and_restored_after() -> None:
    assert gc.isenabled()
    with faust_path.gc_paused():
        assert not gc.isenabled()
    assert gc.isenabled()
    with pytest.raises(RuntimeError), faust_path.gc_paused():
        raise RuntimeError("a failed batch")
    assert gc.isenabled()


# take_batches on a real (unstarted) Faust app: its channel queue fed by hand, the consumer's own ack
# bookkeeping (``_acked`` is what the next commit reads) checked after each step.

def _batch_app() -> tuple[faust.App, Any]:
    app = faust.App(f"take-{time.monotonic_ns()}", broker="kafka://127.0.0.1:1")
    stream = app.stream(app.topic("t", value_type=bytes, key_type=bytes))
    return app, stream


async def _flowing_batch_app() -> tuple[faust.App, Any]:
    """``_batch_app`` as the worker runs it: "t" subscribed (an acking topic) and the flow resumed."""
    app, stream = _batch_app()
    await app.topics._update_indices()
    app.flow_control.resume()
    return app, stream


def _event(app: faust.App, offset: int, generation: int = 0) -> Any:
    message = ConsumerMessage("t", 0, offset, 0.0, 0, [], b"k", b"v", None, generation_id=generation)
    message.incref(1)  # as the conductor does for the one channel that receives it
    return app.create_event(b"k", b"v", [], message)


def _acked(app: faust.App) -> list[int]:
    return sorted(o for offsets in app.consumer._acked.values() for o in offsets)


def test_a_batch_is_tracked_while_applied_and_acked_when_the_next_is_asked_for() -> None:
    async def scenario() -> None:
        app, stream = await _flowing_batch_app()
        for offset in range(3):
            stream.channel.queue.put_nowait(_event(app, offset))
        batches = take_batches(stream, 10, 0.05)
        first = await batches.__anext__()
        assert [e.message.offset for e in first] == [0, 1, 2]
        assert len(app.consumer.unacked) == 3 and _acked(app) == []  # wait_empty waits for them
        assert set(app.monitor.stream_inbound_time) == {first[0].message.tp}  # Faust's liveness check
        stream.channel.queue.put_nowait(_event(app, 3))
        assert [e.message.offset for e in await batches.__anext__()] == [3]
        assert _acked(app) == [0, 1, 2]
        await batches.aclose()  # as take_events: ending the iteration acks the batch in hand
        assert _acked(app) == [0, 1, 2, 3] and len(app.consumer.unacked) == 0

    asyncio.run(scenario())


def test_events_of_an_old_generation_are_dropped_without_an_ack() -> None:
    async def scenario() -> None:
        app, stream = await _flowing_batch_app()
        app.consumer_generation_id = 5
        stale = [_event(app, offset, generation=4) for offset in (10, 11)]
        for event in [*stale, _event(app, 12, generation=5)]:
            stream.channel.queue.put_nowait(event)
        batches = take_batches(stream, 10, 0.05)
        assert [e.message.offset for e in await batches.__anext__()] == [12]
        await batches.aclose()
        # Faust's __aiter__ would ack 10 and 11, making offset 12 committable before anything read them again.
        assert _acked(app) == [12]
        assert not any(e.message.acked or e.message.tracked for e in stale)

    asyncio.run(scenario())


def test_a_batch_gathered_when_a_rebalance_stops_the_flow_is_dropped_untracked_and_unacked() -> None:
    async def scenario() -> None:
        app, stream = await _flowing_batch_app()
        taken = _event(app, 0)
        stream.channel.queue.put_nowait(taken)
        batches = take_batches(stream, 10, 0.3)
        pending = asyncio.ensure_future(batches.__anext__())
        await asyncio.sleep(0.1)  # event 0 is taken; the batch waits for company
        app.flow_control.suspend()  # what _on_partitions_revoked does first
        await asyncio.sleep(0.4)
        assert not pending.done(), "nothing of the old assignment is yielded"
        assert not taken.message.tracked, "wait_empty must not wait for an event nobody will apply"
        app.flow_control.resume()
        app.consumer_generation_id = 1
        stream.channel.queue.put_nowait(_event(app, 0, generation=1))  # fetched again after the seek
        batch = await asyncio.wait_for(pending, 2)
        assert [(e.message.offset, e.message.generation_id) for e in batch] == [(0, 1)]
        await batches.aclose()
        assert _acked(app) == [0] and not taken.message.acked

    asyncio.run(scenario())


def test_the_iteration_ends_cleanly_when_the_actor_is_told_to_stop() -> None:
    async def scenario() -> None:
        app, stream = await _flowing_batch_app()
        batches = take_batches(stream, 10, 0.05)
        waiting = asyncio.ensure_future(batches.__anext__())
        await asyncio.sleep(0.12)  # waiting on an empty queue, past a few timeouts
        stream.channel._throw(StopAsyncIteration())  # Actor.cancel() on stop
        with pytest.raises(StopAsyncIteration):  # not "RuntimeError: async generator raised ..."
            await asyncio.wait_for(waiting, 2)

    asyncio.run(scenario())


def test_faust_still_does_what_take_batches_relies_on_around_rebalances() -> None:
    # Dropped events are read again: Faust seeks to the committed offsets while flow is stopped.
    assert "perform_seek" in inspect.getsource(faust.transport.consumer.Consumer.getmany)
    assert "self._acked.pop(tp, None)" in inspect.getsource(faust.transport.consumer.Consumer.on_partitions_revoked)
    # The stop signal is StopAsyncIteration thrown into the stream's channel.
    assert "_throw(StopAsyncIteration())" in inspect.getsource(Actor.cancel)
    assert "waiter.set_exception(exc)" in inspect.getsource(ThrowableQueue._throw)
    # take_events acks its batch in a finally, as take_batches does.
    take_events = inspect.getsource(Stream.take_events)
    assert "finally:" in take_events and "await self.ack(event)" in take_events
    # A revocation suspends flow and clears the queues, then waits for the tracked events.
    revoked = inspect.getsource(faust.App._on_partitions_revoked)
    assert revoked.index("flow_control.suspend") < revoked.index("flow_control.clear") < revoked.index(
        "_consumer_wait_empty")
    assert "_unacked_messages" in inspect.getsource(faust.transport.consumer.Consumer.wait_empty)
    assert {"_channel_stop_iteration", "service_reset", "stop"} <= set(dir(Stream))
    # _ack_all acks each message as Event.ack does, under the re-entrant lock Message.ack takes.
    assert "return self.message.ack(self.app.consumer)" in inspect.getsource(faust.Event.ack)
    assert "with ack_lock:" in inspect.getsource(faust.types.tuples.Message.ack)
    assert isinstance(faust.types.tuples.ack_lock, type(threading.RLock()))
    # Faust's "has not started processing" check reads the time the monitor sensor sets per event.
    assert "self.stream_inbound_time[tp] = monotonic()" in inspect.getsource(Monitor.on_stream_event_in)
    assert "monitor.stream_inbound_time.get(tp)" in inspect.getsource(AIOKafkaConsumerThread)


def test_acking_a_batch_leaves_the_consumer_as_fausts_per_event_acks_do() -> None:
    """_ack_all folds Faust's per-event ack chain; the commit bookkeeping it leaves must be Faust's."""

    def run(ours: bool) -> tuple[Any, ...]:
        async def scenario() -> tuple[Any, ...]:
            app, _stream = _batch_app()
            app.topic("u", value_type=bytes, key_type=bytes, acks=False)
            await app.topics._update_indices()
            consumer = app.consumer
            consumer._committed_offset[faust.types.TP("t", 1)] = 10
            consumer._waiting_for_ack = asyncio.get_running_loop().create_future()

            def message(topic: str, partition: int, offset: int, refs: int = 1) -> ConsumerMessage:
                m = ConsumerMessage(topic, partition, offset, 0.0, 0, [], b"k", b"v", None)
                m.incref(refs)
                consumer.track_message(m)
                return m

            messages = [message("t", 0, 0), message("t", 0, 1), message("t", 0, 2, refs=2),
                        message("t", 0, 1),  # the same offset again (a re-read): counted once
                        message("t", 1, 5),  # below the committed offset
                        message("u", 0, 0)]  # a topic without acks
            messages[0].acked = True  # acked already, by an earlier batch
            events = [app.create_event(m.key, m.value, [], m) for m in messages]
            out: list[tuple[int, int]] = []

            def on_message_out(tp: Any, offset: int, m: Any) -> None:
                out.append((tp.partition, offset))

            if ours:
                faust_path._ack_all(events, consumer, on_message_out)
            else:  # Stream.ack, event by event
                for event in events:
                    if event.ack():
                        on_message_out(event.message.tp, event.message.offset, event.message)
            return (out, {tp: list(v) for tp, v in consumer._acked.items()},
                    {tp: set(v) for tp, v in consumer._acked_index.items()}, consumer._n_acked,
                    sorted((m.topic, m.partition, m.offset) for m in consumer._unacked_messages),
                    [(m.acked, m.refcount) for m in messages], consumer._waiting_for_ack.done())

        return asyncio.run(scenario())

    faust_state, ours = run(False), run(True)
    assert ours == faust_state
    out, acked, _index, n_acked, unacked, flags, woken = ours
    assert out == [(0, 1)] and n_acked == 1 and woken  # only offset 1 of partition 0 became committable
    assert flags[2] == (False, 1)  # the message another stream still holds
