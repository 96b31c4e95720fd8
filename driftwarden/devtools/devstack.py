"""Start, check and stop a local stack of real services on loopback: Kafka (KRaft), Redis and MLflow.

No Docker engine is assumed. Kafka runs from Maven Central jars cached outside the repository
(``~/.cache/driftwarden/kafka-<version>``), Redis is Debian's ``redis-server`` and MLflow is the
``mlflow server`` of this virtual environment with a sqlite backend. Every call is idempotent: a
service whose process is alive and answering is reused, a dead one is started again on the same port.
The stack's addresses are written to ``<home>/stack.json`` and exported by ``env_vars``.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from driftwarden.contract.errors import ServiceError

REPO = Path(__file__).resolve().parents[2]
KAFKA_POM = REPO / "scripts" / "kafka" / "pom.xml"
KAFKA_LOG4J = REPO / "scripts" / "kafka" / "log4j2.properties"
KAFKA_VERSION = "4.1.1"
DEFAULT_HOME = REPO / ".devstack"
SERVICES = ("kafka", "redis", "mlflow")


DEFAULT_CACHE = Path.home() / ".cache" / "driftwarden"


def kafka_jars_dir(cache: Path = DEFAULT_CACHE) -> Path:
    return cache / f"kafka-{KAFKA_VERSION}"


def ensure_kafka_jars(cache: Path = DEFAULT_CACHE) -> Path:
    """Copy the broker's jars from Maven Central into ``cache`` once; later calls are offline."""
    target = kafka_jars_dir(cache)
    if (target / f"kafka_2.13-{KAFKA_VERSION}.jar").exists():
        return target
    if shutil.which("mvn") is None:
        raise ServiceError("Maven (mvn) is needed once to fetch the Kafka jars; install it first")
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    cmd = ["mvn", "-q", "-B", "-f", str(KAFKA_POM), "dependency:copy-dependencies",
           "-DincludeScope=runtime", f"-Dkafka.version={KAFKA_VERSION}", f"-DoutputDirectory={partial}"]
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        raise ServiceError(f"fetching Kafka jars failed:\n{result.stdout[-2000:]}{result.stderr[-2000:]}")
    shutil.rmtree(target, ignore_errors=True)
    partial.rename(target)
    return target


_random = random.SystemRandom()  # independent of any seed a test or a caller sets
# Ports this process handed out: a caller binds its port later (a server it starts), so two picks in a row
# could name the same free port (a Redis Cluster test's node and another's bus port did)
_handed: dict[int, None] = {}
_HANDED_MAX = 4096


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = (int(v) for v in Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    except (OSError, ValueError):
        low, high = 32768, 60999  # Linux's default
    return low, high


def free_port() -> int:
    """A free loopback port outside the kernel's ephemeral range.

    A port the kernel hands out (bind to 0) is also one it may give an outgoing connection: Kafka
    connecting to itself took a port chosen for Redis between choosing and binding, and Redis failed
    to start. Ports below the ephemeral range are never handed out that way.
    """
    low, high = _ephemeral_range()
    candidates = range(max(1024, low - 12_000), low) if low > 2048 else range(high + 1, 65_536)
    for _ in range(200):
        port = _random.choice(candidates)
        if port in _handed:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed[port] = None
        while len(_handed) > _HANDED_MAX:
            del _handed[next(iter(_handed))]
        return port
    raise ServiceError(f"no free loopback port found in {candidates.start}-{candidates.stop - 1}")


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@dataclass
class Stack:
    """A stack rooted at ``home``: one folder per service with its data, log and pid file."""

    home: Path = DEFAULT_HOME
    cache: Path = DEFAULT_CACHE  # the Kafka jars, shared by every stack of the machine

    @property
    def state_file(self) -> Path:
        return self.home / "stack.json"

    def _ports(self) -> dict[str, int]:
        if self.state_file.exists():
            return {k: int(v) for k, v in json.loads(self.state_file.read_text()).get("ports", {}).items()}
        return {}

    def _save_ports(self, ports: dict[str, int]) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        self.state_file.write_text(json.dumps({"ports": ports}, indent=2))

    def env_vars(self) -> dict[str, str]:
        ports = self._ports()
        if not ports:
            raise ServiceError(f"no stack at {self.home}; run `driftwarden stack up` first")
        return {
            "KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{ports['kafka']}",
            "REDIS_URL": f"redis://127.0.0.1:{ports['redis']}/0",
            "MLFLOW_TRACKING_URI": f"http://127.0.0.1:{ports['mlflow']}",
        }

    # -- lifecycle -----------------------------------------------------------------------------------

    def up(self, log: Callable[[str], None] = print) -> dict[str, str]:
        """Start whatever is not running, wait until each service answers, return the addresses."""
        ports = self._ports()
        for name in SERVICES:
            ports.setdefault(name, free_port())
        ports.setdefault("kafka_controller", free_port())
        self._save_ports(ports)
        started = time.monotonic()
        for name in SERVICES:
            t0 = time.monotonic()
            if self._healthy(name, ports):
                log(f"{name:6} already up on 127.0.0.1:{ports[name]}")
                continue
            self._stop_one(name)
            getattr(self, f"_start_{name}")(ports)
            self._wait(name, ports)
            log(f"{name:6} up on 127.0.0.1:{ports[name]} in {time.monotonic() - t0:.1f}s")
        log(f"stack ready in {time.monotonic() - started:.1f}s (state in {self.home})")
        return self.env_vars()

    def down(self, log: Callable[[str], None] = print) -> None:
        for name in reversed(SERVICES):
            if self._stop_one(name):
                log(f"{name:6} stopped")

    def status(self) -> dict[str, bool]:
        ports = self._ports()
        return {name: bool(ports) and self._healthy(name, ports) for name in SERVICES}

    def _pid_file(self, name: str) -> Path:
        return self.home / name / "pid"

    def _pid(self, name: str) -> int | None:
        try:
            pid = int(self._pid_file(name).read_text())
            os.kill(pid, 0)
        except (FileNotFoundError, ValueError, ProcessLookupError, PermissionError):
            return None
        return pid

    def _spawn(self, name: str, cmd: list[str], env: dict[str, str] | None = None) -> None:
        folder = self.home / name
        folder.mkdir(parents=True, exist_ok=True)
        with open(folder / "service.log", "ab") as out:
            proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    start_new_session=True, env=env, cwd=folder)
        self._pid_file(name).write_text(str(proc.pid))

    def _stop_one(self, name: str, timeout: float = 15.0) -> bool:
        pid = self._pid(name)
        if pid is None:
            return False
        try:
            os.killpg(pid, signal.SIGTERM)
        except ProcessLookupError:
            return False
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self._pid(name) is not None:
            _reap(pid)
            time.sleep(0.1)
        if self._pid(name) is not None:
            os.killpg(pid, signal.SIGKILL)
            _reap(pid)
        self._pid_file(name).unlink(missing_ok=True)
        return True

    def _wait(self, name: str, ports: dict[str, int], timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._healthy(name, ports):
                return
            if self._pid(name) is None:
                break
            time.sleep(0.3)
        tail = (self.home / name / "service.log").read_text(errors="replace")[-3000:]
        raise ServiceError(f"{name} did not become ready on port {ports[name]}; log tail:\n{tail}")

    # -- health --------------------------------------------------------------------------------------

    def _healthy(self, name: str, ports: dict[str, int]) -> bool:
        if self._pid(name) is None or not port_open(ports[name]):
            return False
        if name == "redis":
            return _redis_ping(ports["redis"])
        if name == "mlflow":
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{ports['mlflow']}/health", timeout=2) as r:
                    return bool(r.status == 200)
            except OSError:
                return False
        return _kafka_ready(ports["kafka"])

    # -- services ------------------------------------------------------------------------------------

    def _start_kafka(self, ports: dict[str, int]) -> None:
        jars = ensure_kafka_jars(self.cache)
        java = shutil.which("java")
        if java is None:
            raise ServiceError("Java 17+ is needed to run the Kafka broker")
        folder = self.home / "kafka"
        data = folder / "data"
        props = folder / "server.properties"
        folder.mkdir(parents=True, exist_ok=True)
        props.write_text(_kafka_properties(ports["kafka"], ports["kafka_controller"], data))
        classpath = f"{jars}/*"
        if not (data / "meta.properties").exists():
            shutil.rmtree(data, ignore_errors=True)
            cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
            fmt = subprocess.run([java, "-cp", classpath, "kafka.tools.StorageTool", "format",
                                  f"--cluster-id={cluster_id}",  # an id may start with "-"
                                  "-c", str(props)], capture_output=True, text=True)
            if fmt.returncode != 0:
                raise ServiceError(f"formatting Kafka storage failed: {fmt.stdout}{fmt.stderr}")
        self._spawn("kafka", [java, "-Xms256m", "-Xmx768m", "-XX:+UseG1GC",
                              f"-Dlog4j2.configurationFile={KAFKA_LOG4J}", f"-Dkafka.logs.dir={folder}",
                              "-cp", classpath, "kafka.Kafka", str(props)])

    def _start_redis(self, ports: dict[str, int]) -> None:
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        if not Path(binary).exists():
            raise ServiceError("redis-server is not installed (apt-get install -y redis-server)")
        folder = self.home / "redis"
        folder.mkdir(parents=True, exist_ok=True)
        self._spawn("redis", [binary, "--port", str(ports["redis"]), "--bind", "127.0.0.1",
                              "--dir", str(folder), "--appendonly", "yes", "--save", "",
                              "--daemonize", "no", "--protected-mode", "no"])

    def _start_mlflow(self, ports: dict[str, int]) -> None:
        folder = self.home / "mlflow"
        (folder / "artifacts").mkdir(parents=True, exist_ok=True)
        mlflow_bin = Path(sys.executable).with_name("mlflow")
        cmd = [str(mlflow_bin) if mlflow_bin.exists() else "mlflow", "server",
               "--backend-store-uri", f"sqlite:///{folder / 'mlflow.db'}",
               "--artifacts-destination", str(folder / "artifacts"),
               "--host", "127.0.0.1", "--port", str(ports["mlflow"]), "--workers", "1"]
        env = dict(os.environ)
        env.setdefault("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")
        self._spawn("mlflow", cmd, env=env)


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def _redis_ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def _kafka_ready(port: int) -> bool:
    from confluent_kafka.admin import AdminClient

    try:
        md = AdminClient({"bootstrap.servers": f"127.0.0.1:{port}"}).list_topics(timeout=2)
    except Exception:  # noqa: BLE001 - any failure here means "not ready yet"
        return False
    return len(md.brokers) > 0


def _kafka_properties(port: int, controller_port: int, data: Path) -> str:
    return "\n".join([
        "process.roles=broker,controller",
        "node.id=1",
        f"controller.quorum.voters=1@127.0.0.1:{controller_port}",
        f"listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}",
        f"advertised.listeners=PLAINTEXT://127.0.0.1:{port}",
        "controller.listener.names=CONTROLLER",
        "inter.broker.listener.name=PLAINTEXT",
        "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        f"log.dirs={data}",
        "num.partitions=4",
        "auto.create.topics.enable=true",
        "offsets.topic.replication.factor=1",
        "offsets.topic.num.partitions=10",
        "transaction.state.log.replication.factor=1",
        "transaction.state.log.min.isr=1",
        "share.coordinator.state.topic.replication.factor=1",
        "share.coordinator.state.topic.min.isr=1",
        # A single-node dev broker: rebalance at once instead of waiting for more members.
        "group.initial.rebalance.delay.ms=0",
        "log.retention.hours=168",
        "",
    ])
