"""River concept-drift detectors on the model's error stream, with alert hygiene.

A detector is built from a spec ``{"kind": "ADWIN", "params": {"delta": 0.002}}``; its parameters are
checked when it is built (``ValueError``), not when the first value arrives. ``ConceptDetector`` feeds
values to the River detector unchanged, so its detections are River's, index for index; on top of them
it groups detections into incidents: a detection ``confirmation`` times within ``confirmation_window``
values opens one, and detections up to ``cooldown`` values after the last one belong to the same
incident (ADWIN and EDDM fire repeatedly while they shrink their window after one change).
"""

from __future__ import annotations

import inspect
import math
from collections import deque
from collections.abc import Mapping
from typing import Any, Final, NamedTuple

from river import base

from detectors.records import CRITICAL, WARNING
from detectors.river_detectors import detector_class

# configured name -> River's class name; a class is loaded when a detector of its kind is first made
DETECTORS: Final[dict[str, str]] = {
    "ADWIN": "ADWIN",
    "DDM": "DDM",
    "EDDM": "EDDM",
    "PageHinkley": "PageHinkley",
    "KSWIN": "KSWIN",
    "HDDM_A": "HDDMA",
    "HDDM_W": "HDDMW",
}


def detector_type(kind: str) -> type[base.DriftDetector] | type[base.BinaryDriftDetector]:
    """River's class of a configured detector kind (``canonical_kind`` spelling)."""
    return detector_class(DETECTORS[kind])
# These assume values in [0, 1] (error indicators); they are switched off for regression errors.
BINARY_INPUT: Final = frozenset({"DDM", "EDDM", "HDDM_A", "HDDM_W"})
_BY_FOLDED_NAME: Final = {name.replace("_", "").upper(): name for name in DETECTORS}
KSWIN_DEFAULT_SEED: Final = 42  # KSWIN samples its window at random: a fixed seed makes runs repeatable


def canonical_kind(kind: object) -> str:
    """``"hddm_a"``, ``"HDDMA"`` and ``"HDDM_A"`` all name the same detector."""
    folded = str(kind).replace("_", "").replace("-", "").upper()
    if folded not in _BY_FOLDED_NAME:
        raise ValueError(f"unknown concept detector {kind!r}: choose one of {sorted(DETECTORS)}")
    return _BY_FOLDED_NAME[folded]


def signal_name(kind: str) -> str:
    """The ``Signal.signal`` value of a detector: ``adwin``, ``ddm``, ``page_hinkley``, ``hddm_a``..."""
    return "page_hinkley" if kind == "PageHinkley" else kind.lower()


def _number(params: Mapping[str, Any], name: str, low: float, high: float, *, low_open: bool = True,
            high_open: bool = True, integer: bool = False) -> None:
    if name not in params:
        return
    value = params[name]
    if isinstance(value, bool) or not isinstance(value, int | float) or (integer and not isinstance(value, int)):
        raise ValueError(f"{name} must be {'an integer' if integer else 'a number'}, got {value!r}")
    too_low = value <= low if low_open else value < low
    too_high = value >= high if high_open else value > high
    if too_low or too_high or math.isnan(value):
        lo, hi = "(" if low_open else "[", ")" if high_open else "]"
        raise ValueError(f"{name} must be in {lo}{low}, {high}{hi}, got {value!r}")


def _check_params(kind: str, params: Mapping[str, Any], defaults: Mapping[str, Any]) -> None:
    merged = {**defaults, **params}
    inf = math.inf
    if kind == "ADWIN":
        _number(params, "delta", 0, 1)
        for name in ("clock", "max_buckets", "min_window_length", "grace_period"):
            _number(params, name, 1, inf, low_open=False, integer=True)
    elif kind == "DDM":
        _number(params, "warm_start", 1, inf, low_open=False, integer=True)
        _number(params, "warning_threshold", 0, inf)
        _number(params, "drift_threshold", 0, inf)
        if merged["drift_threshold"] < merged["warning_threshold"]:
            raise ValueError("drift_threshold must be >= warning_threshold")
    elif kind == "EDDM":
        _number(params, "warm_start", 1, inf, low_open=False, integer=True)
        _number(params, "alpha", 0, 1, high_open=False)
        _number(params, "beta", 0, 1, high_open=False)
        if merged["beta"] > merged["alpha"]:
            raise ValueError("EDDM needs beta (drift) <= alpha (warning)")
    elif kind == "PageHinkley":
        _number(params, "min_instances", 1, inf, low_open=False, integer=True)
        _number(params, "delta", 0, inf, low_open=False)
        _number(params, "threshold", 0, inf)
        _number(params, "alpha", 0, 1, high_open=False)
        if merged["mode"] not in ("up", "down", "both"):
            raise ValueError(f"mode must be up, down or both, got {merged['mode']!r}")
    elif kind == "KSWIN":
        _number(params, "alpha", 0, 1)
        _number(params, "window_size", 2, inf, low_open=False, integer=True)
        _number(params, "stat_size", 1, inf, low_open=False, integer=True)
        if merged["stat_size"] >= merged["window_size"]:
            raise ValueError("stat_size must be smaller than window_size")
        if merged.get("seed") is not None and not isinstance(merged["seed"], int):
            raise ValueError(f"seed must be an integer, got {merged['seed']!r}")
    else:  # HDDM_A, HDDM_W
        _number(params, "drift_confidence", 0, 1)
        _number(params, "warning_confidence", 0, 1)
        if merged["warning_confidence"] < merged["drift_confidence"]:
            raise ValueError("warning_confidence must be >= drift_confidence (a warning comes first)")
        if not isinstance(merged["two_sided_test"], bool):
            raise ValueError("two_sided_test must be a bool")
        if kind == "HDDM_W":
            _number(params, "lambda_val", 0, 1, high_open=False)


def normalise_spec(spec: Mapping[str, Any]) -> dict[str, Any]:
    """``{"kind": <canonical name>, "params": {...}}`` after checking every parameter (``ValueError``)."""
    if not isinstance(spec, Mapping):
        raise ValueError(f"a concept detector spec is a mapping {{kind, params}}, got {spec!r}")
    unknown = set(spec) - {"kind", "params"}
    if unknown or "kind" not in spec:
        raise ValueError(f"a concept detector spec has keys kind and params, got {sorted(spec)}")
    kind = canonical_kind(spec["kind"])
    params = dict(spec.get("params") or {})
    signature = inspect.signature(detector_type(kind))
    defaults = {name: p.default for name, p in signature.parameters.items()}
    unexpected = set(params) - set(defaults) - {"window"}
    if unexpected or "window" in params:
        raise ValueError(f"{kind} does not take {sorted(set(params) - set(defaults)) or ['window']}; "
                         f"it takes {sorted(set(defaults) - {'window'})}")
    if kind == "KSWIN" and params.get("seed") is None:
        params["seed"] = KSWIN_DEFAULT_SEED
    _check_params(kind, params, defaults)
    return {"kind": kind, "params": params}


def build_detector(spec: Mapping[str, Any]) -> base.DriftDetector | base.BinaryDriftDetector:
    """A River detector from ``{"kind": ..., "params": {...}}``; invalid parameters raise ValueError."""
    normal = normalise_spec(spec)
    try:
        return detector_type(normal["kind"])(**normal["params"])
    except (TypeError, ValueError) as exc:  # anything River itself rejects
        raise ValueError(f"invalid {normal['kind']} parameters {normal['params']}: {exc}") from exc


class ConceptEvent(NamedTuple):
    severity: str  # warning | critical
    position: int  # 0-based position of the value that triggered it in this detector's stream
    detections: int  # detections in the incident so far (confirmation count for a new incident)


class ConceptDetector:
    """A River detector plus incident logic; ``update`` returns the events to report for one value."""

    def __init__(
        self,
        kind: str,
        params: Mapping[str, Any] | None = None,
        confirmation: int = 1,
        confirmation_window: int = 1000,
        cooldown: int = 0,
    ) -> None:
        if isinstance(confirmation, bool) or not isinstance(confirmation, int) or confirmation < 1:
            raise ValueError(f"confirmation must be an integer >= 1, got {confirmation!r}")
        if not isinstance(confirmation_window, int) or confirmation_window < 0:
            raise ValueError(f"confirmation_window must be an integer >= 0, got {confirmation_window!r}")
        if not isinstance(cooldown, int) or cooldown < 0:
            raise ValueError(f"cooldown must be an integer >= 0, got {cooldown!r}")
        spec = normalise_spec({"kind": kind, "params": dict(params or {})})
        self.kind: str = spec["kind"]
        self.params: dict[str, Any] = spec["params"]
        self.confirmation = confirmation
        self.confirmation_window = confirmation_window
        self.cooldown = cooldown
        self._detector = detector_type(self.kind)(**self.params)
        self._has_warning = hasattr(self._detector, "warning_detected")
        self.n = 0
        self.n_detections = 0
        self.n_incidents = 0
        self.recent_detections: deque[int] = deque(maxlen=100)
        self._pending: deque[int] = deque(maxlen=confirmation)
        self._incident_last: int | None = None
        self._incident_detections = 0
        self._in_warning = False

    @property
    def detector(self) -> base.DriftDetector | base.BinaryDriftDetector:
        return self._detector

    def in_incident(self) -> bool:
        return self._incident_last is not None and self.n - 1 - self._incident_last <= self.cooldown

    def update(self, value: float) -> ConceptEvent | None:
        index = self.n
        self.n += 1
        self._detector.update(value)  # type: ignore[arg-type]  # binary detectors take 0/1 floats too
        if self._detector.drift_detected:
            self.n_detections += 1
            self.recent_detections.append(index)
            self._in_warning = False
            if self._incident_last is not None and index - self._incident_last <= self.cooldown:
                self._incident_last = index  # the same incident, still going
                self._incident_detections += 1
                return None
            while self._pending and index - self._pending[0] > self.confirmation_window:
                self._pending.popleft()
            self._pending.append(index)
            if len(self._pending) < self.confirmation:
                return None
            confirmed = len(self._pending)
            self._pending.clear()
            self._incident_last = index
            self._incident_detections = confirmed
            self.n_incidents += 1
            return ConceptEvent(CRITICAL, index, confirmed)
        warning = self._has_warning and bool(self._detector.warning_detected)  # type: ignore[union-attr]
        starts = warning and not self._in_warning
        self._in_warning = warning
        if starts and not self.in_incident():
            return ConceptEvent(WARNING, index, 0)
        return None

    def status(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "n": self.n,
            "detections": self.n_detections,
            "incidents": self.n_incidents,
            "in_incident": self.in_incident(),
            "warning": self._in_warning,
            "last_detection": self.recent_detections[-1] if self.recent_detections else None,
        }
