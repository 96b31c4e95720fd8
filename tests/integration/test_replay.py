"""`driftwarden replay` against the real broker: a recorded CSV comes back off the topics intact."""

from __future__ import annotations

import csv
import time
from pathlib import Path

import msgspec
import pytest
import yaml
from click.testing import CliRunner

from driftwarden.cli import main
from driftwarden.contract.columnar import decode_message
from driftwarden.contract.events import ARROW_FORMAT, Label, Prediction, wire_format
from driftwarden.contract.kafka import make_consumer
from driftwarden.contract.settings import Settings

pytestmark = pytest.mark.services


def read_back(settings: Settings, topic: str, kind: type[Prediction] | type[Label], n: int) -> list[tuple[bytes, list]]:
    consumer = make_consumer(settings, f"replay-test-{topic}")
    consumer.subscribe([topic])
    out: list[tuple[bytes, list]] = []
    deadline = time.monotonic() + 30
    try:
        while sum(len(e) for _, e in out) < n and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is not None and not msg.error():
                assert wire_format(msg.headers()) == ARROW_FORMAT  # replay sends Arrow batches
                out.append((msg.key(), decode_message(kind, msg.value(), ARROW_FORMAT)))
    finally:
        consumer.close()
    return out


def test_replay_cli_sends_a_csv_through_the_topics(settings: Settings, tmp_path: Path) -> None:
    config = tmp_path / "dw.yaml"
    config.write_text(yaml.safe_dump(msgspec.to_builtins(settings)))
    path = tmp_path / "history.csv"
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["event_id", "model", "timestamp", "prediction", "score", "label", "age", "plan"])
        for i in range(300):
            writer.writerow([f"ev-{i}", "ignored", 1_700_000_000 + i, i % 2, i / 300,
                             i % 2 if i % 3 == 0 else "", 20 + i % 50, ("free", "pro")[i % 2]])
        writer.writerow(["ev-bad", "ignored", "not a time", 1, 0.5, "", 30, "pro"])

    started = time.monotonic()
    result = CliRunner().invoke(main, ["--config", str(config), "replay", str(path), "--model", "churn",
                                       "--rate", "2000", "--batch-size", "64"])
    elapsed = time.monotonic() - started

    # The bad row makes the exit code 1 but does not stop the replay.
    assert result.exit_code == 1, result.output
    assert "sent 300 predictions and 100 labels" in result.output
    assert "skipped 1 rows" in result.output and "line 302" in result.output
    assert elapsed >= 400 / 2000

    topics = settings.kafka.topics
    messages = read_back(settings, topics.predictions, Prediction, 300)
    assert {key for key, _ in messages} == {b"churn"}
    assert max(len(batch) for _, batch in messages) <= 64
    preds = [p for _, batch in messages for p in batch]
    assert [p.event_id for p in preds] == [f"ev-{i}" for i in range(300)]
    assert preds[7] == Prediction(event_id="ev-7", model="churn", timestamp=1_700_000_007.0,
                                  features={"age": 27.0, "plan": "pro"}, prediction=1.0, score=7 / 300)
    labels = [lab for _, batch in read_back(settings, topics.labels, Label, 100) for lab in batch]
    assert {lab.event_id: lab.label for lab in labels} == {f"ev-{i}": float(i % 2) for i in range(0, 300, 3)}
