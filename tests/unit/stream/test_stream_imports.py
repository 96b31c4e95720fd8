"""The stream worker imports only what it runs: River's detectors without river.drift's package (whose
datasets pull pandas, scikit-learn and SQLAlchemy, ~70 MiB of the worker's memory), and scipy.stats only where it
is used (exact KS p-values, the KSWIN detector: ~48 MiB more)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
UNUSED = ("river.drift", "river.datasets", "river.stream", "pandas", "sklearn", "sqlalchemy", "mlflow", "scipy.stats",
          "river.drift.kswin")


def imported_by(statement: str) -> list[str]:
    """The modules of ``UNUSED`` a fresh interpreter holds after ``statement``."""
    code = f"{statement}\nimport json, sys\nprint(json.dumps([m for m in {UNUSED!r} if m in sys.modules]))"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          check=True)
    return json.loads(done.stdout.splitlines()[-1])  # type: ignore[no-any-return]


def test_the_worker_and_its_detectors_import_no_pandas_sklearn_or_river_datasets() -> None:
    statement = ("from driftwarden.contract.settings import load_settings\nfrom stream.app import create_app\n"
                 "create_app(load_settings(env={}))\n"
                 "from detectors.concept import ConceptDetector\nConceptDetector('ADWIN'); ConceptDetector('DDM')")
    assert imported_by(statement) == []


def test_kswin_and_exact_ks_load_scipy_stats_when_used() -> None:
    statement = ("from detectors.concept import ConceptDetector\nConceptDetector('KSWIN')\n"
                 "from detectors.statistics import ks_p_values\nassert 0 < ks_p_values([0.1], [50])[0] < 1")
    assert set(imported_by(statement)) == {"scipy.stats", "river.drift.kswin"}


def test_the_check_sees_a_module_that_pulls_them() -> None:
    assert set(imported_by("import river.drift")) >= {"river.drift", "pandas", "sklearn"}
