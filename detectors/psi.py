"""Population Stability Index between a reference and a current histogram.

PSI = sum_i (q_i - p_i) * ln(q_i / p_i), with p the reference and q the current bin shares. Empty bins
are floored at ``epsilon`` (default 1e-4, the value Evidently uses) so that one empty bin does not make
the index infinite. Usual reading (Siddiqi, "Credit Risk Scorecards", 2006; Yurdakul, "Statistical
properties of the population stability index", 2018): < 0.1 stable, 0.1-0.2 (or 0.25) a moderate shift
worth a look, >= 0.2 (or 0.25) a significant shift.
"""

from __future__ import annotations

import math
from typing import Final

import numpy as np
import numpy.typing as npt

DEFAULT_EPSILON: Final = 1e-4
PSI_WARNING: Final = 0.1
PSI_CRITICAL: Final = 0.2


def psi(reference: npt.ArrayLike, current: npt.ArrayLike, epsilon: float = DEFAULT_EPSILON) -> float:
    """PSI of two count (or share) vectors over the same bins; NaN if either is empty.

    >>> round(psi([50, 50], [50, 50]), 12)
    0.0
    >>> round(psi([50, 50], [90, 10]), 4)
    0.8789
    """
    if epsilon <= 0:
        raise ValueError(f"epsilon must be > 0, got {epsilon}")
    p = np.asarray(reference, dtype=np.float64)
    q = np.asarray(current, dtype=np.float64)
    if p.shape != q.shape:
        raise ValueError(f"bins differ: {p.shape} vs {q.shape}")
    p_total, q_total = p.sum(), q.sum()
    if p_total <= 0 or q_total <= 0:
        return math.nan
    p = np.maximum(p / p_total, epsilon)
    q = np.maximum(q / q_total, epsilon)
    return float(np.sum((q - p) * np.log(q / p)))
