"""Per-window drift scores of each field and the signals they raise.

A statistic raises a signal when it is beyond its calibrated noise cut-off (the window's false-alarm budget split
over the window's tests, see ``detectors/calibration.py``) and at or above its effect floor: the change is both
real and large enough to matter.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import NamedTuple

from detectors.calibration import NullFit, cutoffs_at
from detectors.config import MonitorConfig
from detectors.histogram import Histogram, NumericHistogram
from detectors.psi import psi
from detectors.records import CRITICAL, WARNING, Signal
from detectors.stacked import pair_scores
from detectors.statistics import (
    chi2_homogeneity,
    js_distance,
    ks_p_values,
    ks_p_values_asymptotic,
    ks_statistic,
    reference_scale,
    wasserstein_binned,
)
from detectors.window import WindowInfo


def field_scores(reference: Histogram, current: Histogram, config: MonitorConfig) -> dict[str, float]:
    """Every statistic of one field: numeric psi, js, wasserstein (normalised), ks; categorical psi,
    js, chi2; p-values alongside. NaN where a side is empty.

    Field by field, with the functions of ``detectors.psi`` and ``detectors.statistics``: the reference that
    ``window_scores`` (all fields in one pass) equals bit for bit."""
    ref_counts, cur_counts = reference.counts, current.counts
    field = {"psi": psi(ref_counts, cur_counts, config.psi_epsilon), "js": js_distance(ref_counts, cur_counts)}
    if isinstance(reference, NumericHistogram) and isinstance(current, NumericHistogram):
        raw = wasserstein_binned(reference, current)
        field["wasserstein"] = raw / reference_scale(reference)
        field["wasserstein_raw"] = raw
        field["ks"], effective_n = ks_statistic(ref_counts, cur_counts)
        # The exact distribution costs ~0.1 ms per field: only when KS decides; else it is reported only.
        p_values = ks_p_values if "ks" in config.drift_signals else ks_p_values_asymptotic
        field["ks_pvalue"] = p_values([field["ks"]], [effective_n])[0]
    else:
        field["chi2"], field["chi2_pvalue"] = chi2_homogeneity(ref_counts, cur_counts)
        total = reference.n + current.n
        chi2 = field["chi2"]
        field["cramers_v"] = math.sqrt(chi2 / total) if total and math.isfinite(chi2) else math.nan
    return field


def window_scores(
    pairs: Mapping[str, tuple[Histogram, Histogram]], config: MonitorConfig
) -> dict[str, dict[str, float]]:
    """``field_scores`` of many fields, all of them in one stacked pass (``detectors/stacked.py``)."""
    scores = pair_scores(list(pairs.values()), config.psi_epsilon, "ks" in config.drift_signals)
    return dict(zip(pairs, scores, strict=True))


def json_safe(scores: Mapping[str, float]) -> dict[str, float | None]:
    """NaN and inf are not JSON: report them as null."""
    if all(map(math.isfinite, scores.values())):  # the common case, without a Python step per value
        return dict(scores)
    return {name: (value if math.isfinite(value) else None) for name, value in scores.items()}


def tests_in(scores: Mapping[str, Mapping[str, float]], config: MonitorConfig) -> int:
    """How many (field, statistic) tests decide in these fields: part of the window's Bonferroni divisor."""
    return sum(1 for field in scores.values() for signal in config.drift_signals
               if math.isfinite(field.get(signal, math.nan)))


class CutOff(NamedTuple):
    """Where one test of one window fires: beyond the noise at the budget's rate and at or above the floor."""

    noise: float  # the statistic's value noise alone exceeds with probability ``rate / family``
    floor: float  # the effect floor in the statistic's own units (chi2's is set on Cramer's V)

    @property
    def threshold(self) -> float:
        return max(self.noise, self.floor)


def effect_floor(signal: str, field: Mapping[str, float], config: MonitorConfig) -> float:
    """A statistic's effect floor in its own units (chi2's is set on Cramer's V)."""
    floor = config.effect_floor(signal)
    if signal == "chi2":  # chi2 = V**2 * (n_reference + n_window)
        v, chi2 = field.get("cramers_v", math.nan), field.get("chi2", math.nan)
        floor = floor * floor * chi2 / (v * v) if v > 0 else math.inf
    return floor


def cut_off(signal: str, fit: NullFit, field: Mapping[str, float], config: MonitorConfig, rate: float,
            family: int) -> CutOff:
    """One test's cut-off (``cut_offs`` gives every test's of a window at once, the same)."""
    return CutOff(fit.cutoff(rate / family), effect_floor(signal, field, config))


class CutOffs(NamedTuple):
    """Every deciding test of a window's fields at one rate, in order: (field, statistic), its noise cut-off, its
    effect floor and its threshold (the larger, as ``CutOff.threshold``)."""

    keys: list[tuple[str, str]]
    noise: list[float]
    floor: list[float]
    threshold: list[float]


def cut_offs(scores: Mapping[str, Mapping[str, float]], fits: Mapping[str, Mapping[str, NullFit]],
             config: MonitorConfig, rate: float, family: int) -> CutOffs:
    """``cut_off`` of every deciding statistic with a finite score, the noise cut-offs in one pass."""
    return cut_offs_at(deciding(scores, fits, config), (rate,), family)[0]


class Deciding(NamedTuple):
    """A window's deciding tests (a finite score of a deciding statistic), in order: (field, statistic), its null
    fit and its effect floor. There are ``tests_in(scores)`` of them."""

    keys: list[tuple[str, str]]
    fits: list[NullFit]
    floors: list[float]


def deciding(scores: Mapping[str, Mapping[str, float]], fits: Mapping[str, Mapping[str, NullFit]],
             config: MonitorConfig) -> Deciding:
    keys: list[tuple[str, str]] = []
    chosen: list[NullFit] = []
    floors: list[float] = []
    settings = [(signal, config.effect_floor(signal)) for signal in config.drift_signals]
    isfinite, nan = math.isfinite, math.nan
    for name, field in scores.items():
        for signal, floor in settings:
            if isfinite(field.get(signal, nan)):
                keys.append((name, signal))
                chosen.append(fits[name][signal])
                floors.append(floor if signal != "chi2" else effect_floor(signal, field, config))
    return Deciding(keys, chosen, floors)


def cut_offs_at(tests: Deciding, rates: Sequence[float], family: int) -> list[CutOffs]:
    """``cut_offs`` of a window's deciding tests at each of ``rates`` (its false-alarm and warning rates)."""
    keys, floors = tests.keys, tests.floors
    # max(noise, floor) as Python takes it: the noise unless the floor is larger
    return [CutOffs(keys, noise, floors, [f if f > n else n for n, f in zip(noise, floors, strict=True)])
            for noise in cutoffs_at(tests.fits, [rate / family for rate in rates])]


def thresholds(scores: Mapping[str, Mapping[str, float]], fits: Mapping[str, Mapping[str, NullFit]],
               config: MonitorConfig, family: int, critical: CutOffs | None = None) -> dict[str, dict[str, float]]:
    """The critical threshold of every deciding statistic of every field, as ``<statistic>_threshold``
    (``critical``: the window's ``cut_offs`` at the false-alarm rate, when already computed)."""
    if critical is None:
        critical = cut_offs(scores, fits, config, config.false_alarm_rate, family)
    out: dict[str, dict[str, float]] = {name: {} for name in scores}
    for (name, signal), threshold in zip(critical.keys, critical.threshold, strict=True):
        out[name][f"{signal}_threshold"] = threshold
    return out


def drift_signals(
    kind: str,
    scores: Mapping[str, Mapping[str, float]],
    fits: Mapping[str, Mapping[str, NullFit]],
    config: MonitorConfig,
    window: WindowInfo,
    family: int,
    cuts: tuple[CutOffs, CutOffs] | None = None,
) -> list[Signal]:
    """The signals one window raises for the fields in ``scores``, ``family`` being the number of tests the whole
    window holds (every field of every kind, times the deciding statistics): Bonferroni over it keeps the share
    of stationary windows with any critical signal at most ``config.false_alarm_rate``. For the question "does
    this window alarm", Holm's step-down gives the same answer (both reject first at ``rate / family``), so the
    simpler rule with a fixed cut-off per test, which dashboards and events can show, is the one used.

    ``cuts``: the window's ``cut_offs`` at the false-alarm and the warning rate, when already computed."""
    if cuts is None:
        cuts = (cut_offs(scores, fits, config, config.false_alarm_rate, family),
                cut_offs(scores, fits, config, config.warning_rate, family))
    signals: list[Signal] = []
    levels = ((CRITICAL, config.false_alarm_rate, cuts[0]), (WARNING, config.warning_rate, cuts[1]))
    for i, (name, signal) in enumerate(cuts[0].keys):
        field = scores[name]
        score = field[signal]
        if score < cuts[0].threshold[i] and score < cuts[1].threshold[i]:
            continue
        for severity, rate, table in levels:
            cut = CutOff(table.noise[i], table.floor[i])
            if score >= table.threshold[i]:
                signals.append(Signal(
                    kind, signal, name, score, table.threshold[i], severity, window.index, window.start,
                    window.end, window.n, {
                        "scores": json_safe(field),
                        "noise_threshold": cut.noise,
                        "effect_floor": cut.floor,  # in the statistic's units (chi2's from Cramer's V)
                        "effect_floor_setting": config.effect_floor(signal),
                        "decided_by": "noise" if cut.noise >= cut.floor else "effect_floor",
                        "false_alarm_rate": rate,
                        "test_alpha": rate / family,
                        "family_size": family,
                        "p_value": fits[name][signal].p_value(score),
                    }))
                break
    return signals
