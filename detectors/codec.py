"""Byte framing shared by histograms, references and monitor snapshots.

Every blob starts with a 4-byte magic and a 2-byte format version, so a reader rejects another kind of
blob or a version it does not know with a clear error instead of mis-reading it. JSON blobs (histograms,
references) carry no code and need no key; pickled blobs (monitor snapshots, because River detectors
pickle but do not serialise otherwise) are authenticated with HMAC-SHA256 *before* they are unpickled.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import pickle
import struct
from typing import Any

from detectors.exceptions import SnapshotError

_HEADER = struct.Struct("<4sH")
_MAC_SIZE = hashlib.sha256().digest_size


def _check_header(data: bytes, magic: bytes, version: int, what: str) -> None:
    if not isinstance(data, bytes | bytearray | memoryview) or len(data) < _HEADER.size:
        raise SnapshotError(f"not a {what}: {len(data) if hasattr(data, '__len__') else '?'} bytes")
    found_magic, found_version = _HEADER.unpack_from(data)
    if found_magic != magic:
        raise SnapshotError(f"not a {what}: magic {found_magic!r}, expected {magic!r}")
    if found_version != version:
        raise SnapshotError(f"{what} format version {found_version} is not supported (expected {version})")


def pack_json(magic: bytes, version: int, payload: dict[str, Any]) -> bytes:
    # json writes floats with repr(), which round-trips every float64 exactly (inf/NaN included).
    return _HEADER.pack(magic, version) + json.dumps(payload, separators=(",", ":")).encode()


def unpack_json(magic: bytes, version: int, data: bytes, what: str) -> dict[str, Any]:
    _check_header(data, magic, version, what)
    try:
        payload = json.loads(bytes(data[_HEADER.size :]))
    except ValueError as exc:
        raise SnapshotError(f"corrupt {what}: {exc}") from exc
    if not isinstance(payload, dict):
        raise SnapshotError(f"corrupt {what}: payload is not an object")
    return payload


def seal(magic: bytes, version: int, state: object, key: bytes) -> bytes:
    """Pickle ``state`` and prefix it with an HMAC-SHA256 over header and body."""
    body = _HEADER.pack(magic, version) + pickle.dumps(state, protocol=5)
    mac = hmac.new(bytes(key), body, hashlib.sha256).digest()
    return mac + body


def unseal(magic: bytes, version: int, data: bytes, key: bytes, what: str) -> Any:
    """Verify the HMAC, then the header, then unpickle; never unpickles bytes that fail the check."""
    data = bytes(data)
    if len(data) < _MAC_SIZE + _HEADER.size:
        raise SnapshotError(f"not a {what}: {len(data)} bytes is too short")
    mac, body = data[:_MAC_SIZE], data[_MAC_SIZE:]
    expected = hmac.new(bytes(key), body, hashlib.sha256).digest()
    if not hmac.compare_digest(mac, expected):
        raise SnapshotError(f"{what} failed HMAC-SHA256 verification: it was tampered with or the key is wrong")
    _check_header(body, magic, version, what)
    try:
        return pickle.loads(body[_HEADER.size :])
    except Exception as exc:  # an authentic but unreadable blob: e.g. written by an incompatible River
        raise SnapshotError(f"corrupt {what}: {exc}") from exc
