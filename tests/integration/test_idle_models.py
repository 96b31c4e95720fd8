"""An idle model's window closes by time, once, across worker restarts (real ``driftwarden stream``
processes on the real broker and Redis).

A producer sends fewer predictions than a window holds and stops. The first worker is killed with
SIGKILL right after it applied them (its timer may or may not have closed the window yet); the next
worker's timer closes it if needed; a third worker, after a clean restart, must find nothing to close.
"""

from __future__ import annotations

import os
import signal
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import redis
from confluent_kafka import Consumer, Producer

from driftwarden.contract.events import DriftEvent, Prediction, decode, encode
from driftwarden.contract.kafka import client_config, ensure_topics
from driftwarden.contract.settings import load_settings
from driftwarden.devtools.demo import Workers, isolated_env
from driftwarden.devtools.devstack import free_port
from retrain_worker.onboard import onboard
from stream.state import Keys, decode_state

pytestmark = pytest.mark.services
WINDOW_SECONDS = 3.0


def wait_for(condition: Callable[[], bool], timeout: float, what: str, logs: Callable[[], str]) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}\n{logs()}")


def test_an_idle_window_closes_by_time_exactly_once_across_restarts(stack_env: dict[str, str], unique: str,
                                                                     tmp_path: Path) -> None:
    env = isolated_env(stack_env, unique)
    env.update({"DRIFTWARDEN__KAFKA__PARTITIONS": "2", "DRIFTWARDEN__STREAM__SESSION_TIMEOUT_S": "6",
                "DRIFTWARDEN__STREAM__BATCH_TIMEOUT_S": "0.05",
                "DRIFTWARDEN__STREAM__DATA_DIR": str(tmp_path / "faust"),
                "DRIFTWARDEN__MONITOR__WINDOW_SECONDS": str(WINDOW_SECONDS),
                "DRIFTWARDEN__MONITOR__SILENCE_SECONDS": "null"})
    settings = load_settings(env=env)
    ensure_topics(settings)
    model = "idle"
    rng = np.random.default_rng(3)
    train = tmp_path / "train.csv"
    pd.DataFrame({"x": rng.normal(0, 1, 2000), "y": rng.normal(10, 2, 2000)}).to_csv(train, index=False)
    onboard(settings, model, train)
    r = redis.Redis.from_url(settings.redis.url)
    keys = Keys(settings.redis.key_prefix)
    workers = Workers(env, tmp_path / "workers")
    ports: dict[str, int] = {}

    def logs() -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-2500:]}"
                         for p in sorted(workers.folder.glob("*.log")))

    def start(name: str) -> None:
        ports[name] = free_port()
        workers.env = {**env, "DRIFTWARDEN__STREAM__WEB_PORT": str(ports[name])}
        workers.start(name, "stream")

        def assigned() -> bool:
            text = (workers.folder / f"{name}.log").read_text(errors="replace")
            return f"topic='{settings.kafka.topics.predictions}'" in text.split("Setting newly assigned")[-1]

        wait_for(assigned, 90, f"{name} assigned", logs)

    def state():  # type: ignore[no-untyped-def]
        blob = r.get(keys.state(model))
        return decode_state(blob) if blob else None

    def idle_closed(name: str) -> float:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{ports[name]}/metrics", timeout=2) as page:
                text = page.read().decode()
        except OSError:
            return 0.0
        return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                   if line.startswith("driftwarden_idle_windows_closed_total{") and f'model="{model}"' in line)

    try:
        start("first")
        now = time.time()
        preds = [Prediction(event_id=f"idle-{i}", model=model, timestamp=now + i * 0.001,
                            features={"x": float(v) + 2.0, "y": 10.0}, prediction=0.0)
                 for i, v in enumerate(rng.normal(0, 1, 300))]
        producer = Producer(client_config(settings))
        for i in range(0, 300, 100):
            producer.produce(settings.kafka.topics.predictions, key=model.encode(), value=encode(preds[i:i + 100]))
        assert producer.flush(15) == 0
        wait_for(lambda: (s := state()) is not None and s.observations == 300, 60, "300 applied", logs)
        os.killpg(workers.procs["first"].pid, signal.SIGKILL)  # before or after its timer closed the window
        closed_by_first = state().windows_closed
        assert closed_by_first in (0, 1)

        start("second")
        wait_for(lambda: state().windows_closed == 1, 30, "the idle window closed", logs)
        time.sleep(2 * WINDOW_SECONDS)
        assert idle_closed("second") == 1 - closed_by_first
        os.killpg(workers.procs["second"].pid, signal.SIGTERM)
        workers.procs["second"].wait(30)

        start("third")
        time.sleep(3 * WINDOW_SECONDS)  # several ticks of the third worker's timer
        assert idle_closed("third") == 0
    finally:
        workers.stop()

    final = state()
    assert final.windows_closed == 1 and final.observations == 300
    consumer = Consumer(client_config(settings, **{"group.id": f"idle-{unique}", "auto.offset.reset": "earliest"}))
    consumer.subscribe([settings.kafka.topics.drift_events])
    events: list[DriftEvent] = []
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        msg = consumer.poll(0.5)
        if msg is not None and not msg.error():
            events.append(decode(DriftEvent, msg.value()))
    consumer.close()
    # The one time-closed window (300 predictions, x shifted by 2 sd) drifted on x, and only it.
    assert {(e.window.index, e.window.n) for e in events} == {(0, 300)}, logs()
    assert "x" in {e.feature for e in events if e.kind == "data_drift"}
