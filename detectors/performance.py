"""Confidence-based performance estimation (CBPE-like) of a binary classifier before its labels arrive.

``Prediction.score`` is one float, so this is binary: the score is taken as the model's confidence in the
*positive* class (the label whose labelled rows have the higher mean score). A model that sends no score, or whose
labels have more than two values, gets no estimate here (``status()`` says why); a multiclass model sends a score per
class (``Prediction.scores``) and is estimated one-vs-rest by ``detectors/performance_multiclass.py``.

1. Calibration, on the reference's labelled predictions (the first ``performance_reference_size`` joined outcomes
   of a model version, or the labels passed to ``build_reference``): scores -> P(positive) as a step function
   (``edges`` and one probability per step, a compact lookup table). Quantile bins and isotonic regression are both
   fitted on one half and scored on the other (both ways); the one with the lower held-out calibration error wins
   and is refitted on all of it.
2. A window counts its rows per (predicted class, calibration step): the expected confusion matrix is then
   ``TP = sum(n[1, s] p[s])``, ``FP = sum(n[1, s] (1 - p[s]))``, ``FN = sum(n[0, s] p[s])``,
   ``TN = sum(n[0, s] (1 - p[s]))``, from which accuracy, precision, recall, F1 and a binned ROC-AUC follow.
3. Noise: the drop of the estimate below the reference's realised accuracy when nothing changed, drawn like the
   histogram statistics' (``calibration.py``): cell shares from ``Dirichlet(reference counts)``, a window of ``m``
   rows from them, the estimate computed as the monitor does. Stored with the reference per window size.

It assumes the calibration still holds in production: P(y | score) is the reference's (covariate shift moves the
scores, not what a score means). Under concept drift (the same score now right less often) the estimate is wrong and
only labels tell; the realised-vs-estimated error reported per window is how one sees it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from detectors.calibration import NullFit, fit
from detectors.values import is_number

FloatArray = npt.NDArray[np.float64]

METRICS: Final = ("accuracy", "precision", "recall", "f1", "roc_auc")
_MIN_PER_BIN: Final = 50  # labelled rows per quantile bin at least
DRAWS: Final = 10_000


def class_key(value: object) -> float | str | None:
    """A label or prediction as the class it names: numbers (and bools) by value, strings as they are."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if is_number(value):
        number = float(value)  # type: ignore[arg-type]
        return None if math.isnan(number) else number
    return str(value)


@dataclass(frozen=True)
class ScoreCalibration:
    """Scores to P(positive): step ``s`` holds scores in ``(edges[s - 1], edges[s]]``."""

    edges: tuple[float, ...]
    probabilities: tuple[float, ...]
    method: str  # binned | isotonic
    positive: float | str
    reference_accuracy: float  # realised on the reference's labelled rows
    reference_n: int
    reference_counts: tuple[tuple[int, ...], tuple[int, ...]]  # rows per (predicted negative/positive, step)
    held_out_error: float  # calibration error of the chosen method on held-out halves

    @property
    def steps(self) -> int:
        return len(self.probabilities)

    def step_of(self, scores: FloatArray) -> npt.NDArray[np.intp]:
        return np.searchsorted(np.asarray(self.edges), scores, side="left")

    def to_dict(self) -> dict[str, Any]:
        return {"edges": list(self.edges), "probabilities": list(self.probabilities), "method": self.method,
                "positive": self.positive, "reference_accuracy": self.reference_accuracy,
                "reference_n": self.reference_n, "reference_counts": [list(c) for c in self.reference_counts],
                "held_out_error": self.held_out_error}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ScoreCalibration:
        counts = d["reference_counts"]
        return cls(tuple(float(e) for e in d["edges"]), tuple(float(p) for p in d["probabilities"]),
                   str(d["method"]), d["positive"], float(d["reference_accuracy"]), int(d["reference_n"]),
                   (tuple(int(c) for c in counts[0]), tuple(int(c) for c in counts[1])),
                   float(d["held_out_error"]))


def _binned(scores: FloatArray, y: FloatArray, bins: int) -> tuple[FloatArray, FloatArray]:
    bins = max(1, min(bins, scores.size // _MIN_PER_BIN))
    edges = np.unique(np.quantile(scores, np.linspace(0, 1, bins + 1)[1:-1]))
    step = np.searchsorted(edges, scores, side="left")
    n = np.bincount(step, minlength=edges.size + 1).astype(np.float64)
    positives = np.bincount(step, weights=y, minlength=edges.size + 1)
    return edges, (positives + 0.5) / (n + 1.0)  # Jeffreys: an all-negative bin is not certain


def pool_adjacent_violators(y: FloatArray, weights: FloatArray) -> tuple[FloatArray, npt.NDArray[np.intp]]:
    """Isotonic (non-decreasing) weighted least squares of ``y`` in its order (PAV): each block's mean and how
    many of the points it holds."""
    means: list[float] = []
    sizes: list[float] = []
    points: list[int] = []
    for value, weight in zip(y.tolist(), weights.tolist(), strict=True):
        means.append(value)
        sizes.append(weight)
        points.append(1)
        while len(means) > 1 and means[-2] >= means[-1]:
            total = sizes[-2] + sizes[-1]
            means[-2] = (means[-2] * sizes[-2] + means[-1] * sizes[-1]) / total
            sizes[-2] = total
            points[-2] += points[-1]
            del means[-1], sizes[-1], points[-1]
    return np.asarray(means), np.asarray(points, dtype=np.intp)


def _isotonic(scores: FloatArray, y: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Isotonic regression as a step function: one step per block, cut half-way between blocks."""
    # tied scores pooled into one point first, so that a block never splits a score
    xs, inverse = np.unique(scores, return_inverse=True)
    weights = np.bincount(inverse).astype(np.float64)
    values, points = pool_adjacent_violators(np.bincount(inverse, weights=y) / weights, weights)
    ends = np.cumsum(points)[:-1]  # index in ``xs`` of each block's first score but the first block's
    edges = (xs[ends - 1] + xs[ends]) / 2.0
    # Jeffreys-smoothed like the bins, by the block's size, so a pure block is not certain either
    step = np.searchsorted(edges, scores, side="left")
    n = np.bincount(step, minlength=values.size).astype(np.float64)
    return edges, (values * n + 0.5) / (n + 1.0)


def calibration_error(edges: FloatArray, probabilities: FloatArray, scores: FloatArray, y: FloatArray) -> float:
    """Expected calibration error on held-out rows: |mean predicted - mean observed| over ten equal-count bins."""
    p = probabilities[np.searchsorted(edges, scores, side="left")]
    order = np.argsort(p, kind="stable")
    total = 0.0
    for chunk in np.array_split(order, min(10, max(1, p.size))):
        if chunk.size:
            total += abs(float(p[chunk].mean() - y[chunk].mean())) * chunk.size
    return total / max(p.size, 1)


def step_function(s: FloatArray, y: FloatArray, bins: int) -> tuple[FloatArray, FloatArray, str, float]:
    """Scores ``s`` to P(y = 1) as (edges, probability per step), by quantile bins or isotonic regression, whichever
    has the lower calibration error fitted on one half and scored on the other (both ways); refitted on all."""
    halves = (np.arange(s.size) % 2 == 0, np.arange(s.size) % 2 == 1)
    errors: dict[str, float] = {}
    for method in ("binned", "isotonic"):
        total = 0.0
        for train, test in (halves, halves[::-1]):
            e, p = _binned(s[train], y[train], bins) if method == "binned" else _isotonic(s[train], y[train])
            total += calibration_error(e, p, s[test], y[test])
        errors[method] = total / 2.0
    method = min(errors, key=lambda m: (errors[m], m))
    edges, probabilities = _binned(s, y, bins) if method == "binned" else _isotonic(s, y)
    return edges, probabilities, method, errors[method]


def fit_calibration(scores: Sequence[float], predictions: Sequence[object], labels: Sequence[object],
                    bins: int = 20) -> ScoreCalibration | str:
    """The calibration of labelled predictions, or why there is none (a reason string)."""
    keep = [i for i, s in enumerate(scores)
            if s is not None and is_number(s) and math.isfinite(float(s)) and class_key(labels[i]) is not None]
    if len(keep) < 2 * _MIN_PER_BIN:
        return f"too few labelled predictions with a score ({len(keep)})"
    s = np.array([float(scores[i]) for i in keep])
    label_keys = [class_key(labels[i]) for i in keep]
    classes = set(label_keys)
    if len(classes) != 2:
        return (f"binary only: the score is one number, and the labels have {len(classes)} value(s); send per-class "
                "scores for one-vs-rest"
                if len(classes) > 2 else "the labels have a single value")
    a, b = sorted(classes, key=str)
    is_b = np.array([k == b for k in label_keys])
    positive: float | str = b if s[is_b].mean() >= s[~is_b].mean() else a  # type: ignore[assignment]
    y = np.array([k == positive for k in label_keys], dtype=np.float64)
    predicted = np.array([class_key(predictions[i]) == positive for i in keep])
    edges, probabilities, method, error = step_function(s, y, bins)
    step = np.searchsorted(edges, s, side="left")
    counts = np.zeros((2, probabilities.size), dtype=np.int64)
    np.add.at(counts, (predicted.astype(np.intp), step), 1)
    return ScoreCalibration(
        tuple(float(e) for e in edges), tuple(float(p) for p in probabilities), method,
        positive, float(np.mean(predicted == (y == 1.0))), int(s.size),
        (tuple(int(c) for c in counts[0]), tuple(int(c) for c in counts[1])), error)


def window_counts(calibration: ScoreCalibration, scores: Sequence[object],
                  predictions: Sequence[object]) -> tuple[npt.NDArray[np.int64], int]:
    """Rows per (predicted negative/positive, step) of one batch, and how many had no usable score."""
    raw = np.array([float(v) if is_number(v) else math.nan for v in scores], dtype=np.float64)  # type: ignore[arg-type]
    ok = np.isfinite(raw)
    positive = calibration.positive
    predicted = np.array([class_key(p) == positive for p in predictions], dtype=np.intp)
    counts = np.zeros((2, calibration.steps), dtype=np.int64)
    np.add.at(counts, (predicted[ok], calibration.step_of(raw[ok])), 1)
    return counts, int((~ok).sum())


def _ratio(a: FloatArray, b: FloatArray) -> FloatArray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(b > 0, a / np.where(b > 0, b, 1.0), np.nan)


def binned_auc(positives: FloatArray, negatives: FloatArray) -> FloatArray:
    """ROC-AUC of rows grouped by ordered score steps (ties within a step count half), along the last axis."""
    above = np.cumsum(positives[..., ::-1], axis=-1)[..., ::-1] - positives  # positives in higher steps
    pairs = (negatives * (above + 0.5 * positives)).sum(axis=-1)
    return _ratio(pairs, positives.sum(axis=-1) * negatives.sum(axis=-1))


def metrics_of(tp: FloatArray, fp: FloatArray, fn: FloatArray, tn: FloatArray,
               positives: FloatArray, negatives: FloatArray) -> dict[str, FloatArray]:
    """Accuracy, precision, recall, F1 and binned ROC-AUC of (expected or realised) confusion counts."""
    n = tp + fp + fn + tn
    return {"accuracy": _ratio(tp + tn, n), "precision": _ratio(tp, tp + fp), "recall": _ratio(tp, tp + fn),
            "f1": _ratio(2 * tp, 2 * tp + fp + fn), "roc_auc": binned_auc(positives, negatives)}


def expected_metrics(calibration: ScoreCalibration, counts: npt.NDArray[Any]) -> dict[str, float]:
    """The estimate of one window from its counts per (predicted class, step)."""
    values = _expected(np.asarray(calibration.probabilities), np.asarray(counts, dtype=np.float64))
    return {name: float(v) for name, v in values.items()}


def _expected(p: FloatArray, counts: FloatArray) -> dict[str, FloatArray]:
    """``expected_metrics`` of many windows at once: ``counts`` is (..., 2, steps)."""
    neg, pos = counts[..., 0, :], counts[..., 1, :]
    tp, fp = (pos * p).sum(axis=-1), (pos * (1 - p)).sum(axis=-1)
    fn, tn = (neg * p).sum(axis=-1), (neg * (1 - p)).sum(axis=-1)
    rows = neg + pos
    return metrics_of(tp, fp, fn, tn, rows * p, rows * (1 - p))


def realised_metrics(counts: npt.NDArray[Any]) -> dict[str, float]:
    """Metrics of labelled rows counted per (predicted class, label class, step): ``counts`` is (2, 2, steps)."""
    c = np.asarray(counts, dtype=np.float64)
    tp, fp = c[1, 1].sum(), c[1, 0].sum()
    fn, tn = c[0, 1].sum(), c[0, 0].sum()
    values = metrics_of(np.asarray(tp), np.asarray(fp), np.asarray(fn), np.asarray(tn),
                        c[:, 1].sum(axis=0), c[:, 0].sum(axis=0))
    return {name: float(v) for name, v in values.items()}


def drop_null(calibration: ScoreCalibration, m: int, draws: int = DRAWS) -> NullFit:
    """How far below the reference's realised accuracy the estimate of an ``m``-row window falls by chance."""
    counts = np.asarray(calibration.reference_counts, dtype=np.float64).ravel()
    seed = int(abs(hash((calibration.edges, calibration.reference_counts, m))) % 2**63)
    # ``hash`` of floats and ints is stable across processes (no string hashing), so the fit is deterministic
    rng = np.random.default_rng(seed)
    live = counts > 0
    window = np.zeros((draws, counts.size))
    shares = rng.standard_gamma(counts[live], size=(draws, int(live.sum())))
    shares /= shares.sum(axis=1, keepdims=True)
    window[:, live] = rng.multinomial(m, shares)
    estimate = _expected(np.asarray(calibration.probabilities), window.reshape(draws, 2, -1))["accuracy"]
    return fit(np.maximum(calibration.reference_accuracy - estimate, 0.0), squared=False)
