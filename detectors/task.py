"""Classification or regression: one rule for the stream, the retrain worker and the status report.

A label is a *class* when it is a string, a bool, or a finite number with an integer value (``1`` and
``1.0`` alike: JSON has one number type, and a class held in a float column, e.g. by pandas, is written
``1.0``). With ``task: auto`` a model is a classifier while its labels are classes and its numeric
classes are few (at most ``MAX_CLASSES`` distinct values); a fractional label, or more distinct integer
values than that, makes it a regression. Labels that are strings or bools are classes whatever else
arrives (a string cannot be regressed). ``task: classification | regression`` overrides the rule.

>>> infer_task([0, 1, 1.0, 0])
'classification'
>>> infer_task([0, 1, 2.5])
'regression'
>>> infer_task(range(50))
'regression'
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Final, Literal

Task = Literal["classification", "regression"]
TASKS: Final = frozenset({"auto", "classification", "regression"})
MAX_CLASSES: Final = 20  # integer-valued labels with more distinct values than this are a regression


def is_class_value(value: object) -> bool:
    """A string, a bool or an integer-valued finite number."""
    if isinstance(value, str | bool):
        return True
    if isinstance(value, int):
        return True
    return isinstance(value, float) and math.isfinite(value) and value.is_integer()


class TaskInference:
    """The rule applied one label at a time, as the stream sees them. It only ever moves from
    classification to regression, and after any labels it agrees with ``infer_task`` on them unless a
    string came after a fractional number (the stream keeps the regression it already started)."""

    def __init__(self, max_classes: int = MAX_CLASSES) -> None:
        self.max_classes = max_classes
        self.task: Task | None = None  # None until a label is seen
        self._symbolic = False  # a str or bool label was seen
        self._classes: set[float] = set()  # distinct numeric classes, at most max_classes + 1

    def add(self, label: object) -> Task | None:
        """Count one label (None and non-finite numbers are ignored); returns the task so far."""
        if label is None or self.task == "regression":
            return self.task
        if isinstance(label, str | bool):
            self._symbolic = True
            self.task = "classification"
            return self.task
        if not isinstance(label, int | float) or not math.isfinite(float(label)):
            return self.task
        if self._symbolic:
            return self.task
        if not float(label).is_integer():
            self.task = "regression"
            return self.task
        if len(self._classes) <= self.max_classes:
            self._classes.add(float(label))
        self.task = "classification" if len(self._classes) <= self.max_classes else "regression"
        return self.task


def infer_task(labels: Iterable[object], max_classes: int = MAX_CLASSES) -> Task:
    """The task of a model with these labels (no usable label at all: classification)."""
    values = [v for v in labels if v is not None]
    if any(isinstance(v, str | bool) for v in values):
        return "classification"
    inference = TaskInference(max_classes)
    for value in values:
        inference.add(value)
    return inference.task or "classification"


def resolve_task(configured: str, labels: Iterable[object]) -> Task:
    """``configured`` unless it is ``auto``; then ``infer_task(labels)``."""
    if configured not in TASKS:
        raise ValueError(f"task must be one of {sorted(TASKS)}, got {configured!r}")
    if configured != "auto":
        return configured  # type: ignore[return-value]
    return infer_task(labels)


def class_name(value: object) -> str | None:
    """A class as the string that names it in a prediction's ``scores``: numbers by value (``1``, ``1.0`` and
    ``"1"`` are all ``"1"``; sklearn's ``classes_`` of ints arrive as JSON keys ``"1"``), other strings as they are.
    None for a missing or non-finite value."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return None
        return str(int(value)) if value.is_integer() else repr(value)
    text = str(value)
    if text.lower() in ("true", "false"):  # a bool class as a JSON key
        return "1" if text.lower() == "true" else "0"
    try:
        number = float(text)
    except ValueError:
        return text
    return class_name(number) if math.isfinite(number) else text
