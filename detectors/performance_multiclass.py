"""Confidence-based performance estimation of a multiclass classifier, one-vs-rest (``Prediction.scores``).

A multiclass model sends one probability per class (``scores``, class name -> probability). The binary method of
``detectors/performance.py`` is applied to each class against the rest:

1. Calibration, on the reference's labelled predictions: for each class ``k``, its score ``s_k`` -> P(label = k)
   as a step function (quantile bins or isotonic regression, whichever has the lower held-out calibration error),
   a lookup table per class stored with the reference. A row's calibrated probabilities are then normalised to sum
   to one (one-vs-rest calibrations need not).
2. A window adds up, per predicted class ``j``, the calibrated probabilities of its rows: the expected confusion
   matrix ``E[j, k]`` (predicted ``j``, label ``k``). Accuracy is ``trace(E) / n``; precision, recall and F1 per
   class from its rows and columns, macro-averaged over the classes that have them; the ROC-AUC of each class
   against the rest is binned by the class's calibration steps (expected positives ``sum p_k`` and negatives
   ``sum 1 - p_k`` per step), macro-averaged. The sums are fixed-point integers (units of 2**-32), so a window
   adds up the same however it is split into batches and after a snapshot and restore.
3. Noise: the estimated accuracy is the mean over rows of the calibrated probability of the predicted class;
   the reference's rows are kept as a histogram of that value (``NULL_BINS`` equal bins with their means), and the
   null draws windows of ``m`` rows from Dirichlet(bin counts) shares, as the binary null does.

It assumes what the binary method does (calibration holds: P(label | scores) is the reference's) and is wrong
under concept drift in the same way; the realised-vs-estimated error per window is how one sees it.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from detectors.calibration import NullFit, fit
from detectors.performance import _MIN_PER_BIN, DRAWS, FloatArray, _ratio, binned_auc, step_function
from detectors.task import class_name

UNIT: Final = 2.0**32  # fixed point of the summed probabilities
NULL_BINS: Final = 100
MAX_CLASSES: Final = 50  # a probability vector over more classes is not estimated (the tables grow as classes^2)


@dataclass(frozen=True)
class MulticlassCalibration:
    """One-vs-rest: class ``classes[k]``'s score in step ``s`` of ``edges[k]`` -> ``probabilities[k][s]``."""

    classes: tuple[str, ...]
    edges: tuple[tuple[float, ...], ...]
    probabilities: tuple[tuple[float, ...], ...]
    methods: tuple[str, ...]  # binned | isotonic, per class
    reference_accuracy: float
    reference_n: int
    null_counts: tuple[int, ...]  # reference rows per bin of their predicted class's calibrated probability
    null_means: tuple[float, ...]  # the mean of that probability in each bin
    held_out_error: float  # mean over classes of the chosen method's held-out calibration error

    @property
    def method(self) -> str:
        kinds = set(self.methods)
        return kinds.pop() if len(kinds) == 1 else "mixed"

    @property
    def steps(self) -> int:
        """The most steps of any class (a window's tables are padded to it)."""
        return max(len(p) for p in self.probabilities)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "multiclass", "classes": list(self.classes), "edges": [list(e) for e in self.edges],
                "probabilities": [list(p) for p in self.probabilities], "methods": list(self.methods),
                "reference_accuracy": self.reference_accuracy, "reference_n": self.reference_n,
                "null_counts": list(self.null_counts), "null_means": list(self.null_means),
                "held_out_error": self.held_out_error}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> MulticlassCalibration:
        return cls(tuple(str(c) for c in d["classes"]), tuple(tuple(float(x) for x in e) for e in d["edges"]),
                   tuple(tuple(float(x) for x in p) for p in d["probabilities"]), tuple(map(str, d["methods"])),
                   float(d["reference_accuracy"]), int(d["reference_n"]), tuple(int(c) for c in d["null_counts"]),
                   tuple(float(m) for m in d["null_means"]), float(d["held_out_error"]))

    def matrix(self, scores: Sequence[Mapping[str, float] | None]) -> tuple[FloatArray, npt.NDArray[np.bool_]]:
        """Raw scores as a (rows, classes) matrix in class order, and which rows are usable (scores for exactly
        the calibrated classes, all finite)."""
        classes = self.classes
        # the common case, every row's keys spelled and ordered as the classes, as one array; the rest row by row
        same = [row is not None and tuple(row) == classes for row in scores]
        out = np.full((len(scores), len(classes)), np.nan)
        if any(same):
            out[same] = [list(row.values()) for row, fast in zip(scores, same, strict=True) if fast]  # type: ignore[union-attr]
        for i, row in enumerate(scores):
            if not same[i] and (values := self.row(row)) is not None:
                out[i] = values
        return out, np.isfinite(out).all(axis=1)

    def index_of(self, name: object) -> int | None:
        """The position of a class (a score's key, a prediction or a label) among ``classes``, None if not one."""
        index = dict(zip(self.classes, range(len(self.classes)), strict=True))
        found = index.get(name) if isinstance(name, str) else None  # keys are mostly spelled as the classes
        return found if found is not None else index.get(class_name(name) or "")

    def row(self, scores: Mapping[str, float] | None) -> list[float] | None:
        """One row's scores in class order, or None unless they are finite scores of exactly these classes."""
        k = len(self.classes)
        if scores is None or len(scores) != k:
            return None
        index = dict(zip(self.classes, range(k), strict=True))
        values = [math.nan] * k
        for key, value in scores.items():
            c = index.get(key)
            if c is None:
                c = index.get(class_name(key) or "")
                if c is None:
                    return None
            values[c] = value
        return values if all(math.isfinite(v) for v in values) else None

    def steps_of(self, matrix: FloatArray) -> npt.NDArray[np.intp]:
        """Each row's calibration step per class."""
        return np.stack([np.searchsorted(np.asarray(e), matrix[:, k], side="left")
                         for k, e in enumerate(self.edges)], axis=1) if len(matrix) else \
            np.zeros((0, len(self.classes)), dtype=np.intp)

    def calibrated(self, steps: npt.NDArray[np.intp]) -> FloatArray:
        """Rows' calibrated probabilities per class from their steps, normalised to sum to one."""
        p = np.stack([np.asarray(self.probabilities[k])[steps[:, k]] for k in range(len(self.classes))], axis=1) \
            if len(steps) else np.zeros((0, len(self.classes)))
        normalised: FloatArray = p / p.sum(axis=1, keepdims=True)
        return normalised

    def drop_null(self, m: int, draws: int = DRAWS) -> NullFit:
        """How far below the reference's realised accuracy the estimate of an ``m``-row window falls by chance."""
        counts = np.asarray(self.null_counts, dtype=np.float64)
        means = np.asarray(self.null_means)
        seed = int(abs(hash((self.null_counts, self.null_means, m))) % 2**63)
        rng = np.random.default_rng(seed)
        live = counts > 0
        shares = rng.standard_gamma(counts[live], size=(draws, int(live.sum())))
        shares /= shares.sum(axis=1, keepdims=True)
        window = rng.multinomial(m, shares).astype(np.float64)
        estimate = window @ means[live] / m
        return fit(np.maximum(self.reference_accuracy - estimate, 0.0), squared=False)


def is_multiclass(calibration: object) -> bool:
    return isinstance(calibration, MulticlassCalibration)


def fit_multiclass(scores: Sequence[Mapping[str, float] | None], predictions: Sequence[object],
                   labels: Sequence[object], bins: int = 20) -> MulticlassCalibration | str:
    """The one-vs-rest calibration of labelled predictions with per-class scores, or why there is none."""
    rows = [(s, class_name(p), class_name(lab)) for s, p, lab in zip(scores, predictions, labels, strict=True)
            if s is not None and class_name(lab) is not None]
    if not rows:
        return "no labelled predictions with per-class scores"
    classes = tuple(sorted({n for n in (class_name(k) for k in rows[0][0]) if n is not None}))
    if len(classes) > MAX_CLASSES:
        return f"{len(classes)} classes: more than {MAX_CLASSES} are not estimated"
    probe = MulticlassCalibration(classes, (), (), (), 0.0, 0, (), (), 0.0)
    matrix, ok = probe.matrix([r[0] for r in rows])
    if int(ok.sum()) < 2 * _MIN_PER_BIN:
        return f"too few labelled predictions with scores for the same classes ({int(ok.sum())})"
    matrix = matrix[ok]
    predicted = np.array([classes.index(r[1]) if r[1] in classes else -1 for r, keep in zip(rows, ok, strict=True)
                          if keep])
    label_names = [r[2] for r, keep in zip(rows, ok, strict=True) if keep]
    label = np.array([classes.index(n) if n in classes else -1 for n in label_names])
    edges, probabilities, methods, errors = [], [], [], []
    for k in range(len(classes)):
        e, p, method, error = step_function(matrix[:, k], (label == k).astype(np.float64), bins)
        edges.append(tuple(float(x) for x in e))
        probabilities.append(tuple(float(x) for x in p))
        methods.append(method)
        errors.append(error)
    calibration = MulticlassCalibration(classes, tuple(edges), tuple(probabilities), tuple(methods),
                                        float(np.mean(predicted == label)), int(label.size), (), (),
                                        float(np.mean(errors)))
    p = calibration.calibrated(calibration.steps_of(matrix))
    own = np.where(predicted >= 0, p[np.arange(p.shape[0]), np.maximum(predicted, 0)], 0.0)
    which = np.minimum((own * NULL_BINS).astype(np.intp), NULL_BINS - 1)
    counts = np.bincount(which, minlength=NULL_BINS)
    sums = np.bincount(which, weights=own, minlength=NULL_BINS)
    means = np.where(counts > 0, sums / np.maximum(counts, 1), (np.arange(NULL_BINS) + 0.5) / NULL_BINS)
    return MulticlassCalibration(classes, tuple(edges), tuple(probabilities), tuple(methods),
                                 calibration.reference_accuracy, calibration.reference_n,
                                 tuple(int(c) for c in counts), tuple(float(m) for m in means),
                                 calibration.held_out_error)


def window_counts(calibration: MulticlassCalibration, scores: Sequence[Mapping[str, float] | None],
                  predictions: Sequence[object]) -> tuple[npt.NDArray[np.int64], int]:
    """One batch's expected counts, fixed point: a (classes, classes + 2 steps + 1) array holding the expected
    confusion matrix (predicted, label), then per class the expected positives and negatives per step, then in
    the last column (first row) the rows counted. Rows without usable scores or whose predicted class is not
    calibrated are not counted: their number is returned beside."""
    k, steps = len(calibration.classes), calibration.steps
    matrix, ok = calibration.matrix(scores)
    index: dict[object, int] = dict(zip(calibration.classes, range(k), strict=True))  # predictions spelled as classes
    slow = [p for p in predictions if p not in index]
    for p in dict.fromkeys(slow):  # e.g. a class 1 predicted as 1.0, or one the calibration does not know
        position = calibration.index_of(p)
        index[p] = -1 if position is None else position
    predicted = np.array([index[p] for p in predictions], dtype=np.intp)
    ok &= predicted >= 0
    out = np.zeros((k, k + 2 * steps + 1), dtype=np.int64)
    if ok.any():
        step = calibration.steps_of(matrix[ok])
        p = np.round(calibration.calibrated(step) * UNIT).astype(np.int64)
        np.add.at(out[:, :k], predicted[ok], p)
        for c in range(k):
            out[c, k: k + steps] = np.bincount(step[:, c], weights=p[:, c], minlength=steps)[:steps].astype(np.int64)
            out[c, k + steps: k + 2 * steps] = np.bincount(
                step[:, c], weights=int(UNIT) - p[:, c], minlength=steps)[:steps].astype(np.int64)
    out[0, -1] = int(ok.sum())
    return out, int((~ok).sum())


def scored(counts: npt.NDArray[Any]) -> int:
    """The rows a window's (expected or realised) multiclass counts hold."""
    return int(counts[0, -1])


def _macro(values: FloatArray) -> float:
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if finite.size else math.nan


def confusion_metrics(confusion: FloatArray, positives: FloatArray, negatives: FloatArray) -> dict[str, float]:
    """Accuracy and the macro averages of a confusion matrix (predicted, label; a label column beyond the
    classes counts labels that are none of them) and of per-class binned positives/negatives."""
    k = confusion.shape[0]
    tp = np.diag(confusion[:, :k])
    predicted, actual = confusion.sum(axis=1), confusion[:, :k].sum(axis=0)
    n = confusion.sum()
    return {"accuracy": float(tp.sum() / n) if n > 0 else math.nan,
            "precision": _macro(_ratio(tp, predicted)), "recall": _macro(_ratio(tp, actual)),
            "f1": _macro(_ratio(2 * tp, predicted + actual)),
            "roc_auc": _macro(binned_auc(positives, negatives))}


def expected_confusion(counts: npt.NDArray[Any]) -> FloatArray:
    """The expected confusion matrix (predicted, label) of a window's fixed-point counts."""
    k = counts.shape[0]
    return np.asarray(counts[:, :k], dtype=np.float64) / UNIT


def expected_metrics(counts: npt.NDArray[Any]) -> dict[str, float]:
    """The estimate of one window from its ``window_counts``."""
    k = counts.shape[0]
    steps = (counts.shape[1] - k - 1) // 2
    c = np.asarray(counts, dtype=np.float64) / UNIT
    return confusion_metrics(c[:, :k], c[:, k: k + steps], c[:, k + steps: k + 2 * steps])


def realised_counts(calibration: MulticlassCalibration) -> npt.NDArray[np.int64]:
    """Empty realised counts: (classes, classes + 1 + 2 steps + 1): confusion with a column for labels outside
    the classes, per class the labelled rows per step that are / are not that class, and the rows counted."""
    k, steps = len(calibration.classes), calibration.steps
    return np.zeros((k, k + 1 + 2 * steps + 1), dtype=np.int64)


def realise(calibration: MulticlassCalibration, counts: npt.NDArray[np.int64], scores: Mapping[str, float] | None,
            prediction: object, label: object) -> bool:
    """Count one labelled prediction into realised ``counts``; False when it cannot be (no usable scores)."""
    k, steps = len(calibration.classes), calibration.steps
    values = calibration.row(scores)
    predicted = calibration.index_of(prediction)
    if values is None or predicted is None:
        return False
    actual = calibration.index_of(label)
    actual = k if actual is None else actual
    counts[predicted, actual] += 1
    for c in range(k):  # bisect_left is searchsorted(side="left"), per row without numpy's call overhead
        counts[c, k + 1 + (0 if actual == c else steps) + bisect.bisect_left(calibration.edges[c], values[c])] += 1
    counts[0, -1] += 1
    return True


def realised_metrics(counts: npt.NDArray[Any]) -> dict[str, float]:
    """Metrics of a window's labelled rows from ``realised_counts``."""
    k = counts.shape[0]
    steps = (counts.shape[1] - k - 2) // 2
    c = np.asarray(counts, dtype=np.float64)
    return confusion_metrics(c[:, : k + 1], c[:, k + 1: k + 1 + steps], c[:, k + 1 + steps: k + 1 + 2 * steps])
