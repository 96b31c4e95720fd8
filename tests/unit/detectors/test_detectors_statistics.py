"""Drift statistics from histogram counts against independent scipy/numpy computations on the same data."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import special, stats
from scipy.spatial.distance import jensenshannon

from detectors.config import MonitorConfig
from detectors.drift import field_scores
from detectors.histogram import CategoricalHistogram, NumericHistogram
from detectors.psi import psi
from detectors.statistics import (
    chi2_homogeneity,
    js_distance,
    ks_binned,
    ks_p_values,
    ks_p_values_asymptotic,
    multiple_testing,
    reference_scale,
    wasserstein_binned,
    wasserstein_error_bound,
)

CASES = [(0.0, 1.0), (0.3, 1.0), (1.0, 2.0), (-2.0, 0.5)]


def binned(reference: np.ndarray, current: np.ndarray, n_bins: int = 20) -> tuple[NumericHistogram, NumericHistogram]:
    ref = NumericHistogram.from_values(reference, n_bins)
    cur = ref.like()
    cur.update(current)
    return ref, cur


@pytest.mark.parametrize(("shift", "scale"), CASES)
def test_psi_and_js_equal_scipy_on_the_same_bins(shift: float, scale: float) -> None:
    rng = np.random.default_rng(10)
    ref, cur = binned(rng.normal(size=3000), rng.normal(shift, scale, 1000))
    p = ref.counts / ref.n
    q = cur.counts / cur.n
    p_floor, q_floor = np.maximum(p, 1e-4), np.maximum(q, 1e-4)
    expected_psi = float(np.sum(special.rel_entr(q_floor, p_floor) + special.rel_entr(p_floor, q_floor)))
    assert psi(ref.counts, cur.counts) == pytest.approx(expected_psi, abs=1e-9)
    assert js_distance(ref.counts, cur.counts) == pytest.approx(float(jensenshannon(p, q)), abs=1e-9)


@pytest.mark.parametrize(("shift", "scale"), CASES)
def test_ks_is_within_the_largest_bin_mass_of_exact_ks(shift: float, scale: float) -> None:
    rng = np.random.default_rng(11)
    reference, current = rng.normal(size=3000), rng.normal(shift, scale, 1000)
    ref, cur = binned(reference, current)
    statistic, _ = ks_binned(ref.counts, cur.counts)
    exact = stats.ks_2samp(reference, current).statistic
    largest = max((ref.counts / ref.n).max(), (cur.counts / cur.n).max())
    assert statistic <= exact + 1e-12
    assert exact - statistic <= largest


def test_ks_p_value_equals_scipy_when_bins_hold_every_distinct_value() -> None:
    rng = np.random.default_rng(12)
    reference, current = rng.integers(0, 8, 2000).astype(float), rng.integers(1, 9, 800).astype(float)
    ref, cur = binned(reference, current, n_bins=40)  # ties merge bins: one bin per distinct value
    result = ks_binned(ref.counts, cur.counts)
    exact = stats.ks_2samp(reference, current, method="asymp")
    assert result.statistic == pytest.approx(exact.statistic, abs=1e-12)
    assert result.p_value == pytest.approx(exact.pvalue, rel=1e-9, abs=1e-300)


@pytest.mark.parametrize(("shift", "scale"), CASES + [(5.0, 1.0), (0.0, 3.0)])
def test_wasserstein_within_the_stated_bound_of_scipy(shift: float, scale: float) -> None:
    rng = np.random.default_rng(13)
    reference, current = rng.normal(size=3000), rng.normal(shift, scale, 1000)
    ref, cur = binned(reference, current)
    exact = stats.wasserstein_distance(reference, current)
    got = wasserstein_binned(ref, cur)
    assert got <= exact + 1e-6  # a lower bound, up to the fixed-point resolution of the bin sums
    assert exact - got <= wasserstein_error_bound(ref, cur) + 1e-9
    assert exact - got <= 0.01 * reference.std()  # the stated practical tolerance


def test_wasserstein_is_exact_when_the_cdfs_do_not_cross_inside_a_bin() -> None:
    rng = np.random.default_rng(14)
    reference = rng.uniform(0, 1, 500)
    current = np.concatenate([rng.uniform(-3, -1, 100), rng.uniform(2, 9, 100)])  # all out of range
    ref, cur = binned(reference, current)
    # exact up to the fixed-point resolution of the bin sums (2**-24 of a bin width / of the span)
    assert wasserstein_binned(ref, cur) == pytest.approx(stats.wasserstein_distance(reference, current), abs=1e-6)
    shifted = reference + 10.0  # disjoint supports: F - G >= 0 everywhere
    ref, cur = binned(reference, shifted)
    assert wasserstein_binned(ref, cur) == pytest.approx(10.0, abs=1e-9)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_chi2_equals_scipy_contingency(seed: int) -> None:
    rng = np.random.default_rng(seed)
    keys = list(rng.choice(list("abcdef"), 2000, p=[0.3, 0.2, 0.2, 0.1, 0.1, 0.1]))
    ref = CategoricalHistogram.from_values([str(k) for k in keys], top_k=4)
    cur = ref.like()
    cur.update([str(k) for k in rng.choice(list("abcdefz"), 700)])
    result = chi2_homogeneity(ref.counts, cur.counts)
    table = np.vstack([ref.counts, cur.counts])
    table = table[:, table.sum(axis=0) > 0]
    expected = stats.chi2_contingency(table, correction=False)
    assert result.statistic == pytest.approx(expected.statistic, abs=1e-9)
    assert result.p_value == pytest.approx(expected.pvalue, abs=1e-9)


def test_empty_sides_and_single_values_give_no_division_by_zero() -> None:
    assert math.isnan(psi([0, 0], [1, 2])) and math.isnan(js_distance([1, 2], [0, 0]))
    assert math.isnan(ks_binned([0, 0], [1, 1]).statistic)
    assert chi2_homogeneity([5, 0], [7, 0]) == (0.0, 1.0)
    ref = NumericHistogram.from_values([3.0] * 50, 20)
    same, shifted = ref.like(), ref.like()
    same.update([3.0] * 10)
    shifted.update([4.0] * 10)
    assert wasserstein_binned(ref, same) == 0.0 and psi(ref.counts, same.counts) == 0.0
    assert wasserstein_binned(ref, shifted) == pytest.approx(1.0)
    assert reference_scale(ref) == 3.0  # zero variance: |mean| instead of std
    assert math.isnan(wasserstein_binned(ref, ref.like()))


def test_holm_is_step_down_and_bonferroni_is_flat() -> None:
    p_values = [0.01, 0.04, 0.03, 0.005, math.nan]
    holm = multiple_testing(p_values, 0.05, "holm")
    # sorted: 0.005 <= 0.05/4, 0.01 <= 0.05/3, 0.03 > 0.05/2 -> stop
    assert [d.rejected for d in holm] == [True, False, False, True, False]
    assert holm[0].level == pytest.approx(0.05 / 3) and holm[2].level == pytest.approx(0.05 / 2)
    bonferroni = multiple_testing(p_values, 0.05, "bonferroni")
    assert [d.rejected for d in bonferroni] == [True, False, False, True, False]
    assert all(d.level == pytest.approx(0.0125) for d in bonferroni[:4])
    assert [d.rejected for d in multiple_testing(p_values, 0.05, "none")] == [True, True, True, True, False]
    with pytest.raises(ValueError):
        multiple_testing(p_values, 0.05, "sidak")


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_categorical_psi_and_js_equal_scipy_on_the_same_buckets(seed: int) -> None:
    rng = np.random.default_rng(seed)
    reference = [str(k) for k in rng.choice(list("abcdefgh"), 3000, p=[0.3, 0.2, 0.15, 0.1, 0.1, 0.1, 0.04, 0.01])]
    ref = CategoricalHistogram.from_values(reference, top_k=5)  # f, g, h go to "other"
    cur = ref.like()
    cur.update([str(k) for k in rng.choice(list("abcdefgxyz"), 800)])  # x, y, z are unseen
    p, q = ref.counts / ref.n, cur.counts / cur.n
    assert q[-1] > 0 and p[-1] == 0  # an empty reference bucket: PSI needs the floor, JS does not
    p_floor, q_floor = np.maximum(p, 1e-4), np.maximum(q, 1e-4)
    expected_psi = float(np.sum(special.rel_entr(q_floor, p_floor) + special.rel_entr(p_floor, q_floor)))
    assert psi(ref.counts, cur.counts) == pytest.approx(expected_psi, abs=1e-9)
    assert js_distance(ref.counts, cur.counts) == pytest.approx(float(jensenshannon(p, q)), abs=1e-9)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("distribution", ["normal", "exponential", "lognormal", "bimodal", "uniform", "integers"])
@pytest.mark.parametrize("shift", [0.0, 0.05, 0.1, 0.3, 1.5])
def test_normalised_wasserstein_within_the_stated_tolerance_of_scipy(distribution: str, shift: float,
                                                                     seed: int) -> None:
    """The stated tolerance: 0 <= W_scipy - W_binned <= 0.03 reference std (20 quantile bins, a 2,000-value
    reference, 1,000-value windows), whatever the shape; the normal case is within 0.01 (test above)."""
    rng = np.random.default_rng(seed)

    def draw(n: int) -> np.ndarray:
        if distribution == "normal":
            return rng.normal(size=n)
        if distribution == "exponential":
            return rng.exponential(size=n)
        if distribution == "lognormal":
            return rng.lognormal(0.0, 1.0, n)
        if distribution == "bimodal":
            return np.where(rng.random(n) < 0.3, rng.normal(-3, 0.5, n), rng.normal(2, 1, n))
        if distribution == "uniform":
            return rng.uniform(0, 1, n)
        return rng.integers(0, 50, n).astype(float)

    reference = draw(2000)
    current = draw(1000) + shift * reference.std()
    ref, cur = binned(reference, current)
    scores = field_scores(ref, cur, MonitorConfig())
    exact = stats.wasserstein_distance(reference, current)
    assert scores["wasserstein_raw"] <= exact + 1e-6
    assert exact / reference.std() - scores["wasserstein"] <= 0.03
    assert scores["wasserstein"] == pytest.approx(scores["wasserstein_raw"] / ref.std, rel=1e-12)
    # the KS bound holds for every shape too
    exact_ks = stats.ks_2samp(reference, current).statistic
    largest = max((ref.counts / ref.n).max(), (cur.counts / cur.n).max())
    assert scores["ks"] <= exact_ks + 1e-12 and exact_ks - scores["ks"] <= largest


def test_asymptotic_ks_p_value_is_within_its_documented_distance_of_the_exact_one() -> None:
    d = np.linspace(0.0, 0.5, 201)
    for n, tolerance in ((100, 0.03), (1000, 0.009), (5000, 0.004)):
        exact = np.array(ks_p_values(d, [n] * d.size))
        assert np.abs(np.array(ks_p_values_asymptotic(d, [n] * d.size)) - exact).max() <= tolerance
    assert math.isnan(ks_p_values_asymptotic([math.nan], [10])[0])
