"""The Faust ceiling: a worker with the stream's Faust settings whose agent only counts what it takes.

``faust_ceiling.py stock`` takes batches with Faust's ``take_events``; ``faust_ceiling.py path`` (the
default) with the stream's own consumer path (``stream/faust_path.py``: fetched messages drained into the
channel queue without Faust's per-message ``wait_first``, batches from the queue acked in one pass, buffer
in bytes, 100 ms fetch wait, uvloop, frozen start-up objects).

``bench_stream.py`` runs it on the same topic as the real worker, so the figures separate what Faust's
per-message machinery costs on this machine from what driftwarden's batch code adds. It reports
progress the way the real worker does: one ``HINCRBY {prefix}:counters:{model} predictions n`` per
batch (the number of events, arrays included, found without decoding the JSON; for an Arrow message,
the row count in its record batch header).
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
from typing import Any

import faust
import redis

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from driftwarden.contract.events import ARROW_FORMAT, wire_format  # noqa: E402
from driftwarden.contract.settings import load_settings  # noqa: E402
from stream import faust_path  # noqa: E402


def events_in(value: bytes, headers: object) -> int:
    """Events in one message: a JSON object, an array of flat-ish objects (counted by event_id), or the
    rows of an Arrow record batch (its metadata only; the columns are not read)."""
    if wire_format(headers) == ARROW_FORMAT:
        import pyarrow as pa

        return sum(batch.num_rows for batch in pa.ipc.open_stream(value))
    return value.count(b'"event_id"') if value[:1] == b"[" else 1


def main() -> None:
    kind = sys.argv[1] if len(sys.argv) > 1 else "path"
    if kind not in ("stock", "path"):
        raise SystemExit("usage: faust_ceiling.py [stock|path]")
    del sys.argv[1:]  # Faust's command line must not see it
    if kind == "path":
        faust_path.use_uvloop()
    settings = load_settings()
    topics = settings.kafka.topics
    datadir = Path(tempfile.mkdtemp(prefix="dw-faust-ceiling-"))
    atexit.register(shutil.rmtree, datadir, True)
    app = faust.App(
        f"{settings.stream.app_id}-ceiling-{kind}",
        broker=[f"kafka://{h.strip()}" for h in settings.kafka.bootstrap_servers.split(",")],
        store="memory://", value_serializer="raw", key_serializer="raw",
        topic_partitions=settings.kafka.partitions, consumer_auto_offset_reset="earliest",
        web_port=settings.stream.web_port, web_host="127.0.0.1",
        stream_buffer_maxsize=max(4096, 2 * settings.stream.batch_size), broker_commit_interval=1.0,
        datadir=str(datadir),
        **(faust_path.app_settings() if kind == "path" else {}),
    )
    if kind == "path":
        faust_path.tune_app(app)
    client = redis.Redis.from_url(settings.redis.url)
    prefix = settings.redis.key_prefix
    inputs = app.topic(topics.predictions, topics.labels, value_type=bytes, key_type=bytes)

    def batches(stream: faust.StreamT) -> Any:
        if kind == "stock":
            return stream.take_events(settings.stream.batch_size, within=settings.stream.batch_timeout_s)
        faust_path.freeze_startup()
        return faust_path.take_batches(stream, settings.stream.batch_size, settings.stream.batch_timeout_s,
                                       settings.stream.buffer_mib * 2**20)

    @app.agent(inputs, concurrency=1)
    async def count(stream: faust.StreamT) -> None:
        async for events in batches(stream):
            per_model: Counter[str] = Counter()
            for e in events:
                per_model[(e.message.key or b"").decode()] += events_in(e.message.value or b"", e.message.headers)
            pipe = client.pipeline(transaction=False)
            for model, n in per_model.items():
                pipe.hincrby(f"{prefix}:counters:{model}", "predictions", n)
            await asyncio.get_running_loop().run_in_executor(None, pipe.execute)

    worker = faust.Worker(app, loglevel=os.environ.get("DRIFTWARDEN_LOG_LEVEL", "info").upper(),
                          override_logging=False)
    worker.execute_from_commandline()


if __name__ == "__main__":
    main()
