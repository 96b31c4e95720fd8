"""How noisy each drift statistic is when nothing drifts: its null distribution for one reference and window size.

A fixed cut-off (PSI 0.2, Wasserstein 0.1) ignores that the noise of a statistic depends on the window size, the
reference size, the number of bins or categories and the shape of the data: a 200-level categorical of 1,000 rows
has a PSI of about 0.3 from sampling alone. So every (field, statistic) gets a cut-off from its own noise.

Method (``docs/detectors.md`` says why): a parametric bootstrap of the two-sample null. The reference is itself a
sample, so the bin probabilities are drawn from their posterior given the reference counts, ``Dirichlet(counts)``
(for quantile bins of a continuous reference these are exactly the laws of the spacings, plus one pseudo-count for
each tail: the chance of a value beyond the reference's extremes), then a window of ``m`` values is drawn from them
(multinomial) and the statistic computed on the bins exactly as the monitor computes it. For Wasserstein the values
inside a bin are placed by the bin's reference mean with the largest spread the bin allows (the Bhatia-Davis bound,
at most a uniform's), and the distance beyond an edge of a value outside the reference range is exponential with
the outer bin's mean excess. Categorical fields use the two-sample plug-in bootstrap from shrunk shares
(``shrunk_shares``).

The ``B`` draws are summarised by a few quantiles of the statistic's *squared* form (PSI and chi2 as they are, JS,
KS and Wasserstein squared) and an exponential tail fitted beyond the 98th percentile (peaks over a threshold). It
gives p-values far in the tail (1e-5 and below, where the window's family-wise budget puts the per-test level)
that ``B`` draws alone cannot resolve. A moment-matched scaled chi-square was tried first: right for PSI and JS,
but 3-9x too many Wasserstein exceedances at 1e-4, whose null tail is heavier than a chi-square's.
``bench/bench_quality.py`` measures the false-alarm rates
that result against the configured rate.

Deterministic: the draws are seeded from the reference counts and the window size, so the same reference gives the
same cut-offs, and a restored monitor decides exactly as one that never stopped.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from typing import Final, NamedTuple

import numpy as np
import numpy.typing as npt
from scipy import special

from detectors.histogram import CategoricalHistogram, Histogram, NumericHistogram

FloatArray = npt.NDArray[np.float64]

DRAWS: Final = 10_000  # bootstrap draws per (field, window size): 200 of them beyond the tail's threshold
# The statistics whose noise is calibrated, and the power each is compared at (its squared form is fitted).
SQUARED: Final = {"psi": False, "js": True, "wasserstein": True, "ks": True, "chi2": False}
NUMERIC_STATISTICS: Final = ("psi", "js", "wasserstein", "ks")
CATEGORICAL_STATISTICS: Final = ("psi", "js", "chi2")


_LEVELS: Final = (0.5, 0.8, 0.9, 0.95, 0.98)  # survival levels kept of each null (the last starts the tail)


class NullFit(NamedTuple):
    """The no-drift distribution of one statistic: quantiles of its squared form at ``_LEVELS`` and, beyond the
    last, an exponential tail with mean excess ``beta`` (peaks over a threshold)."""

    quantiles: tuple[float, ...]
    beta: float
    squared: bool

    def _survival(self, t: float) -> float:
        q = self.quantiles
        if t >= q[-1]:
            tail = 1.0 - _LEVELS[-1]
            return tail * math.exp(-(t - q[-1]) / self.beta) if self.beta > 0 else (tail if t == q[-1] else 0.0)
        # inside the bulk: linear between the kept quantiles, from (0, 1) to the first one
        points = ((0.0, 1.0), *zip(q, (1.0 - level for level in _LEVELS), strict=True))
        for (t0, s0), (t1, s1) in zip(points, points[1:], strict=False):
            if t <= t1:
                return s0 if t1 <= t0 else s0 + (s1 - s0) * (t - t0) / (t1 - t0)
        return 1.0 - _LEVELS[-1]

    def p_value(self, statistic: float) -> float:
        """The chance of a value at least this large when nothing drifted (NaN for NaN)."""
        if math.isnan(statistic):
            return math.nan
        return self._survival(statistic * statistic if self.squared else statistic)

    def cutoff(self, alpha: float) -> float:
        """The statistic's value that noise alone exceeds with probability ``alpha``."""
        q = self.quantiles
        tail = 1.0 - _LEVELS[-1]
        if alpha <= tail:
            t = q[-1] + self.beta * math.log(tail / alpha)
        else:
            t = float(np.interp(1.0 - alpha, (0.0, *_LEVELS), (0.0, *q)))
        return math.sqrt(max(t, 0.0)) if self.squared else t

    def to_list(self) -> list[float]:
        return [*self.quantiles, self.beta, float(self.squared)]

    @classmethod
    def from_list(cls, values: list[float]) -> NullFit:
        if len(values) != len(_LEVELS) + 2:
            raise ValueError(f"a null fit has {len(_LEVELS) + 2} numbers, got {len(values)}")
        return cls(tuple(float(v) for v in values[: len(_LEVELS)]), float(values[-2]), bool(values[-1]))


def cutoffs(fits: Sequence[NullFit], alpha: float) -> list[float]:
    """``fit.cutoff(alpha)`` of many fits in one numpy pass: the same floating-point operations in the same order
    (the logarithm is one scalar, taken with ``math.log`` as there), so the same bits."""
    return cutoffs_at(fits, (alpha,))[0]


def cutoffs_at(fits: Sequence[NullFit], alphas: Sequence[float]) -> list[list[float]]:
    """``cutoffs(fits, alpha)`` for each of ``alphas``, the fits' numbers gathered once."""
    tail = 1.0 - _LEVELS[-1]
    if not fits:
        return [[] for _ in alphas]
    last = np.array([f.quantiles[-1] for f in fits])
    beta = np.array([f.beta for f in fits])
    squared = np.array([f.squared for f in fits])
    out = []
    for alpha in alphas:
        if alpha > tail:
            out.append([f.cutoff(alpha) for f in fits])
            continue
        t = last + beta * math.log(tail / alpha)
        root = np.sqrt(np.where(t < 0.0, 0.0, t))  # Python's max(t, 0.0)
        out.append(np.where(squared, root, t).tolist())
    return out

def fit(draws: FloatArray, squared: bool) -> NullFit:
    """Quantiles of the draws' squared form and the mean excess over the last one.

    Why the squared form and an exponential tail: each statistic is asymptotically a norm of a Gaussian vector
    (PSI, JS and chi2 quadratic forms, Wasserstein an L1 and KS a sup norm), whose square has an exponential tail;
    tested against the true two-sample null in ``bench/bench_quality.py``.
    """
    t = draws[np.isfinite(draws)]
    t = t * t if squared else t
    if t.size == 0:
        return NullFit(tuple(0.0 for _ in _LEVELS), 0.0, squared)
    quantiles = np.quantile(t, _LEVELS)
    excess = t[t > quantiles[-1]] - quantiles[-1]
    beta = float(excess.mean()) if excess.size else 0.0
    return NullFit(tuple(float(q) for q in quantiles), beta, squared)


def seed_of(histogram: Histogram, m: int) -> int:
    digest = hashlib.blake2b(np.asarray(histogram.counts, dtype=np.int64).tobytes()
                             + m.to_bytes(8, "little"), digest_size=8).digest()
    return int.from_bytes(digest, "little")


def _dirichlet_multinomial(alpha: FloatArray, m: int | npt.NDArray[np.int64], draws: int,
                           rng: np.random.Generator) -> FloatArray:
    """``draws`` windows of ``m`` counts (one ``m`` per draw, or the same for all) over ``alpha``'s bins (zero-alpha
    bins stay empty)."""
    counts = np.zeros((draws, alpha.size))
    live = alpha > 0
    if not live.any() or np.all(np.asarray(m) == 0):
        return counts
    gammas = rng.standard_gamma(alpha[live], size=(draws, int(live.sum())))
    shares = gammas / gammas.sum(axis=1, keepdims=True)
    counts[:, live] = rng.multinomial(m, shares)
    return counts


def _shares(counts: FloatArray) -> FloatArray:
    total = counts.sum(axis=-1, keepdims=True)
    return counts / np.where(total > 0, total, 1.0)


def psi_many(reference: FloatArray, current: FloatArray, epsilon: float) -> FloatArray:
    """``detectors.psi.psi`` of one reference against each row of ``current``."""
    p = np.maximum(_shares(reference), epsilon)
    q = np.maximum(_shares(current), epsilon)
    return np.asarray(np.sum((q - p) * np.log(q / p), axis=-1), dtype=np.float64)


def js_many(reference: FloatArray, current: FloatArray) -> FloatArray:
    p = _shares(reference)
    q = _shares(current)
    m = (p + q) / 2.0
    divergence = (special.rel_entr(p, m).sum(axis=-1) + special.rel_entr(q, m).sum(axis=-1)) / 2.0
    return np.asarray(np.sqrt(np.maximum(divergence, 0.0)), dtype=np.float64)


def ks_many(reference: FloatArray, current: FloatArray) -> FloatArray:
    gap = np.abs(np.cumsum(_shares(reference), axis=-1) - np.cumsum(_shares(current), axis=-1))
    return np.asarray(np.minimum(gap.max(axis=-1), 1.0), dtype=np.float64)


def chi2_many(reference: FloatArray, current: FloatArray) -> FloatArray:
    """Pearson's statistic of ``chi2_homogeneity`` per row (bins empty on both sides dropped)."""
    ref = np.broadcast_to(reference, current.shape)
    columns = ref + current
    rows_ref = ref.sum(axis=-1, keepdims=True)
    rows_cur = current.sum(axis=-1, keepdims=True)
    total = rows_ref + rows_cur
    safe = np.where(columns > 0, columns, 1.0)
    total = np.where(total > 0, total, 1.0)
    expected_ref = rows_ref * safe / total
    expected_cur = rows_cur * safe / total
    with np.errstate(divide="ignore", invalid="ignore"):  # empty rows: no statistic, as chi2_homogeneity
        terms = (ref - expected_ref) ** 2 / expected_ref + (current - expected_cur) ** 2 / expected_cur
    return np.asarray(np.where(columns > 0, terms, 0.0).sum(axis=-1), dtype=np.float64)


def wasserstein_many(edges: FloatArray, ref_counts: FloatArray, ref_sums: FloatArray,
                     cur_counts: FloatArray, cur_sums: FloatArray) -> FloatArray:
    """``wasserstein_binned`` of one reference against each row of (``cur_counts``, ``cur_sums``).

    Per interior bin ``[a, b]`` the integral of the CDF is ``below * (b - a) + share * (b - mean)``; a tail bin
    contributes its share times its mean distance beyond the edge (the bounds of the outer bins cancel).
    """
    widths = np.diff(edges)
    right = edges[1:]

    def areas(counts: FloatArray, sums: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray]:
        n = counts.sum(axis=-1, keepdims=True)
        shares = counts / np.where(n > 0, n, 1.0)
        below = np.cumsum(shares, axis=-1) - shares
        inner = counts[..., 1:-1]
        means = sums[..., 1:-1] / np.where(inner > 0, inner, 1.0)
        interior = below[..., 1:-1] * widths + shares[..., 1:-1] * (right - means)
        under = shares[..., 0] * (edges[0] - sums[..., 0] / np.maximum(counts[..., 0], 1.0))
        over = shares[..., -1] * (sums[..., -1] / np.maximum(counts[..., -1], 1.0) - edges[-1])
        return interior, under, over

    ref_interior, ref_under, ref_over = areas(ref_counts, ref_sums)
    cur_interior, cur_under, cur_over = areas(cur_counts, cur_sums)
    total = (np.abs(ref_interior - cur_interior).sum(axis=-1)
             + np.abs(ref_under - cur_under) + np.abs(ref_over - cur_over))
    return np.asarray(total, dtype=np.float64)


def _numeric_draws(reference: NumericHistogram, m: int, draws: int, rng: np.random.Generator,
                   epsilon: float, scale: float) -> dict[str, FloatArray]:
    counts = reference.counts.astype(np.float64)
    sums = reference.sums
    edges = reference.edges
    alpha = counts.copy()
    if not reference.discrete and reference.n > 0:  # a continuous variable can fall beyond the reference's extremes
        alpha[0] = max(alpha[0], 1.0)
        alpha[-1] = max(alpha[-1], 1.0)
    window = _dirichlet_multinomial(alpha, m, draws, rng)
    # where the window's values sit inside each interior bin: the reference's bin mean, spread as the bin allows
    widths = np.diff(edges)
    inner = np.maximum(counts[1:-1], 1.0)
    means = np.where(counts[1:-1] > 0, sums[1:-1] / inner, edges[:-1] + widths / 2.0)
    spread = np.minimum(widths**2 / 12.0, np.maximum((means - edges[:-1]) * (edges[1:] - means), 0.0))
    if reference.discrete:  # every value of a bin is the one value it was made for
        spread = np.zeros_like(spread)
    k = window[:, 1:-1]
    # both bin means are estimates: the window's from its k values, the reference's from its own counts
    noise = rng.standard_normal(k.shape) * np.sqrt(spread * (1.0 / np.maximum(k, 1.0) + 1.0 / inner))
    bin_means = np.clip(means + noise, edges[:-1], edges[1:])
    window_sums = np.zeros_like(window)
    window_sums[:, 1:-1] = k * bin_means
    # beyond the edges: exponential distances whose scale is the outermost bin's mean excess over its inner edge
    # (peaks over a threshold with an exponential tail)
    first = float(means[0] - edges[0]) if widths.size else 1.0
    last = float(edges[-1] - means[-1]) if widths.size else 1.0
    window_sums[:, 0] = window[:, 0] * edges[0] - rng.gamma(np.maximum(window[:, 0], 1e-12), max(first, 1e-12))
    window_sums[:, -1] = window[:, -1] * edges[-1] + rng.gamma(np.maximum(window[:, -1], 1e-12), max(last, 1e-12))
    return {
        "psi": psi_many(counts, window, epsilon),
        "js": js_many(counts, window),
        "ks": ks_many(counts, window),
        "wasserstein": wasserstein_many(edges, counts, sums, window, window_sums) / scale,
    }


def shrunk_shares(counts: FloatArray) -> FloatArray:
    """The categories' shares shrunk towards equal shares by the James-Stein rule of Hausser and Strimmer (JMLR 10,
    2009): a reference's shares scatter more than the truth's (a category seen 3 times and one seen 15 times may
    be alike), and a null drawn from the scattered shares underestimates how far a window falls from the
    reference when categories are many and rare. Categories the reference never saw stay empty."""
    seen = counts > 0
    n = float(counts.sum())
    if n <= 1 or seen.sum() < 2:
        return counts / max(n, 1.0)
    p = counts / n
    target = np.where(seen, 1.0 / seen.sum(), 0.0)
    spread = float(np.sum((target - p) ** 2))
    weight = 0.0 if spread == 0 else min(max((1.0 - float(np.sum(p * p))) / ((n - 1.0) * spread), 0.0), 1.0)
    return np.asarray(weight * target + (1.0 - weight) * p, dtype=np.float64)


def _categorical_draws(reference: CategoricalHistogram, m: int, draws: int, rng: np.random.Generator,
                       epsilon: float) -> dict[str, FloatArray]:
    counts = reference.counts.astype(np.float64)
    # New categories without drift: as many as Good-Turing expects (``unseen_share_expected``), so a feature with
    # thousands of levels, where a third of a window can be new to a 2,000-row reference, is not always "drifting".
    # That estimate is itself uncertain (its sd is about sqrt(2 * singletons) / n), so each draw takes its own.
    known = counts.copy()
    known[-1] = 0.0
    expected = reference.unseen_share_expected
    unseen = np.zeros(draws, dtype=np.int64)
    if expected > 0 and m > 0:
        sd = math.sqrt(2.0 * reference.n_singletons) / max(reference.n, 1)
        unseen = rng.binomial(m, np.clip(rng.normal(expected, sd, draws), 0.0, 1.0))
    # Both samples from the reference's own shares (the two-sample plug-in bootstrap): a posterior Dirichlet
    # does not shrink a category seen 3 times towards its neighbours seen 15 times, which a stationary
    # 2,000-level feature with 10 counts per category showed as drift in 94% of windows at a 5% budget.
    shares = shrunk_shares(known)
    pseudo = rng.multinomial(int(known.sum()), shares, size=draws).astype(np.float64)
    window = np.zeros_like(pseudo)
    window[:] = rng.multinomial(m - unseen, shares)  # the known categories fill what new ones leave
    window[:, -1] = unseen
    return {"psi": psi_many(pseudo, window, epsilon), "js": js_many(pseudo, window), "chi2": chi2_many(pseudo, window)}


def calibrate(reference: Histogram, m: int, epsilon: float, scale: float = 1.0,
              draws: int = DRAWS) -> dict[str, NullFit]:
    """The null fit of every statistic of one field for windows of ``m`` counted values.

    ``scale`` normalises Wasserstein (``reference_scale``); ``epsilon`` is PSI's floor.
    """
    rng = np.random.default_rng(seed_of(reference, m))
    # many bins cost draws x bins: past 400 bins fewer draws (at least 2,500, 50 beyond the tail's threshold)
    draws = min(draws, max(2500, 4_000_000 // max(reference.counts.size, 1)))
    if isinstance(reference, NumericHistogram):
        samples = _numeric_draws(reference, m, draws, rng, epsilon, scale)
    else:
        samples = _categorical_draws(reference, m, draws, rng, epsilon)
    return {name: fit(values, SQUARED[name]) for name, values in samples.items()}


def size_class(m: int, window_size: int) -> int:
    """The window size a calibration is computed for: the configured size exactly, otherwise ``m`` rounded down to
    a grid of ratio 2**(1/8) (a cut-off for a slightly smaller window is slightly larger: conservative), so that
    windows closed by time share a handful of calibrations."""
    if m >= window_size or m < 2:
        return max(min(m, window_size), 1)
    return max(int(2 ** (math.floor(8 * math.log2(m)) / 8)), 1)


def family_size(fields: Mapping[str, object], signals: tuple[str, ...], numeric: Mapping[str, bool]) -> int:
    """How many (field, statistic) tests one window holds: the Bonferroni divisor of the false-alarm budget."""
    total = 0
    for name in fields:
        available = NUMERIC_STATISTICS if numeric[name] else CATEGORICAL_STATISTICS
        total += sum(1 for signal in signals if signal in available)
    return max(total, 1)
