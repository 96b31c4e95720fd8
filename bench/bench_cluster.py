"""The stream's batch step on a three-master Redis Cluster against one Redis node, in the same run.

On a cluster a batch runs one transaction per model it holds (docs/architecture.md, *Redis Cluster*),
on one node a single one; this measures what that costs. In process, no broker: ``BatchProcessor`` with
a publisher that drops messages, on loopback Redis servers started here (one node, and three masters
created with ``redis-cli --cluster create``). Per setting: batches of 1,000 predictions (arrays of 100)
spread over M models, 40 batches after 5 warm-up ones; events/s per backend and the cluster/one-node ratio.

    .venv/bin/python bench/bench_cluster.py
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from itertools import count
from pathlib import Path

import msgspec
from prometheus_client import CollectorRegistry

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from redis_cluster import RedisClusterProcess  # noqa: E402

from driftwarden.contract.events import Prediction, encode  # noqa: E402
from driftwarden.contract.settings import load_settings  # noqa: E402
from driftwarden.contract.storage import connect  # noqa: E402
from driftwarden.devtools.devstack import free_port  # noqa: E402
from stream.metrics import build_metrics  # noqa: E402
from stream.outbox import Outgoing  # noqa: E402
from stream.processor import BatchProcessor  # noqa: E402
from stream.records import RawRecord  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "bench_cluster.json"
BATCH, PER_MESSAGE, WARMUP, BATCHES = 1000, 100, 5, 40


class Drop:
    def publish(self, messages: Sequence[Outgoing]) -> None:
        pass


def events_per_second(url: str, cluster: bool, models: int) -> float:
    env = {"DRIFTWARDEN__REDIS__URL": url, "REDIS_URL": url, "DRIFTWARDEN__REDIS__CLUSTER": str(cluster).lower(),
           "DRIFTWARDEN__REDIS__KEY_PREFIX": f"bench-{uuid.uuid4().hex[:8]}"}
    settings = load_settings(env=env)
    settings = msgspec.structs.replace(settings, monitor=msgspec.structs.replace(
        settings.monitor, reference_size=2000, window_size=1000))
    client = connect(url, cluster, socket_timeout=10)
    processor = BatchProcessor(settings, client, Drop(), build_metrics(CollectorRegistry()))
    offsets, ids = count(), count()
    topic = settings.kafka.topics.predictions

    def batch() -> list[RawRecord]:
        records = []
        for j in range(BATCH // PER_MESSAGE):
            model = f"model-{j % models}"
            preds = [Prediction(event_id=f"e{(i := next(ids))}", model=model, timestamp=1.7e9 + i,
                                features={"x": float(i % 97), "c": "abc"[i % 3]}, prediction=i % 2)
                     for _ in range(PER_MESSAGE)]
            records.append(RawRecord(topic, 0, next(offsets), model.encode(), encode(preds)))
        return records

    for _ in range(WARMUP):
        processor.process(batch())
    batches = [batch() for _ in range(BATCHES)]
    started = time.perf_counter()
    for records in batches:
        processor.process(records)
    return BATCH * BATCHES / (time.perf_counter() - started)


def main() -> None:
    folder = Path(tempfile.mkdtemp(prefix="dw-bench-cluster-"))
    port = free_port()
    single = subprocess.Popen([shutil.which("redis-server") or "redis-server", "--port", str(port), "--bind",
                               "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(folder)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    cluster = RedisClusterProcess(folder / "cluster")
    try:
        cluster_url = cluster.up()
        time.sleep(0.5)
        rows = []
        for models in (1, 4, 10):
            one = events_per_second(f"redis://127.0.0.1:{port}/0", False, models)
            three = events_per_second(cluster_url, True, models)
            rows.append({"models_per_batch": models, "one_node_events_s": round(one),
                         "cluster_events_s": round(three), "cluster_over_one_node": round(three / one, 2)})
            print(json.dumps(rows[-1]))
        RESULTS.parent.mkdir(exist_ok=True)
        RESULTS.write_text(json.dumps({"batch": BATCH, "batches": BATCHES, "rows": rows}, indent=2) + "\n")
    finally:
        cluster.down()
        single.terminate()
        single.wait(10)
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
