"""Histograms: bins, out-of-range and missing counts, exact merges, byte round trips, bad values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from detectors.exceptions import ReferenceMismatchError, SnapshotError
from detectors.histogram import CategoricalHistogram, NumericHistogram, quantile_edges
from detectors.values import categorical_column, infer_kind, numeric_column


def test_numeric_bins_match_numpy_histogram_with_outer_bins() -> None:
    rng = np.random.default_rng(0)
    reference = rng.normal(size=5000)
    current = np.concatenate([rng.normal(0.5, 2.0, 3000), [np.nan, np.inf, -np.inf]])
    histogram = NumericHistogram.from_values(reference, 20).like()
    histogram.update(current)
    edges = histogram.edges
    assert edges.size == 21 and edges[0] == reference.min() and edges[-1] == reference.max()
    finite = current[np.isfinite(current)]
    interior = np.histogram(finite[(finite >= edges[0]) & (finite <= edges[-1])], bins=edges)[0]
    expected = np.concatenate([[np.sum(finite < edges[0])], interior, [np.sum(finite > edges[-1])]])
    assert histogram.counts.tolist() == expected.tolist()
    assert (histogram.n_missing, histogram.n_invalid, histogram.n) == (1, 2, 3000)
    assert histogram.n_out_of_range == expected[0] + expected[-1] > 0
    assert histogram.sums[0] == pytest.approx(finite[finite < edges[0]].sum(), rel=1e-6)
    assert histogram.sums[-1] == pytest.approx(finite[finite > edges[-1]].sum(), rel=1e-6)
    inside = (finite >= edges[0]) & (finite <= edges[-1])
    assert histogram.sums[1:-1] == pytest.approx(np.bincount(np.digitize(finite[inside], edges[1:-1]),
                                                             weights=finite[inside]), rel=1e-7)


def test_merge_of_partial_counts_equals_one_pass() -> None:
    rng = np.random.default_rng(1)
    values = rng.exponential(size=10_000)
    edges = quantile_edges(values[:2000], 20)
    whole = NumericHistogram(edges)
    whole.update(values)
    parts = [NumericHistogram(edges) for _ in range(7)]
    for part, chunk in zip(parts, np.array_split(values, 7), strict=True):
        part.update(chunk)
    merged = NumericHistogram(edges)
    for part in parts:
        merged.merge(part)
    assert merged.counts.tolist() == whole.counts.tolist()
    assert merged.sums.tolist() == whole.sums.tolist()  # fixed-point sums: exact under any split
    with pytest.raises(ReferenceMismatchError):
        merged.merge(NumericHistogram(edges + 1))


def test_numeric_bytes_round_trip_and_versioning() -> None:
    histogram = NumericHistogram.from_values(np.random.default_rng(2).normal(size=500), 10)
    histogram.update([1e9, -1e9, math.nan])
    restored = NumericHistogram.from_bytes(histogram.to_bytes())
    assert restored == histogram and restored.sums.tolist() == histogram.sums.tolist()
    blob = bytearray(histogram.to_bytes())
    blob[4] = 99  # format version
    with pytest.raises(SnapshotError, match="version"):
        NumericHistogram.from_bytes(bytes(blob))
    with pytest.raises(SnapshotError, match="not a"):
        CategoricalHistogram.from_bytes(histogram.to_bytes())


def test_zero_variance_reference_has_one_exact_bin() -> None:
    histogram = NumericHistogram.from_values([5.0] * 100, 20)
    assert histogram.edges.tolist() == [5.0, 5.0]
    assert histogram.counts.tolist() == [0, 100, 0] and histogram.std == 0.0
    current = histogram.like()
    current.update([4.0, 5.0, 5.0, 6.0])
    assert current.counts.tolist() == [1, 2, 1]


def test_empty_and_all_missing_inputs() -> None:
    histogram = NumericHistogram.from_values([], 20)
    histogram.update(np.array([]))
    histogram.update([math.nan, math.nan])
    assert histogram.n == 0 and histogram.n_missing == 2 and math.isnan(histogram.mean)
    with pytest.raises(ValueError):
        NumericHistogram([2.0, 1.0])
    with pytest.raises(ValueError):
        NumericHistogram([0.0, math.inf])


def test_categorical_top_k_other_and_unseen() -> None:
    keys = ["a"] * 50 + ["b"] * 30 + ["c"] * 10 + ["d"] * 5 + ["e"] * 5
    reference = CategoricalHistogram.from_values(keys, top_k=2)
    assert reference.categories == ("a", "b")
    assert reference.counts.tolist() == [50, 30, 20, 0]
    current = reference.like()
    current.update(["a", "c", "e", "new", "new", "newer"])
    assert current.counts.tolist() == [1, 0, 2, 3]
    assert current.unseen_examples == {"new": 2, "newer": 1}
    again = reference.like()
    again.update(["new", "b"])
    assert current.merge(again).counts.tolist() == [1, 1, 2, 4]
    assert CategoricalHistogram.from_bytes(current.to_bytes()) == current
    with pytest.raises(ReferenceMismatchError):
        current.merge(CategoricalHistogram.from_values(keys, top_k=3).like())


def test_categorical_tail_beyond_memory_counts_as_other() -> None:
    keys = ["top"] * 10 + [f"tail{i}" for i in range(50)]
    reference = CategoricalHistogram.from_values(keys, top_k=1, max_known=10)
    assert reference.tail_truncated
    current = reference.like()
    current.update(["tail40", "never"])
    assert current.counts.tolist() == [0, 2, 0]


def test_raw_values_are_typed_and_counted() -> None:
    numeric = numeric_column([1, 2.5, None, "3", True, math.inf, 10**400, math.nan])
    assert numeric.values[:2].tolist() == [1.0, 2.5] and np.isnan(numeric.values[2:]).all()
    assert numeric.n_invalid == 4 and numeric.values.size == 4
    categorical = categorical_column(["a", True, None, 3, math.nan, "b"])
    assert categorical == (["a", "True", "b"], 2, 1)
    assert infer_kind([1, 2, "a"]) == "numeric"
    assert infer_kind([True, False, 1]) == "categorical"
    assert infer_kind([None, None]) == "categorical"
    # the all-float / all-str fast paths agree with the per-value rule
    assert infer_kind([math.nan, math.nan]) == "categorical" and infer_kind([math.nan, 2]) == "numeric"
    assert infer_kind(["a", "b"]) == "categorical" and infer_kind([]) == "categorical"
