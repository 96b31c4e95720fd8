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
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from confluent_kafka import Consumer, Producer
from rich.live import Live

from driftwarden.config import Settings, load_settings
from driftwarden.devstack import DEFAULT_HOME, Stack, free_port
from driftwarden.events import ContractError, DriftAlert, DriftEvent, ModelUpdate, decode, encode
from driftwarden.kafka_io import client_config, ensure_topics
from driftwarden.live import LiveView
from driftwarden.report import monitor_config
from driftwarden.status_view import StatusUnavailable, fetch_status
from driftwarden.traffic import SHIFTED_FEATURE, TrafficSpec, generate

DEMO_RATE = 1000.0  # predictions per second: ten windows of 1000 close about a second apart
TOPIC_FIELDS = ("predictions", "labels", "drift_events", "drift_alerts", "performance_estimates", "model_updates",
                "dead_letters")


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


def produce_traffic(settings: Settings, spec: TrafficSpec, batch: int = 100, labels: bool = True,
                    rate: float | None = None, progress: Callable[[int], None] | None = None) -> int:
    """Send the spec's predictions (and labels) as JSON arrays keyed by model; return events sent.

    ``rate`` caps predictions per second (the demo paces itself so that a person sees windows close one
    by one); ``progress`` is told the running count after each batch.
    """
    producer = Producer(client_config(settings, **{"linger.ms": 20, "enable.idempotence": True}))
    topics = settings.kafka.topics
    preds, labs, sent = [], [], 0
    started = time.monotonic()
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
            if progress is not None:
                progress(sent)
            if rate is not None:
                time.sleep(max(0.0, started + sent / rate - time.monotonic()))
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
    console.soft_wrap = not console.is_terminal  # a log keeps one line per event, whatever its width
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
    console.print(f"sending {spec.total} predictions with labels at {DEMO_RATE:.0f}/s; [bold]{SHIFTED_FEATURE}[/] "
                  f"shifts by {spec.shift} sd from event {spec.shift_at} on, and the label rule changes with it")
    sender = Sender(settings, spec, rate=DEMO_RATE)
    status_url = f"http://127.0.0.1:{settings.stream.web_port}"
    monitor = settings.monitor_for(spec.model)
    view = LiveView(spec.model, monitor_config(monitor, monitor.window_size))
    # A terminal gets the live view; a log (CI, a pipe) gets the same facts as plain lines.
    live = Live(view, console=console, refresh_per_second=4) if console.is_terminal else None
    say = (lambda text, style="": view.event(text, style)) if live else (
        lambda text, style="": console.print(view.event(text, style), style=style, markup=False, highlight=False))
    drift: Counter[tuple[str, str, str]] = Counter()
    promoted: ModelUpdate | None = None
    first_drift_at: float | None = None
    deadline = time.monotonic() + timeout
    next_status = next_line = time.monotonic()
    failed: str | None = None
    # A closed terminal (SIGHUP) or a SIGTERM must still stop the workers, which run in their own sessions.
    for signum in (signal.SIGHUP, signal.SIGTERM):
        signal.signal(signum, _raise_exit)
    try:
        if live:
            live.start()
        while time.monotonic() < deadline and failed is None:
            now = time.monotonic()
            if not sender.is_alive() and sender.sent == 0 and sender.error is None and _stream_ready(status_url):
                view.phase_note = "stream ready, sending"
                sender.start()  # once the stream serves, so that it consumes while the traffic arrives
            if now >= next_status:
                next_status = now + 1.0
                view.sent = sender.sent
                _poll_status(view, status_url, now)
                if promoted is not None:
                    break  # one more snapshot after the promotion, then the summary
            if not live and now >= next_line:
                next_line = now + 5.0
                console.print(view.line(), markup=False, highlight=False)
            for name, proc in workers.procs.items():
                if proc.poll() is not None:
                    failed = f"{name} exited with {proc.returncode}; see {workers.folder}/{name}.log"
            msg = consumer.poll(0.25)
            if msg is None or msg.error():
                continue
            value = msg.value() or b""
            try:
                if msg.topic() == t.drift_events:
                    e = decode(DriftEvent, value)
                    first_drift_at = first_drift_at or time.monotonic()
                    drift[(e.kind, e.signal, e.feature or "-")] += 1
                    say(f"drift  {e.kind:16} {e.signal:18} feature={e.feature or '-':12} score={e.score:.3f} "
                        f"(threshold {e.threshold:.3f}) {e.severity} window {e.window.index}", "yellow")
                elif msg.topic() == t.drift_alerts:
                    a = decode(DriftAlert, value)
                    say(f"alert  {a.status:8} {a.annotations.summary}", "red")
                else:
                    u = decode(ModelUpdate, value)
                    metrics = ", ".join(f"{k}={v:.3f}" for k, v in sorted(u.metrics.items()))
                    say(f"model  {u.model} version {u.version} promoted={u.promoted} alias={u.alias} "
                        f"{metrics} ({u.reason})", "green" if u.promoted else "magenta")
                    if u.promoted:
                        promoted = u
                        view.champion = u.version
                        next_status = time.monotonic() + 1.0
            except ContractError as exc:  # someone else's message on our topics: say so, keep watching
                say(f"skipped a message on {msg.topic()} that breaks the contract: {exc}", "dim")
    finally:
        if live:
            live.stop()
        consumer.close()
        if sender.is_alive():
            sender.join(timeout=30)
        codes = workers.stop()
    total = time.monotonic() - t0
    console.rule("summary")
    if failed:
        console.print(f"[red]{failed}")
        return 1
    if sender.error:
        console.print(f"[red]sending failed: {sender.error}")
        return 1
    console.print(view.line(), markup=False, highlight=False)
    console.print(f"stack up: {t_stack:.1f}s; sent {sender.sent} predictions and labels in {sender.seconds:.1f}s; "
                  f"whole demo: {total:.1f}s; worker exit codes: {codes}")
    for (kind, sig, feature), n in sorted(drift.items()):
        console.print(f"drift events: {kind} {sig} {feature}: {n}")
    if first_drift_at is not None and promoted is not None:
        console.print(f"first drift event to promoted version: {time.monotonic() - first_drift_at:.1f}s")
    if promoted is None:
        console.print("[red]no promoted model version within the time limit[/]")
        return 1
    console.print(f"[green]model {promoted.model} version {promoted.version} is now the champion[/]")
    console.print(f"the stack keeps running; stop it with: {Path(sys.executable).parent}/driftwarden stack down")
    return 0


class Sender(threading.Thread):
    """Sends the demo's traffic in the background, so the live view shows the stream keeping up."""

    def __init__(self, settings: Settings, spec: TrafficSpec, rate: float | None = None) -> None:
        super().__init__(name="demo-sender", daemon=True)
        self.settings, self.spec, self.rate = settings, spec, rate
        self.sent = 0
        self.seconds = 0.0
        self.error: Exception | None = None

    def run(self) -> None:
        started = time.monotonic()
        try:
            self.sent = produce_traffic(self.settings, self.spec, rate=self.rate, progress=self._progress)
        except Exception as exc:  # noqa: BLE001 - reported by the demo's summary
            self.error = exc
        self.seconds = time.monotonic() - started

    def _progress(self, sent: int) -> None:
        self.sent = sent


def _stream_ready(url: str) -> bool:
    try:
        fetch_status(url, timeout=1.0)
    except StatusUnavailable:
        return False
    return True


def _raise_exit(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def _poll_status(view: LiveView, url: str, now: float) -> None:
    """Feed the view the model's entry of the stream's /status; a stream still starting is no error."""
    try:
        status = fetch_status(url, timeout=2.0)
    except StatusUnavailable:
        return
    model = status["models"].get(view.model)
    if model is not None:
        view.observe(model, now)
