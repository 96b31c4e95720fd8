"""Reference data of a trained version: ``detectors`` reference bytes (the storage contract's one format),
which the stream's switch adopts as they are."""

from __future__ import annotations

from detectors.monitor import ModelMonitor
from driftwarden.contract.settings import MonitorSettings
from retrain_worker.reference import build_reference, monitor_config
from stream.state import ModelState
from stream.switch import switch_reference


def test_a_versions_reference_is_adopted_by_the_stream_as_stored() -> None:
    rows = [{"amount": float(i % 7), "channel": "web" if i % 3 else "app", "age": None if i % 5 == 0 else 30.0 + i}
            for i in range(200)]
    settings = MonitorSettings(reference_size=100, window_size=50)
    reference = build_reference(rows, settings)
    assert (reference.format, reference.filename) == ("detectors.monitor", "reference.bin")
    monitor = ModelMonitor(monitor_config(settings))
    state = ModelState(monitor=b"")
    assert switch_reference(state, monitor, "3", reference.data)
    assert monitor.reference is not None and set(monitor.reference.features) >= {"amount", "channel", "age"}
    assert (state.version, state.reference_version) == ("3", "3")


def test_a_reference_in_another_format_is_refused_and_the_current_one_kept() -> None:
    monitor = ModelMonitor(monitor_config(MonitorSettings()))
    state = ModelState(monitor=b"")
    legacy = b'{"format":"driftwarden.features/1","n":1,"columns":{"amount":[1.0]}}'
    assert not switch_reference(state, monitor, "4", legacy)
    assert monitor.reference is None and state.reference_version is None
