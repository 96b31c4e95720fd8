"""Real Prometheus, Alertmanager and a JSON webhook receiver on loopback, each in a folder of its own, for the
tests of the alert path. Debian's ``prometheus`` and ``prometheus-alertmanager`` (scripts/bootstrap.sh)."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from driftwarden.devtools.devstack import free_port


def wait_until(condition: Callable[[], bool], timeout: float, what: str,
               details: Callable[[], str] = lambda: "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}\n{details()}")


def get_json(url: str) -> Any:
    try:
        with urllib.request.urlopen(url, timeout=3) as response:
            return json.loads(response.read())
    except OSError:
        return None


class Service:
    """A child process with its log in ``folder``; stopped with SIGTERM, or SIGKILL after 10 s."""

    def __init__(self, name: str, cmd: list[str], folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.name, self.folder = name, folder
        self.log_path = folder / f"{name}.log"
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         cwd=folder)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def binary(name: str) -> str:
    path = shutil.which(name)
    assert path, f"{name} is missing: scripts/bootstrap.sh installs it (Debian's prometheus packages)"
    return path


class Alertmanager(Service):
    def __init__(self, folder: Path, webhook_url: str | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        receiver: dict[str, Any] = {"name": "on-call"}
        if webhook_url:
            receiver["webhook_configs"] = [{"url": webhook_url, "send_resolved": True}]
        config = {"route": {"receiver": "on-call", "group_by": ["alertname", "model"], "group_wait": "0s",
                            "group_interval": "1s", "repeat_interval": "1h"},
                  "receivers": [receiver]}
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "alertmanager.yml").write_text(json.dumps(config))
        super().__init__("alertmanager", [
            binary("prometheus-alertmanager"), f"--config.file={folder / 'alertmanager.yml'}",
            f"--storage.path={folder / 'data'}", f"--web.listen-address=127.0.0.1:{self.port}",
            "--cluster.listen-address="], folder)
        wait_until(lambda: get_json(f"{self.url}/api/v2/status") is not None, 30, "alertmanager up", self.log)

    def alerts(self) -> list[dict[str, Any]]:
        """Active alerts as ``amtool alert query`` reports them (the operator's view)."""
        out = subprocess.run([binary("amtool"), "alert", "query", f"--alertmanager.url={self.url}", "-o", "json"],
                             capture_output=True, text=True, timeout=30)
        assert out.returncode == 0, out.stderr
        return list(json.loads(out.stdout or "[]"))


class WebhookReceiver:
    """Records every JSON body POSTed to it. ``up()``/``down()`` open and close the port itself, so that a
    sender sees a receiver that is really gone (connection refused), not an error page."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/hook"
        self.bodies: list[Any] = []
        self._server: ThreadingHTTPServer | None = None

    def up(self) -> None:
        bodies = self.bodies

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                length = int(self.headers.get("Content-Length", 0))
                bodies.append(json.loads(self.rfile.read(length)))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *_: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def down(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


class Prometheus(Service):
    """Scrapes the given jobs every second, evaluates ``rules`` every second, sends alerts to Alertmanager."""

    def __init__(self, folder: Path, jobs: dict[str, list[str]], rules: Path, alertmanager: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s", "scrape_timeout": "1s"},
            "rule_files": [str(rules)],
            "alerting": {"alertmanagers": [{"static_configs": [{"targets": [alertmanager.split("//")[1]]}]}]},
            "scrape_configs": [{"job_name": job, "static_configs": [{"targets": targets}]}
                               for job, targets in jobs.items()],
        }
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "prometheus.yml").write_text(json.dumps(config))
        super().__init__("prometheus", [
            binary("prometheus"), f"--config.file={folder / 'prometheus.yml'}",
            f"--storage.tsdb.path={folder / 'data'}", f"--web.listen-address=127.0.0.1:{self.port}"], folder)
        wait_until(self._ready, 30, "prometheus up", self.log)

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    def query(self, expr: str) -> list[dict[str, Any]]:
        body = get_json(f"{self.url}/api/v1/query?query={urllib.parse.quote(expr)}")
        return list(body["data"]["result"]) if body else []

    def alerts(self) -> list[dict[str, Any]]:
        body = get_json(f"{self.url}/api/v1/alerts")
        return list(body["data"]["alerts"]) if body else []
