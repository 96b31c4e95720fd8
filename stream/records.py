"""The broker-independent form of a consumed message, so the processor runs without Faust."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RawRecord:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp: float | None = None
    wire_format: str = "json"  # from the message's driftwarden-format header (driftwarden.contract.events)
