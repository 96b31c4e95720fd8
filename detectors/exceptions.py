"""Errors raised by the detector engine; one root so callers can catch the package's failures."""

from __future__ import annotations


class DetectorError(Exception):
    """Root of every error raised by ``detectors``."""


class SnapshotError(DetectorError, ValueError):
    """A serialised monitor, reference or histogram was tampered with, truncated or is of another version."""


class ReferenceMismatchError(DetectorError, ValueError):
    """Two histograms do not share the same bins, so their counts cannot be merged or compared."""
