"""Adopting a promoted version's reference histograms (``model-updates`` -> the next batch of the model).

The retrain worker stores ``{p}:reference:{model}:{version}`` either as ``detectors`` reference bytes
or, when those were unavailable, as a JSON document of the training features' columns
(``driftwarden.features/1``), from which the histograms are rebuilt here.
"""

from __future__ import annotations

import json
import logging

from detectors.monitor import ModelMonitor, build_reference
from stream.state import ModelState

log = logging.getLogger(__name__)
FEATURES_FORMAT = "driftwarden.features/1"


def reference_bytes(data: bytes, monitor: ModelMonitor) -> bytes:
    """``detectors`` reference bytes from either stored format."""
    if not data.lstrip().startswith(b"{"):
        return data
    doc = json.loads(data)
    if doc.get("format") != FEATURES_FORMAT:
        raise ValueError(f"unknown reference format {doc.get('format')!r}")
    columns: dict[str, list[object]] = doc["columns"]
    rows = [{name: values[i] for name, values in columns.items()} for i in range(int(doc["n"]))]
    return build_reference(rows, monitor.config)


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
        monitor.start_version(reference_bytes(data, monitor))
    except (ValueError, KeyError, TypeError) as exc:
        log.error("reference of version %s is unreadable (%s); keeping the current one", version, exc)
        return False
    state.reference_version = version
    state.version = version
    return True
