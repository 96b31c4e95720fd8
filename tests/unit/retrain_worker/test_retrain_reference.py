"""Reference data of a trained version: built by ``detectors.monitor.build_reference`` when that exists,
else the training features' columns as JSON (which the stream can turn into any histogram)."""

from __future__ import annotations

import importlib
import json

from driftwarden.contract.settings import MonitorSettings
from retrain_worker.reference import FEATURES_FORMAT, build_reference


def test_reference_of_training_rows() -> None:
    rows = [{"amount": 1.5, "channel": "web", "age": None}, {"amount": 3.0, "channel": "app", "age": 41.0}]
    reference = build_reference(rows, MonitorSettings())
    try:
        monitor = importlib.import_module("detectors.monitor")
    except ImportError:
        monitor = None
    if monitor is not None and hasattr(monitor, "build_reference"):
        assert reference.format == "detectors.monitor"
        assert reference.data
    else:
        assert reference.format == FEATURES_FORMAT
        decoded = json.loads(reference.data)
        assert decoded["format"] == FEATURES_FORMAT and decoded["n"] == 2
        assert decoded["columns"] == {"age": [None, 41.0], "amount": [1.5, 3.0], "channel": ["web", "app"]}
