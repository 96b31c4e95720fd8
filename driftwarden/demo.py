"""``driftwarden demo``: the whole loop on real services, shown to a person in the terminal.

Starts the local stack and both workers, sends a stream whose ``income`` distribution and label rule
shift part-way, and follows ``drift-events``, ``drift-alerts`` and ``model-updates`` until the retrained
model is promoted. Each run uses its own topics and Redis prefix, so runs never see each other's state.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from confluent_kafka import Consumer, Producer

from driftwarden.config import Settings, load_settings
from driftwarden.devstack import DEFAULT_HOME, Stack, free_port
from driftwarden.events import DriftAlert, DriftEvent, ModelUpdate, decode, encode
from driftwarden.kafka_io import client_config, ensure_topics
from driftwarden.traffic import SHIFTED_FEATURE, TrafficSpec, generate

TOPIC_FIELDS = ("predictions", "labels", "drift_events", "drift_alerts", "model_updates", "dead_letters")


def isolated_env(base: dict[str, str], run_id: str) -> dict[str, str]:
    """Environment overrides that give one run its own topics, consumer groups and Redis keys."""
    env = dict(base)
    for f in TOPIC_FIELDS:
        env[f"DRIFTWARDEN__KAFKA__TOPICS__{f.upper()}"] = f"{f.replace('_', '-')}-{run_id}"
    env["DRIFTWARDEN__REDIS__KEY_PREFIX"] = f"dw-{run_id}"
    env["DRIFTWARDEN__STREAM__APP_ID"] = f"driftwarden-{run_id}"
    env["DRIFTWARDEN__RETRAIN__GROUP_ID"] = f"driftwarden-retrain-{run_id}"
    env["DRIFTWARDEN__MLFLOW__EXPERIMENT"] = "driftwarden-demo"
    return env


@dataclass
class Workers:
    """The stream and retrain workers as child processes, with their logs in ``folder``."""

    env: dict[str, str]
    folder: Path
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        self.folder.mkdir(parents=True, exist_ok=True)
        log = open(self.folder / f"{name}.log", "ab")  # noqa: SIM115 - lives as long as the child
        cmd = [sys.executable, "-m", "driftwarden.cli", *args]
        proc = subprocess.Popen(cmd, env={**os.environ, **self.env}, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
        self.procs[name] = proc
        return proc

    def stop(self, timeout: float = 20.0) -> dict[str, int | None]:
        for proc in self.procs.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        codes: dict[str, int | None] = {}
        for name, proc in self.procs.items():
            try:
                codes[name] = proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                codes[name] = proc.wait()
        return codes


def produce_traffic(settings: Settings, spec: TrafficSpec, batch: int = 100, labels: bool = True) -> int:
    """Send the spec's predictions (and labels) as JSON arrays keyed by model; return events sent."""
    producer = Producer(client_config(settings, **{"linger.ms": 20, "enable.idempotence": True}))
    topics = settings.kafka.topics
    preds, labs, sent = [], [], 0
    for p, lab in generate(spec):
        preds.append(p)
        labs.append(lab)
        if len(preds) == batch:
            producer.produce(topics.predictions, key=spec.model.encode(), value=encode(preds))
            if labels:
                producer.produce(topics.labels, key=spec.model.encode(), value=encode(labs))
            sent += len(preds)
            preds, labs = [], []
            producer.poll(0)
    if preds:
        producer.produce(topics.predictions, key=spec.model.encode(), value=encode(preds))
        if labels:
            producer.produce(topics.labels, key=spec.model.encode(), value=encode(labs))
        sent += len(preds)
    if producer.flush(30):
        raise RuntimeError("producer could not deliver every event")
    return sent


def run_demo(config_path: str | None = None, home: Path | None = None, timeout: float = 170.0) -> int:
    from rich.console import Console

    console = Console()
    t0 = time.monotonic()
    console.rule("[bold]driftwarden demo")
    stack = Stack(home or DEFAULT_HOME)
    env = stack.up(log=lambda s: console.print(f"[dim]stack[/] {s}"))
    t_stack = time.monotonic() - t0
    run_id = uuid.uuid4().hex[:8]
    env = isolated_env(env, run_id)
    env.setdefault("DRIFTWARDEN__STREAM__WEB_PORT", str(free_port()))
    env.setdefault("DRIFTWARDEN__RETRAIN__METRICS_PORT", str(free_port()))
    settings = load_settings(config_path, env={**os.environ, **env})
    ensure_topics(settings)
    workers = Workers(env, stack.home / "demo" / run_id)
    workers.start("stream", "stream")
    workers.start("retrain-worker", "retrain-worker")
    console.print(f"workers started (logs in {workers.folder}); run id [bold]{run_id}[/]")

    consumer = Consumer(client_config(settings, **{"group.id": f"demo-watch-{run_id}",
                                                   "auto.offset.reset": "earliest"}))
    t = settings.kafka.topics
    consumer.subscribe([t.drift_events, t.drift_alerts, t.model_updates])
    # MLflow model names outlive a run: a per-run name makes every demo start from "no champion".
    spec = TrafficSpec(model=f"credit-risk-{run_id}")
    console.print(f"sending {spec.total} predictions with labels; [bold]{SHIFTED_FEATURE}[/] shifts by "
                  f"{spec.shift} sd from event {spec.shift_at} on, and the label rule changes with it")
    t_send = time.monotonic()
    sent = produce_traffic(settings, spec)
    console.print(f"sent {sent} predictions and {sent} labels in {time.monotonic() - t_send:.1f}s")

    drift: Counter[tuple[str, str, str]] = Counter()
    promoted: ModelUpdate | None = None
    first_drift_at: float | None = None
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and promoted is None:
            msg = consumer.poll(0.5)
            for name, proc in workers.procs.items():
                if proc.poll() is not None:
                    console.print(f"[red]{name} exited with {proc.returncode}; see {workers.folder}/{name}.log")
                    return 1
            if msg is None or msg.error():
                continue
            if msg.topic() == t.drift_events:
                e = decode(DriftEvent, msg.value())
                first_drift_at = first_drift_at or time.monotonic()
                drift[(e.kind, e.signal, e.feature or "-")] += 1
                console.print(f"[yellow]drift[/]  {e.kind:16} {e.signal:6} feature={e.feature or '-':12} "
                              f"score={e.score:.3f} (threshold {e.threshold}) {e.severity} window {e.window.index}")
            elif msg.topic() == t.drift_alerts:
                a = decode(DriftAlert, msg.value())
                console.print(f"[red]alert[/]  {a.status:8} {a.annotations.summary}")
            else:
                u = decode(ModelUpdate, msg.value())
                colour = "green" if u.promoted else "magenta"
                console.print(f"[{colour}]model[/]  {u.model} version {u.version} promoted={u.promoted} "
                              f"alias={u.alias} metrics={u.metrics} ({u.reason})")
                if u.promoted:
                    promoted = u
    finally:
        consumer.close()
        codes = workers.stop()
    total = time.monotonic() - t0
    console.rule("summary")
    console.print(f"stack up: {t_stack:.1f}s; whole demo: {total:.1f}s; worker exit codes: {codes}")
    if first_drift_at is not None and promoted is not None:
        console.print(f"first drift event to promoted version: {time.monotonic() - first_drift_at:.1f}s")
    if promoted is None:
        console.print("[red]no promoted model version within the time limit[/]")
        return 1
    console.print(f"[green]model {promoted.model} version {promoted.version} is now the champion[/]")
    console.print(f"the stack keeps running; stop it with: {Path(sys.executable).parent}/driftwarden stack down")
    return 0
