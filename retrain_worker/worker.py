"""The consumer loop: ``drift-events`` in, one decision per incident, ``model-updates`` out.

Order per message: decide (policy) → record the incident in Redis → retrain → record the decision →
publish the ``ModelUpdate`` → mark the incident done → commit the Kafka offset. A worker killed at any
step finds its record on restart (the uncommitted event is redelivered) and carries on from there.
MLflow or Redis being unavailable leaves the event uncommitted: it is retried after a back-off.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msgspec
from confluent_kafka import KafkaException, Message, TopicPartition
from prometheus_client import CollectorRegistry, start_http_server

from driftwarden.contract.errors import ServiceError
from driftwarden.contract.events import ContractError, DeadLetter, DriftEvent, ModelUpdate, decode, encode, iso
from driftwarden.contract.kafka import ensure_topics, make_consumer, make_producer
from driftwarden.contract.settings import Settings
from driftwarden.contract.storage import Keys, connect
from retrain_worker.exceptions import RetrainError, ServiceUnavailable
from retrain_worker.incidents import IncidentStore
from retrain_worker.metrics import RetrainMetrics
from retrain_worker.pipeline import Retrainer, code_version, failure_update
from retrain_worker.policy import (
    Decision,
    Incident,
    Policy,
    Starved,
    decide,
    decide_scheduled,
    schedule_key,
    schedule_slot,
    starts_cooldown,
    starved_index,
    starved_source,
    wants_data,
    window_key,
)
from retrain_worker.registry import ModelRegistry

log = logging.getLogger(__name__)
CONSUMER_DEFAULTS = {"session.timeout.ms": 10_000, "max.poll.interval.ms": 3_600_000}
SCHEDULE_CHECK_S = 5.0


@dataclass(frozen=True)
class Handled:
    """What ``handle`` did: the policy's decision and the update published for it, if any."""

    decision: Decision
    update: ModelUpdate | None = None


class RetrainWorker:
    def __init__(self, settings: Settings, registry: CollectorRegistry | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.metrics = RetrainMetrics(registry if registry is not None else CollectorRegistry())
        self._clock = clock
        self._stopping = threading.Event()
        self._reported: set[tuple[str, str]] = set()  # transient failures already published
        self._next_schedule_check = 0.0
        self._metrics_server: Any = None
        self._consumer: Any = None
        self._producer: Any = None
        self.store: IncidentStore
        self.registry: ModelRegistry
        self.retrainer: Retrainer

    # -- lifecycle -----------------------------------------------------------------------------------

    def start(self) -> None:
        """Connect to Redis, MLflow and Kafka, subscribe, serve /metrics. Nothing here needs MLflow or
        Redis to answer yet: an outage is reported per event, not at start."""
        s = self.settings
        os.environ.update(s.mlflow.client_env())  # MLflow's client reads its retries and timeout only there
        client = connect(s.redis.url, s.redis.cluster, socket_timeout=10, socket_connect_timeout=5)
        self.store = IncidentStore(client, Keys(s.redis.key_prefix, s.redis.cluster))
        self.registry = ModelRegistry(s.mlflow.tracking_uri, s.mlflow.experiment)
        self.registry.start()
        self.retrainer = Retrainer(s, self.store, self.registry, self.metrics, code_version())
        topics = s.kafka.topics
        ensure_topics(s, [topics.drift_events, topics.model_updates, topics.dead_letters])
        self._producer = make_producer(s)
        consumer_config = CONSUMER_DEFAULTS | s.retrain.consumer_config
        self._consumer = make_consumer(s, s.retrain.group_id, **consumer_config)
        self._consumer.subscribe([topics.drift_events])
        if s.retrain.metrics_port:
            try:
                self._metrics_server = start_http_server(s.retrain.metrics_port,
                                                         registry=self.metrics.registry)
            except OSError as exc:
                raise ServiceError(f"cannot serve /metrics on retrain.metrics_port {s.retrain.metrics_port}: "
                                   f"{exc} (another worker on this host? set a free port, or 0)") from exc
        log.info("retrain worker consuming %s as %s", topics.drift_events, s.retrain.group_id)

    def stop(self) -> None:
        """Stop taking messages; the current one is finished first (safe from a signal handler)."""
        self._stopping.set()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def close(self) -> None:
        if self._producer is not None:
            self._producer.flush(10)
        if self._consumer is not None:
            self._consumer.close()  # offsets are committed per message; this leaves the group at once
            self._consumer = None
        if self._metrics_server is not None:
            server, _thread = self._metrics_server
            server.shutdown()
            self._metrics_server = None

    def run(self) -> None:
        while not self.stopping:
            self.poll_once()

    # -- the loop ------------------------------------------------------------------------------------

    def poll_once(self, timeout: float | None = None) -> bool:
        """Take at most one drift event and see it through; returns whether a message was taken."""
        msg = self._consumer.poll(self.settings.retrain.poll_timeout_s if timeout is None else timeout)
        self.run_scheduled()  # rate-limited inside; runs between messages whether idle or busy
        if msg is None:
            return False
        if msg.error():
            log.warning("consumer error: %s", msg.error())
            return False
        try:
            event = decode(DriftEvent, msg.value() or b"")
        except ContractError as exc:
            self._dead_letter(msg, f"{exc.reason}: {exc.detail}")
            self._commit(msg)
            return True
        try:
            self.handle(event)
        except ServiceUnavailable as exc:
            log.error("%s: %s; drift event %s stays uncommitted, retrying in %.0fs", event.model, exc,
                      event.drift_id, self.settings.retrain.retry_backoff_s)
            self._rewind(msg)
            self._stopping.wait(self.settings.retrain.retry_backoff_s)
            return True
        except Exception as exc:  # noqa: BLE001 - e.g. an invalid per-model override: park the event
            log.exception("%s: drift event %s cannot be handled", event.model, event.drift_id)
            self._dead_letter(msg, f"unhandled: {type(exc).__name__}: {exc}")
        self._commit(msg)
        return True

    def handle(self, event: DriftEvent) -> Handled:
        """Apply the policy to one drift event and carry out its decision (no Kafka commit here)."""
        cfg = self.settings.retrain.for_model(event.model)
        try:
            state = self.store.state(event.model, event.drift_id, window_key(event))
        except ServiceUnavailable as exc:
            self._report_transient(event.model, event.drift_id, event.kind, event.drift_id, exc)
            raise
        policy = Policy.from_settings(cfg, self.settings.stream.alert_resolve_windows,
                                      self.settings.monitor_for(event.model).concept_cooldown)
        decision = decide(event, state, policy, self._clock())
        if decision.incident is not None and decision.action in ("join", "resume") \
                and decision.incident.drift_id != event.drift_id:
            self.store.attach(event.model, event.drift_id, decision.incident.incident_id)
        return self._carry_out(decision, event.model, event.kind)

    def run_scheduled(self) -> list[Handled]:
        """Start the scheduled retrains that are due (checked every few seconds while idle)."""
        now = self._clock()
        if now < self._next_schedule_check:
            return []
        self._next_schedule_check = now + SCHEDULE_CHECK_S
        outcomes = []
        for model in sorted(self._scheduled_models()):
            slot = schedule_slot(now, self.settings.retrain.for_model(model).schedule_interval_s)
            if slot is None or self.stopping:
                continue
            try:
                existing = self.store.state(model, None, schedule_key(slot)).by_window
                decision = decide_scheduled(model, slot, existing, now)
                if decision.action != "skip":
                    outcomes.append(self._carry_out(decision, model, "schedule"))
            except ServiceUnavailable as exc:
                log.error("%s: scheduled retrain postponed: %s", model, exc)
        return outcomes

    # -- steps ---------------------------------------------------------------------------------------

    def _carry_out(self, decision: Decision, model: str, trigger: str) -> Handled:
        incident = decision.incident
        if decision.action in ("skip", "join") or incident is None:
            log.info("%s: %s trigger, no retrain: %s (%s)", model, trigger, decision.action, decision.reason)
            self.metrics.retrains.labels(model, trigger, "skipped").inc()
            return Handled(decision)
        if decision.action == "republish":
            assert incident.update is not None
            self._finish(incident, incident.update)
            return Handled(decision, incident.update)
        if decision.action == "retrain":
            self.store.open(incident)
        try:
            update = self.retrainer.run(incident)
        except RetrainError as exc:
            if exc.transient:
                self._report_transient(incident.model, incident.incident_id, trigger, incident.drift_id, exc)
                raise
            update = failure_update(incident, exc)
            if not wants_data(update):  # missing labels are a state of the model, logged below at INFO
                log.error("%s: retrain for incident %s failed: %s: %s", incident.model, incident.incident_id,
                          exc.reason, exc.detail)
        except Exception as exc:  # noqa: BLE001 - a bug must not loop on one event forever: record it
            log.exception("%s: retrain for incident %s crashed", incident.model, incident.incident_id)
            update = failure_update(incident, RetrainError(f"{type(exc).__name__}: {exc}", "internal_error"))
        source = starved_source(incident)
        if incident.continues is not None and source is not None and wants_data(update):
            # The drift incident whose refusal was announced goes on, still without the data: record it
            # (a redelivery finds it done) and move the incident's last index on; publish nothing.
            log.info("%s: still no retrain (%s); incident %s already announced it", incident.model,
                     update.reason, incident.continues)
            self.store.save(msgspec.structs.replace(incident, status="done", update=update),
                            starved=(source, Starved(incident.continues, starved_index(incident))))
            self.metrics.retrains.labels(incident.model, incident.trigger, "skipped").inc()
            return Handled(decision)
        if wants_data(update):
            log.info("%s: no retrain for incident %s (%s); announced once for the drift incident",
                     incident.model, incident.incident_id, update.reason)
        self._finish(msgspec.structs.replace(incident, status="decided", update=update), update)
        return Handled(decision, update)

    def _finish(self, incident: Incident, update: ModelUpdate) -> None:
        """Record the decision, publish it, then mark the incident done."""
        source = starved_source(incident)
        starved = None if source is None else (
            source, Starved(incident.incident_id, starved_index(incident)) if wants_data(update) else None)
        self.store.save(msgspec.structs.replace(incident, status="decided", update=update),
                        cooldown=starts_cooldown(update), starved=starved)
        self._publish(update)
        self.store.save(msgspec.structs.replace(incident, status="done", update=update))
        outcome = "promoted" if update.promoted else (
            "rejected" if update.version else "skipped" if wants_data(update) else "failed")
        self.metrics.retrains.labels(incident.model, incident.trigger, outcome).inc()

    def _report_transient(self, model: str, key: str, trigger: str, drift_id: str | None,
                          exc: RetrainError) -> None:
        """Publish an outage once per incident (the retries that follow stay in the log)."""
        if (key, exc.reason) in self._reported:
            return
        self._reported.add((key, exc.reason))
        self.metrics.retrains.labels(model, trigger, "failed").inc()
        self._publish(ModelUpdate(model=model, version=None, previous_version=None, alias="champion",
                                  promoted=False, run_id=None, drift_id=drift_id,
                                  metrics={}, reason=f"{exc.reason}: {exc.detail}"))

    def _publish(self, update: ModelUpdate) -> None:
        self._producer.produce(self.settings.kafka.topics.model_updates, key=update.model.encode(),
                               value=encode(update))
        if self._producer.flush(15) > 0:
            raise ServiceUnavailable("Kafka did not acknowledge the model update", reason="kafka_unavailable")

    def _dead_letter(self, msg: Message, error: str) -> None:
        value = msg.value() or b""
        key = msg.key()
        topic, partition, offset = _position(msg)
        letter = DeadLetter(source_topic=topic, partition=partition, offset=offset,
                            key=key.decode(errors="replace") if key else None, error=error,
                            payload=value[:100_000].decode(errors="replace"), received_at=iso(self._clock()))
        log.warning("dead letter from %s[%d]@%d: %s", msg.topic(), msg.partition(), msg.offset(), error)
        self._producer.produce(self.settings.kafka.topics.dead_letters, key=key, value=encode(letter))
        self._producer.flush(15)

    def _rewind(self, msg: Message) -> None:
        """Deliver ``msg`` again on the next poll (unless its partition moved away meanwhile)."""
        try:
            self._consumer.seek(TopicPartition(*_position(msg)))
        except KafkaException as exc:
            log.warning("could not rewind to %s[%d]@%d (%s); it is redelivered after a rebalance",
                        msg.topic(), msg.partition(), msg.offset(), exc)

    def _commit(self, msg: Message) -> None:
        try:
            self._consumer.commit(message=msg, asynchronous=False)
        except KafkaException as exc:  # e.g. the partition moved away in a rebalance: it is redelivered
            log.warning("commit of %s[%d]@%d failed: %s", msg.topic(), msg.partition(), msg.offset(), exc)

    def _scheduled_models(self) -> set[str]:
        cfg = self.settings.retrain
        models = {m for m, o in cfg.models.items() if float(o.get("schedule_interval_s", 0) or 0) > 0}
        if cfg.schedule_interval_s > 0:
            try:
                models |= self.store.models() | set(cfg.models)
            except ServiceUnavailable as exc:
                log.error("scheduled retrains postponed: %s", exc)
        return models


def _position(msg: Message) -> tuple[str, int, int]:
    """(topic, partition, offset) of a consumed message (never None once it came from poll)."""
    return msg.topic() or "", msg.partition() or 0, msg.offset() or 0


def run_worker(settings: Settings, registry: CollectorRegistry | None = None) -> None:
    """Run until SIGTERM or SIGINT: finish the message in hand, commit, leave the group, exit."""
    worker = RetrainWorker(settings, registry)

    def _on_signal(signum: int, _frame: Any) -> None:
        log.info("signal %d: stopping after the current message", signum)
        worker.stop()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    worker.start()
    try:
        worker.run()
    finally:
        worker.close()
        log.info("retrain worker stopped")
