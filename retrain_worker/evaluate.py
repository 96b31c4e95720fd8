"""Scoring a model on the holdout, and the champion/challenger comparison."""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import accuracy_score, f1_score, mean_absolute_error, r2_score, roc_auc_score

from retrain_worker.dataset import Task
from retrain_worker.exceptions import InvalidRetrainConfig

CLASSIFICATION_METRICS = ("accuracy", "f1", "roc_auc")
REGRESSION_METRICS = ("rmse", "mae", "r2")
LOWER_IS_BETTER = frozenset({"rmse", "mae"})
log = logging.getLogger(__name__)


def resolve_metric(metric: str, task: Task) -> str:
    """The configured metric when it applies to the task; a classification metric configured for a
    regression (the default ``accuracy`` on numeric labels) falls back to ``rmse``, and the other way
    round to ``accuracy``, with a warning. An unknown metric is a configuration error."""
    if metric not in CLASSIFICATION_METRICS + REGRESSION_METRICS:
        raise InvalidRetrainConfig(f"unknown metric {metric!r}; use one of "
                                   f"{CLASSIFICATION_METRICS + REGRESSION_METRICS}")
    allowed = CLASSIFICATION_METRICS if task == "classification" else REGRESSION_METRICS
    if metric in allowed:
        return metric
    fallback = allowed[0]
    log.warning("metric %s does not apply to a %s; using %s", metric, task, fallback)
    return fallback


def _proba(model: Any, x: pd.DataFrame, classes: np.ndarray) -> np.ndarray | None:
    if not hasattr(model, "predict_proba"):
        return None
    proba = np.asarray(model.predict_proba(x))
    model_classes = list(getattr(model, "classes_", classes))
    if len(classes) == 2:
        return proba[:, model_classes.index(classes[1])] if classes[1] in model_classes else None
    return proba


def score(model: Any, x: pd.DataFrame, y: pd.Series, task: Task) -> dict[str, float]:
    """Every metric of the task for ``model`` on ``(x, y)``."""
    predicted = np.asarray(model.predict(x))
    if task == "regression":
        predicted = predicted.astype(float)
        return {
            "rmse": float(np.sqrt(np.mean((y.to_numpy(dtype=float) - predicted) ** 2))),
            "mae": float(mean_absolute_error(y, predicted)),
            "r2": float(r2_score(y, predicted)),
        }
    predicted = predicted.astype(str) if y.dtype == object else predicted.astype(y.dtype)
    classes = np.array(sorted(pd.unique(y)))
    binary = len(classes) == 2
    out = {
        "accuracy": float(accuracy_score(y, predicted)),
        "f1": float(f1_score(y, predicted, average="binary" if binary else "macro",
                             pos_label=classes[-1] if binary else 1, labels=classes if not binary else None,
                             zero_division=0)),
    }
    proba = _proba(model, x, classes)
    if proba is not None:
        with contextlib.suppress(ValueError):  # the model's classes do not cover the holdout's: no AUC
            out["roc_auc"] = float(roc_auc_score(y, proba) if binary else
                                   roc_auc_score(y, proba, multi_class="ovr", labels=classes))
    return out


@dataclass(frozen=True)
class Verdict:
    promote: bool
    reason: str


def compare(metric: str, challenger: float, champion: float | None, margin: float) -> Verdict:
    """Promote when there is no champion, or when the challenger is strictly better by at least
    ``margin`` (a tie keeps the champion)."""
    if champion is None or not np.isfinite(champion):
        return Verdict(True, "no_champion: the first version of the model")
    gain = champion - challenger if metric in LOWER_IS_BETTER else challenger - champion
    if gain > 0 and gain >= margin:
        return Verdict(True, f"challenger_better: {metric} {challenger:.4f} vs champion {champion:.4f}")
    return Verdict(False, f"challenger_not_better: {metric} {challenger:.4f} vs champion {champion:.4f}"
                          f" (margin {margin})")
