"""Every drift statistic of many fields (of one window or of several) in one numpy pass.

The per-field functions (``detectors.psi``, ``detectors.statistics``) cost about 20 numpy calls per field, so a
window of 20 features paid ~400 calls of a few microseconds on arrays of ~20 values. Here the fields are stacked:
fields of one kind whose histograms have the same number of bins become one ``fields x bins`` array, and each
statistic is one call over it.

The results are bit-identical to the per-field functions (``tests/unit/detectors/test_detectors_stacked.py``), which
is why the stacking follows three rules:

* no padding: only fields with the same number of bins share an array (a zero added to a sum moves the other terms
  in numpy's pairwise summation, and so changes the rounding); chi-square, which drops the categories empty on both
  sides, is grouped by the number of categories it keeps;
* every sum and cumulative sum runs along the last axis of a C-contiguous array, where numpy reduces each row
  exactly as it reduces a 1-D array;
* the same element-wise expressions in the same order, and ``np.where`` where the reference uses Python's ``min`` /
  ``max`` (which keep their first argument on ties, NaN included).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
from scipy import special

from detectors.exceptions import ReferenceMismatchError
from detectors.histogram import Histogram, NumericHistogram
from detectors.statistics import ks_p_values, ks_p_values_asymptotic

FloatArray = npt.NDArray[np.float64]
Pair = tuple[Histogram, Histogram]  # (reference, current) over the same bins
NumericPair = tuple[NumericHistogram, NumericHistogram]


def pair_scores(pairs: Sequence[Pair], epsilon: float, exact_ks: bool, sides: ReferenceSides | None = None,
                counted: list[int] | None = None) -> list[dict[str, float]]:
    """The scores ``detectors.drift.field_scores`` gives each pair, in the same key order.

    ``exact_ks``: KS p-values from ``kstwo`` (when KS decides) rather than Kolmogorov's limit. ``sides``: the
    reference-only arrays of the numeric groups, when derived beforehand (``Reference.sides``). ``counted``: a list
    that receives each pair's current ``n`` (its counts, summed here anyway).
    """
    numeric: dict[int, list[int]] = defaultdict(list)
    numeric_pairs: dict[int, list[NumericPair]] = defaultdict(list)
    categorical: dict[int, list[int]] = defaultdict(list)
    for i, (reference, current) in enumerate(pairs):
        if isinstance(reference, NumericHistogram) and isinstance(current, NumericHistogram):
            if reference.edges is not current.edges and not np.array_equal(reference.edges, current.edges):
                raise ReferenceMismatchError("Wasserstein needs histograms with the same edges")
            numeric[reference._counts.size].append(i)  # noqa: SLF001 - counts without a copy
            numeric_pairs[reference._counts.size].append((reference, current))  # noqa: SLF001
        else:
            categorical[reference._counts.size].append(i)  # noqa: SLF001
    out: list[dict[str, float]] = [{} for _ in pairs]
    current_n: list[int] = [0] * len(pairs)
    ks_fields: list[int] = []
    ks_d: list[FloatArray] = []
    ks_n: list[npt.NDArray[np.int64]] = []
    for size, indices in numeric.items():
        group = numeric_pairs[size]
        both = _Sides(group)
        for i, n in zip(indices, both.totals[1].tolist(), strict=True):
            current_n[i] = int(n)  # a sum of integer counts: exact in float64
        psi, js = both.psi_js(epsilon)
        reference_side = sides.of(group) if sides is not None else None
        raw, scale = _wasserstein(group, both, reference_side or ReferenceSide([r for r, _ in group]))
        d, n = both.ks()
        for k, (i, p, j, w, r) in enumerate(zip(indices, psi.tolist(), js.tolist(), (raw / scale).tolist(),
                                                  raw.tolist(), strict=True)):
            out[i] = {"psi": p, "js": j, "wasserstein": w, "wasserstein_raw": r, "ks": float(d[k]),
                      "ks_pvalue": math.nan}
        ks_fields += indices
        ks_d.append(d)
        ks_n.append(n)
    if ks_fields:
        p_values = ks_p_values if exact_ks else ks_p_values_asymptotic
        for i, ks_p in zip(ks_fields, p_values(np.concatenate(ks_d), np.concatenate(ks_n)), strict=True):
            out[i]["ks_pvalue"] = ks_p
    for indices in categorical.values():
        pairs_of = [pairs[i] for i in indices]
        both = _Sides(pairs_of)
        for i, n in zip(indices, both.totals[1].tolist(), strict=True):
            current_n[i] = int(n)
        psi, js = both.psi_js(epsilon)
        chi2, p_value = _chi2(both.counts[0], both.counts[1])
        # both sides' counts (exact in float64, so the same division as by their integer sum)
        for i, p, j, c, pv, total in zip(indices, psi.tolist(), js.tolist(), chi2.tolist(), p_value.tolist(),
                                         both.totals.sum(axis=0).tolist(), strict=True):
            out[i] = {"psi": p, "js": j, "chi2": c, "chi2_pvalue": pv,
                      "cramers_v": math.sqrt(c / total) if total and math.isfinite(c) else math.nan}
    if counted is not None:
        counted[:] = current_n
    return out


class _Sides:
    """The counts of a group of pairs as one ``2 x fields x bins`` array (reference side first), so that each
    element-wise step is one call for both sides."""

    def __init__(self, group: Sequence[Pair] | Sequence[NumericPair]) -> None:
        self.counts = np.array([[r._counts for r, _ in group], [c._counts for _, c in group]],  # noqa: SLF001
                               dtype=np.float64)
        self.totals = self.counts.sum(axis=2)
        self.valid = (self.totals[0] > 0) & (self.totals[1] > 0)
        with np.errstate(divide="ignore", invalid="ignore"):
            self.shares = self.counts / self.totals[:, :, None]

    def psi_js(self, epsilon: float) -> tuple[FloatArray, FloatArray]:
        """``psi`` and ``js_distance`` of each pair (NaN where a side is empty)."""
        p, q = self.shares
        with np.errstate(divide="ignore", invalid="ignore"):
            p_floor, q_floor = np.maximum(self.shares, epsilon)
            psi = np.sum((q_floor - p_floor) * np.log(q_floor / p_floor), axis=1)
            m = (p + q) / 2.0
            relative = special.rel_entr(self.shares, m).sum(axis=2)  # m broadcast over both sides
            divergence = (relative[0] + relative[1]) / 2.0
            js = np.sqrt(np.where(divergence < 0.0, 0.0, divergence))  # Python's max(divergence, 0.0)
        return np.where(self.valid, psi, math.nan), np.where(self.valid, js, math.nan)

    def ks(self) -> tuple[FloatArray, npt.NDArray[np.int64]]:
        """``ks_statistic`` of each pair: the statistic and the effective sample size (0 where a side is empty)."""
        n, m = self.totals
        with np.errstate(divide="ignore", invalid="ignore"):
            cdf = np.cumsum(self.counts, axis=2) / self.totals[:, :, None]
            d = np.abs(cdf[0] - cdf[1]).max(axis=1)
            effective = np.maximum(np.rint(n * m / (n + m)), 1.0)  # Python's round: half to even, as rint
        d = np.where(d > 1.0, 1.0, d)  # Python's min(d, 1.0)
        return np.where(self.valid, d, math.nan), np.where(self.valid, effective, 0.0).astype(np.int64)


class ReferenceSide:
    """What ``_wasserstein`` needs of a group of numeric reference histograms alone: their bins' geometry side by side
    and each one's scale (``reference_scale``)."""

    def __init__(self, refs: Sequence[NumericHistogram]) -> None:
        self.refs = list(refs)
        self.edges = np.array([r.edges for r in refs])
        self.min, self.max = np.array([r.min for r in refs]), np.array([r.max for r in refs])
        self.fixed = np.array([r._fixed for r in refs], dtype=np.float64)  # noqa: SLF001
        self.scale = np.array([h._scale for h in refs])  # noqa: SLF001
        self.unit = np.array([h._unit for h in refs])  # noqa: SLF001
        self.direction = np.array([h._direction for h in refs])  # noqa: SLF001
        self.anchor = np.array([h._anchor for h in refs])  # noqa: SLF001
        # reference_scale: the reference's std, else |mean|, else 1 (NumericHistogram.std and .mean), from its sums
        # as ``_wasserstein`` computes both sides' (the same element-wise operations and row sums)
        counts = np.array([r._counts for r in refs], dtype=np.float64)  # noqa: SLF001
        n_ref = counts.sum(axis=1)
        sums = counts * self.anchor + self.fixed / self.scale * self.unit * self.direction
        sum_sq = np.array([r.sum_sq for r in refs])
        with np.errstate(divide="ignore", invalid="ignore"):
            mean = sums.sum(axis=1) / n_ref
            variance = sum_sq / n_ref - mean * mean
            std = np.where(n_ref > 0, np.sqrt(np.where(variance < 0.0, 0.0, variance)), math.nan)
            mean = np.where(n_ref > 0, mean, math.nan)
            fallback = np.where(np.isfinite(mean) & (mean != 0), np.abs(mean), 1.0)
            self.scale_of = np.where((std > 0) & np.isfinite(std), std, fallback)


class ReferenceSides:
    """The ``ReferenceSide`` of each group of numeric histograms ``pair_scores`` forms from one window's fields (one
    group per bin count), derived once per reference: its histograms are never mutated."""

    def __init__(self, histograms: Sequence[Histogram]) -> None:
        groups: dict[int, list[NumericHistogram]] = defaultdict(list)
        for h in histograms:
            if isinstance(h, NumericHistogram):
                groups[h._counts.size].append(h)  # noqa: SLF001
        self.sides = [ReferenceSide(refs) for refs in groups.values()]

    def of(self, group: Sequence[NumericPair]) -> ReferenceSide | None:
        """The side of exactly these reference histograms, in this order (None: not derived)."""
        for side in self.sides:
            if len(side.refs) == len(group) and all(a is r for a, (r, _) in zip(side.refs, group, strict=True)):
                return side
        return None


def _wasserstein(group: Sequence[NumericPair], both: _Sides, side: ReferenceSide) -> tuple[FloatArray, FloatArray]:
    """``wasserstein_binned`` (raw) and ``reference_scale`` of each pair."""
    currents = [c for _, c in group]
    edges, ref_min, ref_max = side.edges, side.min, side.max
    cur_min, cur_max = np.array([c.min for c in currents]), np.array([c.max for c in currents])
    # Python's min(a, b, c) / max(a, b, c): the first of equal values wins
    low = np.where(cur_min < ref_min, cur_min, ref_min)
    low = np.where(edges[:, 0] < low, edges[:, 0], low)
    high = np.where(cur_max > ref_max, cur_max, ref_max)
    high = np.where(edges[:, -1] > high, edges[:, -1], high)
    bounds = np.concatenate([low[:, None], edges, high[:, None]], axis=1)
    # NumericHistogram.sums of both sides: the bins' geometry is the edges' (a window's histogram shares it)
    fixed = np.array([side.fixed, [c._fixed for c in currents]], dtype=np.float64)  # noqa: SLF001
    counts, shares = both.counts, both.shares
    sums = counts * side.anchor + fixed / side.scale * side.unit * side.direction
    with np.errstate(divide="ignore", invalid="ignore"):  # statistics._bin_areas of both sides
        means = sums / np.maximum(counts, 1.0)
        below = np.cumsum(shares, axis=2) - shares
        areas = below * np.diff(bounds, axis=1) + shares * (bounds[:, 1:] - means)
    raw = np.where(both.valid, np.sum(np.abs(areas[0] - areas[1]), axis=1), math.nan)
    return raw, side.scale_of


def _chi2(ref: FloatArray, cur: FloatArray) -> tuple[FloatArray, FloatArray]:
    """``chi2_homogeneity`` of each row pair: the statistic and its p-value.

    Categories empty on both sides are dropped, so rows are grouped by how many categories they keep and each
    group's tables are compressed to those (no padding, see the module's docstring).
    """
    statistic = np.full(ref.shape[0], math.nan)
    p_value = np.full(ref.shape[0], math.nan)
    kept = (ref + cur) > 0
    width = kept.sum(axis=1)
    valid = (ref.sum(axis=1) > 0) & (cur.sum(axis=1) > 0)
    single = valid & (width < 2)
    statistic[single], p_value[single] = 0.0, 1.0
    for k in sorted(set(width[valid & (width >= 2)].tolist())):
        rows = np.flatnonzero(valid & (width == k))
        mask = kept[rows]
        table = np.stack([ref[rows][mask].reshape(rows.size, k), cur[rows][mask].reshape(rows.size, k)], axis=1)
        sides = table.sum(axis=2)
        expected = sides[:, :, None] * table.sum(axis=1)[:, None, :] / sides.sum(axis=1)[:, None, None]
        terms = (table - expected) ** 2 / expected
        chi2 = terms.reshape(rows.size, 2 * k).sum(axis=1)  # as np.sum over the (2, k) table
        statistic[rows] = chi2
        p_value[rows] = special.chdtrc(k - 1, chi2)
    return statistic, p_value

