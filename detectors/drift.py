"""Per-window drift scores of each field and the signals they raise."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from detectors.config import MonitorConfig
from detectors.histogram import Histogram, NumericHistogram
from detectors.psi import psi
from detectors.records import CRITICAL, WARNING, Signal
from detectors.statistics import (
    chi2_homogeneity,
    js_distance,
    ks_p_values,
    ks_statistic,
    multiple_testing,
    reference_scale,
    wasserstein_binned,
)
from detectors.window import WindowInfo

_TESTS = {"ks": "ks_pvalue", "chi2": "chi2_pvalue"}


def field_scores(reference: Histogram, current: Histogram, config: MonitorConfig) -> dict[str, float]:
    """Every statistic of one field: numeric psi, js, wasserstein (normalised), ks; categorical psi,
    js, chi2; p-values alongside. NaN where a side is empty."""
    return window_scores({"field": (reference, current)}, config)["field"]


def window_scores(
    pairs: Mapping[str, tuple[Histogram, Histogram]], config: MonitorConfig
) -> dict[str, dict[str, float]]:
    """``field_scores`` of many fields, with the KS p-values computed in one vectorised call."""
    scores: dict[str, dict[str, float]] = {}
    ks: dict[str, int] = {}
    for name, (reference, current) in pairs.items():
        ref_counts, cur_counts = reference.counts, current.counts
        field = {"psi": psi(ref_counts, cur_counts, config.psi_epsilon), "js": js_distance(ref_counts, cur_counts)}
        if isinstance(reference, NumericHistogram) and isinstance(current, NumericHistogram):
            raw = wasserstein_binned(reference, current)
            field["wasserstein"] = raw / reference_scale(reference)
            field["wasserstein_raw"] = raw
            field["ks"], ks[name] = ks_statistic(ref_counts, cur_counts)
            field["ks_pvalue"] = math.nan
        else:
            field["chi2"], field["chi2_pvalue"] = chi2_homogeneity(ref_counts, cur_counts)
        scores[name] = field
    if ks:
        for name, p_value in zip(ks, ks_p_values([scores[n]["ks"] for n in ks], list(ks.values())), strict=True):
            scores[name]["ks_pvalue"] = p_value
    return scores


def json_safe(scores: Mapping[str, float]) -> dict[str, float | None]:
    """NaN and inf are not JSON: report them as null."""
    return {name: (value if math.isfinite(value) else None) for name, value in scores.items()}


def drift_signals(
    kind: str, scores: Mapping[str, Mapping[str, float]], config: MonitorConfig, window: WindowInfo
) -> list[Signal]:
    """The signals one window raises for the fields in ``scores`` (one family for p-value tests)."""
    tests = [(name, test) for name in scores for test in _TESTS if test in config.drift_signals
             and _TESTS[test] in scores[name]]
    decisions = multiple_testing([scores[name][_TESTS[test]] for name, test in tests], config.p_value,
                                 config.p_value_correction)
    tested = dict(zip(tests, decisions, strict=True))
    signals: list[Signal] = []

    def emit(name: str, signal: str, score: float, threshold: float, severity: str, **extra: Any) -> None:
        details: dict[str, Any] = {"scores": json_safe(scores[name]), **extra}
        signals.append(Signal(kind, signal, name, score, threshold, severity, window.index, window.start,
                              window.end, window.n, details))

    for name, field in scores.items():
        for signal in config.drift_signals:
            if signal == "psi" and field["psi"] >= config.psi_warning:
                critical = field["psi"] >= config.psi_threshold
                emit(name, "psi", field["psi"], config.psi_threshold if critical else config.psi_warning,
                     CRITICAL if critical else WARNING)
            elif signal == "js" and field["js"] >= config.js_threshold:
                emit(name, "js", field["js"], config.js_threshold, CRITICAL)
            elif signal == "wasserstein" and field.get("wasserstein", math.nan) >= config.wasserstein_threshold:
                emit(name, "wasserstein", field["wasserstein"], config.wasserstein_threshold, CRITICAL)
            elif (name, signal) in tested and tested[name, signal].rejected:
                decision = tested[name, signal]
                emit(name, signal, field[_TESTS[signal]], decision.level, CRITICAL,
                     statistic=field[signal], alpha=config.p_value, correction=config.p_value_correction)
    return signals
