"""The Faust internals stream/faust_path.py relies on still exist with the shape it uses.

A faust-streaming or mode release that renames or reshapes one of them fails here, by name, instead of
as a worker that silently stops committing or fetching.
"""

from __future__ import annotations

import asyncio
import gc
import inspect
import tomllib
from importlib.metadata import version
from pathlib import Path

import faust
import pytest
from faust.streams import Stream
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread
from mode.utils.objects import cached_property
from mode.utils.queues import FlowControlEvent, FlowControlQueue, ThrowableQueue
from packaging.specifiers import SpecifierSet

from stream import faust_path


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
                 "acking_topics", "message.tracked", "add_unacked", "event.ack()", "chan_queue._errors"):
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
