"""A batch given as columns (the Arrow path) counts exactly like the same batch given as rows (the JSON path)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from detectors.monitor import ModelMonitor, MonitorConfig, Observation, Predictions


def _rows(seed: int, n: int, shift: float) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    rows: list[dict[str, Any]] = []
    for i in range(n):
        row: dict[str, Any] = {f"x{j}": float(rng.normal(shift * (j == 0), 1.0)) for j in range(4)}
        row["k"] = str(rng.choice(["a", "b", "c"] if shift == 0 else ["a", "c", "z"]))
        row["flag"] = bool(rng.random() < 0.3)
        if i % 17 == 0:
            row["x1"] = None  # a missing number
        if i % 29 == 0:
            row["x2"] = "oops"  # a wrong type
        if i % 31 == 0:
            row["k"] = None
        rows.append(row)
    return rows


def _as_columns(rows: list[dict[str, Any]], extra: str | None = None,
                drop: str | None = None) -> dict[str, Any]:
    names = [name for name in rows[0] if name != drop]
    columns: dict[str, Any] = {}
    for name in names:
        values = [row[name] for row in rows]
        if all(v is None or (isinstance(v, float) and not isinstance(v, bool)) for v in values):
            columns[name] = np.array([math.nan if v is None else v for v in values], dtype=np.float64)
        else:
            columns[name] = values
    if extra is not None:
        columns[extra] = np.ones(len(rows))
    return columns


def _batch(rows: list[dict[str, Any]], t0: float, columns: dict[str, Any] | None) -> Predictions:
    rng = np.random.default_rng(int(t0))
    scores = rng.random(len(rows)).tolist()
    stamps = np.arange(len(rows), dtype=np.float64) + t0
    predictions = [int(s > 0.5) for s in scores]
    if columns is None:
        return Predictions(stamps, rows, predictions, scores)
    return Predictions(stamps, [], predictions, scores, columns=columns)


@pytest.mark.parametrize("variant", ["same", "unexpected", "absent"])
def test_columns_give_the_rows_results(variant: str) -> None:
    config = MonitorConfig(reference_size=600, window_size=250)
    by_rows, by_columns = ModelMonitor(config), ModelMonitor(config)
    t0 = 0.0
    signals_rows, signals_columns = [], []
    for b, (seed, n, shift) in enumerate([(1, 400, 0.0), (2, 450, 0.0), (3, 333, 1.0), (4, 700, 1.0)]):
        rows = _rows(seed, n, shift)
        extra = "new" if variant == "unexpected" and b >= 2 else None
        drop = "x3" if variant == "absent" and b >= 2 else None
        given_rows = [dict(r) for r in rows]
        for r in given_rows:
            if extra:
                r[extra] = 1.0
            if drop:
                del r[drop]
        signals_rows += by_rows.update_columns(_batch(given_rows, t0, None))
        signals_columns += by_columns.update_columns(_batch(rows, t0, _as_columns(rows, extra, drop)))
        t0 += n
    assert by_rows.windows_closed >= 5
    assert [s.to_dict() for s in signals_rows] == [s.to_dict() for s in signals_columns]
    assert any(s.kind == "data_drift" for s in signals_rows)  # the shifted batches are worth comparing
    assert by_rows.status() == by_columns.status()
    assert by_columns.window is not None and by_rows.window is not None
    assert by_columns.window.absent == by_rows.window.absent
    assert by_columns.window.unexpected == by_rows.window.unexpected


def test_columns_rows_round_trip_missing_values() -> None:
    batch = Predictions(np.array([1.0, 2.0]), [], [0, 1], [None, 0.4],
                        columns={"x": np.array([1.5, math.nan]), "k": ["a", None]})
    assert batch.rows() == [{"x": 1.5, "k": "a"}, {"x": None, "k": None}]
    assert batch.observations(1, 2) == [Observation(2.0, {"x": None, "k": None}, 1, 0.4, None)]
    assert batch.slice(1, 2).columns is not None and batch.slice(1, 2).rows() == [{"x": None, "k": None}]
