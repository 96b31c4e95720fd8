"""What goes into a monitor (observations, outcomes) and what comes out (signals)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Final, NamedTuple

import numpy as np

Value = float | int | str | bool | None

WARNING: Final = "warning"
CRITICAL: Final = "critical"

DATA_DRIFT: Final = "data_drift"
PREDICTION_DRIFT: Final = "prediction_drift"
CONCEPT_DRIFT: Final = "concept_drift"
DATA_QUALITY: Final = "data_quality"
PERFORMANCE: Final = "performance"  # the estimated accuracy fell below the reference's


class Observation(NamedTuple):
    """One prediction, as the stream hands it over."""

    timestamp: float  # epoch seconds
    features: Mapping[str, Value]
    prediction: float | str
    score: float | None = None
    scores: Mapping[str, float] | None = None  # a multiclass model's probability per class


@dataclass(frozen=True)
class Predictions:
    """A batch of predictions as columns (what ``ModelMonitor.update_columns`` takes): no object per prediction.

    ``features`` holds each prediction's feature mapping (the decoded JSON form); the window turns them into one
    column per feature in a single pass. A batch decoded as columns already (the Arrow wire format) gives
    ``columns`` instead: feature name -> one value per row (a float64 array with NaN for a missing number, or a
    sequence of raw values, ``None`` for missing), and ``features`` empty. Every row then has every column.
    """

    timestamps: Any  # float64 array, epoch seconds
    features: Sequence[Mapping[str, Value] | None]
    predictions: Sequence[float | str]
    scores: Sequence[float | None]
    # a multiclass model's probability per class, per row; None when no row of the batch carries them
    class_scores: Sequence[Mapping[str, float] | None] | None = None
    columns: Mapping[str, Any] | None = None  # name -> column, instead of ``features`` (see above)

    @classmethod
    def of(cls, observations: Sequence[Observation]) -> Predictions:
        class_scores = [o.scores for o in observations]
        return cls(np.fromiter((float(o.timestamp) for o in observations), np.float64, len(observations)),
                   [o.features for o in observations], [o.prediction for o in observations],
                   [o.score for o in observations],
                   class_scores if any(s is not None for s in class_scores) else None)

    def __len__(self) -> int:
        return len(self.predictions)

    def slice(self, start: int, stop: int) -> Predictions:
        if start == 0 and stop >= len(self):
            return self
        return Predictions(self.timestamps[start:stop], self.features[start:stop], self.predictions[start:stop],
                           self.scores[start:stop],
                           None if self.class_scores is None else self.class_scores[start:stop],
                           None if self.columns is None else {name: column[start:stop]
                                                              for name, column in self.columns.items()})

    def rows(self) -> Sequence[Mapping[str, Value] | None]:
        """Each prediction's feature mapping (made from ``columns`` when the batch came as columns)."""
        if self.columns is None:
            return self.features
        names = list(self.columns)
        lists = [_python_values(self.columns[name]) for name in names]
        return [dict(zip(names, values, strict=True)) for values in zip(*lists, strict=True)] if names else [
            {} for _ in range(len(self))]

    def observations(self, start: int, stop: int) -> list[Observation]:
        """Rows ``start:stop`` as observations (the reference's buffer keeps them so)."""
        class_scores = (self.class_scores[start:stop] if self.class_scores is not None
                        else [None] * len(self.predictions[start:stop]))
        rows = self.slice(start, stop).rows()
        return [Observation(float(t), dict(f or {}), p, s, c) for t, f, p, s, c in zip(
            self.timestamps[start:stop].tolist(), rows, self.predictions[start:stop],
            self.scores[start:stop], class_scores, strict=True)]


def _python_values(column: Any) -> list[Any]:
    """A column's values as Python objects, NaN of a float array back to ``None`` (a missing value)."""
    if isinstance(column, np.ndarray):
        values: list[Any] = column.tolist()
        if column.dtype.kind == "f":
            return [None if v != v else v for v in values]  # NaN != NaN
        return values
    return list(column)


class Outcome(NamedTuple):
    """One joined (prediction, label) pair; ``score`` and ``predicted_at`` (the prediction's timestamp) let
    performance estimation calibrate scores and put the label in its prediction's window."""

    timestamp: float
    prediction: float | str
    label: float | str | bool  # an int is a float here (PEP 484); detectors.task says which are classes
    score: float | None = None
    predicted_at: float | None = None
    scores: Mapping[str, float] | None = None


@dataclass(frozen=True)
class Signal:
    """What a monitor reports; the stream turns it into a drift event.

    A data or prediction drift signal fires when ``score`` (the statistic: psi, js, wasserstein, ks, chi2) is
    at or above ``threshold``, the larger of its calibrated noise cut-off and its effect floor (``details``
    say which decided, with the false-alarm rate and the calibrated p-value). Concept signals (``adwin``,
    ``ddm``...) fire when their River detector does: ``score`` is the
    recent error (EWMA over 100 outcomes), ``threshold`` the mean error since the previous incident, and
    ``window_index`` the outcome index at which the detector fired.
    """

    kind: str  # data_drift | prediction_drift | concept_drift | data_quality | performance
    signal: str  # psi | js | wasserstein | ks | chi2 | multivariate | accuracy_estimate | adwin | ddm | ...
    feature: str | None
    score: float
    threshold: float
    severity: str  # warning | critical
    window_index: int
    window_start: float
    window_end: float
    window_n: int
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
