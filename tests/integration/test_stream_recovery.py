"""kill -9 of a stream worker with Kafka static membership (``stream.group_instance_id``): the restarted
worker gets its partitions back without waiting for the dead member's session to expire, and applies
every event exactly once. The session timeout here is 60 s, so a resumption before it expired is the
broker recognising the member, not a fast timeout (how fast it is: bench/bench_recovery.py)."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
from test_stream_workers import Run, Traffic, spec_of, wait_for

from driftwarden.contract.kafka import ensure_topics
from driftwarden.contract.settings import load_settings
from driftwarden.devtools.demo import Workers, isolated_env
from stream.state import decode_state

pytestmark = pytest.mark.services
SESSION_TIMEOUT_S = 60


def test_kill_9_with_static_membership_resumes_before_the_session_expires(
        stack_env: dict[str, str], unique: str, tmp_path: Path) -> None:
    env = isolated_env(stack_env, unique) | {
        "DRIFTWARDEN__KAFKA__PARTITIONS": "4",
        "DRIFTWARDEN__STREAM__SESSION_TIMEOUT_S": str(SESSION_TIMEOUT_S),
        "DRIFTWARDEN__STREAM__GROUP_INSTANCE_ID": "stream-0",
        "DRIFTWARDEN__STREAM__BATCH_SIZE": "20",
        "DRIFTWARDEN__STREAM__BATCH_TIMEOUT_S": "0.05",
        "DRIFTWARDEN__STREAM__DATA_DIR": str(tmp_path / "faust"),
        "DRIFTWARDEN__MONITOR__REFERENCE_SIZE": "500",
        "DRIFTWARDEN__MONITOR__WINDOW_SIZE": "250",
    }
    settings = load_settings(env=env)
    ensure_topics(settings)
    run = Run(settings, env, Workers(env, tmp_path / "workers"), {})
    specs = [spec_of("alpha", 3000), spec_of("beta", 2000)]
    models = [s.model for s in specs]
    try:
        run.start("stream")
        traffic = Traffic(settings, specs)
        traffic.start()
        wait_for(lambda: sum(p for p, _ in run.counters(models).values()) >= 1500, 90, "a third applied", run)
        os.killpg(run.workers.procs["stream"].pid, signal.SIGKILL)
        assert run.workers.procs["stream"].wait(10) == -9
        killed_at, at_kill = time.monotonic(), sum(p for p, _ in run.counters(models).values())
        assert at_kill < 5000, "the kill must land mid-stream"
        run.workers.env = {**env, "DRIFTWARDEN__STREAM__WEB_PORT": str(run.ports["stream"])}
        run.workers.start("stream-restarted", "stream")
        run.ports["stream-restarted"] = run.ports["stream"]
        wait_for(lambda: sum(p for p, _ in run.counters(models).values()) > at_kill, SESSION_TIMEOUT_S,
                 "the restarted worker applying again", run)
        assert time.monotonic() - killed_at < SESSION_TIMEOUT_S
        totals = {s.model: (s.total, s.total) for s in specs}
        wait_for(lambda: traffic.done.is_set() and run.counters(models) == totals, 120, "every event applied", run)
        time.sleep(2)
        assert run.counters(models) == totals
        for spec in specs:
            state = decode_state(run.redis.get(run.keys.state(spec.model)))
            assert state.observations == state.outcomes == spec.total
            assert run.redis.llen(run.keys.samples(spec.model)) == spec.total
    finally:
        run.workers.stop()
