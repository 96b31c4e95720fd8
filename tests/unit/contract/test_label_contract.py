"""Labels decoded through the event contract reach the detectors as classes when they are classes."""

from __future__ import annotations

import pytest

from detectors.monitor import ModelMonitor, MonitorConfig, Outcome
from driftwarden.contract.events import ContractError, Label, decode_batch
from stream.state import PendingLabel, decode_pending_label, encode_state


def label(value: str) -> bytes:
    return f'{{"event_id": "e1", "model": "m", "label": {value}, "timestamp": 0}}'.encode()


def test_json_numbers_keep_their_spelling_and_bools_are_accepted() -> None:
    decoded = [decode_batch(Label, label(v))[0].label for v in ("1", "1.0", "true", '"yes"', "0.25")]
    assert [(type(v), v) for v in decoded] == [(int, 1), (float, 1.0), (bool, True), (str, "yes"),
                                               (float, 0.25)]
    with pytest.raises(ContractError, match="invalid_field"):
        decode_batch(Label, label("[1]"))


def test_an_integer_label_stays_an_int_while_it_waits_in_redis() -> None:
    restored = decode_pending_label(encode_state(PendingLabel(1.0, 1)))
    assert type(restored.label) is int and restored.label == 1


@pytest.mark.parametrize("spelling", ["0", "0.0"])
def test_an_integer_label_through_the_contract_keeps_ddm_active_for_a_binary_model(spelling: str) -> None:
    """The stream's path: JSON label -> Label -> the join's Outcome -> the monitor's error stream. A
    binary model whose error rate jumps from 0 to 1 gets a DDM detection (the old decode made it a
    regression, so DDM was switched off and never saw an error)."""
    monitor = ModelMonitor(MonitorConfig(concept_detectors=({"kind": "DDM", "params": {}},),
                                         concept_cooldown=0))
    truth = decode_batch(Label, label(spelling))[0].label
    wrong = 1 - truth
    signals = monitor.update_outcomes(
        [Outcome(float(i), 0.0 if i < 400 or i % 2 else wrong, truth) for i in range(600)])
    ddm = monitor.status()["concept"]["detectors"][0]
    assert monitor.status()["concept"]["task"] == "classification"
    assert ddm["active"] and ddm["n"] == 600
    assert [(s.signal, s.severity) for s in signals if s.severity == "critical"][:1] == [("ddm", "critical")]
    assert signals[-1].details["task"] == "classification"
