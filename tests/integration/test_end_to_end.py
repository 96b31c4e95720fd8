"""The whole loop on the real broker, Redis and MLflow: drifting traffic in, drift detected on the
shifted feature only, a model retrained, registered and promoted to ``champion``."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis
from confluent_kafka import Consumer
from mlflow.tracking import MlflowClient

from driftwarden.contract.events import DriftEvent, ModelUpdate, decode
from driftwarden.contract.kafka import client_config, ensure_topics
from driftwarden.contract.settings import Settings
from driftwarden.devtools.demo import Workers, isolated_env, produce_traffic
from driftwarden.devtools.devstack import free_port
from driftwarden.devtools.traffic import CATEGORICAL, NUMERIC, SHIFTED_FEATURE, TrafficSpec
from stream.state import Keys

pytestmark = pytest.mark.services


def _consume_all(settings: Settings, topics: list[str], group: str, until: float,
                 stop_when: callable) -> list[tuple[str, bytes]]:  # type: ignore[valid-type]
    consumer = Consumer(client_config(settings, **{"group.id": group, "auto.offset.reset": "earliest"}))
    consumer.subscribe(topics)
    seen: list[tuple[str, bytes]] = []
    try:
        while time.monotonic() < until:
            msg = consumer.poll(0.5)
            if msg is not None and not msg.error():
                seen.append((msg.topic(), msg.value()))
            if stop_when(seen):
                break
    finally:
        consumer.close()
    return seen


def test_drifting_traffic_is_detected_retrained_and_promoted(
    stack_env: dict[str, str], settings: Settings, unique: str, tmp_path: Path
) -> None:
    env = isolated_env(stack_env, unique)
    env["DRIFTWARDEN__STREAM__WEB_PORT"] = str(free_port())
    env["DRIFTWARDEN__RETRAIN__METRICS_PORT"] = str(free_port())
    # The fixture's settings and these env vars name the same topics and prefix.
    from driftwarden.contract.settings import load_settings

    settings = load_settings(env=env)
    ensure_topics(settings)
    workers = Workers(env, tmp_path / "workers")
    workers.start("stream", "stream")
    workers.start("retrain-worker", "retrain-worker")
    model = f"credit-risk-{unique}"
    spec = TrafficSpec(model=model, total=10_000, shift_at=5_000)
    try:
        assert produce_traffic(settings, spec) == spec.total
        t = settings.kafka.topics

        def promoted(seen: list[tuple[str, bytes]]) -> bool:
            return any(topic == t.model_updates and decode(ModelUpdate, v).promoted for topic, v in seen)

        seen = _consume_all(settings, [t.drift_events, t.model_updates], f"e2e-{unique}",
                            time.monotonic() + 240, promoted)
        # Wait until the stream has applied every prediction, so that "no drift on other features"
        # is a statement about the whole stream, not about how far it got.
        r = redis.Redis.from_url(settings.redis.url)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            applied = int(r.hget(Keys(settings.redis.key_prefix).counters(model), "predictions") or 0)
            if applied >= spec.total:
                break
            time.sleep(0.5)
        assert applied == spec.total
        seen += _consume_all(settings, [t.drift_events], f"e2e-tail-{unique}", time.monotonic() + 20,
                             lambda s: False)
    finally:
        codes = workers.stop()
    logs = {name: (tmp_path / "workers" / f"{name}.log").read_text(errors="replace")[-3000:]
            for name in workers.procs}
    assert all(code in (0, -15) for code in codes.values()), (codes, logs)

    events = {decode(DriftEvent, v).drift_id: decode(DriftEvent, v) for topic, v in seen
              if topic == settings.kafka.topics.drift_events}
    data_drift = [e for e in events.values() if e.kind == "data_drift"]
    assert any(e.feature == SHIFTED_FEATURE and e.severity == "critical" for e in data_drift), logs
    # Every window after the shift drifts on income; none before it.
    shifted_windows = {e.window.index for e in data_drift if e.feature == SHIFTED_FEATURE and e.signal == "psi"}
    first_shifted = (spec.shift_at - 2000) // 1000
    assert min(shifted_windows) == first_shifted
    unshifted = (set(NUMERIC) | set(CATEGORICAL)) - {SHIFTED_FEATURE}
    assert [e for e in events.values() if e.feature in unshifted] == []

    updates = [decode(ModelUpdate, v) for topic, v in seen if topic == settings.kafka.topics.model_updates]
    assert updates and any(u.promoted and u.alias == "champion" for u in updates), logs
    client = MlflowClient(tracking_uri=settings.mlflow.tracking_uri)
    champion = client.get_model_version_by_alias(model, "champion")
    promoted_update = next(u for u in updates if u.promoted)
    assert champion.version == promoted_update.version
    assert champion.tags.get("drift_id") == promoted_update.drift_id


def _session_stack_home(stack_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder of the stack the session fixture started (the demo reuses a stack by its folder)."""
    configured = os.environ.get("DRIFTWARDEN_TEST_STACK")
    candidates = [Path(configured)] if configured else sorted(tmp_path_factory.getbasetemp().glob("devstack*"))
    redis_port = int(stack_env["REDIS_URL"].rsplit(":", 1)[1].split("/")[0])
    for home in candidates:
        state = home / "stack.json"
        if state.exists() and json.loads(state.read_text())["ports"].get("redis") == redis_port:
            return home
    raise AssertionError(f"no stack folder among {candidates} runs Redis on port {redis_port}")


def test_demo_without_a_terminal_logs_plain_lines_and_ends_with_its_summary(
    stack_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> None:
    """``driftwarden demo`` as CI runs it: stdout is a pipe, so no live view, one plain line per fact."""
    home = _session_stack_home(stack_env, tmp_path_factory)
    env = {k: v for k, v in os.environ.items() if not k.startswith("DRIFTWARDEN__")}
    proc = subprocess.run([sys.executable, "-m", "driftwarden.cli", "demo", "--home", str(home)], env=env,
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=300)
    out = proc.stdout
    assert proc.returncode == 0, (out[-3000:], proc.stderr[-3000:])
    assert "\x1b[" not in out  # no colour or cursor codes in a log
    assert "open alerts (" not in out  # the live view's panels are for terminals only
    live_lines = [line for line in out.splitlines() if line.startswith("[live] ")]
    # Which three features a live line lists is a matter of when it is printed; the drifted one is named below.
    assert live_lines and any(re.search(r"\w+ psi \d", line) for line in live_lines)
    assert any(line.startswith("drift  data_drift") and "feature=income" in line for line in out.splitlines())
    assert any(line.startswith("model  ") and "promoted=True" in line for line in out.splitlines())
    summary = out[out.index("summary"):]
    assert "worker exit codes" in summary and "is now the champion" in summary
    # A team's story: version 1 registered as champion and onboarded with its training file before any
    # traffic, so the shift is caught in its own first window; the challenger beats it on the same holdout.
    assert re.search(r"^version 1 of credit-risk-\w+ trained on \d+ labelled rows .* alias champion; "
                     r"onboarded with v1-training\.csv", out, re.M), out[-3000:]
    assert "income first drifted in window 5; the shift starts in window 5" in summary
    assert any(line.startswith("model  ") and "version 2 promoted=True" in line for line in out.splitlines())
    scores = re.search(r"^  accuracy  v1 (\d\.\d+)   v2 (\d\.\d+)$", summary, re.M)
    assert "champion v1 vs challenger v2 on the same holdout" in summary and scores, summary
    assert float(scores.group(2)) > float(scores.group(1))
    assert "model credit-risk-" in summary and "version 2 is now the champion" in summary
    assert "the stream compares against: version 2's training data" in summary
    assert re.search(r"driftwarden rollback credit-risk-\w+$", summary, re.M)
