"""Reference data of a trained version, for the stream to adopt when the version becomes champion.

Stored under ``{p}:reference:{model}:{version}`` and as the run artifact ``reference/``. The bytes come
from ``detectors.monitor.build_reference(rows, config)`` when the detectors package provides it;
otherwise they are a JSON document of the training features' column values (format
``driftwarden.features/1``) from which any histogram can be rebuilt.
"""

from __future__ import annotations

import importlib
import json
import logging
from dataclasses import dataclass, fields
from typing import Any

from driftwarden.contract.settings import MonitorSettings

log = logging.getLogger(__name__)
FEATURES_FORMAT = "driftwarden.features/1"


@dataclass(frozen=True)
class Reference:
    data: bytes
    format: str  # "detectors.monitor" or FEATURES_FORMAT
    filename: str


def features_json(rows: list[dict[str, Any]]) -> bytes:
    names = sorted({name for row in rows for name in row})
    columns = {name: [row.get(name) for row in rows] for name in names}
    return json.dumps({"format": FEATURES_FORMAT, "n": len(rows), "columns": columns},
                      separators=(",", ":")).encode()


def build_reference(rows: list[dict[str, Any]], monitor: MonitorSettings) -> Reference:
    """Reference bytes for ``rows`` (training features, one dict per row)."""
    try:
        module: Any = importlib.import_module("detectors.monitor")
    except ImportError:
        module = None
    build = getattr(module, "build_reference", None)
    config_cls = getattr(module, "MonitorConfig", None)
    if build is not None and config_cls is not None:
        accepted = {f.name for f in fields(config_cls)}
        values = {k: v for k, v in vars_of(monitor).items() if k in accepted}
        try:
            return Reference(bytes(build(rows, config_cls(**values))), "detectors.monitor", "reference.bin")
        except Exception:  # noqa: BLE001 - a detectors bug must not lose the retrain; it is logged loudly
            log.exception("detectors.monitor.build_reference failed; storing the features as JSON instead")
    return Reference(features_json(rows), FEATURES_FORMAT, "reference.json")


def vars_of(monitor: MonitorSettings) -> dict[str, Any]:
    return {name: getattr(monitor, name) for name in monitor.__struct_fields__}
