"""A real three-master Redis Cluster on loopback (Debian's ``redis-server`` in cluster mode, created with
``redis-cli --cluster create``), for the tests that run the workers against a cluster."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

from driftwarden.devtools.devstack import free_port

MASTERS = 3


class RedisClusterProcess:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.procs: list[subprocess.Popen[bytes]] = []
        self.ports: list[int] = []

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.ports[0]}/0"

    def up(self, timeout: float = 30.0) -> str:
        server = shutil.which("redis-server")
        cli = shutil.which("redis-cli")
        if server is None or cli is None:
            raise RuntimeError("redis-server and redis-cli are needed (apt-get install -y redis-server)")
        for i in range(MASTERS):
            port, bus = free_port(), free_port()
            node = self.folder / f"node-{i}"
            node.mkdir(parents=True, exist_ok=True)
            log = (node / "redis.log").open("wb")
            self.procs.append(subprocess.Popen(
                [server, "--port", str(port), "--bind", "127.0.0.1", "--cluster-enabled", "yes",
                 "--cluster-port", str(bus), "--cluster-config-file", str(node / "nodes.conf"),
                 "--cluster-node-timeout", "5000", "--dir", str(node), "--save", "", "--appendonly", "no"],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True))
            self.ports.append(port)
        for port in self.ports:
            self._wait(lambda p=port: self._cli(cli, p, "ping") == "PONG", timeout, f"node {port} up")
        subprocess.run([cli, "--cluster", "create", *[f"127.0.0.1:{p}" for p in self.ports],
                        "--cluster-replicas", "0", "--cluster-yes"],
                       check=True, capture_output=True, timeout=timeout)
        for port in self.ports:
            self._wait(lambda p=port: "cluster_state:ok" in self._cli(cli, p, "cluster", "info"), timeout,
                       f"node {port} cluster_state:ok")
        return self.url

    def down(self) -> None:
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()

    @staticmethod
    def _cli(cli: str, port: int, *args: str) -> str:
        done = subprocess.run([cli, "-p", str(port), *args], capture_output=True, text=True, timeout=10)
        return done.stdout.strip()

    def _wait(self, condition: object, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition():  # type: ignore[operator]
                return
            time.sleep(0.1)
        raise RuntimeError(f"Redis Cluster: timed out waiting for {what} (logs in {self.folder})")
