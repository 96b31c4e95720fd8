"""One classification/regression rule (``detectors.task``), as the error stream applies it label by label."""

from __future__ import annotations

import pytest

from detectors.monitor import ModelMonitor, MonitorConfig, Outcome
from detectors.task import TaskInference, infer_task, is_class_value, resolve_task


@pytest.mark.parametrize(("value", "is_class"), [
    (1, True), (1.0, True), (-3.0, True), (True, True), ("dog", True), (0.5, False), (float("nan"), False),
    (float("inf"), False), (1e-9, False),
])
def test_a_class_is_a_string_a_bool_or_an_integer_valued_number(value: object, is_class: bool) -> None:
    assert is_class_value(value) is is_class


def test_infer_task_over_many_labels() -> None:
    assert infer_task([0, 1, 1, 0]) == "classification"
    assert infer_task([0.0, 1.0, 1.0]) == "classification"  # 1.0 is the class 1
    assert infer_task(["cat", "dog", 2.5]) == "classification"  # a string cannot be regressed
    assert infer_task([0, 1, 0.25]) == "regression"
    assert infer_task(list(range(21))) == "regression"  # more distinct integers than MAX_CLASSES
    assert infer_task(list(range(20))) == "classification"
    assert resolve_task("regression", [0, 1]) == "regression"
    with pytest.raises(ValueError, match="task must be one of"):
        resolve_task("ordinal", [0])


def test_label_by_label_the_rule_only_moves_from_classification_to_regression() -> None:
    inference = TaskInference()
    assert inference.add(None) is None
    assert inference.add(3) == "classification"
    for label in range(4, 24):  # 3..22 are 20 distinct classes; 23 is one too many
        assert inference.add(label) == ("classification" if label < 23 else "regression")
    assert inference.add(0) == "regression"  # and it stays there
    assert inference.task == infer_task([3, *range(4, 24), 0])


def outcomes(labels: list[object], predictions: list[object]) -> list[Outcome]:
    return [Outcome(float(i), p, y) for i, (p, y) in enumerate(zip(predictions, labels, strict=True))]  # type: ignore[arg-type]


def concept(monitor: ModelMonitor) -> dict[str, object]:
    status = monitor.status()["concept"]
    return {"task": status["task"], **{d["kind"]: d["active"] for d in status["detectors"]}}


def test_a_float_label_equal_to_an_integer_keeps_the_binary_detectors_on() -> None:
    config = MonitorConfig(concept_detectors=({"kind": "ADWIN"}, {"kind": "DDM"}))
    monitor = ModelMonitor(config)
    monitor.update_outcomes(outcomes([1.0, 0.0, 1.0], [1.0, 1.0, 1.0]))
    assert concept(monitor) == {"task": "classification", "ADWIN": True, "DDM": True}
    assert monitor.status()["concept"]["detectors"][1]["n"] == 3  # DDM saw every 0/1 error


def test_a_fractional_label_later_makes_a_regression_and_starts_the_detectors_over() -> None:
    config = MonitorConfig(concept_detectors=({"kind": "ADWIN"}, {"kind": "DDM"}))
    monitor = ModelMonitor(config)
    monitor.update_outcomes(outcomes([3, 4, 5], [3.2, 3.9, 5.1]))
    assert concept(monitor)["task"] == "classification"
    monitor.update_outcomes(outcomes([4.5, 6.0], [4.4, 6.3]))
    assert concept(monitor) == {"task": "regression", "ADWIN": True, "DDM": False}
    adwin = monitor.status()["concept"]["detectors"][0]
    assert adwin["n"] == 2  # only the errors since it is known to be a regression


def test_a_snapshot_that_took_a_binary_classifier_for_a_regression_is_put_right_on_the_next_label() -> None:
    """Before the rule, JSON ``1`` decoded as 1.0 and resolved a binary model to regression: DDM was
    off. Such a stored monitor decides again from its next label and starts its detectors over once."""
    config = MonitorConfig(concept_detectors=({"kind": "ADWIN"}, {"kind": "DDM"}))
    monitor = ModelMonitor(config)
    monitor.errors.task = "regression"  # as the old code left it
    del monitor.errors.inference  # an ErrorStream pickled before the attribute existed
    restored = ModelMonitor.from_bytes(monitor.to_bytes())
    restored.update_outcomes(outcomes([1, 0, 1], [1.0, 1.0, 1.0]))
    assert concept(restored) == {"task": "classification", "ADWIN": True, "DDM": True}
    assert restored.status()["concept"]["detectors"][1]["n"] == 3
