"""The model's error stream from joined outcomes, fed to the configured concept-drift detectors.

Classification errors are 0/1 (prediction != label); regression errors are absolute errors. Detectors
that assume 0/1 input (DDM, EDDM, HDDM_A, HDDM_W) are switched off for regression. Which task a model
has is ``detectors.task``'s rule, applied label by label: a model first taken for a classifier that
turns out to be a regression (a fractional label, too many distinct values) starts its detectors over,
since its 0/1 errors so far are another stream.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Final

from detectors.concept import BINARY_INPUT, ConceptDetector, signal_name
from detectors.config import MonitorConfig
from detectors.records import CONCEPT_DRIFT, CRITICAL, Outcome, Signal
from detectors.task import TaskInference
from detectors.values import is_number

_RECENT_SPAN: Final = 100  # outcomes: the "recent error" reported with a signal is an EWMA of this span


def error_of(outcome: Outcome, task: str) -> float | None:
    """The error of one outcome, or None when it cannot be scored (missing or non-numeric values)."""
    prediction, label = outcome.prediction, outcome.label
    if prediction is None or label is None:
        return None
    if task == "classification":
        if is_number(prediction) and is_number(label):
            if math.isnan(float(prediction)) or math.isnan(float(label)):
                return None
            return 0.0 if float(prediction) == float(label) else 1.0
        return 0.0 if str(prediction) == str(label) else 1.0
    if not (is_number(prediction) and is_number(label)):
        return None
    error = abs(float(prediction) - float(label))
    return error if math.isfinite(error) else None


class ErrorStream:
    """Concept-drift detectors over one model's errors, with running error rates for reports."""

    def __init__(self, config: MonitorConfig) -> None:
        self.config = config
        self.detectors = self._build_detectors()
        self.task: str | None = None if config.task == "auto" else config.task
        self.inference: TaskInference | None = TaskInference() if config.task == "auto" else None
        self.n = 0  # scored outcomes
        self.n_invalid = 0
        self.recent_error = math.nan
        self._baseline_sum = 0.0  # errors since the last incident: the rate a drift is measured against
        self._baseline_n = 0
        self._first_timestamp = math.nan

    def _build_detectors(self) -> list[ConceptDetector]:
        config = self.config
        return [
            ConceptDetector(spec["kind"], spec["params"], config.concept_confirmation,
                            config.concept_confirmation_window, config.concept_cooldown)
            for spec in config.concept_detectors
        ]

    def _infer(self, label: object) -> None:
        """Apply the task rule to one more label; a model whose task changes starts its detectors over."""
        inference = getattr(self, "inference", None)
        if inference is None:
            if self.config.task != "auto":
                return
            # A snapshot from before the rule (ints decoded as floats made binary classifiers regressions):
            # decide again from the next labels, starting the detectors over once if the task changes.
            inference = self.inference = TaskInference()
        task = inference.add(label)
        if task is not None and self.task is not None and task != self.task:
            self.detectors = self._build_detectors()
            self._baseline_sum, self._baseline_n = 0.0, 0
        self.task = task

    def active(self) -> list[ConceptDetector]:
        if self.task == "regression":
            return [d for d in self.detectors if d.kind not in BINARY_INPUT]
        return self.detectors

    def update(self, outcomes: Sequence[Outcome]) -> list[Signal]:
        signals: list[Signal] = []
        alpha = 2.0 / (_RECENT_SPAN + 1)
        for outcome in outcomes:
            self._infer(outcome.label)
            if self.task is None:
                self.n_invalid += 1
                continue
            error = error_of(outcome, self.task)
            if error is None:
                self.n_invalid += 1
                continue
            if self.n == 0:
                self._first_timestamp = float(outcome.timestamp)
            self.n += 1
            self.recent_error = error if math.isnan(self.recent_error) else (
                alpha * error + (1 - alpha) * self.recent_error)
            baseline = self._baseline_sum / self._baseline_n if self._baseline_n else math.nan
            self._baseline_sum += error
            self._baseline_n += 1
            for detector in self.active():
                event = detector.update(error)
                if event is None:
                    continue
                details: dict[str, Any] = {
                    "detector": detector.kind,
                    "params": dict(detector.params),
                    "outcome_index": event.position,
                    "detections": event.detections,
                    "task": self.task,
                    "error_baseline": baseline if math.isfinite(baseline) else None,
                }
                signals.append(Signal(
                    CONCEPT_DRIFT, signal_name(detector.kind), None, self.recent_error,
                    baseline if math.isfinite(baseline) else 0.0, event.severity, event.position,
                    self._first_timestamp, float(outcome.timestamp), detector.n, details,
                ))
                if event.severity == CRITICAL:
                    self._baseline_sum, self._baseline_n = 0.0, 0
        return signals

    def status(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "outcomes": self.n,
            "invalid_outcomes": self.n_invalid,
            "error_recent": self.recent_error if math.isfinite(self.recent_error) else None,
            "error_baseline": self._baseline_sum / self._baseline_n if self._baseline_n else None,
            "detectors": [dict(d.status(), active=d in self.active()) for d in self.detectors],
        }
