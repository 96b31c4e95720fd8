"""Multivariate drift: how badly the reference's principal components reconstruct a window's numeric rows.

Per-feature tests see each marginal; two features whose correlation flips sign keep every marginal and pass them
all. The reference's standardised numeric features are projected on the principal components that keep
``multivariate_variance`` of their variance; a row's error is the mean squared residual per feature. When the way
features move together changes, rows leave that subspace and the window's mean error rises.

The noise band comes from the reference itself: the per-row errors are computed out of sample (five folds, each
row's error from components fitted without it, so the reference's own errors are not optimistic), kept as 128
quantiles, and the null of a window's mean error is the mean of ``m`` draws from them plus the uncertainty of the
reference's own mean (a normal with its standard error). Missing or non-numeric values are imputed with the
reference mean (zero after standardising): they add no error.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, NamedTuple

import numpy as np
import numpy.typing as npt

from detectors.calibration import NullFit, fit
from detectors.pca_kernel import MAX_FEATURES, residual_means, standardised_rows

FloatArray = npt.NDArray[np.float64]

MIN_ROWS: Final = 50
_QUANTILES: Final = 128
_FOLDS: Final = 5
DRAWS: Final = 4000


def as_matrix(columns: Sequence[Sequence[object]]) -> FloatArray:
    """Columns of raw values as a rows x features float matrix, NaN where a value is missing or not a number."""
    out = _floats(columns)
    return np.column_stack(out) if out else np.zeros((0, 0))


def _floats(columns: Sequence[Sequence[object]]) -> list[FloatArray]:
    out = []
    for column in columns:
        try:
            out.append(np.asarray(column, dtype=np.float64))
        except (TypeError, ValueError):
            out.append(np.array([float(v) if isinstance(v, int | float) and not isinstance(v, bool) else math.nan
                                 for v in column], dtype=np.float64))
    return out


def _components(z: FloatArray, share: float) -> FloatArray:
    # eigenvectors of the d x d covariance: cheaper than an SVD of the rows, which a busy BLAS makes slow
    centred = z - z.mean(axis=0)
    variance, vectors = np.linalg.eigh(centred.T @ centred)
    variance, vectors = np.maximum(variance[::-1], 0.0), vectors[:, ::-1]
    kept = int(np.searchsorted(np.cumsum(variance) / max(variance.sum(), 1e-300), share - 1e-12) + 1)
    return vectors[:, : min(kept, variance.size)].T.copy()


def _errors(z: FloatArray, components: FloatArray) -> FloatArray:
    residual = z - (z @ components.T) @ components
    return np.asarray((residual**2).mean(axis=1), dtype=np.float64)


@dataclass(frozen=True)
class PcaModel:
    features: tuple[str, ...]
    mean: tuple[float, ...]
    scale: tuple[float, ...]
    components: tuple[tuple[float, ...], ...]  # k x d, orthonormal rows
    error_quantiles: tuple[float, ...]  # of the out-of-sample per-row errors
    error_mean: float
    error_sd: float
    n: int

    def row_errors(self, matrix: FloatArray) -> FloatArray:
        """Each row's mean squared residual per feature (``matrix`` columns in ``features`` order)."""
        z = (matrix - np.asarray(self.mean)) / np.asarray(self.scale)
        z = np.where(np.isfinite(z), z, 0.0)
        return _errors(z, np.asarray(self.components))

    def arrays(self) -> PcaArrays:
        """The model's numbers as arrays, for ``column_errors`` (a reference derives them once, when loaded)."""
        return PcaArrays(np.asarray(self.mean)[:, None], np.asarray(self.scale)[:, None],
                         np.asarray(self.components))

    def null(self, m: int, draws: int = DRAWS) -> NullFit:
        """The null of a window's mean error over ``m`` rows, when nothing changed."""
        quantiles = np.asarray(self.error_quantiles)
        rng = np.random.default_rng(abs(hash((self.error_quantiles, m))) % 2**63)
        means = np.empty(draws)
        chunk = max(1, 2_000_000 // max(m, 1))
        # a draw from the quantile table: a uniform index and a uniform point between its two neighbours
        gaps = np.diff(quantiles)
        for start in range(0, draws, chunk):
            size = min(chunk, draws - start)
            index = rng.integers(0, gaps.size, (size, m))
            values = quantiles[index] + gaps[index] * rng.random((size, m), dtype=np.float32)
            means[start : start + size] = values.mean(axis=1)
        means += rng.standard_normal(draws) * self.error_sd / math.sqrt(max(self.n, 1))
        return fit(means, squared=False)

    def to_dict(self) -> dict[str, Any]:
        return {"features": list(self.features), "mean": list(self.mean), "scale": list(self.scale),
                "components": [list(c) for c in self.components], "error_quantiles": list(self.error_quantiles),
                "error_mean": self.error_mean, "error_sd": self.error_sd, "n": self.n}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> PcaModel:
        return cls(tuple(str(f) for f in d["features"]), tuple(float(v) for v in d["mean"]),
                   tuple(float(v) for v in d["scale"]), tuple(tuple(float(v) for v in c) for c in d["components"]),
                   tuple(float(v) for v in d["error_quantiles"]), float(d["error_mean"]), float(d["error_sd"]),
                   int(d["n"]))


class PcaArrays(NamedTuple):
    """A ``PcaModel``'s mean and scale (as columns) and components as arrays."""

    mean: FloatArray
    scale: FloatArray
    components: FloatArray

    def column_errors(self, columns: Sequence[Sequence[object]]) -> FloatArray:
        """``row_errors(as_matrix(columns))``, each feature standardised along its own contiguous column (an
        element-wise operation gives the same bits in any layout; the rows x features matrix that the products
        take is the same), and each row's mean square summed as numpy sums a row (``_row_means``)."""
        floats = _floats(columns)
        z = np.concatenate(floats).reshape(len(floats), len(floats[0]) if floats else 0)  # features x rows
        if 0 < z.shape[0] <= MAX_FEATURES:  # the same operations, compiled (``detectors/pca_kernel.py``)
            rows = standardised_rows(z, self.mean[:, 0], self.scale[:, 0])
            return residual_means(rows, (rows @ self.components.T) @ self.components)
        np.subtract(z, self.mean, out=z)
        np.divide(z, self.scale, out=z)
        if not np.isfinite(z).all():
            z = np.where(np.isfinite(z), z, 0.0)
        rows = np.ascontiguousarray(z.T)
        residual = rows - (rows @ self.components.T) @ self.components
        np.square(residual, out=residual)
        return _row_means(np.ascontiguousarray(residual.T))


def _row_means(squares: FloatArray) -> FloatArray:
    """``squares.T.mean(axis=1)`` of a features x rows array, bit for bit: numpy sums each short row (up to 128
    values) with eight accumulators, each taking every eighth value, added pairwise, then the rest in order
    (``pairwise_sum``); here each of those additions is one operation over all rows at once instead of a call per
    row. Beyond 128 features numpy's own mean (it splits the row)."""
    d = squares.shape[0]
    total: FloatArray
    if d > 128 or d == 0:
        return np.ascontiguousarray(squares.T).mean(axis=1)  # type: ignore[no-any-return]
    if d < 8:  # in order, from 0.0
        total = np.zeros(squares.shape[1])
        for row in squares:
            total = total + row
    else:
        blocks = d - d % 8
        eight = squares[:8].copy()
        for i in range(8, blocks, 8):
            eight += squares[i:i + 8]
        four = eight[0::2] + eight[1::2]  # (r0 + r1), (r2 + r3), (r4 + r5), (r6 + r7)
        two = four[0::2] + four[1::2]
        total = two[0] + two[1]
        for i in range(blocks, d):
            total = total + squares[i]
    means: FloatArray = total / d
    return means


def fit_pca(names: Sequence[str], matrix: FloatArray, share: float) -> PcaModel | None:
    """The reference's PCA of its numeric features, or None with fewer than two usable features or 50 rows, or
    when keeping ``share`` of the variance keeps every component (independent features: no subspace to leave)."""
    if matrix.ndim != 2 or matrix.shape[1] != len(names):
        raise ValueError(f"{matrix.shape} matrix for {len(names)} features")
    mean = np.nanmean(matrix, axis=0) if matrix.size else np.zeros(len(names))
    scale = np.nanstd(matrix, axis=0) if matrix.size else np.zeros(len(names))
    usable = np.isfinite(mean) & np.isfinite(scale) & (scale > 0)
    if usable.sum() < 2 or matrix.shape[0] < MIN_ROWS:
        return None
    matrix, mean, scale = matrix[:, usable], mean[usable], scale[usable]
    z = (matrix - mean) / scale
    z = np.where(np.isfinite(z), z, 0.0)
    # out-of-sample errors: each fold's rows against components fitted without them
    components = _components(z, share)
    if components.shape[0] >= z.shape[1]:  # every component kept: no residual, nothing to test
        return None
    fold = np.arange(z.shape[0]) % _FOLDS
    errors = np.empty(z.shape[0])
    for k in range(_FOLDS):
        errors[fold == k] = _errors(z[fold == k], _components(z[fold != k], share))
    return PcaModel(
        tuple(name for name, ok in zip(names, usable, strict=True) if ok),
        tuple(float(v) for v in mean), tuple(float(v) for v in scale),
        tuple(tuple(float(v) for v in row) for row in components),
        tuple(float(v) for v in np.quantile(errors, np.linspace(0.0, 1.0, _QUANTILES))),
        float(errors.mean()), float(errors.std()), int(z.shape[0]))


def window_matrix(model: PcaModel, rows: Sequence[Mapping[str, object]]) -> FloatArray:
    """The model's features of raw rows as a float matrix (NaN where missing or not a number)."""
    return as_matrix([[row.get(name) for row in rows] for name in model.features])
