"""Producers choose their own compression; the stream must read every codec Kafka offers.

Found by the stream benchmark: an lz4-compressed batch made aiokafka raise UnsupportedCodecError and
the worker crash, because its codecs come from an optional extra (cramjam).
"""

from __future__ import annotations

import time
from pathlib import Path

import msgspec
import pytest
import redis
from confluent_kafka import Producer

from driftwarden.contract.kafka import client_config, ensure_topics
from driftwarden.contract.settings import load_settings
from driftwarden.devtools.demo import Workers, isolated_env
from driftwarden.devtools.devstack import free_port
from stream.state import Keys

pytestmark = pytest.mark.services
CODECS = ("none", "gzip", "snappy", "lz4", "zstd")


def test_every_compression_codec_is_consumed_and_counted(stack_env: dict[str, str], unique: str,
                                                          tmp_path: Path) -> None:
    env = isolated_env(stack_env, unique)
    env["DRIFTWARDEN__STREAM__WEB_PORT"] = str(free_port())
    env["DRIFTWARDEN__KAFKA__PARTITIONS"] = "1"
    settings = load_settings(env=env)
    ensure_topics(settings)
    per_codec = 250
    for i, codec in enumerate(CODECS):
        producer = Producer(client_config(settings, **{"compression.type": codec, "linger.ms": 20}))
        events = [{"event_id": f"{codec}-{j}", "model": "zipped", "model_version": "1",
                   "timestamp": 1_700_000_000 + i * per_codec + j,
                   "features": {"x": float(j % 17), "c": f"k{j % 3}"}, "prediction": j % 2, "score": None}
                  for j in range(per_codec)]
        for start in range(0, per_codec, 50):  # arrays and single objects alike
            producer.produce(settings.kafka.topics.predictions, key=b"zipped",
                             value=msgspec.json.encode(events[start:start + 49]))
            producer.produce(settings.kafka.topics.predictions, key=b"zipped",
                             value=msgspec.json.encode(events[start + 49]))
        assert producer.flush(30) == 0

    workers = Workers(env, tmp_path / "workers")
    proc = workers.start("stream", "stream")
    client = redis.Redis.from_url(settings.redis.url)
    counters = Keys(settings.redis.key_prefix).counters("zipped")
    expected = per_codec * len(CODECS)
    deadline = time.monotonic() + 90
    try:
        while time.monotonic() < deadline and int(client.hget(counters, "predictions") or 0) < expected:
            assert proc.poll() is None, (tmp_path / "workers" / "stream.log").read_text()[-3000:]
            time.sleep(0.2)
        time.sleep(1.0)  # anything counted twice would show up now
        assert int(client.hget(counters, "predictions") or 0) == expected
    finally:
        codes = workers.stop()
    assert codes == {"stream": 0}
