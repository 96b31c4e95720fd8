"""The columnar wire format through the real broker and a real stream worker.

The SDK sends Arrow record batches (predictions and labels); a JSON array rides between them; three
bad messages (bytes that are not Arrow IPC, an Arrow batch without its ``features`` column, a format
header nobody knows) become dead letters with their reasons, and the good ones are all counted, once.
"""

from __future__ import annotations

import time
from pathlib import Path

import msgspec
import pytest
import redis
from confluent_kafka import Producer
from test_retrain_support import TopicReader

from driftwarden.contract.columnar import encode_arrow
from driftwarden.contract.events import ARROW_FORMAT, FORMAT_HEADER, DeadLetter, Label, Prediction, decode
from driftwarden.contract.kafka import client_config, ensure_topics
from driftwarden.contract.settings import load_settings
from driftwarden.devtools.demo import Workers, isolated_env
from driftwarden.devtools.devstack import free_port
from driftwarden.sdk.producer import DriftwardenProducer
from stream.state import Keys

pytestmark = pytest.mark.services
ARROW = [(FORMAT_HEADER, ARROW_FORMAT.encode())]


def test_arrow_batches_are_counted_once_and_malformed_ones_are_dead_letters(
        stack_env: dict[str, str], unique: str, tmp_path: Path) -> None:
    env = isolated_env(stack_env, unique)
    env["DRIFTWARDEN__STREAM__WEB_PORT"] = str(free_port())
    env["DRIFTWARDEN__KAFKA__PARTITIONS"] = "1"
    settings = load_settings(env=env)
    ensure_topics(settings)
    topics = settings.kafka.topics
    n = 1200
    with DriftwardenProducer(settings, max_batch_size=400, wire_format="arrow") as dw:
        for i in range(n):
            dw.log_prediction("columnar", {"x": float(i % 13), "n": i % 5, "c": f"k{i % 3}", "ok": i % 2 == 0},
                              i % 2, event_id=f"p{i}", score=i / n, model_version="1",
                              timestamp=1_700_000_000.0 + i)
        dw.flush()
        for i in range(0, n, 3):
            dw.log_label("columnar", f"p{i}", i % 2, timestamp=1_700_000_000.5 + i)
    assert (dw.delivered, dw.failed) == (n + n // 3, 0)

    producer = Producer(client_config(settings))
    good = encode_arrow([Prediction(event_id="late", model="columnar", timestamp=1_700_000_000.0 + n,
                                    features={"x": 1.0}, prediction=1)])
    no_features = encode_arrow([Label(event_id="p0", model="columnar", label=1, timestamp=1.0)])
    bad = [(good[: len(good) // 2], ARROW), (no_features, ARROW), (good, [(FORMAT_HEADER, b"avro")])]
    for value, headers in bad:
        producer.produce(topics.predictions, key=b"columnar", value=value, headers=headers)
    json_array = [{"event_id": f"j{i}", "model": "columnar", "timestamp": 1_700_000_000.0 + n + i,
                   "features": {"x": 2.0}, "prediction": 0} for i in range(10)]
    producer.produce(topics.predictions, key=b"columnar", value=msgspec.json.encode(json_array))
    producer.produce(topics.predictions, key=b"columnar", value=good, headers=ARROW)
    assert producer.flush(30) == 0
    expected_predictions = n + len(json_array) + 1

    workers = Workers(env, tmp_path / "workers")
    proc = workers.start("stream", "stream")
    client = redis.Redis.from_url(settings.redis.url)
    counters = Keys(settings.redis.key_prefix).counters("columnar")
    reader = TopicReader(settings, topics.dead_letters)
    deadline = time.monotonic() + 90
    try:
        while time.monotonic() < deadline and (int(client.hget(counters, "predictions") or 0) < expected_predictions
                                               or int(client.hget(counters, "labels") or 0) < n // 3):
            assert proc.poll() is None, (tmp_path / "workers" / "stream.log").read_text()[-3000:]
            time.sleep(0.2)
        letters = [decode(DeadLetter, v) for v in reader.read(len(bad), timeout=30)]
        time.sleep(1.0)  # anything counted twice would show up now
        assert int(client.hget(counters, "predictions") or 0) == expected_predictions
        assert int(client.hget(counters, "labels") or 0) == n // 3
        assert reader.read(1, timeout=1.0) == []  # no other dead letter
    finally:
        reader.close()
        codes = workers.stop()
    assert codes == {"stream": 0}
    assert [letter.error.split(":")[0] for letter in sorted(letters, key=lambda d: d.offset)] == [
        "invalid_arrow", "missing_field", "unknown_format"]
    assert all(letter.payload.startswith("base64:") and letter.key == "columnar" for letter in letters)
