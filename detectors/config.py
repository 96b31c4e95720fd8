"""The monitor's configuration: every field has a default, so ``MonitorConfig(**settings_fields)`` works.

Default thresholds and where they come from:

* PSI 0.1 warning / 0.2 critical: the credit-scoring rule of thumb (Siddiqi, "Credit Risk Scorecards",
  2006: 0.1 and 0.25), with the stricter 0.2 as critical; set ``psi_threshold=0.25`` for Siddiqi's.
* Jensen-Shannon distance 0.1 (natural log) and Wasserstein-1 / reference std 0.1: Evidently's defaults
  for its ``jensenshannon`` and ``wasserstein`` drift methods.
* p-value 0.05 (Evidently's default for KS and chi-square), corrected with Holm-Bonferroni across the
  features of one window (FWER control like Bonferroni, never less powerful).
* Decisions are distance-based by default (``drift_signals``): with 1000-row windows a test's p-value
  flags shifts too small to matter. ``ks`` and ``chi2`` can be added; every score is reported anyway.
* Concept drift: ADWIN (delta 0.002, River's and the paper's) checking every 16 outcomes instead of 32,
  within the false-alarm budget of 0.1 critical alarms per 100,000 labelled outcomes (docs/detectors.md).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from detectors.concept import normalise_spec
from detectors.task import TASKS

DRIFT_SIGNALS = frozenset({"psi", "js", "wasserstein", "ks", "chi2"})
CORRECTIONS = frozenset({"holm", "bonferroni", "none"})


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
    top_k: int = 100
    max_known_categories: int = 10_000  # reference categories remembered beyond the top K
    max_unexpected_features: int = 100  # distinct unexpected feature names tracked per window
    # -- drift decisions -------------------------------------------------------------------------
    psi_threshold: float = 0.2  # critical
    psi_warning: float = 0.1
    psi_epsilon: float = 1e-4
    js_threshold: float = 0.1
    wasserstein_threshold: float = 0.1
    p_value: float = 0.05
    p_value_correction: str = "holm"  # holm | bonferroni | none
    drift_signals: tuple[str, ...] = ("psi", "js", "wasserstein")
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

        for name in ("reference_size", "window_size", "min_window_n", "n_bins", "top_k", "concept_confirmation"):
            positive_int(name)
        for name in ("max_known_categories", "max_unexpected_features", "concept_confirmation_window",
                     "concept_cooldown"):
            non_negative_int(name)
        for name in ("psi_threshold", "psi_warning", "psi_epsilon", "js_threshold", "wasserstein_threshold"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
                raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
        if self.psi_warning > self.psi_threshold:
            raise ValueError(f"psi_warning ({self.psi_warning}) must be <= psi_threshold ({self.psi_threshold})")
        share("p_value", allow_zero=False)
        for name in ("missing_share_threshold", "out_of_range_share_threshold",
                     "unseen_category_share_threshold", "schema_mismatch_threshold"):
            share(name, allow_zero=False)
        if self.p_value_correction not in CORRECTIONS:
            raise ValueError(f"p_value_correction must be one of {sorted(CORRECTIONS)}")
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
        # normalise (a list from YAML becomes a tuple) and reject invalid detector parameters now
        specs = tuple(normalise_spec(spec) for spec in self.concept_detectors)
        if len({spec["kind"] for spec in specs}) != len(specs):
            raise ValueError("each concept detector kind may appear once")
        object.__setattr__(self, "concept_detectors", specs)
