"""How long a stream worker restarted after ``kill -9`` takes to apply events again: Kafka static membership
(``stream.group_instance_id``) against the dynamic membership baseline, in the same run, on the real broker.

Per run: one ``driftwarden stream`` worker (4 partitions, the default 30 s session timeout) applies paced
traffic (1,000 events/s in 20-event arrays); once 3,000 are applied it is killed with SIGKILL and a new
worker with the same settings is started at once. Measured from the kill: when the new worker's
``/healthz`` answers 200, and when Redis's applied-prediction counter moves again (the worker resumed).

    .venv/bin/python bench/bench_recovery.py            # 3 runs per mode, ~3 minutes
    .venv/bin/python bench/bench_recovery.py --runs 1
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from pathlib import Path

import redis
from confluent_kafka import Producer

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from driftwarden.contract.events import encode  # noqa: E402
from driftwarden.contract.kafka import client_config, ensure_topics  # noqa: E402
from driftwarden.contract.settings import Settings, load_settings  # noqa: E402
from driftwarden.devtools.demo import Workers, isolated_env  # noqa: E402
from driftwarden.devtools.devstack import Stack, free_port  # noqa: E402
from driftwarden.devtools.traffic import TrafficSpec, generate  # noqa: E402
from stream.state import Keys  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "bench_recovery.json"
RATE = 1000.0  # events per second
PER_MESSAGE = 20
MODELS = [f"m{i}" for i in range(8)]


def produce(settings: Settings, stop: threading.Event) -> None:
    producer = Producer(client_config(settings, **{"linger.ms": 5}))
    t = settings.kafka.topics
    streams = {m: list(generate(TrafficSpec(model=m, total=100_000, shift_at=100_000))) for m in MODELS}
    started, sent, i = time.monotonic(), 0, 0
    while not stop.is_set():
        for model, pairs in streams.items():
            chunk = pairs[i:i + PER_MESSAGE]
            producer.produce(t.predictions, key=model.encode(), value=encode([p for p, _ in chunk]))
            sent += len(chunk)
        i += PER_MESSAGE
        producer.poll(0)
        time.sleep(max(0.0, started + sent / RATE - time.monotonic()))
    producer.flush(10)


def applied(client: redis.Redis, keys: Keys) -> int:
    return sum(int(client.hget(keys.counters(m), "predictions") or 0) for m in MODELS)


def healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as r:
            return bool(r.status == 200)
    except OSError:
        return False


def one_run(stack_env: dict[str, str], static: bool, folder: Path) -> dict[str, float]:
    run = uuid.uuid4().hex[:8]
    port = free_port()
    env = isolated_env(stack_env, run) | {
        "DRIFTWARDEN__KAFKA__PARTITIONS": "4",
        "DRIFTWARDEN__STREAM__WEB_PORT": str(port),
        "DRIFTWARDEN__STREAM__BATCH_SIZE": "200",
        "DRIFTWARDEN__STREAM__BATCH_TIMEOUT_S": "0.1",
        "DRIFTWARDEN__STREAM__DATA_DIR": str(folder / run / "faust"),
        "DRIFTWARDEN__MONITOR__REFERENCE_SIZE": "500",
        "DRIFTWARDEN__MONITOR__WINDOW_SIZE": "500",
    }
    if static:
        env["DRIFTWARDEN__STREAM__GROUP_INSTANCE_ID"] = "stream-0"
    settings = load_settings(env=env)
    ensure_topics(settings)
    client, keys = redis.Redis.from_url(settings.redis.url), Keys(settings.redis.key_prefix)
    workers = Workers(env, folder / run)
    stop = threading.Event()
    traffic = threading.Thread(target=produce, args=(settings, stop), daemon=True)
    try:
        workers.start("first", "stream")
        traffic.start()
        deadline = time.monotonic() + 120
        while applied(client, keys) < 3000:
            assert time.monotonic() < deadline, "the first worker did not apply 3,000 events"
            time.sleep(0.1)
        os.killpg(workers.procs["first"].pid, signal.SIGKILL)
        workers.procs["first"].wait(10)
        killed_at, at_kill = time.monotonic(), applied(client, keys)
        workers.start("restarted", "stream")
        health = resumed = None
        while resumed is None:
            now = time.monotonic()
            assert now - killed_at < 120, "the restarted worker did not resume within 120 s"
            if health is None and healthy(port):
                health = now - killed_at
            if applied(client, keys) > at_kill:
                resumed = now - killed_at
            time.sleep(0.05)
        return {"healthz_s": round(health if health is not None else resumed, 2), "resumed_s": round(resumed, 2)}
    finally:
        stop.set()
        traffic.join(15)
        workers.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="dw-bench-recovery-"))
    stack = Stack(home)
    env = stack.up(log=lambda line: print(f"[stack] {line}", flush=True))
    results: dict[str, list[dict[str, float]]] = {"dynamic": [], "static": []}
    try:
        for i in range(args.runs):
            for mode in ("dynamic", "static"):
                r = one_run(env, mode == "static", home / "workers")
                results[mode].append(r)
                print(f"run {i + 1} {mode:8} healthz {r['healthz_s']:6.2f}s  resumed {r['resumed_s']:6.2f}s",
                      flush=True)
    finally:
        stack.down(log=lambda line: None)
    medians = {mode: statistics.median(r["resumed_s"] for r in runs) for mode, runs in results.items()}
    summary = {"timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "cpus": os.cpu_count(),
               "load_average": os.getloadavg(), "session_timeout_s": 30.0, "runs": results,
               "median_resumed_s": medians, "static_over_dynamic": round(medians["static"] / medians["dynamic"], 3)}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(summary, indent=1))
    print(f"median time to resume after kill -9: dynamic {medians['dynamic']:.2f}s, static {medians['static']:.2f}s "
          f"(static/dynamic = {summary['static_over_dynamic']:.3f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
