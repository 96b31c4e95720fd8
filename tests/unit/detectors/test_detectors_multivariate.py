"""The multivariate test's window errors computed from the columns equal those of the rows x features matrix bit for
bit, with missing, infinite and non-numeric values among them."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from detectors.multivariate import as_matrix, fit_pca


def test_errors_from_columns_equal_errors_from_the_matrix_to_the_bit() -> None:
    tested = 0
    for seed in range(50):
        rng = np.random.default_rng(seed)
        d = int(rng.integers(2, 20))
        mixing = rng.normal(size=(d, d)) * (rng.random((d, d)) < 0.3) + np.eye(d)
        model = fit_pca([f"x{i}" for i in range(d)], rng.normal(size=(500, d)) @ mixing, 0.8)
        if model is None:
            continue
        n = int(rng.choice([0, 1, 13, 1000]))
        columns: list[Any] = []  # float arrays and lists of raw values
        for _ in model.features:
            column = rng.normal(rng.normal(), rng.uniform(0.1, 5), n)
            column[rng.random(n) < 0.05] = math.nan
            column[rng.random(n) < 0.02] = math.inf
            if rng.random() < 0.3:  # a column of raw values: numbers, None and wrong types
                raw: list[object] = column.tolist()
                for i in np.flatnonzero(rng.random(n) < 0.05):
                    raw[i] = rng.choice(np.array([None, "x", True], dtype=object))
                columns.append(raw)
            else:
                columns.append(column)
        from_matrix = model.row_errors(as_matrix(columns))
        from_columns = model.arrays().column_errors(columns)
        assert from_matrix.shape == from_columns.shape == (n,)
        assert from_matrix.tobytes() == from_columns.tobytes(), seed
        tested += 1
    assert tested >= 25  # most seeds give a model (correlated features)


def test_row_means_sum_as_numpy_sums_each_row() -> None:
    """The row means taken one addition over all rows at a time equal numpy's mean of each row to the bit, for every
    feature count up to numpy's block of 128 and beyond it (where numpy's own is used): a numpy that summed rows
    differently would fail here, not silently change the multivariate errors."""
    from detectors.multivariate import _row_means

    rng = np.random.default_rng(5)
    for d in [*range(1, 41), 63, 64, 65, 127, 128, 129, 300]:
        squares = rng.standard_normal((d, 257)) ** 2 * rng.lognormal(0.0, 4.0, (d, 257))
        expected = np.ascontiguousarray(squares.T).mean(axis=1)
        assert _row_means(squares).tobytes() == expected.tobytes(), d


def test_compiled_errors_equal_numpy_for_every_feature_count() -> None:
    """The compiled loops (``detectors/pca_kernel.py``) against the numpy expressions they replace, to the bit, for
    every feature count they take (up to numpy's block of 128), with non-finite standardised values among them."""
    from detectors.pca_kernel import MAX_FEATURES, residual_means, standardised_rows

    rng = np.random.default_rng(11)
    for d in [*range(1, 41), 63, 64, 65, 127, MAX_FEATURES]:
        n = int(rng.choice([0, 1, 7, 300]))
        z = rng.normal(size=(d, n)) * rng.lognormal(0.0, 3.0, (d, 1))
        z[rng.random((d, n)) < 0.03] = math.nan
        z[rng.random((d, n)) < 0.01] = -math.inf
        mean, scale = rng.normal(size=d), rng.lognormal(0.0, 1.0, d)
        standardised = (z - mean[:, None]) / scale[:, None]
        rows = np.ascontiguousarray(np.where(np.isfinite(standardised), standardised, 0.0).T)
        assert standardised_rows(z, mean, scale).tobytes() == rows.tobytes(), d
        reconstructed = rows @ rng.normal(size=(d, d))
        assert residual_means(rows, reconstructed).tobytes() == ((rows - reconstructed) ** 2).mean(axis=1).tobytes(), d
