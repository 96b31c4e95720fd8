"""Outgoing messages and the outbox that makes publishing them survive a crash.

Every message a batch produces (drift events, alerts, dead letters) is written to Redis in the same
transaction as the state, under the outbox of the input partition it came from, and published after
EXEC. Whoever next processes that partition (this worker, or the one that took it in a rebalance)
publishes what a crash left there before applying anything. Drift ids are deterministic, so the
at-least-once delivery this gives is safe for consumers that deduplicate.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any, Protocol

import msgspec
import redis

from stream.state import Keys

log = logging.getLogger(__name__)


class Outgoing(msgspec.Struct, array_like=True, frozen=True):
    topic: str
    key: bytes | None
    value: bytes


class Publisher(Protocol):
    def publish(self, messages: Sequence[Outgoing]) -> None:
        """Produce every message and wait until the broker has acknowledged all of them."""


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(Outgoing)


def queue_outbox(tx: Any, keys: Keys, items: Iterable[tuple[tuple[str, int], Outgoing]]) -> None:
    """Queue, on an open MULTI, each message under the outbox of its source (topic, partition)."""
    grouped: dict[tuple[str, int], list[bytes]] = defaultdict(list)
    for source, message in items:
        grouped[source].append(_encoder.encode(message))
    for (topic, partition), encoded in grouped.items():
        tx.rpush(keys.outbox(topic, partition), *encoded)


def flush_outbox(client: redis.Redis, keys: Keys, publisher: Publisher,
                 partitions: Iterable[tuple[str, int]]) -> int:
    """Publish what a crash left between a state commit and its publish, then clear it."""
    names = [keys.outbox(t, p) for t, p in sorted(set(partitions))]
    if not names:
        return 0
    pipe = client.pipeline(transaction=False)
    for name in names:
        pipe.lrange(name, 0, -1)
    leftovers = [_decoder.decode(b) for items in pipe.execute() for b in items]
    if not leftovers:
        return 0
    log.warning("publishing %d messages left in the outbox by an earlier run", len(leftovers))
    publisher.publish(leftovers)
    client.delete(*names)
    return len(leftovers)


def outbox_shards(client: redis.Redis, keys: Keys, partitions: Iterable[tuple[str, int]]) -> list[Keys]:
    """The shards that may hold an outbox of ``partitions``: on one node the one keyspace; on a cluster
    each partition's own shard and every model's (a model's outbox lives with its state)."""
    if not keys.cluster:
        return [keys]
    models = sorted(m.decode() for m in client.smembers(keys.all_models()))  # type: ignore[union-attr]
    return [keys.for_partition(t, p) for t, p in sorted(set(partitions))] + [keys.for_model(m) for m in models]

