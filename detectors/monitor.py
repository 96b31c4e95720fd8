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

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, replace
from typing import Any, Final

import numpy as np

from detectors.calibration import NullFit
from detectors.codec import seal, unseal
from detectors.config import MonitorConfig
from detectors.drift import cut_offs_at, deciding, drift_signals, json_safe
from detectors.error_stream import ErrorStream
from detectors.exceptions import SnapshotError
from detectors.histogram import Histogram
from detectors.performance import ScoreCalibration, class_key, expected_metrics, fit_calibration
from detectors.performance_multiclass import (
    MulticlassCalibration,
    expected_confusion,
    fit_multiclass,
    realise,
    realised_counts,
    scored,
)
from detectors.performance_multiclass import expected_metrics as multiclass_metrics
from detectors.quality import quality_signals, window_quality
from detectors.ranking import WindowRecord, rank, record_for
from detectors.records import (
    CONCEPT_DRIFT,
    CRITICAL,
    DATA_DRIFT,
    DATA_QUALITY,
    PERFORMANCE,
    PREDICTION_DRIFT,
    WARNING,
    Observation,
    Outcome,
    Predictions,
    Signal,
)
from detectors.reference import MULTIVARIATE, PREDICTION, SCORE, Reference, build_reference, field_key
from detectors.reference import PERFORMANCE as PERFORMANCE_TEST
from detectors.stacked import pair_scores
from detectors.window import PCA_UNIT, Window, fill_all, take

__all__ = [
    "CONCEPT_DRIFT",
    "CRITICAL",
    "DATA_DRIFT",
    "DATA_QUALITY",
    "PERFORMANCE",
    "PREDICTION_DRIFT",
    "WARNING",
    "ModelMonitor",
    "MonitorConfig",
    "Observation",
    "Outcome",
    "Predictions",
    "Signal",
    "build_reference",
]

FORMAT_VERSION: Final = 1
_MAGIC: Final = b"DWMN"
_STATE_FIELDS: Final = ("config", "reference", "reference_source", "buffer", "window", "errors",
                        "n_observations", "n_windows", "last_window", "last_scores", "recent_critical",
                        "labelled", "performance_note", "records", "open_realised", "estimates", "last_ranking")
_Test = tuple[str, str, float, NullFit, float]  # kind, signal, score, null fit, effect floor
# a window's features' scores, its prediction's and score's, and each field's counted values (its n)
_Scores = tuple[dict[str, dict[str, float]], dict[str, dict[str, float]], dict[str, int]]
# fields a snapshot from before they existed lacks, and what they start as
_ADDED_FIELDS: Final[dict[str, Any]] = {"recent_critical": list, "labelled": list, "performance_note": str,
                                        "records": list, "open_realised": lambda: None, "estimates": list,
                                        "last_ranking": list}


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
        self._reset_performance()

    def _reset_performance(self) -> None:
        # the first labelled predictions of this version (score, or scores per class, prediction, label), until
        # they calibrate the scores
        self.labelled: list[tuple[float | Mapping[str, float], float | str, float | str]] = []
        self.performance_note = ""  # why there is no estimate (multiclass, no score...), once known
        self.records: list[WindowRecord] = []  # recent closed windows: effects, estimate, realised counts
        self.open_realised: np.ndarray | None = None  # realised counts of the window still open
        self.estimates: list[dict[str, Any]] = []  # performance_estimate records not yet taken by the stream
        self.last_ranking: list[dict[str, Any]] = []

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
        self._reset_performance()

    def start_version(self, reference: bytes | Reference | None = None) -> None:
        """A new model version: compare against ``reference`` (its training histograms) or, without one,
        against its own first ``reference_size`` predictions. Its errors are a new stream, so the concept
        detectors start over; the window index carries on, so window numbers stay unique per model."""
        self.errors = ErrorStream(self.config)
        if reference is not None:
            self.set_reference(reference)
            return
        self._reset_performance()
        self.reference = None
        self.reference_source = "observations"
        self.buffer = []
        self.window = None

    # -- predictions -----------------------------------------------------------------------------
    def update(self, observations: Sequence[Observation]) -> list[Signal]:
        """Count a batch of predictions; returns the signals of every window the batch closed."""
        return self.update_columns(Predictions.of(observations))

    def update_columns(self, batch: Predictions) -> list[Signal]:
        """``update`` of a batch given as columns (the stream's form): no object per prediction, and the batch's
        windows found on one timestamp array (each window looks only at its own rows, never at the rest)."""
        signals: list[Signal] = []
        start = 0
        total = len(batch)
        if self.reference is None:
            start = self.config.reference_size - len(self.buffer)
            self.buffer.extend(batch.observations(0, start))
            if len(self.buffer) >= self.config.reference_size:
                self.reference = Reference.from_observations(self.buffer, self.config)
                self.buffer = []
                self.window = Window.open(self.reference, self.n_windows, self.config.max_unexpected_features)
                self._calibrate_scores()
        if start < total:
            signals = self._fill_and_close(batch, start)
        self.n_observations += total
        return signals

    def _fill_and_close(self, batch: Predictions, start: int) -> list[Signal]:
        """Rows ``start:`` of a batch into the current window and as many new ones as they fill, every window's
        columns counted in one pass and every closed window's fields scored in one (``detectors/stacked.py``); then
        each closed window decided in turn, as if the batch had come one window at a time."""
        assert self.reference is not None and self.window is not None
        config, reference = self.config, self.reference
        timestamps = batch.timestamps
        window, index = self.window, self.n_windows
        closing: list[tuple[Window, Window]] = []  # (closed window, the one after it)
        pairs: list[tuple[Histogram, Sequence[object]]] = []
        while start < len(batch):
            count, closes = take(timestamps[start:], window.n, window.start, config.window_size,
                                 config.window_seconds)
            pairs += window.count_columns(batch.slice(start, start + count), reference)
            start += count
            if closes:
                index += 1
                following = Window.open(reference, index, config.max_unexpected_features)
                closing.append((window, following))
                window = following
        fill_all(pairs, reference.window_layout)
        signals: list[Signal] = []
        for (closed, following), scores in zip(closing, self._scores([w for w, _ in closing]), strict=True):
            self.window = closed
            signals += self._close(scores, following)
        self.window = window
        return signals

    def _field_pairs(self, window: Window) -> tuple[list[tuple[Histogram, Histogram]], list[str]]:
        """A window's (reference, current) histograms: its features', then its prediction's and score's (named)."""
        reference = self.reference
        assert reference is not None
        pairs: list[tuple[Histogram, Histogram]] = [(reference.features[name], h)
                                                    for name, h in window.features.items()]
        named: list[str] = []
        for name, ref, cur in (("prediction", reference.prediction, window.prediction),
                               ("score", reference.score, window.score)):
            if ref is not None and cur is not None and ref.n > 0:
                pairs.append((ref, cur))
                named.append(name)
        return pairs, named

    def _scores(self, windows: Sequence[Window]) -> list[_Scores]:
        """Every field's scores of each window (features, then prediction and score), all windows in one pass."""
        assert self.reference is not None
        layouts = [self._field_pairs(w) for w in windows]
        counted: list[int] = []
        scored = pair_scores([pair for pairs, _ in layouts for pair in pairs], self.config.psi_epsilon,
                             "ks" in self.config.drift_signals, self.reference.sides, counted)
        out = []
        at = 0
        for window, (pairs, named) in zip(windows, layouts, strict=True):
            fields = scored[at:at + len(pairs)]
            n = dict(zip([*window.features, *named], counted[at:at + len(pairs)], strict=True))
            at += len(pairs)
            n_features = len(pairs) - len(named)
            out.append((dict(zip(window.features, fields[:n_features], strict=True)),
                        dict(zip(named, fields[n_features:], strict=True)), n))
        return out

    def advance(self, now: float) -> list[Signal]:
        """Close the current window if ``window_seconds`` have passed since it opened (an idle stream)."""
        seconds = self.config.window_seconds
        if seconds is None or self.window is None or self.window.n == 0 or now < self.window.start + seconds:
            return []
        return self._close()

    def _close(self, given: _Scores | None = None, following: Window | None = None) -> list[Signal]:
        """Decide the current window and open the next (``following`` when already opened); ``given``: its
        fields' scores when already computed (``_scores``)."""
        assert self.reference is not None and self.window is not None
        window, reference, config = self.window, self.reference, self.config
        info = window.info()
        features, predictions, counted = given if given is not None else self._scores([window])[0]
        quality = window_quality(reference, window)
        signals: list[Signal] = []
        tested = info.n >= min(config.min_window_n, config.window_size)
        # multivariate and performance: (kind, signal, score, fit, floor), and their scores for the status
        extra, extra_scores = self._extra_tests(window, tested, features)
        if tested:
            # The multivariate and performance tests hold a place in the family whenever the reference allows
            # them, whether or not this window runs them (the performance test waits for labels): so the data-drift
            # cut-offs of a window never depend on when the labels arrived.
            keys = {name: field_key(name) for name in window.features}  # where each field's calibration is kept
            for key, current in ((PREDICTION, window.prediction), (SCORE, window.score)):
                if current is not None:
                    keys[key] = key
            fits = {name: reference.fits(keys[name], counted[name], config) for name in (*features, *predictions)}
            tests = [deciding(scores, fits, config) for scores in (features, predictions)]
            family = len(tests[0].keys) + len(tests[1].keys) + self._extra_places()  # tests_in each
            # every test's cut-offs at both rates, once: for the signals and for the thresholds reported
            rates = (config.false_alarm_rate, config.warning_rate)
            cuts = [(critical, warning) for of in tests for critical, warning in [cut_offs_at(of, rates, family)]]
            drifted = drift_signals(DATA_DRIFT, features, fits, config, info, family, cuts[0])
            drifted += drift_signals(PREDICTION_DRIFT, predictions, fits, config, info, family, cuts[1])
            drifted += [s for test in extra if (s := _test_signal(*test, config, info, family)) is not None]
            signals += self._persistent(drifted)
            for scores, (critical, _warning) in zip((features, predictions), cuts, strict=True):
                # reported beside the scores (status, report), as ``thresholds`` gives them
                for (name, signal), threshold in zip(critical.keys, critical.threshold, strict=True):
                    scores[name][f"{signal}_threshold"] = threshold
            for _kind, signal, _score, fit, floor in extra:
                extra_scores[signal][f"{signal}_threshold"] = max(fit.cutoff(config.false_alarm_rate / family),
                                                                        floor)
        signals = self._rank(signals, window)
        signals += quality_signals(reference, window, quality, config)
        self.last_window = json_safe(vars(info)) | {"tested": info.n >= min(config.min_window_n,
                                                                               config.window_size)}
        self.last_scores = {
            "features": {name: _json_safe_merged(features[name], quality[name]) for name in features},
            "prediction": {name: json_safe(scores) for name, scores in predictions.items()},
            "multivariate": {name: json_safe(scores) for name, scores in extra_scores.items()
                             if name == "multivariate"},
            "performance": {name: json_safe(scores) for name, scores in extra_scores.items()
                            if name == "accuracy_estimate"},
        }
        self.n_windows += 1
        self.window = (following if following is not None
                       else Window.open(reference, self.n_windows, config.max_unexpected_features))
        return signals

    def _extra_places(self) -> int:
        """The family places of the multivariate test (a reference with a PCA) and of the performance test (a
        model that sends scores: it is estimated once labels calibrate them)."""
        reference = self.reference
        assert reference is not None
        return int(reference.pca is not None) + int(reference.score is not None and reference.score.n > 0)

    def _extra_tests(self, window: Window, tested: bool,
                     features: dict[str, dict[str, float]]) -> tuple[list[_Test], dict[str, dict[str, float]]]:
        """The window's multivariate and performance tests and their scores; records the window (ranking) and its
        performance_estimate."""
        reference, config = self.reference, self.config
        assert reference is not None
        tests: list[_Test] = []
        scores: dict[str, dict[str, float]] = {}
        least = min(config.min_window_n, config.window_size)
        if reference.pca is not None and window.pca_n:
            error = window.pca_sum / PCA_UNIT / window.pca_n
            scores["multivariate"] = {"multivariate": error, "multivariate_reference": reference.pca.error_mean}
            fit = reference.test_fit(MULTIVARIATE, window.pca_n, config)
            if tested and window.pca_n >= least and fit is not None:
                tests.append((DATA_DRIFT, "multivariate", error, fit,
                              reference.pca.error_mean * (1.0 + config.multivariate_floor)))
        calibration, counts = reference.performance, window.performance_counts
        multiclass = isinstance(calibration, MulticlassCalibration)
        estimate, n_scored = None, 0 if counts is None else scored(counts) if multiclass else int(counts.sum())
        if calibration is not None and counts is not None and n_scored:
            estimate = (multiclass_metrics(counts) if multiclass
                        else expected_metrics(calibration, counts))  # type: ignore[arg-type]
            drop = calibration.reference_accuracy - estimate["accuracy"]
            scores["accuracy_estimate"] = {"accuracy_estimate": estimate["accuracy"], "accuracy_drop": drop,
                                           "accuracy_reference": calibration.reference_accuracy}
            fit = reference.test_fit(PERFORMANCE_TEST, n_scored, config)
            if tested and n_scored >= least and fit is not None and math.isfinite(drop):
                tests.append((PERFORMANCE, "accuracy_estimate", drop, fit, config.performance_margin))
        record = WindowRecord(window.index, window.start, window.end, window.n,
                              {name: f["js"] for name, f in features.items() if math.isfinite(f["js"])},
                              estimate, n_scored,
                              self.open_realised, 0 if self.open_realised is None
                              else scored(self.open_realised) if multiclass else int(self.open_realised.sum()))
        self.open_realised = None
        self.records = [*self.records, record][-max(self.config.ranking_windows, 1):]
        if estimate is not None and calibration is not None:
            self.estimates.append({
                "window": json_safe(asdict(window.info())), "n_scored": n_scored, "unscored": window.unscored,
                "estimated": json_safe(estimate), "reference_accuracy": calibration.reference_accuracy,
                "calibration": calibration.method,
                "accuracy_drop": scores["accuracy_estimate"]["accuracy_drop"],
                **({"classes": list(calibration.classes),  # type: ignore[union-attr]
                    "confusion": expected_confusion(counts).tolist()} if multiclass and counts is not None else {}),
            })
        return tests, scores

    def _rank(self, signals: list[Signal], window: Window) -> list[Signal]:
        """Rank this window's drifted features (``detectors/ranking.py``) and put the ranking in the details of its
        data-drift and performance signals."""
        drifted = {s.feature for s in signals if s.kind == DATA_DRIFT and s.feature is not None}
        if not self.records or self.records[-1].index != window.index:
            return signals
        calibration = self.reference.performance if self.reference is not None else None
        ranking = rank(drifted, self.records, None if calibration is None else calibration.reference_accuracy)
        self.last_ranking = ranking
        if not ranking:
            return signals
        top = [{k: r[k] for k in ("feature", "effect", "tracks_performance", "rank")} for r in ranking[:3]]
        position = {r["feature"]: r["rank"] for r in ranking}
        return [_with_details(s, {**s.details, "ranking": top,
                                  **({"rank": position[s.feature]} if s.feature in position else {})})
                if s.kind in (DATA_DRIFT, PERFORMANCE) else s for s in signals]

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
        """Feed joined (prediction, label) pairs to the concept-drift detectors, to the score calibration (the
        first ``performance_reference_size`` with a score) and to their window's realised performance."""
        signals = self.errors.update(outcomes)
        calibration = self.reference.performance if self.reference is not None else None
        if calibration is None:
            room = self.config.performance_reference_size - len(self.labelled)
            if room > 0 and not self.performance_note:
                self.labelled.extend((o.scores if o.scores is not None else float(o.score),  # type: ignore[arg-type]
                                      o.prediction, o.label) for o in outcomes
                                     if (o.score is not None or o.scores is not None) and o.label is not None)
                self.labelled = self.labelled[: self.config.performance_reference_size]
            self._calibrate_scores()
            return signals
        for o in outcomes:
            self._realise(calibration, o)
        return signals

    def _calibrate_scores(self) -> None:
        """Calibrate the scores once the reference exists and enough labelled predictions are in."""
        if (self.reference is None or self.reference.performance is not None
                or len(self.labelled) < self.config.performance_reference_size):
            return
        scores, predictions, labels = zip(*self.labelled, strict=True)
        fitted: ScoreCalibration | MulticlassCalibration | str
        if any(isinstance(v, Mapping) for v in scores):  # a multiclass model: one-vs-rest
            fitted = fit_multiclass([v if isinstance(v, Mapping) else None for v in scores], predictions, labels,
                                    self.config.performance_bins)
        else:
            fitted = fit_calibration(scores, predictions, labels, self.config.performance_bins)
        self.labelled = []
        if isinstance(fitted, str):
            self.performance_note = fitted
            return
        self.reference.attach_performance(fitted, self.config)  # estimates start with the next window

    def _realise(self, calibration: ScoreCalibration | MulticlassCalibration, outcome: Outcome) -> None:
        """Count a labelled prediction in its window's realised (predicted, label, step) counts."""
        if isinstance(calibration, MulticlassCalibration):
            self._realise_multiclass(calibration, outcome)
            return
        if outcome.score is None or outcome.predicted_at is None or not math.isfinite(float(outcome.score)):
            return
        t = float(outcome.predicted_at)
        predicted = int(class_key(outcome.prediction) == calibration.positive)
        label = int(class_key(outcome.label) == calibration.positive)
        step = int(calibration.step_of(np.asarray([float(outcome.score)]))[0])
        window = self.window
        if window is not None and window.n and t >= window.start:
            if self.open_realised is None:
                self.open_realised = np.zeros((2, 2, calibration.steps), dtype=np.int64)
            self.open_realised[predicted, label, step] += 1
            return
        record = record_for(self.records, t)
        if record is None or record.estimate is None:
            return
        if record.realised is None:
            record.realised = np.zeros((2, 2, calibration.steps), dtype=np.int64)
        record.realised[predicted, label, step] += 1
        record.realised_n += 1

    def _realise_multiclass(self, calibration: MulticlassCalibration, outcome: Outcome) -> None:
        """``_realise`` of a multiclass model: into its window's realised confusion and per-class step counts."""
        if outcome.predicted_at is None or outcome.scores is None:
            return
        t = float(outcome.predicted_at)
        window = self.window
        if window is not None and window.n and t >= window.start:
            if self.open_realised is None:
                self.open_realised = realised_counts(calibration)
            realise(calibration, self.open_realised, outcome.scores, outcome.prediction, outcome.label)
            return
        record = record_for(self.records, t)
        if record is None or record.estimate is None:
            return
        if record.realised is None:
            record.realised = realised_counts(calibration)
        if realise(calibration, record.realised, outcome.scores, outcome.prediction, outcome.label):
            record.realised_n += 1

    def take_estimates(self) -> list[dict[str, Any]]:
        """The performance_estimate records of the windows closed since the last call (the stream publishes them)."""
        taken, self.estimates = self.estimates, []
        return taken

    def performance_status(self) -> dict[str, Any]:
        """Score calibration, the recent windows' estimated and realised performance, and the estimation error."""
        calibration = self.reference.performance if self.reference is not None else None
        if calibration is None:
            note = self.performance_note or (
                f"collecting labelled predictions with a score: {len(self.labelled)} of "
                f"{self.config.performance_reference_size}")
            return {"estimating": False, "note": note}
        windows = [r.summary() for r in self.records if r.estimate is not None]
        errors = [w["estimation_error"] for w in windows
                  if w["estimation_error"] is not None and w["realised_n"] >= 0.9 * max(w["estimated_n"], 1)]
        return {
            "estimating": True,
            "calibration": {"method": calibration.method,
                            **({"classes": list(calibration.classes)} if isinstance(calibration, MulticlassCalibration)
                               else {"positive": calibration.positive}),
                            "steps": calibration.steps, "reference_n": calibration.reference_n,
                            "reference_accuracy": calibration.reference_accuracy,
                            "held_out_error": calibration.held_out_error},
            "windows": windows,
            "mean_estimation_error": sum(errors) / len(errors) if errors else None,
        }

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
            "performance": self.performance_status(),
            "multivariate": None if self.reference is None or self.reference.pca is None else {
                "features": list(self.reference.pca.features), "components": len(self.reference.pca.components),
                "error_reference": self.reference.pca.error_mean},
            "ranking": self.last_ranking,
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


def _json_safe_merged(first: dict[str, float], second: dict[str, float]) -> dict[str, float | None]:
    """``json_safe({**first, **second})`` with one copy."""
    merged: dict[str, float | None] = {**first, **second}
    return merged if all(map(math.isfinite, merged.values())) else json_safe(merged)  # type: ignore[arg-type]


def _with_details(s: Signal, details: dict[str, Any]) -> Signal:
    """``dataclasses.replace(s, details=details)`` without its per-field introspection (several signals a window)."""
    return Signal(s.kind, s.signal, s.feature, s.score, s.threshold, s.severity, s.window_index, s.window_start,
                  s.window_end, s.window_n, details)


def _test_signal(kind: str, signal: str, score: float, fit: NullFit, floor: float, config: MonitorConfig,
                 window: Any, family: int) -> Signal | None:
    """A signal of a test that is not a histogram's (multivariate, performance), on the same budget and rules."""
    for severity, rate in ((CRITICAL, config.false_alarm_rate), (WARNING, config.warning_rate)):
        noise = fit.cutoff(rate / family)
        threshold = max(noise, floor)
        if score >= threshold:
            return Signal(kind, signal, None, score, threshold, severity, window.index, window.start, window.end,
                          window.n, {"noise_threshold": noise, "effect_floor": floor,
                                     "decided_by": "noise" if noise >= floor else "effect_floor",
                                     "false_alarm_rate": rate, "test_alpha": rate / family, "family_size": family,
                                     "p_value": fit.p_value(score)})
    return None
