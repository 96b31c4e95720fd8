"""Reference data of a trained version, for the stream to adopt when the version becomes champion.

Stored under ``Keys.reference(model, version)`` and as the run artifact ``reference/reference.bin``, in
the one reference format of the storage contract: ``detectors`` reference bytes of the training rows.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from detectors.monitor import MonitorConfig
from driftwarden.contract.settings import MonitorSettings
from driftwarden.contract.storage import REFERENCE_FILENAME, reference_bytes

REFERENCE_FORMAT = "detectors.monitor"  # the run's ``reference_format`` tag


@dataclass(frozen=True)
class Reference:
    data: bytes
    format: str
    filename: str


def build_reference(rows: list[dict[str, Any]], monitor: MonitorSettings) -> Reference:
    """Reference bytes for ``rows`` (training features, one dict per row)."""
    return Reference(reference_bytes(rows, monitor_config(monitor)), REFERENCE_FORMAT, REFERENCE_FILENAME)


def monitor_config(monitor: MonitorSettings) -> MonitorConfig:
    """The detectors' configuration from the settings fields of the same names."""
    names = {f.name for f in dataclasses.fields(MonitorConfig)}
    values = {k: getattr(monitor, k) for k in monitor.__struct_fields__ if k in names}
    return MonitorConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})
