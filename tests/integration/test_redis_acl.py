"""Both workers under the least-privilege ACL user (driftwarden/ops/redis_acl.py) on a real Redis with ACLs on:
drifting traffic is applied exactly, a model is retrained and promoted, Redis logs no denied command, and
the user can do nothing beyond its commands and its key prefix."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from confluent_kafka import Consumer

from driftwarden.contract.events import ModelUpdate, decode
from driftwarden.contract.kafka import client_config, ensure_topics
from driftwarden.contract.settings import load_settings
from driftwarden.devtools.demo import Workers, isolated_env, produce_traffic
from driftwarden.devtools.devstack import free_port
from driftwarden.devtools.traffic import TrafficSpec
from driftwarden.ops.redis_acl import acl_user_line
from stream.state import Keys

pytestmark = pytest.mark.services

ADMIN_PW, WORKER_PW = "admin-pw", "worker-pw"


@pytest.fixture
def acl_redis(tmp_path: Path, unique: str) -> Iterator[tuple[int, str]]:
    """A redis-server whose default user needs a password and whose workers' user is the shipped ACL."""
    port, prefix = free_port(), f"dw-{unique}"
    conf = tmp_path / "redis.conf"
    conf.write_text("\n".join([
        f"port {port}", "bind 127.0.0.1", f"dir {tmp_path}", 'save ""', "appendonly no",
        f"user default on >{ADMIN_PW} ~* &* +@all",
        acl_user_line("driftwarden", prefix, WORKER_PW), ""]))
    proc = subprocess.Popen(["redis-server", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    admin = redis.Redis(port=port, password=ADMIN_PW)
    deadline = time.monotonic() + 10
    while True:
        try:
            admin.ping()
            break
        except redis.ConnectionError:
            assert time.monotonic() < deadline, "redis-server with ACLs did not start"
            time.sleep(0.1)
    yield port, prefix
    proc.terminate()
    proc.wait(10)


def test_workers_run_under_the_least_privilege_acl_user(
        stack_env: dict[str, str], unique: str, tmp_path: Path, acl_redis: tuple[int, str]) -> None:
    port, prefix = acl_redis
    admin = redis.Redis(port=port, password=ADMIN_PW)
    env = isolated_env(stack_env, unique)
    env.update({
        "REDIS_URL": f"redis://driftwarden:{WORKER_PW}@127.0.0.1:{port}/0",
        "DRIFTWARDEN__STREAM__WEB_PORT": str(free_port()),
        "DRIFTWARDEN__RETRAIN__METRICS_PORT": str(free_port()),
        "DRIFTWARDEN__MONITOR__REFERENCE_SIZE": "1000",
        "DRIFTWARDEN__MONITOR__WINDOW_SIZE": "500",
        "DRIFTWARDEN__STREAM__DATA_DIR": str(tmp_path / "faust"),
    })
    settings = load_settings(env=env)
    assert settings.redis.key_prefix == prefix
    ensure_topics(settings)
    workers = Workers(env, tmp_path / "workers")
    workers.start("stream", "stream")
    workers.start("retrain-worker", "retrain-worker")
    model = f"acl-{unique}"
    spec = TrafficSpec(model=model, total=4000, shift_at=2000)
    consumer = Consumer(client_config(settings, **{"group.id": f"acl-{unique}", "auto.offset.reset": "earliest"}))
    consumer.subscribe([settings.kafka.topics.model_updates])
    promoted: list[ModelUpdate] = []
    try:
        assert produce_traffic(settings, spec) == spec.total
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and not promoted and not admin.execute_command("ACL", "LOG"):
            msg = consumer.poll(0.5)
            if msg is not None and not msg.error():
                update = decode(ModelUpdate, msg.value())
                promoted += [update] if update.promoted else []
            for name, proc in workers.procs.items():
                assert proc.poll() is None, f"{name} exited {proc.returncode}"
        counters = Keys(prefix).counters(model)
        while (time.monotonic() < deadline and int(admin.hget(counters, "predictions") or 0) < spec.total
               and not admin.execute_command("ACL", "LOG")):
            time.sleep(0.2)
    finally:
        consumer.close()
        codes = workers.stop()
    logs = "\n".join(p.read_text(errors="replace")[-2000:] for p in (tmp_path / "workers").glob("*.log"))
    assert promoted, logs
    assert all(code in (0, -15) for code in codes.values()), (codes, logs)
    assert {k.decode(): int(v) for k, v in admin.hgetall(Keys(prefix).counters(model)).items()
            if k in (b"predictions", b"labels")} == {"predictions": spec.total, "labels": spec.total}
    denied = admin.execute_command("ACL", "LOG")
    assert denied == [], f"commands the ACL refused the workers: {denied}"
    assert admin.keys(f"{prefix}:retrain:*") and admin.keys(f"{prefix}:reference:{model}:*")

    worker = redis.Redis(port=port, username="driftwarden", password=WORKER_PW)
    assert worker.get(Keys(prefix).state(model)) is not None  # its own keys: yes
    for forbidden in (lambda: worker.get("someone-else:secret"), lambda: worker.set(f"{prefix}x", 1),
                      lambda: worker.flushall(), lambda: worker.keys("*"), lambda: worker.config_get("*"),
                      lambda: worker.eval("return 1", 0), lambda: worker.publish("chan", "x"),
                      lambda: worker.execute_command("ACL", "LIST"), lambda: worker.bgsave(),
                      lambda: worker.copy(counters, f"{prefix}:copy"), lambda: worker.select(1)):
        with pytest.raises(redis.exceptions.NoPermissionError):
            forbidden()
