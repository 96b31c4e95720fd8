"""``driftwarden report REFERENCE CURRENT``: the stream's drift engine run offline on two files.

The reference file becomes the monitor's supplied reference (the histograms ``build_reference`` makes),
the current file one window of a ``ModelMonitor`` (``window_size`` = its row count), so every score,
threshold and decision is the one the stream would make on the same data with the same settings. The
histograms plotted are the reference's bins, with the current rows counted into them by
``detectors.window.fill``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from detectors.histogram import Histogram, NumericHistogram
from detectors.monitor import (
    CRITICAL,
    DATA_DRIFT,
    DATA_QUALITY,
    PREDICTION_DRIFT,
    WARNING,
    ModelMonitor,
    MonitorConfig,
    Observation,
    Signal,
)
from detectors.multivariate import as_matrix, fit_pca
from detectors.reference import Reference, column_histogram, kind_of
from detectors.values import infer_kind
from detectors.window import fill
from driftwarden.contract.errors import DriftwardenError

PREDICTION = "prediction"  # the monitor's name for the prediction column, whatever the file calls it
_RANK = {None: 0, WARNING: 1, CRITICAL: 2}


class ReportError(DriftwardenError):
    """A file the report cannot read or compare."""


@dataclass(frozen=True)
class Statistic:
    """One statistic of one feature: ``decides`` when it is among ``drift_signals`` (else shown only); every
    statistic fires at or above its threshold (NaN for one that does not decide)."""

    name: str
    score: float | None
    threshold: float
    decides: bool
    fired: bool

    @property
    def label(self) -> str:
        return self.name


@dataclass(frozen=True)
class FeatureResult:
    name: str
    kind: str  # numeric | categorical
    role: str  # feature | prediction
    statistics: tuple[Statistic, ...]
    drifted: bool
    severity: str | None  # of the drift signals: warning | critical | None
    quality: tuple[Signal, ...]
    reference: Histogram
    current: Histogram
    scores: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Report:
    reference_path: str
    current_path: str
    reference_rows: int
    current_rows: int
    config: MonitorConfig
    features: tuple[FeatureResult, ...]
    skipped: tuple[str, ...]  # columns that are neither numbers nor categories (dates...)
    only_reference: tuple[str, ...] = ()  # compared as absent in every current row (schema_mismatch)
    only_current: tuple[str, ...] = ()  # not in the reference: nothing to compare them with
    # the drifted features, most relevant first (one window and no labels: by effect size, the JS distance)
    ranking: tuple[tuple[str, float], ...] = ()
    multivariate: Signal | None = None  # the PCA reconstruction error test, when it fired

    @property
    def drifted(self) -> list[FeatureResult]:
        return [f for f in self.features if f.drifted]


def _columns(frame: Any, ignore: Sequence[str]) -> tuple[list[str], list[str]]:
    """Usable and skipped columns: datetimes and other non-scalar columns are skipped."""
    import pandas as pd

    usable, skipped = [], []
    for name in frame.columns:
        if name in ignore:
            continue
        dtype = frame[name].dtype
        if pd.api.types.is_datetime64_any_dtype(dtype) or pd.api.types.is_timedelta64_dtype(dtype):
            skipped.append(str(name))
        else:
            usable.append(str(name))
    return usable, skipped


def reference_of(columns: Mapping[str, Sequence[object]], config: MonitorConfig,
                 predictions: Sequence[object] | None = None) -> Reference:
    """``build_reference`` from columns instead of rows (the same histograms, without a dict per row).

    ``detectors.reference.Reference.from_columns`` does exactly this per column; a file is already in
    columns, and building rows first costs several seconds per 100,000 of them.
    """
    n = len(next(iter(columns.values()))) if columns else 0
    features = {name: column_histogram(raw, infer_kind(raw), config) for name, raw in columns.items()}
    prediction = None if predictions is None else column_histogram(predictions, infer_kind(predictions), config)
    numeric = [name for name, h in features.items() if isinstance(h, NumericHistogram)]
    pca = fit_pca(numeric, as_matrix([columns[name] for name in numeric]), config.multivariate_variance)
    return Reference(features, prediction, None, n, pca=pca).calibrate(config)


def _statistics(scores: Mapping[str, Any], kind: str, config: MonitorConfig,
                fired: Mapping[str, Signal]) -> tuple[Statistic, ...]:
    """Each statistic with the threshold it is held to: the calibrated critical one (noise and effect floor)
    where it decides, else none (NaN)."""
    names = ["psi", "js"] + (["wasserstein", "ks"] if kind == "numeric" else ["chi2"])
    out = []
    for name in names:
        signal = fired.get(name)
        threshold = signal.threshold if signal else scores.get(f"{name}_threshold", math.nan)
        score = scores.get(name)
        out.append(Statistic(name, score if score is None else float(score), math.nan if threshold is None
                             else float(threshold), name in config.drift_signals, signal is not None))
    return tuple(out)


def compare(reference: Any, current: Any, config: MonitorConfig, *, prediction: str | None = None,
            ignore: Sequence[str] = (), reference_path: str = "reference",
            current_path: str = "current") -> Report:
    """Run the detector engine on two DataFrames: the first as the reference, the second as one window."""
    if len(reference) == 0 or len(current) == 0:
        raise ReportError("both files need at least one row")
    if prediction is not None and (prediction not in reference.columns or prediction not in current.columns):
        raise ReportError(f"prediction column {prediction!r} is not in both files")
    left_out = [*ignore, *([prediction] if prediction else [])]
    names, skipped = _columns(reference, left_out)
    _, skipped_current = _columns(current, left_out)  # a date in either file is no feature
    skipped = [*skipped, *(n for n in skipped_current if n not in skipped)]
    names = [n for n in names if n not in skipped]
    if not names:
        raise ReportError("the reference file has no column to compare")
    current_names = {str(c) for c in current.columns}
    if not current_names & set(names):
        raise ReportError(f"the two files have no column in common (reference: {', '.join(names[:10])}; "
                          f"current: {', '.join(sorted(current_names)[:10])})")
    only_reference = tuple(n for n in names if n not in current_names)
    only_current = tuple(sorted(current_names - set(names) - set(ignore) - {prediction} - set(skipped)))
    cur_columns = {name: current[name].tolist() for name in names if name in current_names}  # python scalars
    ref_pred = reference[prediction].tolist() if prediction else None
    cur_pred = current[prediction].tolist() if prediction else [0.0] * len(current)
    ref = reference_of({name: reference[name].tolist() for name in names}, config, ref_pred)
    monitor = ModelMonitor(config)
    monitor.set_reference(ref)
    rows = [dict(zip(cur_columns, values, strict=True)) for values in zip(*cur_columns.values(), strict=True)]
    signals = monitor.update([Observation(float(i), row, p, None)
                              for i, (row, p) in enumerate(zip(rows, cur_pred, strict=True))])
    status = monitor.status()
    # (shown name, the engine's name for it, role, reference histogram, current values, engine scores)
    fields: list[tuple[str, str, str, Histogram, list[Any], Mapping[str, Any]]] = [
        (name, name, "feature", h, cur_columns.get(name, [None] * len(current)),
         status["scores"]["features"].get(name, {}))
        for name, h in ref.features.items()
    ]
    if prediction and ref.prediction is not None:
        fields.append((prediction, PREDICTION, "prediction", ref.prediction, cur_pred,
                       status["scores"]["prediction"].get(PREDICTION, {})))
    results = []
    for name, engine_name, role, ref_hist, raw, scores in fields:
        current_hist = ref_hist.like()
        fill(current_hist, raw)
        drift_kind = PREDICTION_DRIFT if role == "prediction" else DATA_DRIFT
        drift = [s for s in signals if s.feature == engine_name and s.kind == drift_kind]
        quality = tuple(s for s in signals if s.feature == engine_name and s.kind == DATA_QUALITY
                        and role == "feature")
        severity = max((s.severity for s in drift), key=_RANK.__getitem__, default=None)
        kind = kind_of(ref_hist)
        results.append(FeatureResult(
            name=name, kind=kind, role=role,
            statistics=_statistics(scores, kind, config, {s.signal: s for s in drift}),
            drifted=bool(drift), severity=severity, quality=quality,
            reference=ref_hist, current=current_hist, scores=dict(scores)))
    ranking = tuple((str(r["feature"]), float(r["effect"])) for r in status["ranking"])
    multivariate = next((s for s in signals if s.kind == DATA_DRIFT and s.signal == "multivariate"), None)
    return Report(reference_path, current_path, len(reference), len(current), config, tuple(results),
                  tuple(skipped), only_reference, only_current, ranking, multivariate)


def fmt(value: float | None) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    if value != 0 and (abs(value) < 1e-3 or abs(value) >= 1e5):
        return f"{value:.2e}"
    return f"{value:.3f}" if abs(value) < 10 else f"{value:.1f}"


def summary_lines(report: Report) -> list[str]:
    """What the terminal says: which features drifted, and by how much."""
    lines = [f"compared {report.current_rows} current rows with {report.reference_rows} reference rows, "
             f"{len(report.features)} columns"]
    if report.skipped:
        lines.append(f"skipped (not numbers or categories): {', '.join(report.skipped)}")
    if report.only_reference:
        lines.append(f"only in the reference (absent from every current row): {', '.join(report.only_reference)}")
    if report.only_current:
        lines.append(f"only in the current file (not compared): {', '.join(report.only_current)}")
    drifted = report.drifted
    if not drifted:
        lines.append("no feature drifted")
    for f in drifted:
        fired = ", ".join(f"{s.label} {fmt(s.score)} >= {fmt(s.threshold)}"
                          for s in f.statistics if s.fired)
        lines.append(f"DRIFT {f.name} ({f.severity}): {fired}")
    if report.ranking:
        lines.append("ranked by effect size (JS distance): "
                     + ", ".join(f"{name} {fmt(effect)}" for name, effect in report.ranking))
    if report.multivariate is not None:
        m = report.multivariate
        lines.append(f"MULTIVARIATE DRIFT ({m.severity}): PCA reconstruction error {fmt(m.score)} >= "
                     f"{fmt(m.threshold)} (how the numeric features move together changed)")
    for f in report.features:
        for q in f.quality:
            lines.append(f"quality {f.name}: {q.signal} {fmt(q.score)} >= {fmt(q.threshold)} ({q.severity})")
    return lines
