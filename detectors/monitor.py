"""``ModelMonitor``: one model's data, prediction and concept drift, as the stream drives it.

The stream calls ``update`` with each batch of predictions and ``update_outcomes`` with each batch of
joined labels, emits every returned ``Signal`` as it comes, and stores ``to_bytes()`` with its offsets.
A monitor restored with ``from_bytes`` continues exactly like one that never stopped.

>>> monitor = ModelMonitor(MonitorConfig(reference_size=100, window_size=50))
>>> signals = monitor.update([Observation(float(t), {"x": t % 10}, 0.0, None) for t in range(150)])
>>> monitor.status()["phase"], monitor.status()["counts"]["windows_closed"]
('monitoring', 1)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, replace
from typing import Any, Final

from detectors.codec import seal, unseal
from detectors.config import MonitorConfig
from detectors.drift import drift_signals, json_safe, tests_in, thresholds, window_scores
from detectors.error_stream import ErrorStream
from detectors.exceptions import SnapshotError
from detectors.histogram import Histogram
from detectors.quality import quality_signals, window_quality
from detectors.records import (
    CONCEPT_DRIFT,
    CRITICAL,
    DATA_DRIFT,
    DATA_QUALITY,
    PREDICTION_DRIFT,
    WARNING,
    Observation,
    Outcome,
    Signal,
)
from detectors.reference import PREDICTION, SCORE, Reference, build_reference, field_key
from detectors.window import Window, take

__all__ = [
    "CONCEPT_DRIFT",
    "CRITICAL",
    "DATA_DRIFT",
    "DATA_QUALITY",
    "PREDICTION_DRIFT",
    "WARNING",
    "ModelMonitor",
    "MonitorConfig",
    "Observation",
    "Outcome",
    "Signal",
    "build_reference",
]

FORMAT_VERSION: Final = 1
_MAGIC: Final = b"DWMN"
_STATE_FIELDS: Final = ("config", "reference", "reference_source", "buffer", "window", "errors",
                        "n_observations", "n_windows", "last_window", "last_scores", "recent_critical")
# fields a snapshot from before they existed lacks, and what they start as
_ADDED_FIELDS: Final = {"recent_critical": list}


class ModelMonitor:
    def __init__(self, config: MonitorConfig | None = None) -> None:
        self.config = config if config is not None else MonitorConfig()
        self.reference: Reference | None = None
        self.reference_source = "observations"
        self.buffer: list[Observation] = []  # the first predictions, until they make the reference
        self.window: Window | None = None
        self.errors = ErrorStream(self.config)
        self.n_observations = 0
        self.n_windows = 0  # closed windows
        self.last_window: dict[str, Any] | None = None
        self.last_scores: dict[str, Any] = {}
        # the (kind, signal, field) keys that were critical in each of the last n windows (alert_after_windows)
        self.recent_critical: list[list[tuple[str, str, str | None]]] = []

    @property
    def phase(self) -> str:
        """``reference`` while the first predictions are collected, then ``monitoring``."""
        return "reference" if self.reference is None else "monitoring"

    @property
    def windows_closed(self) -> int:
        """Windows closed so far (by count or by time): the next window's index."""
        return self.n_windows

    # -- reference -------------------------------------------------------------------------------
    @classmethod
    def with_reference(cls, config: MonitorConfig | None, reference: bytes) -> ModelMonitor:
        """A monitor that compares against supplied histograms (``build_reference`` bytes) from the start."""
        monitor = cls(config)
        monitor.set_reference(reference)
        return monitor

    def set_reference(self, reference: bytes | Reference) -> None:
        """Switch to supplied reference histograms (e.g. a new model version's training data).

        The current window is discarded (it was binned for the old reference); counts, the window index
        and the concept detectors carry on.
        """
        self.reference = reference if isinstance(reference, Reference) else Reference.from_bytes(reference)
        self.reference_source = "supplied"
        self.buffer = []
        self.window = Window.open(self.reference, self.n_windows, self.config.max_unexpected_features)

    def start_version(self, reference: bytes | Reference | None = None) -> None:
        """A new model version: compare against ``reference`` (its training histograms) or, without one,
        against its own first ``reference_size`` predictions. Its errors are a new stream, so the concept
        detectors start over; the window index carries on, so window numbers stay unique per model."""
        self.errors = ErrorStream(self.config)
        if reference is not None:
            self.set_reference(reference)
            return
        self.reference = None
        self.reference_source = "observations"
        self.buffer = []
        self.window = None

    # -- predictions -----------------------------------------------------------------------------
    def update(self, observations: Sequence[Observation]) -> list[Signal]:
        """Count a batch of predictions; returns the signals of every window the batch closed."""
        observations = list(observations)
        signals: list[Signal] = []
        start = 0
        if self.reference is None:
            start = self.config.reference_size - len(self.buffer)
            self.buffer.extend(Observation(o.timestamp, dict(o.features or {}), o.prediction, o.score)
                               for o in observations[:start])
            if len(self.buffer) >= self.config.reference_size:
                self.reference = Reference.from_observations(self.buffer, self.config)
                self.buffer = []
                self.window = Window.open(self.reference, self.n_windows, self.config.max_unexpected_features)
        timestamps = [float(o.timestamp) for o in observations]
        while start < len(observations):
            assert self.window is not None
            count, closes = take(timestamps[start:], self.window.n, self.window.start,
                                 self.config.window_size, self.config.window_seconds)
            self.window.add(observations[start : start + count])
            start += count
            if closes:
                signals.extend(self._close())
        self.n_observations += len(observations)
        return signals

    def advance(self, now: float) -> list[Signal]:
        """Close the current window if ``window_seconds`` have passed since it opened (an idle stream)."""
        seconds = self.config.window_seconds
        if seconds is None or self.window is None or self.window.n == 0 or now < self.window.start + seconds:
            return []
        return self._close()

    def _close(self) -> list[Signal]:
        assert self.reference is not None and self.window is not None
        window, reference, config = self.window, self.reference, self.config
        info = window.info()
        features = window_scores({name: (reference.features[name], h) for name, h in window.features.items()},
                                 config)
        predictions = window_scores({
            name: (ref, cur)
            for name, ref, cur in (("prediction", reference.prediction, window.prediction),
                                   ("score", reference.score, window.score))
            if ref is not None and cur is not None and ref.n > 0
        }, config)
        quality = window_quality(reference, window)
        signals: list[Signal] = []
        if info.n >= min(config.min_window_n, config.window_size):
            family = tests_in(features, config) + tests_in(predictions, config)
            histograms: dict[str, tuple[str, Histogram]] = {
                name: (field_key(name), h) for name, h in window.features.items()}
            for key, current in ((PREDICTION, window.prediction), (SCORE, window.score)):
                if current is not None:
                    histograms[key] = (key, current)
            fits = {name: reference.fits(histograms[name][0], histograms[name][1].n, config)
                    for name in (*features, *predictions)}
            drifted = drift_signals(DATA_DRIFT, features, fits, config, info, family)
            drifted += drift_signals(PREDICTION_DRIFT, predictions, fits, config, info, family)
            signals += self._persistent(drifted)
            for scores in (features, predictions):  # reported beside the scores (status, report)
                for name, cut_offs in thresholds(scores, fits, config, family).items():
                    scores[name].update(cut_offs)
        signals += quality_signals(reference, window, quality, config)
        self.last_window = json_safe(asdict(info)) | {"tested": info.n >= min(config.min_window_n,
                                                                                 config.window_size)}
        self.last_scores = {
            "features": {name: json_safe(features[name]) | json_safe(quality[name]) for name in features},
            "prediction": {name: json_safe(scores) for name, scores in predictions.items()},
        }
        self.n_windows += 1
        self.window = Window.open(reference, self.n_windows, config.max_unexpected_features)
        return signals

    def _persistent(self, signals: list[Signal]) -> list[Signal]:
        """Critical only when the same (kind, signal, field) was critical in k of the last n windows, this one
        included (``alert_after_windows``); otherwise reported as a warning that says so."""
        k, n = self.config.alert_after_windows
        keys = [(s.kind, s.signal, s.feature) for s in signals if s.severity == CRITICAL]
        self.recent_critical = [*self.recent_critical, keys][-n:]
        if k == 1:
            return signals
        out: list[Signal] = []
        for s in signals:
            key = (s.kind, s.signal, s.feature)
            seen = sum(key in window for window in self.recent_critical)
            if s.severity == CRITICAL and seen < k:
                s = replace(s, severity=WARNING, details={**s.details, "persistence": f"{seen} of {k} windows"})
            out.append(s)
        return out

    # -- outcomes --------------------------------------------------------------------------------
    def update_outcomes(self, outcomes: Sequence[Outcome]) -> list[Signal]:
        """Feed joined (prediction, label) pairs to the concept-drift detectors."""
        return self.errors.update(outcomes)

    # -- reporting and state ---------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        """JSON-able summary: phase, counts, schema, the last closed window's scores, concept state."""
        return {
            "format_version": FORMAT_VERSION,
            "phase": self.phase,
            "reference_source": self.reference_source,
            "counts": {
                "observations": self.n_observations,
                "reference": len(self.buffer) if self.reference is None else self.reference.n,
                "windows_closed": self.n_windows,
                "current_window": 0 if self.window is None else self.window.n,
                "outcomes": self.errors.n,
                "invalid_outcomes": self.errors.n_invalid,
            },
            "schema": {} if self.reference is None else self.reference.schema(),
            "last_window": self.last_window,
            "scores": self.last_scores,
            "concept": self.errors.status(),
        }

    def to_bytes(self, key: bytes = b"") -> bytes:
        """The whole state, pickled and authenticated with HMAC-SHA256 under ``key``."""
        return seal(_MAGIC, FORMAT_VERSION, {name: getattr(self, name) for name in _STATE_FIELDS}, key)

    @classmethod
    def from_bytes(cls, data: bytes, key: bytes = b"") -> ModelMonitor:
        """Restore a monitor; a tampered blob or a wrong key raises ``SnapshotError`` (a ValueError)."""
        state = unseal(_MAGIC, FORMAT_VERSION, data, key, "monitor snapshot")
        if isinstance(state, dict):
            for name, make in _ADDED_FIELDS.items():
                state.setdefault(name, make())
        if not isinstance(state, dict) or set(state) != set(_STATE_FIELDS):
            raise SnapshotError("corrupt monitor snapshot: unexpected state fields")
        monitor = cls.__new__(cls)
        for name, value in state.items():
            setattr(monitor, name, value)
        return monitor

    def __repr__(self) -> str:
        return f"ModelMonitor(phase={self.phase}, observations={self.n_observations}, windows={self.n_windows})"
