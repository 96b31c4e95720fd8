"""The worker as a process: SIGKILL in the middle of training, restart, exactly one version; /metrics
is served; SIGTERM exits cleanly with the offset committed."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from mlflow import MlflowClient
from test_retrain_support import (
    TopicReader,
    clean_env,
    committed,
    drift_event,
    produce,
    samples,
    seed_samples,
    with_retrain,
    write_config,
)

from driftwarden.contract.settings import Settings
from driftwarden.devtools.devstack import free_port

pytestmark = pytest.mark.services
REPO = Path(__file__).resolve().parents[2]


def spawn(config: Path, log: Path) -> subprocess.Popen[bytes]:
    env = clean_env(PYTHONPATH=str(Path(__file__).parent), DRIFTWARDEN_LOG_LEVEL="info",
                    MLFLOW_HTTP_REQUEST_MAX_RETRIES="1")
    with log.open("ab") as out:
        return subprocess.Popen([sys.executable, "-m", "driftwarden.cli", "--config", str(config),
                                 "retrain-worker"], cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)


def wait_for(condition, timeout: float, what: str, log: Path) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}; worker log:\n{log.read_text()[-4000:]}")
        time.sleep(0.2)


def test_killed_mid_training_retrains_once_after_restart(settings: Settings, unique: str,
                                                         tmp_path: Path) -> None:
    model = f"killed-{unique}"
    calls = tmp_path / "trainer-calls"
    calls.touch()
    port = free_port()
    s = with_retrain(settings, cooldown_s=0, metrics_port=port,
                     consumer_config={"session.timeout.ms": 6000, "heartbeat.interval.ms": 1000},
                     trainer="test_retrain_support:slow_trainer",
                     trainer_params={"calls": str(calls), "sleep_s": 300})
    config = write_config(s, tmp_path / "driftwarden.yaml")
    log = tmp_path / "worker.log"
    seed_samples(s, model, samples(800, "new", seed=11))
    produce(s, drift_event(model))

    first = spawn(config, log)
    try:
        wait_for(lambda: calls.read_text().count("\n") == 1, 60, "the first training to start", log)
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    client = MlflowClient(tracking_uri=s.mlflow.tracking_uri)
    assert client.search_model_versions(f"name = '{model}'") == []
    assert committed(s) == 0

    second = spawn(config, log)
    try:
        updates = TopicReader(s, s.kafka.topics.model_updates).updates(1, timeout=90)
        assert len(updates) == 1, log.read_text()[-4000:]
        assert updates[0].promoted and updates[0].version == "1"
        assert calls.read_text().count("\n") == 2  # trained once more after the restart, not twice
        assert [v.version for v in client.search_model_versions(f"name = '{model}'")] == ["1"]
        wait_for(lambda: committed(s) == 1, 30, "the offset commit", log)
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
        labels = f'model="{model}",outcome="promoted",trigger="concept_drift"'
        assert f"driftwarden_retrains_total{{{labels}}} 1.0" in metrics
        assert f'driftwarden_champion_version{{model="{model}"}} 1.0' in metrics
        second.send_signal(signal.SIGTERM)
        assert second.wait(30) == 0
    finally:
        if second.poll() is None:
            second.kill()
            second.wait(10)
    assert "retrain worker stopped" in log.read_text()


class Crash(BaseException):
    """Stands for the process dying: nothing in the worker catches a BaseException."""


def test_crash_after_registering_finishes_the_same_version(settings: Settings, unique: str,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from prometheus_client import CollectorRegistry

    from retrain_worker.registry import ModelRegistry
    from retrain_worker.worker import RetrainWorker

    model = f"crashed-{unique}"
    s = with_retrain(settings, cooldown_s=0)
    seed_samples(s, model, samples(800, "new", seed=12))
    produce(s, drift_event(model))

    def crash(*args: object, **kwargs: object) -> None:
        raise Crash

    worker = RetrainWorker(s, CollectorRegistry())
    worker.start()
    with monkeypatch.context() as patch:
        patch.setattr(ModelRegistry, "promote", crash)
        with pytest.raises(Crash):
            while True:
                worker.poll_once(0.5)
    worker.close()
    client = MlflowClient(tracking_uri=s.mlflow.tracking_uri)
    [registered] = client.search_model_versions(f"name = '{model}'")
    assert "decision" not in registered.tags
    assert committed(s) == 0

    restarted = RetrainWorker(s, CollectorRegistry())
    restarted.start()
    try:
        deadline = time.monotonic() + 60
        while committed(s) == 0:
            assert time.monotonic() < deadline
            restarted.poll_once(0.5)
    finally:
        restarted.close()
    [update] = TopicReader(s, s.kafka.topics.model_updates).updates(1)
    assert (update.version, update.promoted, update.run_id) == ("1", True, registered.run_id)
    assert update.metrics["challenger_accuracy"] > 0.8  # read back from the run
    assert [v.version for v in client.search_model_versions(f"name = '{model}'")] == ["1"]
    assert client.get_model_version_by_alias(model, "champion").version == "1"
    assert client.get_model_version(model, "1").tags["decision"] == "promoted"


def test_sigterm_during_training_finishes_commits_and_exits(settings: Settings, unique: str,
                                                            tmp_path: Path) -> None:
    model = f"sigterm-{unique}"
    calls = tmp_path / "trainer-calls"
    calls.touch()
    s = with_retrain(settings, cooldown_s=0, trainer="test_retrain_support:slow_trainer",
                     trainer_params={"calls": str(calls), "sleep_s": 4})
    config = write_config(s, tmp_path / "driftwarden.yaml")
    log = tmp_path / "worker.log"
    seed_samples(s, model, samples(800, "new", seed=13))
    produce(s, drift_event(model), drift_event(model, window=4))
    worker = spawn(config, log)
    try:
        wait_for(lambda: calls.read_text().count("\n") == 1, 60, "the training to start", log)
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(60) == 0, log.read_text()[-4000:]
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait(10)
    [update] = TopicReader(s, s.kafka.topics.model_updates).updates(1)
    assert update.promoted and update.version == "1"
    assert committed(s) == 1  # the finished event is committed; the second one was not taken
    assert calls.read_text().count("\n") == 1
    assert "stopping after the current message" in log.read_text()
