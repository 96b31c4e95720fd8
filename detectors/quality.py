"""Data-quality rules checked at each window close, each with its own threshold.

Shares are of the window's observations. A share fires when it reaches the reference's own share plus
the threshold, so a feature that was often missing in training data does not fire on every window (for unseen
categories the reference's "own share" is the Good-Turing estimate: its share of categories seen once).
``missing_share``, ``out_of_range_share`` and ``unseen_category_share`` are warnings (the model still
gets inputs); ``schema_mismatch`` (a feature missing, unexpected, or of another type) is critical.
"""

from __future__ import annotations

from typing import Any

from detectors.config import MonitorConfig
from detectors.histogram import CategoricalHistogram, Histogram, NumericHistogram
from detectors.records import CRITICAL, DATA_QUALITY, WARNING, Signal
from detectors.reference import Reference, kind_of
from detectors.window import Window


def _share(count: int, total: int) -> float:
    return count / total if total else 0.0


def feature_quality(reference: Histogram, current: Histogram, window_n: int, absent: int) -> dict[str, float]:
    """Quality shares of one feature in a window (and, with ``_reference`` suffix, in the reference)."""
    reference_total = reference.total
    scores = {
        "missing_share": _share(current.n_missing, window_n),
        "invalid_share": _share(current.n_invalid, window_n),
        "absent_share": _share(absent, window_n),
        "missing_share_reference": _share(reference.n_missing, reference_total),
        "invalid_share_reference": _share(reference.n_invalid, reference_total),
    }
    if isinstance(current, NumericHistogram):
        scores["out_of_range_share"] = _share(current.n_out_of_range, window_n)
    elif isinstance(current, CategoricalHistogram) and isinstance(reference, CategoricalHistogram):
        scores["unseen_category_share"] = _share(current.n_unseen, window_n)
        scores["unseen_category_share_reference"] = reference.unseen_share_expected
    return scores


def window_quality(reference: Reference, window: Window) -> dict[str, dict[str, float]]:
    """``feature_quality`` of every feature of a window, the reference's shares taken from its
    ``quality_baselines`` (derived once) rather than recounted at every close."""
    n, absent, baselines = window.n, window.absent, reference.quality_baselines
    out: dict[str, dict[str, float]] = {}
    for name, current in window.features.items():
        baseline = baselines[name]
        scores = out[name] = {  # _share inline: count / n, 0.0 for an empty window
            "missing_share": current.n_missing / n if n else 0.0,
            "invalid_share": current.n_invalid / n if n else 0.0,
            "absent_share": absent.get(name, 0) / n if n else 0.0,
            "missing_share_reference": baseline.missing,
            "invalid_share_reference": baseline.invalid,
        }
        if isinstance(current, NumericHistogram):
            scores["out_of_range_share"] = current.n_out_of_range / n if n else 0.0
        elif isinstance(current, CategoricalHistogram) and baseline.unseen is not None:
            scores["unseen_category_share"] = current.n_unseen / n if n else 0.0
            scores["unseen_category_share_reference"] = baseline.unseen
    return out


def quality_signals(
    reference: Reference, window: Window, scores: dict[str, dict[str, float]], config: MonitorConfig
) -> list[Signal]:
    signals: list[Signal] = []

    def emit(signal: str, feature: str, score: float, threshold: float, severity: str, **details: Any) -> None:
        signals.append(Signal(DATA_QUALITY, signal, feature, score, threshold, severity, window.index,
                              window.start, window.end, window.n, details))

    rules = (
        ("missing_share", "missing_share_reference", config.missing_share_threshold),
        ("out_of_range_share", None, config.out_of_range_share_threshold),
        ("unseen_category_share", "unseen_category_share_reference", config.unseen_category_share_threshold),
    )
    for name, feature in scores.items():
        for signal, baseline, threshold in rules:
            if signal in feature:
                limit = (feature[baseline] if baseline else 0.0) + threshold
                if feature[signal] >= limit:
                    extra: dict[str, Any] = {}
                    current = window.features[name]
                    if isinstance(current, CategoricalHistogram):
                        extra["unseen_examples"] = dict(current.unseen_examples)
                    emit(signal, name, feature[signal], limit, WARNING, **extra)
        expected = kind_of(reference.features[name])
        if feature["absent_share"] >= config.schema_mismatch_threshold:
            emit("schema_mismatch", name, feature["absent_share"], config.schema_mismatch_threshold, CRITICAL,
                 reason="missing_feature", expected_type=expected)
        type_limit = feature["invalid_share_reference"] + config.schema_mismatch_threshold
        if feature["invalid_share"] >= type_limit:
            emit("schema_mismatch", name, feature["invalid_share"], type_limit, CRITICAL,
                 reason="type_change", expected_type=expected)
    for name in sorted(window.unexpected):
        share = _share(window.unexpected[name], window.n)
        if share >= config.schema_mismatch_threshold:
            emit("schema_mismatch", name, share, config.schema_mismatch_threshold, CRITICAL,
                 reason="unexpected_feature")
    return signals
