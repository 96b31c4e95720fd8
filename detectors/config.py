"""The monitor's configuration: every field has a default, so ``MonitorConfig(**settings_fields)`` works.

Drift decisions (``docs/detectors.md`` has the measured false-alarm rates and power of these defaults):

* ``false_alarm_rate`` 0.001: the expected share of windows of a model that does not drift that raise any critical
  data or prediction drift signal. It is split evenly (Bonferroni) over the window's family of (field, statistic)
  tests; each test's cut-off comes from that statistic's own noise for this reference, field and window size
  (``detectors/calibration.py``). ``warning_rate`` 0.01 is the same for warnings.
* Effect floors: a signal also needs its statistic at or above a floor, so that a large window does not alarm on a
  shift too small to matter. The defaults keep a 0.25 sd mean shift (Wasserstein/sd about 0.25, PSI about 0.06)
  and a 10-point change of a category's share (PSI 0.04 or more) above them.
* Concept drift: ADWIN (delta 0.002, River's and the paper's) checking every 16 outcomes instead of 32,
  within the false-alarm budget of 0.1 critical alarms per 100,000 labelled outcomes (docs/detectors.md).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from detectors.task import TASKS

DRIFT_SIGNALS = frozenset({"psi", "js", "wasserstein", "ks", "chi2"})


def _default_detectors() -> tuple[Mapping[str, Any], ...]:
    """ADWIN alone, checking every 16 outcomes: no false alarm in 10 M stationary outcomes (fresh starts
    included) and a 5% -> 50% switch caught within 63 outcomes (bench/bench_concept.py, docs/detectors.md).
    DDM at River's settings raises about 20 false alarms per 100,000 fresh-start outcomes; set strict
    enough for the budget it needs hundreds of outcomes to see that switch."""
    return ({"kind": "ADWIN", "params": {"delta": 0.002, "clock": 16}},)


@dataclass(frozen=True)
class MonitorConfig:
    # -- reference and windows -------------------------------------------------------------------
    reference_size: int = 2000  # first N predictions form the reference (unless one is supplied)
    window_size: int = 1000  # tumbling count window
    window_seconds: float | None = None  # also close a window this long after its first observation
    min_window_n: int = 30  # a smaller (time-closed) window is reported but not tested
    # -- histograms ------------------------------------------------------------------------------
    n_bins: int = 20
    # a bin of its own for each of the reference's K most frequent categories, the rest as "other": K is large by
    # default because choosing bins by their reference counts biases them (the most frequent categories of a
    # sample are over-counted), which a stationary high-cardinality feature would show as drift in every window
    top_k: int = 10_000
    max_known_categories: int = 10_000  # reference categories remembered beyond the top K
    max_unexpected_features: int = 100  # distinct unexpected feature names tracked per window
    # -- drift decisions -------------------------------------------------------------------------
    false_alarm_rate: float = 0.001  # share of stationary windows with a critical data/prediction drift signal
    warning_rate: float = 0.01  # the same for warnings
    psi_floor: float = 0.03  # effect floors: a signal needs its statistic at or above these too
    js_floor: float = 0.04  # Jensen-Shannon distance, natural log
    wasserstein_floor: float = 0.1  # Wasserstein-1 / reference standard deviation
    ks_floor: float = 0.05
    chi2_floor: float = 0.05  # as Cramer's V, sqrt(chi2 / (reference n + window n))
    psi_epsilon: float = 1e-4
    drift_signals: tuple[str, ...] = ("psi", "js", "wasserstein")
    alert_after_windows: tuple[int, int] = (1, 1)  # (k, n): critical only in k of the last n windows
    # -- multivariate drift, performance estimation, ranking (tests in the same family and budget) --
    multivariate_variance: float = 0.9  # share of the standardised numeric features' variance the PCA keeps
    multivariate_floor: float = 0.1  # effect floor: the mean reconstruction error at least 10% above the reference's
    performance_reference_size: int = 1000  # first labelled predictions (with a score) that calibrate the scores
    performance_bins: int = 20  # quantile bins of the binned calibration (at least 50 labelled rows each)
    performance_margin: float = 0.02  # effect floor: estimated accuracy this far below the reference's at least
    ranking_windows: int = 8  # recent windows over which a feature's drift is compared with the performance
    # -- data quality (a share of the window's observations at or above it fires) -----------------
    missing_share_threshold: float = 0.05
    out_of_range_share_threshold: float = 0.05
    unseen_category_share_threshold: float = 0.05
    schema_mismatch_threshold: float = 0.01
    # -- concept drift ---------------------------------------------------------------------------
    task: str = "auto"  # auto: detectors.task's rule (integer-valued labels are classes)
    concept_detectors: tuple[Mapping[str, Any], ...] = field(default_factory=_default_detectors)
    concept_confirmation: int = 1  # detections needed (within the window below) to open an incident
    concept_confirmation_window: int = 1000  # outcomes
    concept_cooldown: int = 1000  # outcomes after the last detection that still belong to the incident

    def effect_floor(self, signal: str) -> float:
        """The effect floor of a statistic (for chi2 in Cramer's V)."""
        return float(getattr(self, f"{signal}_floor"))

    def __post_init__(self) -> None:
        def positive_int(name: str) -> None:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")

        def non_negative_int(name: str) -> None:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be an integer >= 0, got {value!r}")

        def share(name: str, *, allow_zero: bool = True) -> None:
            value = getattr(self, name)
            if not isinstance(value, int | float) or not (0 <= value <= 1) or (value == 0 and not allow_zero):
                raise ValueError(f"{name} must be in {'[' if allow_zero else '('}0, 1], got {value!r}")

        for name in ("reference_size", "window_size", "min_window_n", "n_bins", "top_k", "concept_confirmation",
                     "performance_reference_size", "performance_bins", "ranking_windows"):
            positive_int(name)
        for name in ("max_known_categories", "max_unexpected_features", "concept_confirmation_window",
                     "concept_cooldown"):
            non_negative_int(name)
        share("multivariate_variance", allow_zero=False)
        for name in ("psi_floor", "js_floor", "wasserstein_floor", "ks_floor", "chi2_floor", "psi_epsilon",
                     "multivariate_floor", "performance_margin"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
        if self.psi_epsilon <= 0:
            raise ValueError(f"psi_epsilon must be > 0, got {self.psi_epsilon!r}")
        for name in ("false_alarm_rate", "warning_rate"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not (0 < value < 1):
                raise ValueError(f"{name} must be in (0, 1), got {value!r}")
        if self.warning_rate < self.false_alarm_rate:
            raise ValueError(f"warning_rate ({self.warning_rate}) must be >= false_alarm_rate "
                             f"({self.false_alarm_rate})")
        persistence = tuple(self.alert_after_windows)
        if (len(persistence) != 2 or any(isinstance(v, bool) or not isinstance(v, int) for v in persistence)
                or not 1 <= persistence[0] <= persistence[1]):
            raise ValueError(f"alert_after_windows must be (k, n) with 1 <= k <= n, got {self.alert_after_windows!r}")
        object.__setattr__(self, "alert_after_windows", persistence)
        for name in ("missing_share_threshold", "out_of_range_share_threshold",
                     "unseen_category_share_threshold", "schema_mismatch_threshold"):
            share(name, allow_zero=False)
        if self.window_seconds is not None and (
            not isinstance(self.window_seconds, int | float) or not (0 < self.window_seconds < math.inf)
        ):
            raise ValueError(f"window_seconds must be None or a finite number > 0, got {self.window_seconds!r}")
        if self.task not in TASKS:
            raise ValueError(f"task must be one of {sorted(TASKS)}, got {self.task!r}")
        signals = tuple(self.drift_signals)
        if not set(signals) <= DRIFT_SIGNALS:
            raise ValueError(f"drift_signals must be among {sorted(DRIFT_SIGNALS)}, got {signals}")
        object.__setattr__(self, "drift_signals", signals)
        # normalise (a list from YAML becomes a tuple) and reject invalid detector parameters now; imported here so
        # that the settings object (driftwarden.contract) imports this module where River is not installed (the SDK)
        from detectors.concept import normalise_spec

        specs = tuple(normalise_spec(spec) for spec in self.concept_detectors)
        if len({spec["kind"] for spec in specs}) != len(specs):
            raise ValueError("each concept detector kind may appear once")
        object.__setattr__(self, "concept_detectors", specs)
