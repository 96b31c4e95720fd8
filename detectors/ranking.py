"""Which drift matters: recent windows' feature drift beside their performance, and the drifted features ranked.

Each closed window leaves a ``WindowRecord``: every feature's effect size (the Jensen-Shannon distance of its
histogram to the reference's, one unit for numeric and categorical features alike), the performance estimate, and
the realised confusion counts its labels add as they arrive. A drifted feature's rank is its effect times how its
drift tracks the performance drop over the recent windows (Pearson correlation of its effect with the drop below the
reference's accuracy, realised where a window's labels are in, estimated otherwise), or its effect alone while fewer
than four windows have a performance value.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np

from detectors.performance import realised_metrics as binary_metrics
from detectors.performance_multiclass import realised_metrics as multiclass_metrics

MIN_WINDOWS: Final = 4  # windows with a performance value before correlations are reported
COMPLETE: Final = 0.9  # a window's realised accuracy replaces its estimate once this share of it is labelled


@dataclass
class WindowRecord:
    index: int
    start: float
    end: float
    n: int
    effects: dict[str, float]
    estimate: dict[str, float] | None = None  # expected metrics (performance estimation)
    estimate_n: int = 0  # the rows the estimate counts
    realised: np.ndarray | None = None  # (predicted, label, step) counts of its labelled rows (multiclass: 2-d)
    realised_n: int = 0

    def accuracy(self) -> float | None:
        """Realised once the window is (nearly) all labelled, estimated before; None with neither."""
        if self.realised is not None and self.realised_n >= COMPLETE * max(self.estimate_n, 1):
            return realised_metrics(self.realised)["accuracy"]
        if self.estimate is not None and math.isfinite(self.estimate["accuracy"]):
            return self.estimate["accuracy"]
        return None

    def summary(self) -> dict[str, Any]:
        realised = realised_metrics(self.realised) if self.realised is not None and self.realised_n else None
        error = None
        if realised is not None and self.estimate is not None:
            error = abs(self.estimate["accuracy"] - realised["accuracy"])
        return {"index": self.index, "start": self.start, "end": self.end, "n": self.n,
                "estimated": _safe(self.estimate), "estimated_n": self.estimate_n,
                "realised": _safe(realised), "realised_n": self.realised_n,
                "estimation_error": error if error is not None and math.isfinite(error) else None}


def realised_metrics(counts: np.ndarray) -> dict[str, float]:
    """Realised metrics of a binary (predicted, label, step) or a multiclass (``realised_counts``) table."""
    return multiclass_metrics(counts) if counts.ndim == 2 else binary_metrics(counts)


def _safe(values: Mapping[str, float] | None) -> dict[str, float | None] | None:
    if values is None:
        return None
    return {k: (v if math.isfinite(v) else None) for k, v in values.items()}


def record_for(records: Sequence[WindowRecord], timestamp: float) -> WindowRecord | None:
    """The record of the window a prediction made at ``timestamp`` fell in (the last one starting at or before
    it), or None if it is older than every record."""
    starts = [r.start for r in records]
    i = bisect.bisect_right(starts, timestamp) - 1
    return records[i] if i >= 0 else None


def tracking(feature: str, records: Iterable[WindowRecord], reference_accuracy: float) -> float | None:
    """Pearson correlation, over recent windows, of the feature's effect with the accuracy drop."""
    pairs = [(r.effects.get(feature, math.nan), reference_accuracy - a) for r in records
             if (a := r.accuracy()) is not None]
    pairs = [(x, y) for x, y in pairs if math.isfinite(x) and math.isfinite(y)]
    if len(pairs) < MIN_WINDOWS:
        return None
    x, y = np.array(pairs).T
    if x.std() == 0 or y.std() == 0:
        return 0.0
    return float(np.corrcoef(x, y)[0, 1])


def rank(drifted: Iterable[str], records: Sequence[WindowRecord],
         reference_accuracy: float | None) -> list[dict[str, Any]]:
    """The drifted features of the last record, most relevant first."""
    last = records[-1]
    out: list[dict[str, Any]] = []
    for feature in set(drifted):
        effect = last.effects.get(feature, math.nan)
        effect = effect if math.isfinite(effect) else 0.0
        tracks = None if reference_accuracy is None else tracking(feature, records, reference_accuracy)
        relevance = effect if tracks is None else effect * max(tracks, 0.0)
        out.append({"feature": feature, "effect": effect, "tracks_performance": tracks, "relevance": relevance})
    out.sort(key=lambda r: (-r["relevance"], -r["effect"], r["feature"]))
    for position, entry in enumerate(out, 1):
        entry["rank"] = position
    return out

