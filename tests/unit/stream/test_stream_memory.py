"""The worker's memory settings: what bounds the messages it holds before its first batch."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from driftwarden.contract.settings import load_settings
from stream.app import create_app, first_buffer_messages
from stream.faust_path import MIN_BUFFER_MESSAGES


def channel_maxsize(env: dict[str, str], tmp_path: Any) -> int:
    """The size of the queue Faust builds for the stream agent's input topics."""
    settings = load_settings(env={"DRIFTWARDEN__STREAM__DATA_DIR": str(tmp_path), **env})
    app, _ = create_app(settings)

    async def build() -> int:
        topic = app.topic(settings.kafka.topics.predictions, settings.kafka.topics.labels)
        return int(topic.queue.maxsize)

    return asyncio.run(build())


def test_before_the_first_batch_the_buffer_holds_at_most_buffer_mib_of_the_largest_messages(tmp_path: Any) -> None:
    settings = load_settings(env={})
    stream = settings.stream
    size = first_buffer_messages(settings)
    assert size == max(MIN_BUFFER_MESSAGES, stream.buffer_mib * 2**20 // stream.max_message_bytes)
    largest = stream.max_message_bytes  # a larger message is dead-lettered, but it is queued first
    assert size * largest <= max(stream.buffer_mib * 2**20, MIN_BUFFER_MESSAGES * largest)
    assert channel_maxsize({}, tmp_path) == size  # what Faust's channel queue is built with


@pytest.mark.parametrize(("buffer_mib", "max_bytes", "expected"), [(32, 1_000_000, 64), (256, 1_000_000, 268),
                                                                   (32, 10_000, 3355)])
def test_the_first_buffer_follows_the_settings(buffer_mib: int, max_bytes: int, expected: int, tmp_path: Any) -> None:
    env = {"DRIFTWARDEN__STREAM__BUFFER_MIB": str(buffer_mib), "DRIFTWARDEN__STREAM__MAX_MESSAGE_BYTES": str(max_bytes)}
    assert first_buffer_messages(load_settings(env=env)) == expected
    assert channel_maxsize(env, tmp_path) == expected


def test_faust_per_event_fallback_keeps_its_fixed_buffer(tmp_path: Any) -> None:
    env = {"DRIFTWARDEN__STREAM__FAST_BATCHES": "false"}
    assert first_buffer_messages(load_settings(env=env)) == 4096  # never refitted: sized for single events
    assert channel_maxsize(env, tmp_path) == 4096
