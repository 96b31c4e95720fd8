"""Kafka clients shared by the stream, the retrain worker, the demo and the producer SDK."""

from __future__ import annotations

import logging
from typing import Any

from confluent_kafka import Consumer, KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]  # re-exported, not listed in __all__

from driftwarden.contract.errors import ServiceError
from driftwarden.contract.settings import Settings

log = logging.getLogger(__name__)


def client_config(settings: Settings, **extra: Any) -> dict[str, Any]:
    """librdkafka settings: the bootstrap address, the configured security settings, then ``extra``."""
    return {"bootstrap.servers": settings.kafka.bootstrap_servers, **settings.kafka.client_config, **extra}


def ensure_topics(settings: Settings, topics: list[str] | None = None, timeout: float = 30.0) -> None:
    """Create the service's topics if they are missing (idempotent; existing topics are left alone)."""
    t = settings.kafka.topics
    names = topics or [t.predictions, t.labels, t.drift_events, t.drift_alerts, t.performance_estimates,
                       t.model_updates, t.dead_letters]
    admin = AdminClient(client_config(settings))
    try:
        existing = set(admin.list_topics(timeout=timeout).topics)
    except KafkaException as exc:
        raise ServiceError(f"Kafka at {settings.kafka.bootstrap_servers} is not reachable: {exc}") from exc
    missing = [n for n in names if n not in existing]
    if not missing:
        return
    futures = admin.create_topics([
        NewTopic(n, num_partitions=settings.kafka.partitions, replication_factor=settings.kafka.replication_factor)
        for n in missing
    ], operation_timeout=timeout)
    for name, fut in futures.items():
        try:
            fut.result()
            log.info("created topic %s (%d partitions)", name, settings.kafka.partitions)
        except KafkaException as exc:
            if exc.args[0].name() != "TOPIC_ALREADY_EXISTS":
                raise ServiceError(f"could not create topic {name}: {exc}") from exc


def make_producer(settings: Settings, **extra: Any) -> Producer:
    """An idempotent producer: retries never duplicate a message inside a partition."""
    return Producer(client_config(settings, **{"enable.idempotence": True, "linger.ms": 5, **extra}))


def make_consumer(settings: Settings, group_id: str, **extra: Any) -> Consumer:
    """A consumer that commits only when told to, after the work for a message is recorded."""
    return Consumer(client_config(settings, **{
        "group.id": group_id,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        **extra,
    }))
