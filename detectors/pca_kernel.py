"""The multivariate test's per-row errors around the two matrix products, in two compiled loops (numba).

``PcaArrays.column_errors`` in numpy paid ~10 array passes besides the products (standardise, zero the non-finite,
transpose, subtract the reconstruction, square, transpose back, eight-way row sums). These loops do the same
element-wise operations in the same order (no fast-math: no reassociation, no fused multiply-add), so the result
is the same to the bit; the products stay with numpy (BLAS), whose order of summation a loop would not match.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from numba import njit

FloatArray = npt.NDArray[np.float64]

MAX_FEATURES = 128  # numpy sums a row of up to 128 values in one block: ``row_means`` follows that order


@njit(cache=True, nogil=True, error_model="numpy")
def standardised_rows(z: FloatArray, mean: FloatArray, scale: FloatArray) -> FloatArray:  # pragma: no cover
    """The features x rows ``z`` standardised (``(z - mean) / scale``, a non-finite result 0) as rows x features."""
    d, n = z.shape
    rows = np.empty((n, d))
    for i in range(n):  # written in order (reading across the features): ~20% faster than the other way round
        for j in range(d):
            v = (z[j, i] - mean[j]) / scale[j]
            rows[i, j] = v if np.isfinite(v) else 0.0
    return rows


@njit(cache=True, nogil=True, error_model="numpy")
def residual_means(rows: FloatArray, reconstructed: FloatArray) -> FloatArray:  # pragma: no cover
    """Each row's mean of ``(rows - reconstructed) ** 2``, summed as numpy sums a row of up to 128 values
    (``pairwise_sum``): eight accumulators, each taking every eighth value, added pairwise, then the rest in order;
    fewer than eight values in order from 0.0."""
    n, d = rows.shape
    out = np.empty(n)
    blocks = d - d % 8
    for i in range(n):
        if d < 8:
            total = 0.0
            for j in range(d):
                r = rows[i, j] - reconstructed[i, j]
                total = total + r * r
        else:
            r0 = rows[i, 0] - reconstructed[i, 0]
            r1 = rows[i, 1] - reconstructed[i, 1]
            r2 = rows[i, 2] - reconstructed[i, 2]
            r3 = rows[i, 3] - reconstructed[i, 3]
            r4 = rows[i, 4] - reconstructed[i, 4]
            r5 = rows[i, 5] - reconstructed[i, 5]
            r6 = rows[i, 6] - reconstructed[i, 6]
            r7 = rows[i, 7] - reconstructed[i, 7]
            a0, a1, a2, a3, a4, a5, a6, a7 = r0 * r0, r1 * r1, r2 * r2, r3 * r3, r4 * r4, r5 * r5, r6 * r6, r7 * r7
            for j in range(8, blocks, 8):
                r0 = rows[i, j] - reconstructed[i, j]
                r1 = rows[i, j + 1] - reconstructed[i, j + 1]
                r2 = rows[i, j + 2] - reconstructed[i, j + 2]
                r3 = rows[i, j + 3] - reconstructed[i, j + 3]
                r4 = rows[i, j + 4] - reconstructed[i, j + 4]
                r5 = rows[i, j + 5] - reconstructed[i, j + 5]
                r6 = rows[i, j + 6] - reconstructed[i, j + 6]
                r7 = rows[i, j + 7] - reconstructed[i, j + 7]
                a0 += r0 * r0
                a1 += r1 * r1
                a2 += r2 * r2
                a3 += r3 * r3
                a4 += r4 * r4
                a5 += r5 * r5
                a6 += r6 * r6
                a7 += r7 * r7
            total = ((a0 + a1) + (a2 + a3)) + ((a4 + a5) + (a6 + a7))
            for j in range(blocks, d):
                r = rows[i, j] - reconstructed[i, j]
                total = total + r * r
        out[i] = total / d
    return out
