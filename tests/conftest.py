"""Shared fixtures. Service fixtures start the real Kafka, Redis and MLflow once per session, on free
loopback ports, in a folder of their own; each test gets unique topic names and a unique Redis prefix."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from driftwarden.contract.settings import Settings, load_settings
from driftwarden.devtools.devstack import Stack


@pytest.fixture(scope="session")
def stack_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """The real services, started for this test session and stopped after it."""
    home = Path(os.environ.get("DRIFTWARDEN_TEST_STACK") or tmp_path_factory.mktemp("devstack"))
    stack = Stack(home)
    env = stack.up(log=lambda line: print(f"[devstack] {line}"))
    yield env
    if not os.environ.get("DRIFTWARDEN_TEST_STACK"):
        stack.down(log=lambda line: None)


@pytest.fixture(scope="session")
def redis_cluster_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real three-master Redis Cluster on loopback, for this session (tests/redis_cluster.py)."""
    from redis_cluster import RedisClusterProcess

    cluster = RedisClusterProcess(tmp_path_factory.mktemp("redis-cluster"))
    try:
        yield cluster.up()
    finally:
        cluster.down()


@pytest.fixture
def redis_mode() -> str:
    """``single`` (the devstack's Redis) or ``cluster``; a test runs on both with
    ``@pytest.mark.parametrize("redis_mode", ["single", "cluster"])``."""
    return "single"


@pytest.fixture
def redis_env(request: pytest.FixtureRequest, redis_mode: str) -> dict[str, str]:
    """Environment overrides that point the workers at the Redis of ``redis_mode``."""
    if redis_mode == "single":
        return {}
    url = request.getfixturevalue("redis_cluster_url")
    return {"REDIS_URL": url, "DRIFTWARDEN__REDIS__URL": url, "DRIFTWARDEN__REDIS__CLUSTER": "true"}


@pytest.fixture
def unique() -> str:
    return uuid.uuid4().hex[:8]


@pytest.fixture
def settings(stack_env: dict[str, str], redis_env: dict[str, str], unique: str, tmp_path: Path) -> Settings:
    """Settings pointing at the real services, with topics, groups and Redis keys unique to this test."""
    env = dict(stack_env) | redis_env
    for field in ("predictions", "labels", "drift_events", "drift_alerts", "performance_estimates", "model_updates",
                  "dead_letters"):
        env[f"DRIFTWARDEN__KAFKA__TOPICS__{field.upper()}"] = f"{field.replace('_', '-')}-{unique}"
    env["DRIFTWARDEN__KAFKA__PARTITIONS"] = "2"
    env["DRIFTWARDEN__REDIS__KEY_PREFIX"] = f"dw-{unique}"
    env["DRIFTWARDEN__STREAM__APP_ID"] = f"dw-stream-{unique}"
    env["DRIFTWARDEN__RETRAIN__GROUP_ID"] = f"dw-retrain-{unique}"
    env["DRIFTWARDEN__MLFLOW__EXPERIMENT"] = f"dw-{unique}"
    return load_settings(env=env)
