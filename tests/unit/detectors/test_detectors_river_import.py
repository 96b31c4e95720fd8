"""The narrow River import (detectors/river_detectors.py) gives River's own detectors, with River's
results, without importing river.drift's package (river.datasets -> pandas, scikit-learn, SQLAlchemy).

Each comparison runs in a fresh interpreter: one that imports only ``detectors.concept``, one that imports
``river.drift`` the stock way first, so neither borrows the other's modules.
"""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
HEAVY = ("river.drift", "river.datasets", "river.stream", "pandas", "sklearn", "sqlalchemy")

# Runs ADWIN and DDM (River's default settings and the shipped ADWIN setting) over seeded error streams
# with a change in rate; prints their drift and warning indices, the heavy modules imported, and a pickle
# of each detector taken halfway.
RUN = """
import json, pickle, sys
import numpy as np
if sys.argv[1] == "stock":
    import river.drift  # noqa: F401
from detectors.concept import build_detector

SPECS = [{"kind": "ADWIN"}, {"kind": "ADWIN", "params": {"delta": 0.002, "clock": 16}}, {"kind": "DDM"}]
out = {"results": [], "halfway": [], "heavy": sorted(m for m in sys.argv[2].split(",") if m in sys.modules)}
for seed in range(3):
    rng = np.random.default_rng(seed)
    rates = [0.1] * 1500 + [0.4] * 1000 + [0.15] * 1500
    values = [float(rng.random() < r) for r in rates]
    for spec in SPECS:
        detector = build_detector(spec)
        drifts, warnings = [], []
        for i, v in enumerate(values):
            if i == 2000:
                out["halfway"].append(pickle.dumps(detector).hex())
            detector.update(v)
            if detector.drift_detected:
                drifts.append(i)
            elif getattr(detector, "warning_detected", False):
                warnings.append(i)
        out["results"].append([spec, seed, drifts, warnings])
print(json.dumps(out))
"""


def run(mode: str) -> dict[str, list]:  # type: ignore[type-arg]
    done = subprocess.run([sys.executable, "-c", RUN, mode, ",".join(HEAVY)], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, check=True)
    return json.loads(done.stdout)  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def narrow_and_stock() -> tuple[dict[str, list], dict[str, list]]:  # type: ignore[type-arg]
    return run("narrow"), run("stock")


def test_the_narrow_import_leaves_pandas_and_sklearn_out(narrow_and_stock: tuple[dict, dict]) -> None:
    narrow, stock = narrow_and_stock
    assert narrow["heavy"] == []
    assert "river.drift" in stock["heavy"]  # the stock import does pull them: the check can fail


def test_adwin_and_ddm_detect_the_same_either_way(narrow_and_stock: tuple[dict, dict]) -> None:
    narrow, stock = narrow_and_stock
    assert narrow["results"] == stock["results"]
    # The streams change rate twice: every detector must have found something, or equality says little.
    assert all(drifts for _, _, drifts, _ in narrow["results"])
    assert any(warnings for _, _, _, warnings in narrow["results"])


def test_a_pickle_from_the_narrow_import_continues_in_a_stock_process(narrow_and_stock: tuple[dict, dict]) -> None:
    import numpy as np
    import river.drift

    narrow, stock = narrow_and_stock
    assert narrow["halfway"] == stock["halfway"]  # the same state, under the same module names
    for blob, (_, seed, drifts, _) in zip(narrow["halfway"], narrow["results"], strict=True):
        detector = pickle.loads(bytes.fromhex(blob))  # in this process, river.drift imported the stock way
        assert type(detector) in (river.drift.ADWIN, river.drift.binary.DDM)
        rng = np.random.default_rng(seed)
        values = [float(rng.random() < r) for r in [0.1] * 1500 + [0.4] * 1000 + [0.15] * 1500]
        resumed = []
        for i, v in enumerate(values[2000:], start=2000):
            detector.update(v)
            if detector.drift_detected:
                resumed.append(i)
        assert resumed == [i for i in drifts if i >= 2000]


def test_the_classes_are_rivers_own() -> None:
    import river.drift

    from detectors import river_detectors as rd

    assert rd.ADWIN is river.drift.ADWIN and rd.KSWIN is river.drift.KSWIN
    assert rd.PageHinkley is river.drift.PageHinkley
    binary = river.drift.binary
    assert (rd.DDM, rd.EDDM, rd.HDDMA, rd.HDDMW) == (binary.DDM, binary.EDDM, binary.HDDMA, binary.HDDMW)


def test_a_module_river_lacks_is_an_import_error() -> None:
    from detectors.river_detectors import load_module

    with pytest.raises(ImportError, match="river.drift.no_such_detector"):
        load_module("river.drift.no_such_detector")
    assert "river.drift.no_such_detector" not in sys.modules
