"""Packing Redis commands through hiredis in one call, for the one-node client ``storage.connect`` builds.

redis-py's hiredis packer first makes a tuple of every argument, converting each ``bytearray`` or ``memoryview``
to bytes, in a Python-level pass: for the stream's big commands (a batch's HSET of 100k waiting predictions, the
HMGET and HDEL of the evicted ones) that pass cost about as much as the packing itself. driftwarden sends
neither type, so ``HiredisPacker`` hands the arguments to hiredis as they are (0.27 instead of 0.47 us per field
and value) and leaves anything else to redis-py's packer: the bytes on the wire, and every error, are its.
"""

from __future__ import annotations

from typing import Any

try:
    import hiredis
    from redis.connection import HiredisRespSerializer
except ImportError:  # pragma: no cover - hiredis is a dependency; without it redis-py packs in Python
    hiredis = None  # type: ignore[assignment]


class HiredisPacker:
    """A redis-py ``command_packer``: ``pack(*args)`` returns the command's RESP bytes in a list."""

    def __init__(self) -> None:
        self._redis_py = HiredisRespSerializer()

    def pack(self, *args: Any) -> list[bytes]:
        name = args[0]
        if (b" " if isinstance(name, bytes) else " ") in name:  # "CONFIG GET": redis-py splits the name
            return self._redis_py.pack(*args)  # type: ignore[no-any-return]
        try:
            return [hiredis.pack_command(args)]
        except TypeError:  # a bytearray or memoryview (redis-py converts it), or a type it refuses as DataError
            return self._redis_py.pack(*args)  # type: ignore[no-any-return]


def command_packer() -> HiredisPacker | None:
    """The packer for a one-node client, or None (redis-py's own) without hiredis."""
    return HiredisPacker() if hiredis is not None else None
