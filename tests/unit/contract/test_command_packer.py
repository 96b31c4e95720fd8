"""The one-node client's command packer: redis-py's bytes for every command, packed in one hiredis call."""

from __future__ import annotations

from itertools import chain

import pytest
from redis.connection import HiredisRespSerializer
from redis.exceptions import DataError

from driftwarden.contract.command_packer import HiredisPacker
from driftwarden.contract.storage import connect

COMMANDS = [
    ("HSET", "dw:pending:m", *chain.from_iterable((bytes([i % 256]) * 8, b"\x94\xcb" + bytes(i)) for i in range(300))),
    ("SET", b"dw:state:m", b"\x00blob", "EX", 10),
    ("ZADD", "dw:expiry:m", 1.5e9, b"member"),
    ("HINCRBY", "dw:counters:m", "predictions", -3),
    ("CONFIG GET", "maxmemory"),  # a name of two words, split
    (b"CLIENT SETNAME", "stream"),
    ("SET", "k", bytearray(b"v")),  # converted by redis-py
    ("SET", "k", memoryview(b"v")),
    ("HSET", "h", "é", "ü"),
]


@pytest.mark.parametrize("args", COMMANDS, ids=lambda a: str(a[0]))
def test_the_packer_packs_every_command_as_redis_py_does(args: tuple[object, ...]) -> None:
    assert b"".join(HiredisPacker().pack(*args)) == b"".join(HiredisRespSerializer().pack(*args))


def test_what_redis_py_refuses_it_refuses_the_same_way() -> None:
    with pytest.raises(DataError):
        HiredisRespSerializer().pack("SET", "k", None)
    with pytest.raises(DataError):
        HiredisPacker().pack("SET", "k", None)


def test_the_one_node_client_uses_it() -> None:
    client = connect("redis://127.0.0.1:1/0")  # not connected: a client is built without a server
    packer = client.connection_pool.connection_kwargs["command_packer"]
    assert isinstance(packer, HiredisPacker)
    assert client.connection_pool.make_connection().pack_command("GET", "k") == packer.pack("GET", "k")
