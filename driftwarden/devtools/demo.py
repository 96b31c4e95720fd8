"""``driftwarden demo``: the whole loop on real services, shown to a person in the terminal.

Starts the local stack, trains version 1 on a labelled reference period, registers it as ``champion``
and onboards it with its training file (``driftwarden.devtools.demo_model``), then starts both workers, sends a
stream whose ``income`` distribution and label rule shift part-way, and follows ``drift-events``,
``drift-alerts`` and ``model-updates`` until a challenger trained on recent labelled data beats version 1
on the same holdout and is promoted. Each run uses its own topics and Redis prefix, so runs never see
each other's state.
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

from driftwarden.contract.events import ContractError, DriftAlert, DriftEvent, ModelUpdate, decode, encode
from driftwarden.contract.kafka import client_config, ensure_topics
from driftwarden.contract.settings import Settings, load_settings, monitor_config
from driftwarden.devtools.demo_model import REFERENCE_ROWS, FirstVersionTrainer, train_first_version
from driftwarden.devtools.devstack import DEFAULT_HOME, Stack, free_port
from driftwarden.devtools.live import LiveView
from driftwarden.devtools.status_view import StatusUnavailable, fetch_status
from driftwarden.devtools.traffic import SHIFTED_FEATURE, TrafficSpec, generate

RECENT_SAMPLES = 1000  # the retrain worker's max_samples in the demo: the newest labelled predictions
DEMO_RATE = 1000.0
DEMO_TOTAL = 40_000  # an upper bound: the sender stops once the stream compares against version 2
SWITCH_WAIT_S = 10.0  # predictions per second: ten windows of 1000 close about a second apart
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
                    rate: float | None = None, progress: Callable[[int], None] | None = None,
                    stop: threading.Event | None = None) -> int:
    """Send the spec's predictions (and labels) as JSON arrays keyed by model; return events sent.

    ``rate`` caps predictions per second (the demo paces itself so that a person sees windows close one
    by one); ``progress`` is told the running count after each batch; ``stop`` ends the traffic early.
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
            if stop is not None and stop.is_set():
                preds, labs = [], []
                break
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


def run_demo(first_version: FirstVersionTrainer, config_path: str | None = None, home: Path | None = None,
             timeout: float = 170.0) -> int:
    """The demo; ``first_version`` trains and registers version 1 (``retrain_worker.initial``, handed in by the
    CLI since devtools may not import a worker)."""
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
    # The challenger learns from recent labelled data: the newest samples, not the whole history.
    env.setdefault("DRIFTWARDEN__RETRAIN__MAX_SAMPLES", str(RECENT_SAMPLES))
    # Retrain on the data drift of income, whose first window holds only post-shift predictions; ADWIN
    # notices the new concept within ~100 labels, before there is recent data to learn it from.
    env.setdefault("DRIFTWARDEN__RETRAIN__TRIGGER_KINDS", "[data_drift]")
    settings = load_settings(config_path, env={**os.environ, **env})
    ensure_topics(settings)
    workers = Workers(env, stack.home / "demo" / run_id)
    # MLflow model names outlive a run: a per-run name gives every demo its own version 1.
    # The traffic goes on after the promotion, so the stream adopts version 2's reference while we watch.
    spec = TrafficSpec(model=f"credit-risk-{run_id}", total=DEMO_TOTAL)
    first = train_first_version(settings, spec, workers.folder, first_version)
    console.print(f"version {first.version} of {spec.model} trained on {REFERENCE_ROWS} labelled rows of the "
                  f"reference period (holdout accuracy {first.holdout['accuracy']:.3f}), registered in MLflow, "
                  f"alias champion; onboarded with {first.file} (sha256 {first.sha256[:12]}…)")
    workers.start("stream", "stream")
    workers.start("retrain-worker", "retrain-worker")
    console.print(f"workers started (logs in {workers.folder}); run id [bold]{run_id}[/]")

    consumer = Consumer(client_config(settings, **{"group.id": f"demo-watch-{run_id}",
                                                   "auto.offset.reset": "earliest"}))
    t = settings.kafka.topics
    consumer.subscribe([t.drift_events, t.drift_alerts, t.model_updates])
    console.print(f"sending {spec.total} predictions with labels at {DEMO_RATE:.0f}/s; [bold]{SHIFTED_FEATURE}[/] "
                  f"shifts by {spec.shift} sd from event {spec.shift_at} on, and the label rule changes with it")
    sender = Sender(settings, spec, rate=DEMO_RATE)
    status_url = f"http://127.0.0.1:{settings.stream.web_port}"
    monitor = settings.monitor_for(spec.model)
    view = LiveView(spec.model, monitor_config(monitor, window_seconds=None))
    view.champion = first.version
    # A terminal gets the live view; a log (CI, a pipe) gets the same facts as plain lines.
    live = Live(view, console=console, refresh_per_second=4) if console.is_terminal else None
    say = (lambda text, style="": view.event(text, style)) if live else (
        lambda text, style="": console.print(view.event(text, style), style=style, markup=False, highlight=False))
    drift: Counter[tuple[str, str, str]] = Counter()
    promoted: ModelUpdate | None = None
    promoted_at = 0.0
    first_drift_at: float | None = None
    first_window: dict[str, int] = {}  # feature -> first window it drifted in
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
                if promoted is not None and (_switched(view, promoted.version) or now > promoted_at + SWITCH_WAIT_S):
                    break  # the stream compares against the new version's training data: the summary
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
                    if e.kind == "data_drift":
                        first_window[e.feature or "-"] = min(first_window.get(e.feature or "-", e.window.index),
                                                             e.window.index)
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
                        promoted, promoted_at = u, time.monotonic()
                        view.champion = u.version
                        next_status = time.monotonic() + 1.0
            except ContractError as exc:  # someone else's message on our topics: say so, keep watching
                say(f"skipped a message on {msg.topic()} that breaks the contract: {exc}", "dim")
    finally:
        if live:
            live.stop()
        consumer.close()
        sender.stop.set()
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
    if SHIFTED_FEATURE in first_window:
        console.print(f"{SHIFTED_FEATURE} first drifted in window {first_window[SHIFTED_FEATURE]}; the shift starts "
                      f"in window {spec.shift_at // monitor.window_size} (the reference is version 1's training "
                      f"data, so window 0 is compared too)")
    for line in comparison_lines(promoted, settings):
        console.print(line)
    console.print(f"[green]model {promoted.model} version {promoted.version} is now the champion[/]")
    reference = (view.snapshot.get("reference") or {})
    if reference:
        console.print(f"the stream compares against: {describe_reference(reference)}")
    bin_dir = Path(sys.executable).parent
    console.print(f"roll back to version {first.version} (the stream switches back to {first.file}) with:\n"
                  f"  DRIFTWARDEN__KAFKA__TOPICS__MODEL_UPDATES={t.model_updates} "
                  f"MLFLOW_TRACKING_URI={settings.mlflow.tracking_uri} {bin_dir}/driftwarden rollback {spec.model}")
    console.print(f"the stack keeps running; stop it with: {bin_dir}/driftwarden stack down")
    return 0


def comparison_lines(update: ModelUpdate, settings: Settings) -> list[str]:
    """Champion and challenger on the same holdout, as the retrain worker scored them."""
    cfg = settings.retrain.for_model(update.model)
    names = sorted({k.split("_", 1)[1] for k in update.metrics if k.startswith(("champion_", "challenger_"))})
    old, new = update.previous_version, update.version
    lines = [f"champion v{old} vs challenger v{new} on the same holdout of recent labelled predictions "
             f"(decides: {cfg.metric}, margin {cfg.promote_margin}):"]
    for name in names:
        champion, challenger = update.metrics.get(f"champion_{name}"), update.metrics.get(f"challenger_{name}")
        lines.append(f"  {name:9} v{old} {_score(champion)}   v{new} {_score(challenger)}")
    lines.append(f"decision: {'promoted' if update.promoted else 'kept the champion'} ({update.reason})")
    return lines


def describe_reference(reference: dict[str, object]) -> str:
    if reference.get("source") == "training_file":
        return f"training file {reference.get('file')} ({reference.get('rows')} rows)"
    if reference.get("source") == "version_training":
        return f"version {reference.get('version')}'s training data"
    return f"the first {reference.get('n')} predictions"


def _score(value: float | None) -> str:
    return "n/a  " if value is None else f"{value:.3f}"


class Sender(threading.Thread):
    """Sends the demo's traffic in the background, so the live view shows the stream keeping up."""

    def __init__(self, settings: Settings, spec: TrafficSpec, rate: float | None = None) -> None:
        super().__init__(name="demo-sender", daemon=True)
        self.settings, self.spec, self.rate = settings, spec, rate
        self.sent = 0
        self.seconds = 0.0
        self.error: Exception | None = None
        self.stop = threading.Event()  # the demo has seen what it came for: stop sending

    def run(self) -> None:
        started = time.monotonic()
        try:
            self.sent = produce_traffic(self.settings, self.spec, rate=self.rate, progress=self._progress,
                                        stop=self.stop)
        except Exception as exc:  # noqa: BLE001 - reported by the demo's summary
            self.error = exc
        self.seconds = time.monotonic() - started

    def _progress(self, sent: int) -> None:
        self.sent = sent


def _switched(view: LiveView, version: str | None) -> bool:
    reference = view.snapshot.get("reference") or {}
    return reference.get("source") != "training_file" and reference.get("version") == version


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
