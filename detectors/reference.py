"""The reference a monitor compares windows against: one histogram per feature, prediction and score.

It is built either from the first N predictions or, by the retrain worker, from a model's training
data with ``build_reference(rows, config)``; the bytes are JSON (no code), so they need no key. The reference
carries the noise calibration of every field (``detectors/calibration.py``) for the window sizes it has met, so it
is computed once per reference and window size, never per window.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, NamedTuple

from detectors.calibration import NullFit, calibrate, size_class
from detectors.codec import pack_json, unpack_json
from detectors.config import MonitorConfig
from detectors.exceptions import SnapshotError
from detectors.histogram import CategoricalHistogram, Histogram, NumericHistogram, NumericLayout
from detectors.multivariate import PcaArrays, PcaModel, as_matrix, fit_pca
from detectors.performance import ScoreCalibration, drop_null, fit_calibration
from detectors.performance_multiclass import MulticlassCalibration, fit_multiclass
from detectors.records import Observation
from detectors.stacked import ReferenceSides
from detectors.statistics import reference_scale
from detectors.values import categorical_column, infer_kind, numeric_column

FORMAT_VERSION: Final = 1
_MAGIC: Final = b"DWRF"


def column_histogram(raw: Sequence[object], kind: str, config: MonitorConfig) -> Histogram:
    """A reference histogram of one column, its kind given (``numeric`` or ``categorical``)."""
    if kind == "numeric":
        numeric = numeric_column(raw)
        histogram: Histogram = NumericHistogram.from_values(numeric.values, config.n_bins)
        histogram.count_invalid(numeric.n_invalid)
        return histogram
    categorical = categorical_column(raw)
    histogram = CategoricalHistogram.from_values(categorical.keys, config.top_k, config.max_known_categories)
    histogram.count_missing(categorical.n_missing)
    histogram.count_invalid(categorical.n_invalid)
    return histogram


class QualityBaseline(NamedTuple):
    """A reference feature's own shares, which a window's quality shares are compared with."""

    missing: float
    invalid: float
    unseen: float | None  # the Good-Turing share of unseen categories (None for a numeric feature)


def quality_baseline(histogram: Histogram) -> QualityBaseline:
    total = histogram.total
    return QualityBaseline(histogram.n_missing / total if total else 0.0,
                           histogram.n_invalid / total if total else 0.0,
                           histogram.unseen_share_expected if isinstance(histogram, CategoricalHistogram) else None)


def kind_of(histogram: Histogram) -> str:
    return "numeric" if isinstance(histogram, NumericHistogram) else "categorical"


PREDICTION: Final = "prediction"
SCORE: Final = "score"
# calibration keys of the two tests that are not a histogram's: (key, statistic)
MULTIVARIATE: Final = ("multivariate", "mean_error")
PERFORMANCE: Final = ("performance", "accuracy_drop")
FieldFits = dict[str, NullFit]  # statistic -> its null fit
# a reference's attributes derived from the others (``Reference._derived``), never stored
_DERIVED: Final = ("_window_layout", "pca_arrays", "quality_baselines", "sides")


def field_key(feature: str) -> str:
    """Where a feature's calibration is kept (apart from ``prediction`` and ``score``, whatever it is called)."""
    return f"feature:{feature}"


@dataclass
class Reference:
    features: dict[str, Histogram]
    prediction: Histogram | None
    score: Histogram | None
    n: int
    # (window size class, PSI epsilon) -> field key -> statistic -> null fit
    calibrations: dict[tuple[int, float], dict[str, FieldFits]] = field(default_factory=dict)
    # PCA of the standardised numeric features (multivariate drift), and the score calibration of the
    # reference's labelled predictions (performance estimation; attached once enough labels have arrived)
    pca: PcaModel | None = None
    performance: ScoreCalibration | MulticlassCalibration | None = None

    # A reference's histograms are never mutated once it is built: what every window derives from them alone is
    # derived once, when the reference is built or loaded, and never stored (a snapshot rebuilds it when loaded).
    def __post_init__(self) -> None:
        self._derived()

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k not in _DERIVED}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._derived()

    def _derived(self) -> None:
        numeric = self.window_numeric()
        self._window_layout = NumericLayout(numeric) if numeric else None
        self.pca_arrays: PcaArrays | None = None if self.pca is None else self.pca.arrays()
        self.quality_baselines: dict[str, QualityBaseline] = {
            name: quality_baseline(h) for name, h in self.features.items()}
        # the fields a window's scores compare, in their order (``ModelMonitor._field_pairs``)
        self.sides = ReferenceSides([*self.features.values(), *(
            h for h in (self.prediction, self.score) if h is not None and h.n > 0)])

    def window_numeric(self) -> list[NumericHistogram]:
        """The numeric histograms a window fills, in the order it fills them: its features', prediction's, score's."""
        return [h for h in (*self.features.values(), self.prediction, self.score) if isinstance(h, NumericHistogram)]

    @property
    def window_layout(self) -> NumericLayout | None:
        """The ``NumericLayout`` of a window's numeric histograms (they share this reference's edges)."""
        return self._window_layout

    def histograms(self) -> dict[str, Histogram]:
        """Every field's histogram by its calibration key."""
        fields: dict[str, Histogram] = {field_key(name): h for name, h in self.features.items()}
        for key, histogram in ((PREDICTION, self.prediction), (SCORE, self.score)):
            if histogram is not None and histogram.n > 0:
                fields[key] = histogram
        return fields

    def fits(self, key: str, m: int, config: MonitorConfig) -> FieldFits:
        """The null fits of one field for windows of ``m`` counted values, computed on first use and kept."""
        size = size_class(m, config.window_size)
        table = self.calibrations.setdefault((size, config.psi_epsilon), {})
        if key not in table:
            histogram = self.histograms()[key]
            scale = reference_scale(histogram) if isinstance(histogram, NumericHistogram) else 1.0
            table[key] = calibrate(histogram, size, config.psi_epsilon, scale)
        return table[key]

    def test_fit(self, test: tuple[str, str], m: int, config: MonitorConfig) -> NullFit | None:
        """The null fit of the multivariate or the performance test for windows of ``m`` rows (None without a
        PCA or a score calibration), computed on first use and kept beside the fields' fits."""
        model = self.pca if test == MULTIVARIATE else self.performance
        if model is None:
            return None
        size = size_class(m, config.window_size)
        table = self.calibrations.setdefault((size, config.psi_epsilon), {})
        key, statistic = test
        if key not in table:
            table[key] = {statistic: model.null(size) if isinstance(model, PcaModel)
                          else model.drop_null(size) if isinstance(model, MulticlassCalibration)
                          else drop_null(model, size)}
        return table[key][statistic]

    def attach_performance(self, calibration: ScoreCalibration | MulticlassCalibration,
                           config: MonitorConfig) -> None:
        """The score calibration of labelled predictions that arrived after the reference was built."""
        self.performance = calibration
        for table in self.calibrations.values():
            table.pop(PERFORMANCE[0], None)
        self.test_fit(PERFORMANCE, config.window_size, config)

    def calibrate(self, config: MonitorConfig) -> Reference:
        """Compute every field's calibration for full windows now (building a reference, not closing a window)."""
        for key in self.histograms():
            self.fits(key, config.window_size, config)
        for test in (MULTIVARIATE, PERFORMANCE):
            self.test_fit(test, config.window_size, config)
        return self

    @classmethod
    def from_columns(
        cls,
        rows: Sequence[Mapping[str, object]],
        config: MonitorConfig,
        predictions: Sequence[object] | None = None,
        scores: Sequence[object] | None = None,
        labels: Sequence[object] | None = None,
    ) -> Reference:
        names: dict[str, None] = {}  # every feature seen, in order of first appearance
        for row in rows:
            names.update(dict.fromkeys(row))
        features: dict[str, Histogram] = {}
        numeric: dict[str, list[object]] = {}
        for name in names:
            raw = [row.get(name) for row in rows]
            features[name] = column_histogram(raw, infer_kind(raw), config)
            if isinstance(features[name], NumericHistogram):
                numeric[name] = raw
        pca = fit_pca(list(numeric), as_matrix(list(numeric.values())), config.multivariate_variance)
        prediction = score = None
        if predictions is not None:
            if len(predictions) != len(rows):
                raise ValueError(f"{len(predictions)} predictions for {len(rows)} rows")
            prediction = column_histogram(predictions, infer_kind(predictions), config)
        # a multiclass model's scores are one mapping (class -> probability) per row: its score histogram is of
        # the predicted class's probability, the model's confidence
        per_class = scores is not None and any(isinstance(v, Mapping) for v in scores)
        if scores is not None:
            if len(scores) != len(rows):
                raise ValueError(f"{len(scores)} scores for {len(rows)} rows")
            score = column_histogram([confidence(v) for v in scores] if per_class else scores, "numeric", config)
        performance: ScoreCalibration | MulticlassCalibration | None = None
        if labels is not None:
            if len(labels) != len(rows) or predictions is None or scores is None:
                raise ValueError(f"{len(labels)} labels for {len(rows)} rows: labels need predictions and scores")
            fitted = (fit_multiclass([v if isinstance(v, Mapping) else None for v in scores], predictions, labels,
                                     config.performance_bins) if per_class
                      else fit_calibration(scores, predictions, labels, config.performance_bins))  # type: ignore[arg-type]
            performance = fitted if not isinstance(fitted, str) else None
        return cls(features, prediction, score, len(rows), pca=pca, performance=performance).calibrate(config)

    @classmethod
    def from_observations(cls, observations: Sequence[Observation], config: MonitorConfig) -> Reference:
        return cls.from_columns(
            [o.features for o in observations],
            config,
            [o.prediction for o in observations],
            [o.score if o.scores is None else o.scores for o in observations],
        )

    def schema(self) -> dict[str, str]:
        return {name: kind_of(histogram) for name, histogram in self.features.items()}

    def to_bytes(self) -> bytes:
        def entry(histogram: Histogram | None) -> dict[str, Any] | None:
            if histogram is None:
                return None
            return {"kind": kind_of(histogram), "histogram": histogram.to_dict()}

        return pack_json(_MAGIC, FORMAT_VERSION, {
            "n": self.n,
            "features": {name: entry(h) for name, h in self.features.items()},
            "prediction": entry(self.prediction),
            "score": entry(self.score),
            "calibrations": [
                {"m": size, "epsilon": epsilon,
                 "fields": {key: {stat: fit.to_list() for stat, fit in fits.items()} for key, fits in table.items()}}
                for (size, epsilon), table in self.calibrations.items()
            ],
            "pca": None if self.pca is None else self.pca.to_dict(),
            "performance": None if self.performance is None else self.performance.to_dict(),
        })

    @classmethod
    def from_bytes(cls, data: bytes) -> Reference:
        payload = unpack_json(_MAGIC, FORMAT_VERSION, data, "reference")

        def histogram(entry: Any) -> Histogram | None:
            if entry is None:
                return None
            if not isinstance(entry, dict) or entry.get("kind") not in ("numeric", "categorical"):
                raise SnapshotError(f"corrupt reference entry: {entry!r:.80}")
            if entry["kind"] == "numeric":
                return NumericHistogram.from_dict(entry["histogram"])
            return CategoricalHistogram.from_dict(entry["histogram"])

        try:
            features = {str(name): histogram(e) for name, e in payload["features"].items()}
            calibrations = {
                (int(entry["m"]), float(entry["epsilon"])): {
                    str(key): {str(stat): NullFit.from_list(values) for stat, values in fits.items()}
                    for key, fits in entry["fields"].items()
                }
                for entry in payload.get("calibrations", [])
            }
            pca, performance = payload.get("pca"), payload.get("performance")
            reference = cls({k: v for k, v in features.items() if v is not None},
                            histogram(payload["prediction"]), histogram(payload["score"]), int(payload["n"]),
                            calibrations, None if pca is None else PcaModel.from_dict(pca),
                            None if performance is None
                            else MulticlassCalibration.from_dict(performance) if performance.get("kind") == "multiclass"
                            else ScoreCalibration.from_dict(performance))
        except (KeyError, TypeError, AttributeError, ValueError) as exc:
            raise SnapshotError(f"corrupt reference: {exc}") from exc
        return reference


def confidence(scores: object) -> object:
    """A multiclass row's top probability (None without scores), the value its score histogram counts."""
    if isinstance(scores, Mapping):
        values = [v for v in scores.values() if isinstance(v, int | float)]
        return max(values) if values else None
    return scores


def build_reference(
    rows: Sequence[Mapping[str, object]],
    config: MonitorConfig | None = None,
    predictions: Sequence[object] | None = None,
    scores: Sequence[object] | None = None,
    labels: Sequence[object] | None = None,
) -> bytes:
    """Reference histograms of training data, for ``ModelMonitor.with_reference`` / ``set_reference``.

    ``rows`` are feature mappings; pass the model's ``predictions`` (and ``scores``: one number per row for a binary
    model, one mapping of class -> probability per row for a multiclass one) on the same rows to
    monitor prediction drift too, and their ``labels`` (held-out rows, not the ones the model was fitted on) to
    estimate performance from the first window. Pure and deterministic: the same rows give the same bytes.
    """
    return Reference.from_columns(rows, config or MonitorConfig(), predictions, scores, labels).to_bytes()
