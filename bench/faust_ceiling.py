"""The Faust ceiling: a worker with the stream's Faust settings whose agent only counts what it takes.

``bench_stream.py`` runs it on the same topic as the real worker, so the figures separate what Faust's
per-message machinery costs on this machine from what driftwarden's batch code adds. It reports
progress the way the real worker does: one ``HINCRBY {prefix}:counters:{model} predictions n`` per
batch (the number of events, arrays included, found without decoding the JSON).
"""

from __future__ import annotations

import asyncio
import atexit
import os
import shutil
import sys
import tempfile
from collections import Counter
from pathlib import Path

import faust
import redis

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from driftwarden.config import load_settings  # noqa: E402


def events_in(value: bytes) -> int:
    """Events in one message: a JSON object, or an array of flat-ish objects (counted by event_id)."""
    return value.count(b'"event_id"') if value[:1] == b"[" else 1


def main() -> None:
    settings = load_settings()
    topics = settings.kafka.topics
    datadir = Path(tempfile.mkdtemp(prefix="dw-faust-ceiling-"))
    atexit.register(shutil.rmtree, datadir, True)
    app = faust.App(
        f"{settings.stream.app_id}-ceiling",
        broker=[f"kafka://{h.strip()}" for h in settings.kafka.bootstrap_servers.split(",")],
        store="memory://", value_serializer="raw", key_serializer="raw",
        topic_partitions=settings.kafka.partitions, consumer_auto_offset_reset="earliest",
        web_port=settings.stream.web_port, web_host="127.0.0.1",
        stream_buffer_maxsize=max(4096, 2 * settings.stream.batch_size), broker_commit_interval=1.0,
        datadir=str(datadir),
    )
    client = redis.Redis.from_url(settings.redis.url)
    prefix = settings.redis.key_prefix
    inputs = app.topic(topics.predictions, topics.labels, value_type=bytes, key_type=bytes)

    @app.agent(inputs, concurrency=1)
    async def count(stream: faust.StreamT) -> None:
        async for events in stream.take_events(settings.stream.batch_size, within=settings.stream.batch_timeout_s):
            per_model: Counter[str] = Counter()
            for e in events:
                per_model[(e.message.key or b"").decode()] += events_in(e.message.value or b"")
            pipe = client.pipeline(transaction=False)
            for model, n in per_model.items():
                pipe.hincrby(f"{prefix}:counters:{model}", "predictions", n)
            await asyncio.get_running_loop().run_in_executor(None, pipe.execute)

    worker = faust.Worker(app, loglevel=os.environ.get("DRIFTWARDEN_LOG_LEVEL", "info").upper(),
                          override_logging=False)
    worker.execute_from_commandline()


if __name__ == "__main__":
    main()
