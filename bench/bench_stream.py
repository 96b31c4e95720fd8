"""End-to-end stream throughput through the real broker and Redis, as a ratio to plain consumption.

One run, one machine, the same topics for both sides:

* baseline: a plain confluent-kafka consumer reading the topic and ``json.loads``-ing every message
  (events/s, best of 2);
* service: ``driftwarden stream`` as a child process (one worker) on the same topic; its events/s is
  taken from Redis while it works (the applied-prediction counter between the first committed batch and
  the last offset), so Faust's start-up and rebalance are not counted;
* Redis round trips per event: the same records applied in this process by the stream's own batch code,
  counting every request sent on a Redis connection;
* peak memory (VmHWM) of the worker with 100 models, and the Redis memory the stream's state takes;
* scale-out: the 100-model topic again through two worker processes of one consumer group (half of the
  partitions each), on the same machine as the broker and Redis, as a ratio to one worker.

Scenarios: single-event messages, 100-event JSON arrays (20 features each: 16 numeric, 4 categorical;
the second half of each model's events is shifted, so windows close and drift is found), Arrow record
batches of 1,000 events (the SDK's columnar format), and 100 models in arrays. Each is also run
through two Faust workers whose agent only counts: stock ``take_events`` and our consumer path
(``stream/faust_path.py``), and decoded alone in this process (the contract decode, no Kafka), so the
figures say what bounds the worker. For the arrays of 100, Redis bytes per waiting prediction
(``MEMORY USAGE`` of its segments, expiry index and joined set, divided by the predictions waiting).
Results are printed and written to ``bench/results/bench_stream.json``.

    .venv/bin/python bench/bench_stream.py            # ~3 minutes
    .venv/bin/python bench/bench_stream.py --quick    # a smoke run with small topics
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import msgspec
import numpy as np
import redis
from confluent_kafka import Consumer, Producer, TopicPartition

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from driftwarden.contract.columnar import decode_message, decode_prediction_columns, encode_arrow  # noqa: E402
from driftwarden.contract.events import ARROW_FORMAT, FORMAT_HEADER, Prediction, wire_format  # noqa: E402
from driftwarden.contract.kafka import client_config, ensure_topics  # noqa: E402
from driftwarden.contract.settings import Settings, load_settings  # noqa: E402
from driftwarden.devtools.demo import isolated_env  # noqa: E402
from driftwarden.devtools.devstack import Stack, free_port  # noqa: E402
from stream.joins import stored_waiting  # noqa: E402
from stream.state import Keys, decode_pending_prediction  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "bench_stream.json"
N_NUMERIC, N_CATEGORICAL = 16, 4
CATEGORIES = [f"c{i}" for i in range(8)]
_json = msgspec.json.Encoder()


@dataclass(frozen=True)
class Scenario:
    name: str
    events: int
    per_message: int
    models: int
    wire: str = "json"


def events_of(model: str, n: int, seed: int, t0: float) -> Iterator[dict[str, object]]:
    """``n`` prediction events of one model; features 0-3 and a category shift in the second half."""
    rng = np.random.default_rng(seed)
    numeric = rng.normal(0.0, 1.0, size=(n, N_NUMERIC))
    numeric[n // 2:, :4] += 1.5
    cats = rng.integers(0, len(CATEGORIES), size=(n, N_CATEGORICAL))
    cats[n // 2:, 0] = np.minimum(cats[n // 2:, 0] + 3, len(CATEGORIES) - 1)
    scores = rng.random(n)
    num_names = [f"x{j}" for j in range(N_NUMERIC)]
    cat_names = [f"k{j}" for j in range(N_CATEGORICAL)]
    numeric_rows = numeric.round(6).tolist()
    cat_rows = cats.tolist()
    for i in range(n):
        features: dict[str, object] = dict(zip(num_names, numeric_rows[i], strict=True))
        features.update({name: CATEGORIES[c] for name, c in zip(cat_names, cat_rows[i], strict=True)})
        score = float(scores[i])
        yield {"event_id": f"{model}-{i}", "model": model, "model_version": "1", "timestamp": t0 + i * 0.01,
               "features": features, "prediction": int(score > 0.5), "score": score}


def produce(settings: Settings, scenario: Scenario) -> int:
    """Write the scenario's predictions; return the number of messages."""
    producer = Producer(client_config(settings, **{"linger.ms": 50, "batch.size": 1_000_000,
                                                   "compression.type": "lz4",
                                                   "queue.buffering.max.messages": 1_000_000}))
    topic = settings.kafka.topics.predictions
    per_model = scenario.events // scenario.models
    messages = 0
    t0 = 1_700_000_000.0
    headers = [(FORMAT_HEADER, ARROW_FORMAT.encode())] if scenario.wire == ARROW_FORMAT else None

    def encoded(chunk: list[dict[str, object]]) -> bytes:
        if scenario.wire == ARROW_FORMAT:
            return encode_arrow(msgspec.convert(chunk, list[Prediction]))
        return _json.encode(chunk[0] if len(chunk) == 1 else chunk)

    for m in range(scenario.models):
        model = f"bench-{m:03d}"
        key = model.encode()
        chunk: list[dict[str, object]] = []
        for event in events_of(model, per_model, seed=m, t0=t0):
            chunk.append(event)
            if len(chunk) == scenario.per_message:
                value = encoded(chunk)
                while True:
                    try:
                        producer.produce(topic, key=key, value=value, headers=headers)
                        break
                    except BufferError:
                        producer.poll(0.1)
                messages += 1
                chunk = []
        if chunk:
            producer.produce(topic, key=key, value=encoded(chunk), headers=headers)
            messages += 1
        producer.poll(0)
    if producer.flush(120):
        raise RuntimeError("the producer could not deliver every message")
    return messages


def _partitions(consumer: Consumer, topic: str) -> list[TopicPartition]:
    meta = consumer.list_topics(topic, timeout=10)
    return [TopicPartition(topic, p, 0) for p in sorted(meta.topics[topic].partitions)]


def partitions_of(settings: Settings, topic: str) -> list[TopicPartition]:
    consumer = Consumer(client_config(settings, **{"group.id": "bench-meta"}))
    try:
        return _partitions(consumer, topic)
    finally:
        consumer.close()


def high_watermarks(settings: Settings, topic: str) -> dict[int, int]:
    consumer = Consumer(client_config(settings, **{"group.id": "bench-meta"}))
    try:
        return {tp.partition: consumer.get_watermark_offsets(tp, timeout=10)[1]
                for tp in _partitions(consumer, topic)}
    finally:
        consumer.close()


def raw_events(value: bytes, headers: list[tuple[str, bytes]] | None) -> int:
    """Events in a message, parsed the plain way into Python objects: ``json.loads``, or pyarrow's IPC
    reader and ``to_pylist`` for Arrow (a zero-copy read alone would not touch the values)."""
    if headers and (FORMAT_HEADER, ARROW_FORMAT.encode()) in headers:
        import pyarrow as pa

        return len(pa.ipc.open_stream(value).read_all().to_pylist())
    parsed = json.loads(value)
    return len(parsed) if isinstance(parsed, list) else 1


def baseline(settings: Settings, topic: str, expected_events: int) -> float:
    """Events/s of a plain consumer that reads the whole topic and parses every value (json or Arrow)."""
    consumer = Consumer(client_config(settings, **{
        "group.id": f"bench-baseline-{uuid.uuid4().hex[:6]}", "enable.auto.commit": False,
        "auto.offset.reset": "earliest", "fetch.max.bytes": 52_428_800}))
    consumer.assign(partitions_of(settings, topic))
    events, started = 0, 0.0
    deadline = time.monotonic() + 300
    while events < expected_events and time.monotonic() < deadline:
        batch = consumer.consume(1000, timeout=1.0)
        if batch and not started:
            started = time.perf_counter()
        for msg in batch:
            if msg.error():
                continue
            events += raw_events(msg.value(), msg.headers())
    elapsed = time.perf_counter() - started
    consumer.close()
    if events != expected_events:
        raise RuntimeError(f"baseline read {events} events, expected {expected_events}")
    return events / elapsed


def vm_hwm_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def run_worker(settings: Settings, env: dict[str, str], folder: Path, expected_events: int,
               models: list[str], ceiling: str = "", workers: int = 1) -> dict[str, float]:
    """Run ``workers`` ``driftwarden stream`` processes of one consumer group until every message is
    applied; their events/s together and the largest peak RSS of one.

    With ``ceiling`` (``stock`` or ``path``), run ``faust_ceiling.py`` instead: an agent that only counts,
    taking batches with Faust's ``take_events`` or with our consumer path.
    """
    client = redis.Redis.from_url(settings.redis.url)
    keys = Keys(settings.redis.key_prefix)
    topic = settings.kafka.topics.predictions
    target = {p: hw - 1 for p, hw in high_watermarks(settings, topic).items() if hw > 0}
    mem_before = int(client.info("memory")["used_memory"])
    folder.mkdir(parents=True, exist_ok=True)
    command = ([str(Path(__file__).with_name("faust_ceiling.py")), ceiling] if ceiling
               else ["-m", "driftwarden.cli", "stream"])
    procs: list[subprocess.Popen[bytes]] = []
    logs = []
    for i in range(workers):
        name = f"ceiling-{ceiling}" if ceiling else "stream"
        logs.append(open(folder / (f"{name}-{i}.log" if workers > 1 else f"{name}.log"), "wb"))  # noqa: SIM115
        port = {"DRIFTWARDEN__STREAM__WEB_PORT": str(free_port())} if i else {}
        procs.append(subprocess.Popen([sys.executable, *command], env={**os.environ, **env, **port},
                                      stdout=logs[-1], stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                      start_new_session=True))

    def applied() -> int:
        pipe = client.pipeline(transaction=False)
        for m in models:
            pipe.hget(keys.counters(m), "predictions")
        return sum(int(v or 0) for v in pipe.execute())

    def done() -> bool:
        if ceiling:
            return True
        offsets = {int(p): int(o) for p, o in client.hgetall(keys.offsets(topic)).items()}
        return all(offsets.get(p, -1) >= o for p, o in target.items())

    samples: list[tuple[float, int]] = []
    hwm = 0
    deadline = time.monotonic() + 600
    try:
        while time.monotonic() < deadline:
            for proc in procs:
                if proc.poll() is not None:
                    raise RuntimeError(f"a stream worker exited with {proc.returncode}; see its log in {folder}")
            n = applied()
            samples.append((time.perf_counter(), n))
            hwm = max([hwm, *(vm_hwm_kib(proc.pid) for proc in procs)])
            if n >= expected_events and done():
                break
            time.sleep(0.02)
        else:
            raise RuntimeError(f"the workers applied {applied()} of {expected_events} events in time")
        hwm = max([hwm, *(vm_hwm_kib(proc.pid) for proc in procs)])
    finally:
        for proc in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        codes = []
        for proc in procs:
            try:
                codes.append(proc.wait(30))
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                codes.append(proc.wait())
        for log in logs:
            log.close()
    code = next((c for c in codes if c), 0)
    total = applied()
    if total != expected_events and not ceiling:
        raise RuntimeError(f"the worker counted {total} events, {expected_events} were produced")
    mem_after = int(client.info("memory")["used_memory"])
    rate, measured = steady_rate(samples, expected_events)
    return {"events_per_s": rate, "events_measured": measured, "peak_rss_mib": hwm / 1024,
            "exit_code": code, "redis_mib": (mem_after - mem_before) / 2**20}


def steady_rate(samples: list[tuple[float, int]], total: int) -> tuple[float, int]:
    """Events/s between the samples where 10% and 90% of the events were applied.

    Start-up, the first rebalance and the last partial batch fall outside, so the figure is the
    worker's steady speed; it is NaN when a topic fits in too few batches to tell (--quick).
    """
    low = next((s for s in samples if s[1] >= 0.1 * total), None)
    high = next((s for s in samples if s[1] >= 0.9 * total), None)
    if low is None or high is None or high[1] <= low[1] or high[0] <= low[0]:
        return float("nan"), 0
    return (high[1] - low[1]) / (high[0] - low[0]), high[1] - low[1]


class RoundTrips:
    """Counts requests sent on any Redis connection in this process (a pipeline is one request)."""

    def __init__(self) -> None:
        self.count = 0
        self._original = redis.connection.AbstractConnection.send_packed_command

    def __enter__(self) -> RoundTrips:
        counter = self
        original = self._original

        def counting(conn: object, command: object, check_health: bool = True) -> None:
            counter.count += 1
            original(conn, command, check_health)  # type: ignore[arg-type]

        redis.connection.AbstractConnection.send_packed_command = counting  # type: ignore[method-assign]
        return self

    def __exit__(self, *exc: object) -> None:
        redis.connection.AbstractConnection.send_packed_command = self._original  # type: ignore[method-assign]


def round_trips(settings: Settings, expected_events: int, expected_messages: int) -> dict[str, float]:
    """Apply the topic in this process with the stream's batch code; Redis requests per event and batch."""
    from prometheus_client import CollectorRegistry

    from stream.app import StreamService
    from stream.records import RawRecord

    service = StreamService(settings, CollectorRegistry())
    service.setup()
    assert service.processor is not None
    consumer = Consumer(client_config(settings, **{
        "group.id": f"bench-rt-{uuid.uuid4().hex[:6]}", "enable.auto.commit": False,
        "auto.offset.reset": "earliest"}))
    topic = settings.kafka.topics.predictions
    consumer.assign(partitions_of(settings, topic))
    batches, messages, busy = 0, 0, 0.0
    deadline = time.monotonic() + 600
    with RoundTrips() as counter:
        while messages < expected_messages and time.monotonic() < deadline:
            msgs = [m for m in consumer.consume(settings.stream.batch_size, timeout=1.0) if not m.error()]
            if not msgs:
                continue
            records = [RawRecord(m.topic(), m.partition(), m.offset(), m.key(), m.value(), m.timestamp()[1],
                                 wire_format(m.headers())) for m in msgs]
            t0 = time.perf_counter()
            service.processor.process(records)
            busy += time.perf_counter() - t0
            batches += 1
            messages += len(msgs)
    consumer.close()
    if messages != expected_messages:
        raise RuntimeError(f"read {messages} of {expected_messages} messages")
    events = expected_events
    if service.publisher is not None and hasattr(service.publisher, "close"):
        service.publisher.close()
    return {"round_trips_per_event": counter.count / events, "round_trips_per_batch": counter.count / batches,
            "batches": batches, "in_process_events_per_s": events / busy}


def decode_alone(settings: Settings, topic: str, expected_messages: int) -> float:
    """Events/s of the stream's contract decode alone (JSON or Arrow), on the topic's messages in memory."""
    consumer = Consumer(client_config(settings, **{
        "group.id": f"bench-decode-{uuid.uuid4().hex[:6]}", "enable.auto.commit": False,
        "auto.offset.reset": "earliest", "fetch.max.bytes": 52_428_800}))
    consumer.assign(partitions_of(settings, topic))
    values: list[tuple[bytes, str]] = []
    deadline = time.monotonic() + 300
    while len(values) < expected_messages and time.monotonic() < deadline:
        values += [(m.value(), wire_format(m.headers())) for m in consumer.consume(1000, timeout=1.0)
                   if not m.error()]
    consumer.close()
    started = time.perf_counter()
    # as the stream decodes: Arrow predictions into columns, JSON into structs
    events = sum(len(decode_prediction_columns(value)) if fmt == ARROW_FORMAT else
                 len(decode_message(Prediction, value, fmt)) for value, fmt in values)
    return events / (time.perf_counter() - started)


def pending_bytes(settings: Settings, model: str) -> dict[str, float]:
    """Redis bytes per waiting prediction of ``model``: its segments, expiry index and joined set, exactly."""
    client = redis.Redis.from_url(settings.redis.url)
    keys = Keys(settings.redis.key_prefix)
    stored = stored_waiting(client, keys, model)  # counted from the stored rows, not from the worker's count
    waiting = len(stored)
    with_features = sum(1 for v in stored.values() if decode_pending_prediction(v).features is not None)
    segments = [keys.pending_segment(model, n) for n in client.zrange(keys.pending_prediction_expiry(model), 0, -1)]
    used = sum(int(client.memory_usage(k, samples=0) or 0) for k in
               [*segments, keys.pending_prediction_expiry(model), keys.pending_prediction_joined(model)])
    return {"waiting": waiting, "bytes_per_waiting": used / max(waiting, 1), "with_features": with_features}


def run_scenario(base_env: dict[str, str], scenario: Scenario, folder: Path) -> dict[str, object]:
    run_id = uuid.uuid4().hex[:8]
    env = isolated_env(base_env, run_id)
    env["DRIFTWARDEN__STREAM__WEB_PORT"] = str(free_port())
    settings = load_settings(env={**os.environ, **env})
    ensure_topics(settings)
    print(f"[{scenario.name}] producing {scenario.events:,} events in {scenario.wire} messages of "
          f"{scenario.per_message} for {scenario.models} model(s)", flush=True)
    t0 = time.perf_counter()
    messages = produce(settings, scenario)
    print(f"[{scenario.name}] {messages:,} messages in {time.perf_counter() - t0:.1f}s", flush=True)
    topic = settings.kafka.topics.predictions
    base = max(baseline(settings, topic, scenario.events) for _ in range(2))
    print(f"[{scenario.name}] baseline (confluent-kafka + json.loads or pyarrow): {base:,.0f} events/s", flush=True)
    decode = max(decode_alone(settings, topic, messages) for _ in range(2))
    print(f"[{scenario.name}] contract decode alone: {decode:,.0f} events/s", flush=True)
    models = [f"bench-{m:03d}" for m in range(scenario.models)]
    ceilings: dict[str, dict[str, float]] = {}
    for kind in ("stock", "path"):
        ceiling_env = {**env, "DRIFTWARDEN__REDIS__KEY_PREFIX": f"dw-ceiling-{kind}-{run_id}"}
        ceilings[kind] = run_worker(load_settings(env={**os.environ, **ceiling_env}), ceiling_env,
                                    folder / scenario.name, scenario.events, models, ceiling=kind)
        print(f"[{scenario.name}] Faust alone, {kind} (an agent that only counts): "
              f"{ceilings[kind]['events_per_s']:,.0f} events/s", flush=True)
    worker = run_worker(settings, env, folder / scenario.name, scenario.events, models)
    print(f"[{scenario.name}] driftwarden stream: {worker['events_per_s']:,.0f} events/s "
          f"({worker['events_per_s'] / base:.3f} of the baseline), peak RSS "
          f"{worker['peak_rss_mib']:.0f} MiB, Redis +{worker['redis_mib']:.0f} MiB", flush=True)
    result: dict[str, object] = {"scenario": scenario.__dict__, "messages": messages,
                                 "baseline_events_per_s": base, "decode_events_per_s": decode,
                                 "faust_ceiling": ceilings["stock"], "faust_path_ceiling": ceilings["path"],
                                 "worker": worker, "ratio_to_baseline": worker["events_per_s"] / base,
                                 "ratio_to_faust_ceiling": worker["events_per_s"] / ceilings["path"]["events_per_s"]}
    if scenario.models > 1:
        # Scale-out: two workers of a fresh consumer group on the same topic (each takes half of the
        # partitions), on the same machine as the broker and Redis.
        two_id = uuid.uuid4().hex[:8]
        two_env = {**env, "DRIFTWARDEN__REDIS__KEY_PREFIX": f"dw-two-{two_id}",
                   "DRIFTWARDEN__STREAM__APP_ID": f"driftwarden-two-{two_id}"}
        two = run_worker(load_settings(env={**os.environ, **two_env}), two_env, folder / f"{scenario.name}-2",
                         scenario.events, models, workers=2)
        result["two_workers"] = two
        result["two_workers_ratio"] = two["events_per_s"] / worker["events_per_s"]
        print(f"[{scenario.name}] two workers ({settings.kafka.partitions} partitions): "
              f"{two['events_per_s']:,.0f} events/s, {result['two_workers_ratio']:.2f}x one worker "
              f"(broker, Redis and both workers share {os.cpu_count()} cores)", flush=True)
    if scenario.models == 1:
        pending = pending_bytes(settings, models[0])
        print(f"[{scenario.name}] Redis per waiting prediction: {pending['bytes_per_waiting']:.0f} bytes "
              f"({pending['waiting']:,} waiting, {pending['with_features']:,} with features)", flush=True)
        result["pending"] = pending
        # Round trips on a fresh Redis prefix, so the in-process run starts from no state as the worker did.
        rt_env = {**env, "DRIFTWARDEN__REDIS__KEY_PREFIX": f"dw-rt-{run_id}"}
        rt = round_trips(load_settings(env={**os.environ, **rt_env}), scenario.events, messages)
        print(f"[{scenario.name}] Redis round trips: {rt['round_trips_per_event']:.4f}/event, "
              f"{rt['round_trips_per_batch']:.1f}/batch; batch code alone "
              f"{rt['in_process_events_per_s']:,.0f} events/s", flush=True)
        result["redis"] = rt
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small topics: a smoke run, not a measurement")
    parser.add_argument("--only", action="append", default=[], metavar="SCENARIO",
                        help="run only this scenario (single_events, arrays_of_100, arrow_batches_of_1000, "
                             "100_models); repeatable")
    parser.add_argument("--keep-logs", action="store_true", help="keep the workers' logs and the stack folder")
    args = parser.parse_args()
    scale = 0.05 if args.quick else 1.0
    scenarios = [
        Scenario("single_events", int(100_000 * scale), 1, 1),
        Scenario("arrays_of_100", int(1_000_000 * scale), 100, 1),
        Scenario("arrow_batches_of_1000", int(1_000_000 * scale), 1000, 1, wire=ARROW_FORMAT),
        Scenario("100_models", int(500_000 * scale), 100, 100),
    ]
    scenarios = [s for s in scenarios if not args.only or s.name in args.only]
    home = Path(tempfile.mkdtemp(prefix="dw-bench-stream-"))
    stack = Stack(home)
    started = time.perf_counter()
    env = stack.up(log=lambda line: print(f"[stack] {line}", flush=True))
    print(f"[stack] up in {time.perf_counter() - started:.1f}s", flush=True)
    results: list[dict[str, object]] = []
    try:
        for scenario in scenarios:
            results.append(run_scenario(env, scenario, home / "workers"))
    except Exception:
        print(f"worker logs kept in {home / 'workers'}", file=sys.stderr)
        raise
    finally:
        stack.down(log=lambda line: None)
    summary = {"timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "quick": args.quick,
               "cpus": os.cpu_count(), "load_average": os.getloadavg(), "scenarios": results}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(summary, indent=1))
    print(f"\n{'scenario':22} {'baseline':>9} {'decode':>9} {'Faust':>9} {'our path':>9} {'stream':>9} "
          f"{'ratio':>6} {'peak RSS':>9} {'B/waiting':>9} {'RT/event':>9}   (events/s; ratio = stream/baseline)")
    for r in results:
        w, c, p = r["worker"], r["faust_ceiling"], r["faust_path_ceiling"]
        assert isinstance(w, dict) and isinstance(c, dict) and isinstance(p, dict)
        rt, pend = r.get("redis"), r.get("pending")
        rt_text = f"{rt['round_trips_per_event']:.4f}" if isinstance(rt, dict) else "-"
        pend_text = f"{pend['bytes_per_waiting']:.0f}" if isinstance(pend, dict) else "-"
        print(f"{r['scenario']['name']:22} {r['baseline_events_per_s']:>9,.0f} "  # type: ignore[index]
              f"{r['decode_events_per_s']:>9,.0f} {c['events_per_s']:>9,.0f} {p['events_per_s']:>9,.0f} "
              f"{w['events_per_s']:>9,.0f} {r['ratio_to_baseline']:>6.3f} {w['peak_rss_mib']:>6.0f}MiB "
              f"{pend_text:>9} {rt_text:>9}")
    for r in results:
        if "two_workers" in r:
            print(f"{r['scenario']['name']}: 2 workers {r['two_workers']['events_per_s']:,.0f} events/s = "  # type: ignore[index]
                  f"{r['two_workers_ratio']:.2f}x 1 worker (broker, Redis and workers on the same "
                  f"{os.cpu_count()} cores)")
    print(f"written to {RESULTS.relative_to(ROOT)}; load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cpus")
    if args.keep_logs:
        print(f"worker logs in {home / 'workers'}")
    else:
        shutil.rmtree(home, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
