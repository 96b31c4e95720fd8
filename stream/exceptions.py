"""Errors of the stream worker."""

from __future__ import annotations

from driftwarden.contract.errors import DriftwardenError


class StreamError(DriftwardenError):
    """Root of the stream worker's errors."""


class StateConflict(StreamError):
    """Another worker changed the state this batch read (a rebalance in progress); retry the batch."""
