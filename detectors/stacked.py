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


def pair_scores(pairs: Sequence[Pair], epsilon: float, exact_ks: bool) -> list[dict[str, float]]:
    """The scores ``detectors.drift.field_scores`` gives each pair, in the same key order.

    ``exact_ks``: KS p-values from ``kstwo`` (when KS decides) rather than Kolmogorov's limit.
    """
    numeric: dict[int, list[int]] = defaultdict(list)
    categorical: dict[int, list[int]] = defaultdict(list)
    for i, (reference, current) in enumerate(pairs):
        if isinstance(reference, NumericHistogram) and isinstance(current, NumericHistogram):
            if reference.edges is not current.edges and not np.array_equal(reference.edges, current.edges):
                raise ReferenceMismatchError("Wasserstein needs histograms with the same edges")
            numeric[reference._counts.size].append(i)  # noqa: SLF001 - counts without a copy
        else:
            categorical[reference._counts.size].append(i)  # noqa: SLF001
    out: list[dict[str, float]] = [{} for _ in pairs]
    ks_fields: list[int] = []
    ks_d: list[FloatArray] = []
    ks_n: list[npt.NDArray[np.int64]] = []
    for indices in numeric.values():
        group = [pairs[i] for i in indices]
        ref, cur = _counts(group)
        psi, js = _psi_js(ref, cur, epsilon)
        raw, scale = _wasserstein(group, ref, cur)
        d, n = _ks(ref, cur)
        for k, (i, p, j, w, r) in enumerate(zip(indices, psi.tolist(), js.tolist(), (raw / scale).tolist(),
                                                  raw.tolist(), strict=True)):
            out[i] = {"psi": p, "js": j, "wasserstein": w, "wasserstein_raw": r, "ks": float(d[k]),
                      "ks_pvalue": math.nan}
        ks_fields += indices
        ks_d.append(d)
        ks_n.append(n)
    if ks_fields:
        p_values = ks_p_values if exact_ks else ks_p_values_asymptotic
        for i, p_value in zip(ks_fields, p_values(np.concatenate(ks_d), np.concatenate(ks_n)), strict=True):
            out[i]["ks_pvalue"] = p_value
    for indices in categorical.values():
        group = [pairs[i] for i in indices]
        ref, cur = _counts(group)
        psi, js = _psi_js(ref, cur, epsilon)
        chi2, p_value = _chi2(ref, cur)
        for i, p, j, c, pv, (reference, current) in zip(indices, psi.tolist(), js.tolist(), chi2.tolist(),
                                                        p_value.tolist(), group, strict=True):
            total = reference.n + current.n
            out[i] = {"psi": p, "js": j, "chi2": c, "chi2_pvalue": pv,
                      "cramers_v": math.sqrt(c / total) if total and math.isfinite(c) else math.nan}
    return out


def _counts(group: Sequence[Pair]) -> tuple[FloatArray, FloatArray]:
    ref = np.array([r._counts for r, _ in group], dtype=np.float64)  # noqa: SLF001
    cur = np.array([c._counts for _, c in group], dtype=np.float64)  # noqa: SLF001
    return ref, cur


def _shares(counts: FloatArray) -> tuple[FloatArray, npt.NDArray[np.bool_]]:
    total = counts.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return counts / total[:, None], total > 0


def _psi_js(ref: FloatArray, cur: FloatArray, epsilon: float) -> tuple[FloatArray, FloatArray]:
    """``psi`` and ``js_distance`` of each row pair (NaN where a side is empty)."""
    p, p_valid = _shares(ref)
    q, q_valid = _shares(cur)
    valid = p_valid & q_valid
    with np.errstate(divide="ignore", invalid="ignore"):
        p_floor = np.maximum(p, epsilon)
        q_floor = np.maximum(q, epsilon)
        psi = np.sum((q_floor - p_floor) * np.log(q_floor / p_floor), axis=1)
        m = (p + q) / 2.0
        divergence = (special.rel_entr(p, m).sum(axis=1) + special.rel_entr(q, m).sum(axis=1)) / 2.0
        js = np.sqrt(np.where(divergence < 0.0, 0.0, divergence))  # Python's max(divergence, 0.0)
    return np.where(valid, psi, math.nan), np.where(valid, js, math.nan)


def _ks(ref: FloatArray, cur: FloatArray) -> tuple[FloatArray, npt.NDArray[np.int64]]:
    """``ks_statistic`` of each row pair: the statistic and the effective sample size (0 where a side is empty)."""
    n, m = ref.sum(axis=1), cur.sum(axis=1)
    valid = (n > 0) & (m > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        gap = np.abs(np.cumsum(ref, axis=1) / n[:, None] - np.cumsum(cur, axis=1) / m[:, None])
        d = gap.max(axis=1)
        effective = np.maximum(np.rint(n * m / (n + m)), 1.0)  # Python's round: half to even, as rint
    d = np.where(d > 1.0, 1.0, d)  # Python's min(d, 1.0)
    return np.where(valid, d, math.nan), np.where(valid, effective, 0.0).astype(np.int64)


def _sums(group: Sequence[Histogram], counts: FloatArray) -> FloatArray:
    """``NumericHistogram.sums`` of each histogram, as rows."""
    fixed = np.array([h._fixed for h in group], dtype=np.float64)  # noqa: SLF001
    scale = np.array([h._scale for h in group])  # noqa: SLF001
    unit = np.array([h._unit for h in group])  # noqa: SLF001
    direction = np.array([h._direction for h in group])  # noqa: SLF001
    anchor = np.array([h._anchor for h in group])  # noqa: SLF001
    return counts * anchor + fixed / scale * unit * direction


def _areas(counts: FloatArray, sums: FloatArray, bounds: FloatArray) -> FloatArray:
    """``statistics._bin_areas`` of each row."""
    with np.errstate(divide="ignore", invalid="ignore"):
        shares = counts / counts.sum(axis=1)[:, None]
        means = sums / np.maximum(counts, 1.0)
        below = np.cumsum(shares, axis=1) - shares
        return below * np.diff(bounds, axis=1) + shares * (bounds[:, 1:] - means)


def _wasserstein(group: Sequence[Pair], ref: FloatArray, cur: FloatArray) -> tuple[FloatArray, FloatArray]:
    """``wasserstein_binned`` (raw) and ``reference_scale`` of each pair."""
    refs = [r for r, _ in group]
    currents = [c for _, c in group]
    edges = np.array([r.edges for r in refs])
    ref_min, ref_max = np.array([r.min for r in refs]), np.array([r.max for r in refs])
    cur_min, cur_max = np.array([c.min for c in currents]), np.array([c.max for c in currents])
    # Python's min(a, b, c) / max(a, b, c): the first of equal values wins
    low = np.where(cur_min < ref_min, cur_min, ref_min)
    low = np.where(edges[:, 0] < low, edges[:, 0], low)
    high = np.where(cur_max > ref_max, cur_max, ref_max)
    high = np.where(edges[:, -1] > high, edges[:, -1], high)
    bounds = np.concatenate([low[:, None], edges, high[:, None]], axis=1)
    ref_sums = _sums(refs, ref)
    raw = np.sum(np.abs(_areas(ref, ref_sums, bounds) - _areas(cur, _sums(currents, cur), bounds)), axis=1)
    n_ref, n_cur = ref.sum(axis=1), cur.sum(axis=1)
    raw = np.where((n_ref > 0) & (n_cur > 0), raw, math.nan)
    # reference_scale: the reference's std, else |mean|, else 1 (NumericHistogram.std and .mean)
    sum_sq = np.array([r.sum_sq for r in refs])
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = ref_sums.sum(axis=1) / n_ref
        variance = sum_sq / n_ref - mean * mean
        std = np.where(n_ref > 0, np.sqrt(np.where(variance < 0.0, 0.0, variance)), math.nan)
        mean = np.where(n_ref > 0, mean, math.nan)
        fallback = np.where(np.isfinite(mean) & (mean != 0), np.abs(mean), 1.0)
        scale = np.where((std > 0) & np.isfinite(std), std, fallback)
    return raw, scale


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
    for k in np.unique(width[valid & (width >= 2)]).tolist():
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

