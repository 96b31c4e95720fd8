"""Adopting a promoted version's reference histograms (``model-updates`` -> the next batch of the model).

The retrain worker stores ``Keys.reference(model, version)`` as ``detectors`` reference bytes (the one
reference format of ``driftwarden.contract.storage``).
"""

from __future__ import annotations

import logging

from detectors.monitor import ModelMonitor
from stream.state import ModelState

log = logging.getLogger(__name__)


def switch_reference(state: ModelState, monitor: ModelMonitor, version: str, data: bytes | None) -> bool:
    """Compare ``monitor`` against ``version``'s reference from now on and restart concept detection.

    Returns False (and changes nothing) when the reference is missing or unreadable; the switch is
    then dropped, because retrying a bad blob on every batch would not make it readable.
    """
    if data is None:
        log.error("model-updates promoted a version without a stored reference (version %s)", version)
        return False
    try:
        # A new version: its training histograms become the reference and, its errors being a new
        # stream, the concept detectors start over.
        monitor.start_version(data)
    except (ValueError, KeyError, TypeError) as exc:
        log.error("reference of version %s is unreadable (%s); keeping the current one", version, exc)
        return False
    state.reference_version = version
    state.version = version
    return True
