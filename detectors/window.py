"""The current window: histograms over the reference's bins, filled batch by batch, and where it ends.

Windows tumble by count (``size`` observations) and, optionally, by time (a window closes before the
first observation at or after ``start + seconds``, its start being its first observation's timestamp;
``Monitor.advance(now)`` closes an idle one). Both bounds hold together.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from operator import itemgetter

import numpy as np
import numpy.typing as npt

from detectors.histogram import Histogram, NumericHistogram, NumericLayout, empty_like_all, update_numeric
from detectors.multivariate import as_matrix, window_matrix
from detectors.performance import window_counts
from detectors.performance_multiclass import MulticlassCalibration
from detectors.performance_multiclass import window_counts as multiclass_counts
from detectors.records import Observation, Predictions
from detectors.reference import Reference, confidence
from detectors.values import categorical_column, numeric_column

_ABSENT = object()
PCA_UNIT = 2.0**32  # fixed point of the summed PCA errors


@dataclass(frozen=True)
class WindowInfo:
    index: int
    start: float
    end: float
    n: int


def fill(histogram: Histogram, raw: Sequence[object]) -> None:
    """Count raw values into a histogram of either kind, missing values and wrong types included."""
    fill_all([(histogram, raw)])


def fill_all(pairs: Sequence[tuple[Histogram, Sequence[object]]], layout: NumericLayout | None = None) -> None:
    """``fill`` of many (histogram, raw column) pairs: the numeric ones in one pass (``update_numeric``, with
    ``layout`` when it is theirs: ``Reference.window_layout`` for one window's)."""
    numeric: list[NumericHistogram] = []
    values: list[npt.NDArray[np.float64]] = []
    for histogram, raw in pairs:
        if isinstance(histogram, NumericHistogram):
            numeric.append(histogram)
            if isinstance(raw, np.ndarray) and raw.dtype == np.float64:
                values.append(raw)  # a decoded column: NaN is missing, +-inf invalid, both counted by the update
                continue
            column = numeric_column(raw)
            values.append(column.values)
            histogram.count_invalid(column.n_invalid)
        else:
            counts = _string_counts(raw)
            if counts is not None:
                histogram.count_missing(counts.pop(None, 0))  # type: ignore[call-overload]
                histogram.add_counts(counts)
                continue
            categorical = categorical_column(raw)
            histogram.update(categorical.keys)
            histogram.count_missing(categorical.n_missing)
            histogram.count_invalid(categorical.n_invalid)
    update_numeric(numeric, values, layout)


def _string_counts(raw: Sequence[object]) -> Counter[str] | None:
    """The values counted, when each is a string or ``None`` (missing): one C-level pass instead of a type check, a
    copy and a count. None for anything else (bools, numbers, NaN...), which ``categorical_column`` sorts out."""
    if isinstance(raw, np.ndarray):
        return None
    try:
        counts: Counter[str] = Counter(raw)  # type: ignore[arg-type]
    except TypeError:  # an unhashable value: a wrong type
        return None
    return counts if all(type(key) is str or key is None for key in counts) else None


@dataclass
class Window:
    index: int
    features: dict[str, Histogram]
    prediction: Histogram | None
    score: Histogram | None
    max_unexpected: int = 100
    n: int = 0
    start: float = math.nan
    end: float = math.nan
    absent: dict[str, int] = field(default_factory=dict)  # observations without the feature
    unexpected: dict[str, int] = field(default_factory=dict)  # features the reference does not have
    # multivariate drift: the sum of the rows' PCA reconstruction errors; performance estimation: rows per
    # (predicted class, calibration step) when the calibration was known at its first batch, and rows without a
    # usable score
    pca_sum: int = 0  # in units of 2**-32: integers add up the same however the window is split into batches
    pca_n: int = 0
    performance_counts: np.ndarray | None = None
    unscored: int = 0

    @classmethod
    def open(cls, reference: Reference, index: int, max_unexpected: int = 100) -> Window:
        names = list(reference.features)
        fresh = iter(empty_like_all([*reference.features.values(),
                                     *(h for h in (reference.prediction, reference.score) if h is not None)]))
        features = {name: next(fresh) for name in names}
        prediction = None if reference.prediction is None else next(fresh)
        score = None if reference.score is None else next(fresh)
        return cls(index, features, prediction, score, max_unexpected, absent=dict.fromkeys(names, 0))

    def _columns(
        self, rows: Sequence[Mapping[str, object]], names: list[str]
    ) -> tuple[list[Sequence[object]], bool]:
        """One column per known feature; False when some row lacks one (counted in ``absent``)."""
        fast = _columns_fast(rows, names)
        if fast is not None:
            return fast, True
        columns: list[Sequence[object]] = []
        for name in names:
            raw = [row.get(name, _ABSENT) for row in rows]
            absent = raw.count(_ABSENT)
            if absent:
                self.absent[name] += absent
                raw = [value for value in raw if value is not _ABSENT]
            columns.append(raw)
        return columns, False

    def info(self) -> WindowInfo:
        return WindowInfo(self.index, self.start, self.end, self.n)

    def add(self, observations: Sequence[Observation], reference: Reference | None = None) -> None:
        """Count a batch of observations (``add_columns`` of them)."""
        if observations:
            self.add_columns(Predictions.of(observations), reference)

    def add_columns(self, batch: Predictions, reference: Reference | None = None) -> None:
        """Count a batch; with the ``reference`` also its PCA errors and its performance counts."""
        fill_all(self.count_columns(batch, reference), None if reference is None else reference.window_layout)

    def count_columns(self, batch: Predictions,
                      reference: Reference | None = None) -> list[tuple[Histogram, Sequence[object]]]:
        """``add_columns`` except the histograms' fill: returns the (histogram, column) pairs to fill, so that the
        columns of several windows can be counted in one ``fill_all``."""
        if not len(batch):
            return []
        names = list(self.features)
        filled: list[tuple[Histogram, Sequence[object]]]
        if batch.columns is not None:
            filled = self._add_given_columns(batch, batch.columns, names, reference)
        else:
            rows = [f if f is not None else {} for f in batch.features]
            columns, complete = self._columns(rows, names)
            filled = [(self.features[name], raw) for name, raw in zip(names, columns, strict=True)]
            if reference is not None:
                self._add_derived(reference, batch, rows, dict(zip(names, columns, strict=True)), complete)
            # a row can carry a feature we do not know only if one lacks a known one or has more keys
            if not complete or set(map(len, rows)) != {len(names)}:
                known = self.features.keys()
                for row in rows:
                    if not row.keys() <= known:
                        for name in row.keys() - known:
                            self._unexpected(name, 1)
        if self.prediction is not None:
            filled.append((self.prediction, batch.predictions))
        if self.score is not None:
            filled.append((self.score, batch.scores if batch.class_scores is None else [
                s if c is None else confidence(c) for s, c in zip(batch.scores, batch.class_scores, strict=True)]))
        if self.n == 0:
            self.start = float(batch.timestamps[0])
        self.end = float(batch.timestamps[-1])
        self.n += len(batch)
        return filled

    def _add_given_columns(self, batch: Predictions, given: Mapping[str, Sequence[object]], names: list[str],
                           reference: Reference | None) -> list[tuple[Histogram, Sequence[object]]]:
        """``add_columns`` of a batch that came as columns (every row has every column it names): its derived
        counts now; returns the (histogram, column) pairs to fill."""
        n = len(batch)
        columns: dict[str, Sequence[object]] = {}
        for name in names:
            raw = given.get(name)
            if raw is None:
                self.absent[name] += n
                continue
            columns[name] = raw
        complete = len(columns) == len(names)
        if reference is not None:
            self._add_derived(reference, batch, [row or {} for row in batch.rows()] if not complete else (), columns,
                              complete)
        for name in given:
            if name not in self.features:
                self._unexpected(name, n)
        return [(self.features[name], raw) for name, raw in columns.items()]

    def _unexpected(self, name: str, n: int) -> None:
        if name in self.unexpected or len(self.unexpected) < self.max_unexpected:
            self.unexpected[name] = self.unexpected.get(name, 0) + n

    def _add_derived(self, reference: Reference, batch: Predictions,
                     rows: Sequence[Mapping[str, object]], columns: Mapping[str, Sequence[object]],
                     complete: bool) -> None:
        pca, calibration = reference.pca, reference.performance
        if pca is not None:
            if complete and reference.pca_arrays is not None:
                row_errors = reference.pca_arrays.column_errors([columns[name] for name in pca.features])
            else:
                row_errors = pca.row_errors(as_matrix([columns[name] for name in pca.features]) if complete
                                            else window_matrix(pca, rows))
            # a row's error capped at 1e4 (100 sd per feature): the int64 sum of 100,000 rows cannot overflow
            errors = np.minimum(row_errors, 1e4)
            self.pca_sum += int(np.round(errors * PCA_UNIT).astype(np.int64).sum())
            self.pca_n += errors.shape[0]
        # a window is estimated whole or not at all: from its first batch, if the calibration was known by then
        if calibration is not None and (self.n == 0 or self.performance_counts is not None):
            predictions = list(batch.predictions)
            counts, unscored = (
                multiclass_counts(calibration, list(batch.class_scores or [None] * len(batch)), predictions)
                if isinstance(calibration, MulticlassCalibration)
                else window_counts(calibration, list(batch.scores), predictions))
            if self.performance_counts is None or self.performance_counts.shape != counts.shape:
                self.performance_counts = counts
            else:
                self.performance_counts += counts
            self.unscored += unscored


def _columns_fast(rows: Sequence[Mapping[str, object]], names: list[str]) -> list[Sequence[object]] | None:
    """Columns via C-level itemgetter/zip when every row has every feature (the common case)."""
    if not names:
        return []
    try:
        if len(names) == 1:
            return [[row[names[0]] for row in rows]]
        return list(zip(*map(itemgetter(*names), rows), strict=True)) or [[] for _ in names]
    except (KeyError, TypeError):
        return None


def take(timestamps: Sequence[float] | npt.NDArray[np.float64], window_n: int, window_start: float, size: int,
         seconds: float | None) -> tuple[int, bool]:
    """How many of ``timestamps`` join the current window, and whether it closes after them.

    The count bound closes it at exactly ``size``; the time bound closes it before the first timestamp
    at or after its start plus ``seconds`` (the window's start is its first timestamp).
    """
    room = size - window_n
    count = min(len(timestamps), room)
    closes = count == room
    if seconds is not None and count > 0:
        times = np.asarray(timestamps[:count], dtype=np.float64)
        start = window_start if window_n > 0 else times[0]
        late = times >= start + seconds
        if window_n == 0:
            late[0] = False  # the first observation opens the window, it cannot be late for it
        if late.any():
            return int(np.argmax(late)), True
    return count, closes
