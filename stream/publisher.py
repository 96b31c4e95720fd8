"""Publishing to Kafka with confluent-kafka: produce a batch, wait for every acknowledgement."""

from __future__ import annotations

from collections.abc import Sequence

from confluent_kafka import KafkaError, Producer

from driftwarden.contract.kafka import make_producer
from driftwarden.contract.settings import Settings
from stream.exceptions import StreamError
from stream.outbox import Outgoing


class KafkaPublisher:
    def __init__(self, settings: Settings, producer: Producer | None = None) -> None:
        self.producer = producer if producer is not None else make_producer(settings)

    def publish(self, messages: Sequence[Outgoing], timeout: float = 30.0) -> None:
        errors: list[KafkaError] = []

        def on_delivery(err: KafkaError | None, _msg: object) -> None:
            if err is not None:
                errors.append(err)

        for m in messages:
            self.producer.produce(m.topic, key=m.key, value=m.value, on_delivery=on_delivery)
            self.producer.poll(0)
        remaining = self.producer.flush(timeout)
        if remaining or errors:
            # Raising keeps the outbox in Redis: the next batch of this partition publishes it again.
            raise StreamError(f"publishing failed: {remaining} unacknowledged, errors {errors[:3]}")

    def close(self) -> None:
        self.producer.flush(10)
