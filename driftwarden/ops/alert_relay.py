"""``driftwarden alert-relay``: the ``drift-alerts`` topic to Alertmanager's v2 API and/or a JSON webhook.

One message at a time: deliver to every configured target, retrying with exponential backoff until each
has taken it, then commit the offset. A relay stopped (or killed) before that leaves the offset uncommitted,
so the next one delivers the alert again: nothing is lost, and a repeat is harmless (Alertmanager merges
alerts by their labels; webhook receivers get the fingerprint and the drift_id to deduplicate on). An alert
a target refuses as malformed (HTTP 4xx other than 408/429) is not retried: it goes to the dead-letter
topic with the target's answer.
"""

from __future__ import annotations

import json
import logging
import signal
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

from confluent_kafka import KafkaException, Message
from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server

from driftwarden.contract.alerts import alertmanager_alert, webhook_payload
from driftwarden.contract.errors import DriftwardenError, ServiceError
from driftwarden.contract.events import ContractError, DeadLetter, DriftAlert, decode, encode, iso
from driftwarden.contract.kafka import ensure_topics, make_consumer, make_producer
from driftwarden.contract.settings import Settings

log = logging.getLogger(__name__)
# A receiver may be down for hours while the relay waits on one message: stay in the group meanwhile.
CONSUMER_DEFAULTS = {"session.timeout.ms": 10_000, "max.poll.interval.ms": 86_400_000}
REQUEST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
RETRYABLE_4XX = {408, 429}


class Undeliverable(DriftwardenError):
    """A target refused the alert itself; retrying the same body cannot succeed."""


class Stopped(DriftwardenError):
    """The relay was asked to stop before the message was delivered everywhere."""


class RelayMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.delivered = Counter("driftwarden_relay_alerts_total", "Alerts delivered, by target and status",
                                 ["target", "status"], registry=registry)
        self.failures = Counter("driftwarden_relay_delivery_failures_total",
                                "Failed delivery attempts (retried with backoff)", ["target"], registry=registry)
        self.dead_letters = Counter("driftwarden_relay_dead_letters_total",
                                    "Alerts sent to the dead-letter topic instead", ["reason"], registry=registry)
        self.request_seconds = Histogram("driftwarden_relay_request_seconds", "Time of one delivery request",
                                         ["target"], buckets=REQUEST_BUCKETS, registry=registry)


def post_json(url: str, body: Any, headers: dict[str, str], timeout: float) -> None:
    """POST ``body`` as JSON; raise ``Undeliverable`` for a refusal, ``OSError`` for anything to retry."""
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json", **headers})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            response.read()
    except urllib.error.HTTPError as exc:
        detail = exc.read()[:500].decode(errors="replace")
        if 400 <= exc.code < 500 and exc.code not in RETRYABLE_4XX:
            raise Undeliverable(f"HTTP {exc.code} from {_host(url)}: {detail}") from exc
        raise OSError(f"HTTP {exc.code} from {_host(url)}: {detail}") from exc


def _host(url: str) -> str:
    return url.split("//", 1)[-1].split("/", 1)[0].rsplit("@", 1)[-1]  # no credentials in logs


class AlertRelay:
    def __init__(self, settings: Settings, registry: CollectorRegistry | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.metrics = RelayMetrics(registry if registry is not None else CollectorRegistry())
        self._clock = clock
        self._stopping = threading.Event()
        self._consumer: Any = None
        self._producer: Any = None
        self._metrics_server: Any = None
        cfg = settings.alert_relay
        if not cfg.targets():
            raise ServiceError("alert-relay needs alert_relay.alertmanager_url or alert_relay.webhook_url")

    def start(self) -> None:
        s, cfg = self.settings, self.settings.alert_relay
        ensure_topics(s, [s.kafka.topics.drift_alerts, s.kafka.topics.dead_letters])
        self._producer = make_producer(s)
        self._consumer = make_consumer(s, cfg.group_id, **(CONSUMER_DEFAULTS | cfg.consumer_config))
        self._consumer.subscribe([s.kafka.topics.drift_alerts])
        if cfg.metrics_port:
            try:
                self._metrics_server = start_http_server(cfg.metrics_port, registry=self.metrics.registry)
            except OSError as exc:
                raise ServiceError(f"cannot serve /metrics on alert_relay.metrics_port {cfg.metrics_port}: "
                                   f"{exc}") from exc
        log.info("alert relay: %s -> %s as %s", s.kafka.topics.drift_alerts, ", ".join(cfg.targets()),
                 cfg.group_id)

    def stop(self) -> None:
        """Stop after the message in hand (or during its backoff, leaving it uncommitted)."""
        self._stopping.set()

    def close(self) -> None:
        if self._producer is not None:
            self._producer.flush(10)
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None
        if self._metrics_server is not None:
            server, _thread = self._metrics_server
            server.shutdown()
            self._metrics_server = None

    def run(self) -> None:
        while not self._stopping.is_set():
            try:
                self.poll_once()
            except Stopped:
                return

    def poll_once(self, timeout: float = 0.5) -> bool:
        """Take at most one message, deliver it everywhere, commit it; return whether one was taken."""
        msg = self._consumer.poll(timeout)
        if msg is None:
            return False
        if msg.error():
            log.warning("consumer error: %s", msg.error())
            return False
        try:
            alert = decode(DriftAlert, msg.value() or b"")
        except ContractError as exc:
            self._dead_letter(msg, f"{exc.reason}: {exc.detail}", exc.reason)
        else:
            try:
                self.deliver(alert)
            except Undeliverable as exc:
                self._dead_letter(msg, f"undeliverable: {exc}", "undeliverable")
        try:
            self._consumer.commit(message=msg, asynchronous=False)
        except KafkaException as exc:  # the partition moved in a rebalance: its next owner delivers it again
            log.warning("commit of %s[%d]@%d failed: %s", msg.topic(), msg.partition(), msg.offset(), exc)
        return True

    def deliver(self, alert: DriftAlert) -> None:
        """Deliver to every target, each retried with backoff until it succeeds; a target that has the alert
        is not sent it again while another is still failing."""
        cfg = self.settings.alert_relay
        pending = cfg.targets()
        delay = cfg.retry_initial_s
        while True:
            now = self._clock()
            for target in list(pending):
                started = time.perf_counter()
                try:
                    self._send(target, alert, now)
                except OSError as exc:
                    self.metrics.failures.labels(target=target).inc()
                    log.warning("%s: alert %s (%s) not delivered: %s; retrying in %.1fs", target,
                                alert.fingerprint, alert.status, exc, delay)
                    continue
                finally:
                    self.metrics.request_seconds.labels(target=target).observe(time.perf_counter() - started)
                pending.remove(target)
                self.metrics.delivered.labels(target=target, status=alert.status).inc()
            if not pending:
                return
            if self._stopping.wait(delay):
                raise Stopped(f"stopped with alert {alert.fingerprint} undelivered to {pending}")
            delay = min(delay * 2, cfg.retry_max_s)

    def _send(self, target: str, alert: DriftAlert, now: float) -> None:
        cfg = self.settings.alert_relay
        if target == "alertmanager":
            post_json(cfg.alertmanager_url.rstrip("/") + "/api/v2/alerts",
                      [alertmanager_alert(alert, now, cfg.firing_hold_s)], {}, cfg.timeout_s)
        else:
            post_json(cfg.webhook_url, webhook_payload(alert, now, cfg.firing_hold_s), cfg.webhook_headers,
                      cfg.timeout_s)

    def _dead_letter(self, msg: Message, error: str, reason: str) -> None:
        value, key = msg.value() or b"", msg.key()
        letter = DeadLetter(source_topic=msg.topic() or "", partition=msg.partition() or 0, offset=msg.offset() or 0,
                            key=key.decode(errors="replace") if key else None, error=error[:2000],
                            payload=value[:100_000].decode(errors="replace"), received_at=iso(self._clock()))
        log.warning("dead letter from %s[%d]@%d: %s", letter.source_topic, letter.partition, letter.offset, error)
        self._producer.produce(self.settings.kafka.topics.dead_letters, key=key, value=encode(letter))
        if self._producer.flush(15):
            raise ServiceError("the dead letter could not be published; the alert stays uncommitted")
        self.metrics.dead_letters.labels(reason=reason).inc()


def run_relay(settings: Settings, registry: CollectorRegistry | None = None) -> None:
    """Run until SIGTERM or SIGINT; an alert still being retried then stays uncommitted for the next relay."""
    relay = AlertRelay(settings, registry)

    def _on_signal(signum: int, _frame: Any) -> None:
        log.info("signal %d: stopping", signum)
        relay.stop()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    relay.start()
    try:
        relay.run()
    finally:
        relay.close()
        log.info("alert relay stopped")
