"""A batch that closes several windows (filled in one pass, scored in one pass) decides exactly as the same rows
fed in small batches, where each window closes on its own."""

from __future__ import annotations

import math

import numpy as np
import pytest

from detectors.monitor import ModelMonitor, MonitorConfig, Predictions


def stream(n: int, seed: int) -> Predictions:
    rng = np.random.default_rng(seed)
    shifted = np.arange(n) > n // 2
    x0 = rng.normal(0.0, 1.0, n) + shifted * 0.8
    x1 = rng.lognormal(0.0, 1.0, n)
    x1[rng.random(n) < 0.02] = math.nan  # missing now and then
    x2 = rng.integers(0, 5, n).astype(float)  # a discrete feature: a bin per value
    k = rng.choice(["a", "b", "c", "d"], n, p=[0.4, 0.3, 0.2, 0.1]).tolist()
    for i in np.flatnonzero(shifted & (rng.random(n) < 0.3)).tolist():
        k[i] = "z"  # unseen categories after the shift
    scores = np.where(shifted, rng.random(n) ** 3, rng.random(n))  # prediction drift too
    stamps = np.cumsum(rng.exponential(1.0, n)) + np.where(np.arange(n) == n * 3 // 4, 500.0, 0.0)  # one long gap
    return Predictions(stamps, [], (scores > 0.5).astype(int).tolist(), scores.tolist(),
                       columns={"x0": x0, "x1": x1, "x2": x2, "k": k})


@pytest.mark.parametrize("seconds", [None, 150.0])
def test_a_batch_closing_many_windows_decides_as_small_batches_do(seconds: float | None) -> None:
    config = MonitorConfig(reference_size=400, window_size=120, window_seconds=seconds,
                           drift_signals=("psi", "js", "wasserstein", "ks", "chi2"))
    batch = stream(3000, 11)
    at_once, in_pieces = ModelMonitor(config), ModelMonitor(config)
    signals_at_once = at_once.update_columns(batch.slice(0, 500))  # reference, then windows
    signals_at_once += at_once.update_columns(batch.slice(500, 3000))  # closes ~20 windows in one call
    signals_in_pieces = []
    for start in range(0, 3000, 37):  # at most one window closes per piece
        signals_in_pieces += in_pieces.update_columns(batch.slice(start, min(start + 37, 3000)))
    assert at_once.windows_closed == in_pieces.windows_closed >= 18
    assert [s.to_dict() for s in signals_at_once] == [s.to_dict() for s in signals_in_pieces]
    assert {s.kind for s in signals_at_once} >= {"data_drift", "prediction_drift", "data_quality"}
    assert at_once.status() == in_pieces.status()
    assert at_once.window is not None and in_pieces.window is not None
    assert at_once.window.info() == in_pieces.window.info()
    assert [h.counts.tolist() for h in at_once.window.features.values()] == [
        h.counts.tolist() for h in in_pieces.window.features.values()]
