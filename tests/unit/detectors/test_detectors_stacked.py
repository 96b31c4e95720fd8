"""The stacked statistics (all fields in one pass) equal the per-field functions bit for bit, on many random
histograms: numeric (quantile, discrete, degenerate and empty references; windows empty, all missing, out of range,
shifted), categorical (one to thousands of categories, unseen ones, categories empty on both sides)."""

from __future__ import annotations

import math
import struct
from typing import Any

import numpy as np
import pytest

from detectors.config import MonitorConfig
from detectors.drift import field_scores, window_scores
from detectors.histogram import CategoricalHistogram, Histogram, NumericHistogram
from detectors.stacked import ReferenceSides, pair_scores


def same(a: float, b: float) -> bool:
    """Equal to the bit (so 0.0 is not -0.0), or both NaN."""
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return struct.pack("<d", a) == struct.pack("<d", b)


def numeric_reference(rng: np.random.Generator, n_bins: int) -> NumericHistogram:
    shape = rng.integers(0, 6)
    n = int(rng.choice([0, 1, 3, 50, 500, 2000]))
    if shape == 0:
        values = rng.normal(rng.normal(0, 5), rng.uniform(0.01, 10), n)
    elif shape == 1:  # discrete: a bin per value
        values = rng.integers(0, int(rng.integers(2, max(n_bins, 2) + 1)), n).astype(float)
    elif shape == 2:  # degenerate: one value
        values = np.full(n, float(rng.normal()))
    elif shape == 3:  # heavy tail
        values = rng.lognormal(0, 2, n)
    elif shape == 4:  # nothing finite
        values = np.full(n, math.nan)
    else:  # ties and outliers
        values = np.round(rng.normal(0, 1, n), 1)
        values[: n // 50] *= 100
    values[rng.random(n) < 0.05] = math.nan
    return NumericHistogram.from_values(values, n_bins)


def numeric_window(rng: np.random.Generator, reference: NumericHistogram) -> NumericHistogram:
    window = reference.like()
    kind = rng.integers(0, 5)
    m = int(rng.choice([0, 1, 10, 400, 1000]))
    centre = reference.mean if reference.n else 0.0
    spread = reference.std if reference.n and reference.std > 0 else 1.0
    if kind == 0:
        values = rng.normal(centre, spread, m)
    elif kind == 1:  # shifted
        values = rng.normal(centre + rng.normal(0, 2) * spread, spread * rng.uniform(0.2, 3), m)
    elif kind == 2:  # only missing values
        values = np.full(m, math.nan)
    elif kind == 3:  # all beyond the reference range
        values = reference.edges[-1] + rng.exponential(spread, m) + 1e-9
    else:  # exactly on the edges
        values = rng.choice(reference.edges, m)
    window.update(values)
    return window


def categorical_pair(rng: np.random.Generator) -> tuple[CategoricalHistogram, CategoricalHistogram]:
    levels = int(rng.choice([1, 2, 3, 4, 9, 40, 2000]))
    names = [f"c{i}" for i in range(levels)]
    n = int(rng.choice([0, 5, 200, 3000]))
    weights = rng.dirichlet(np.ones(levels))
    keys = rng.choice(names, n, p=weights).tolist() if n else []
    reference = CategoricalHistogram.from_values(keys, int(rng.choice([2, 10, 10_000])))
    window = reference.like()
    m = int(rng.choice([0, 1, 50, 1000]))
    if m:
        pool = names + [f"new{i}" for i in range(int(rng.integers(0, 5)))]
        p = rng.dirichlet(np.ones(len(pool)) * rng.uniform(0.1, 3))
        window.update(rng.choice(pool, m, p=p).tolist())
    return reference, window


def random_pairs(seed: int) -> dict[str, tuple[Histogram, Histogram]]:
    rng = np.random.default_rng(seed)
    pairs: dict[str, tuple[Histogram, Histogram]] = {}
    n_bins = int(rng.choice([3, 10, 20]))  # many fields share a bin count: stacked in one array
    for i in range(int(rng.integers(1, 25))):
        if rng.random() < 0.7:
            reference = numeric_reference(rng, n_bins if rng.random() < 0.8 else int(rng.integers(1, 30)))
            pairs[f"n{i}"] = (reference, numeric_window(rng, reference))
        else:
            pairs[f"c{i}"] = categorical_pair(rng)
    return pairs


@pytest.mark.parametrize("signals", [("psi", "js", "wasserstein"), ("psi", "js", "wasserstein", "ks", "chi2")])
def test_stacked_scores_equal_the_per_field_functions_bit_for_bit(signals: tuple[str, ...]) -> None:
    config = MonitorConfig(drift_signals=signals)
    compared = nan_seen = 0
    kinds: set[str] = set()
    for seed in range(300 if len(signals) == 3 else 60):
        pairs = random_pairs(seed)
        stacked = window_scores(pairs, config)
        assert list(stacked) == list(pairs)
        refs = [r for r, _ in pairs.values()]
        for sides in (ReferenceSides(refs), ReferenceSides(refs[::-1])):  # derived beforehand; of other groups
            again = pair_scores(list(pairs.values()), config.psi_epsilon, "ks" in signals, sides)
            for got_again, got in zip(again, stacked.values(), strict=True):
                assert list(got_again) == list(got)
                assert all(same(got_again[key], value) for key, value in got.items()), seed
        for name, (reference, current) in pairs.items():
            expected = field_scores(reference, current, config)
            got = stacked[name]
            assert list(got) == list(expected), name
            for key, value in expected.items():
                assert same(got[key], value), (seed, name, key, got[key], value)
                compared += 1
                nan_seen += math.isnan(value)
            kinds.add("numeric" if isinstance(reference, NumericHistogram) else "categorical")
    assert kinds == {"numeric", "categorical"}
    assert compared > 1000 and nan_seen > 50  # empty sides were part of it


def test_stacked_scores_of_one_field_and_of_none() -> None:
    config = MonitorConfig()
    reference = NumericHistogram.from_values(np.arange(100.0), 20)
    current = reference.like()
    current.update(np.arange(50.0, 150.0))
    assert window_scores({}, config) == {}
    got = window_scores({"x": (reference, current)}, config)["x"]
    expected: dict[str, Any] = field_scores(reference, current, config)
    assert all(same(got[k], v) for k, v in expected.items())
    assert got["psi"] > 0.1  # a real shift, not an empty comparison


def test_stacked_scores_reject_histograms_over_other_edges() -> None:
    from detectors.exceptions import ReferenceMismatchError

    reference = NumericHistogram.from_values(np.arange(100.0), 20)
    other = NumericHistogram.from_values(np.arange(100.0) * 2, 20)
    with pytest.raises(ReferenceMismatchError):
        window_scores({"x": (reference, other)}, MonitorConfig())


def histogram_state(histogram: NumericHistogram) -> tuple[object, ...]:
    """Everything ``update`` changes, floats as their bits."""
    return (histogram.counts.tolist(), histogram._fixed.tolist(), histogram.n_missing,  # noqa: SLF001
            histogram.n_invalid, *(struct.pack("<d", v) for v in (histogram.sum_sq, histogram.min, histogram.max)))


def test_numeric_columns_filled_in_one_pass_as_one_by_one() -> None:
    from detectors.histogram import update_numeric

    for seed in range(200):
        rng = np.random.default_rng(seed)
        references = [numeric_reference(rng, int(rng.choice([3, 20]))) for _ in range(int(rng.integers(1, 12)))]
        one_by_one = [r.like() for r in references]
        at_once = [r.like() for r in references]
        for _batch in range(int(rng.integers(1, 4))):
            columns = []
            for r in references:
                column = numeric_window(rng, r)  # a histogram: take values of its kind
                values = rng.normal(r.mean if r.n else 0.0, 1.0, int(rng.choice([0, 1, 7, 300])))
                if column.n and rng.random() < 0.5:
                    values = np.concatenate([values, rng.choice(r.edges, 5), [r.edges[-1] + 1e6, -1e150]])
                bad = rng.random(values.size)
                values[bad < 0.05] = math.nan
                values[bad > 0.98] = math.inf * rng.choice([-1, 1])
                columns.append(values)
            for h, values in zip(one_by_one, columns, strict=True):
                h.update(values)
            update_numeric(at_once, columns)
        for a, b in zip(one_by_one, at_once, strict=True):
            assert histogram_state(a) == histogram_state(b), seed


def test_cut_offs_of_many_fits_equal_one_by_one() -> None:
    from detectors.calibration import NullFit, cutoffs

    rng = np.random.default_rng(7)
    fits = []
    for _ in range(500):
        quantiles = np.sort(rng.exponential(rng.choice([1e-6, 1e-3, 1.0, 50.0]), 5))
        if rng.random() < 0.1:
            quantiles = -quantiles[::-1]  # a negative tail start: the square root of max(t, 0)
        beta = float(rng.choice([0.0, rng.exponential(0.01), rng.exponential(10.0)]))
        fits.append(NullFit(tuple(quantiles.tolist()), beta, bool(rng.random() < 0.5)))
    fits.append(NullFit((math.nan,) * 5, math.nan, True))
    for alpha in (1e-7, 0.001 / 76, 0.01 / 3, 0.02, 0.05, 0.5):  # above 0.02: the interpolated bulk
        got = cutoffs(fits, alpha)
        assert len(got) == len(fits)
        for fit, value in zip(fits, got, strict=True):
            assert same(value, fit.cutoff(alpha)), (fit, alpha)
    assert cutoffs([], 0.001) == []


def test_a_float_column_with_missing_and_infinite_values_counts_as_its_list() -> None:
    from detectors.window import fill_all

    rng = np.random.default_rng(3)
    references = [NumericHistogram.from_values(rng.normal(size=500), 20) for _ in range(3)]
    raw = [rng.normal(size=200) for _ in references]
    for column in raw:
        column[rng.random(200) < 0.1] = math.nan
        column[rng.random(200) < 0.05] = math.inf
        column[rng.random(200) < 0.05] = -math.inf
    from_arrays = [r.like() for r in references]
    from_lists = [r.like() for r in references]
    fill_all(list(zip(from_arrays, raw, strict=True)))
    fill_all([(h, [None if math.isnan(v) else v for v in column.tolist()])
              for h, column in zip(from_lists, raw, strict=True)])
    for a, b in zip(from_arrays, from_lists, strict=True):
        assert histogram_state(a) == histogram_state(b)
        assert a.n_invalid > 0 and a.n_missing > 0


def test_a_window_block_filled_with_its_reference_layout_as_one_by_one() -> None:
    """Histograms opened together (``empty_like_all``: one zeroed block) and filled with the layout a reference
    derives once (``NumericLayout``) end exactly as histograms filled one by one; a layout of other histograms is
    not used. Values on and one ulp beside every edge: the search that starts from a cell table (most layouts) and
    the one over whole rows (edges too crowded for the table) both find the bins ``update`` finds."""
    from detectors.histogram import NumericLayout, empty_like_all, update_numeric

    tables = {True: 0, False: 0}
    for seed in range(150):
        rng = np.random.default_rng(seed)
        references = [numeric_reference(rng, int(rng.choice([3, 20, 50]))) for _ in range(int(rng.integers(2, 10)))]
        layout = NumericLayout(references)
        tables[layout.cells > 0] += 1
        stranger = NumericLayout(references[::-1])
        one_by_one = [r.like() for r in references]
        hinted = [h for h in empty_like_all(references) if isinstance(h, NumericHistogram)]
        wrong_hint = [h for h in empty_like_all(references) if isinstance(h, NumericHistogram)]
        reversed_block = [h for h in empty_like_all(references) if isinstance(h, NumericHistogram)][::-1]
        for _batch in range(int(rng.integers(1, 4))):
            columns = []
            same_length = rng.random() < 0.4  # a batch's columns: one length
            n = int(rng.choice([1, 7, 300]))
            for r in references:
                values = rng.normal(r.mean if r.n else 0.0, 1.0, n if same_length else int(rng.choice([0, 1, 7, 300])))
                if not same_length and rng.random() < 0.5:
                    values = np.concatenate([values, r.edges, np.nextafter(r.edges, math.inf),
                                             np.nextafter(r.edges, -math.inf), [r.edges[-1] + 1e6, -1e150, 1e150]])
                values[rng.random(values.size) < 0.05] = math.nan
                columns.append(rng.permutation(values))
            for h, values in zip(one_by_one, columns, strict=True):
                h.update(values)
            update_numeric(hinted, columns, layout)
            update_numeric(wrong_hint, columns, stranger)
            update_numeric(reversed_block, columns[::-1], stranger)  # one block, not in its order
        for a, b, c, d in zip(one_by_one, hinted, wrong_hint, reversed_block[::-1], strict=True):
            assert histogram_state(a) == histogram_state(b) == histogram_state(c) == histogram_state(d), seed
    assert tables[True] > 50 and tables[False] > 5, tables
