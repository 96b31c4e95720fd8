"""The SDK installs without the service: a fresh virtualenv gets ``pip install <project>`` (the base dependencies
only), has no Faust, MLflow, River, pandas, scipy or scikit-learn, imports ``driftwarden.sdk`` and sends events
that a consumer of the real broker decodes back."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from test_sdk import consume

from driftwarden.contract.events import Label, Prediction
from driftwarden.contract.kafka import ensure_topics
from driftwarden.contract.settings import Settings

pytestmark = pytest.mark.services

ROOT = Path(__file__).resolve().parents[2]
SERVICE_ONLY = ("faust", "mlflow", "river", "pandas", "scipy", "sklearn")

# Runs inside the clean virtualenv; the settings come from the environment the test passes.
SENDER = r"""
import importlib.util, json, sys
present = [m for m in sys.argv[1].split(",") if importlib.util.find_spec(m) is not None]
from driftwarden.contract.settings import load_settings
from driftwarden.sdk import DriftwardenProducer
with DriftwardenProducer(load_settings(), linger_s=0.1) as dw:
    ids = [dw.log_prediction("sdk-only", {"x": float(i), "plan": "pro"}, i % 2, score=i / 20,
                             timestamp=1_700_000_000.0 + i) for i in range(20)]
    for i in range(0, 20, 4):
        dw.log_label("sdk-only", ids[i], i % 2, timestamp=1_700_000_100.0 + i)
from driftwarden.contract.columnar import encode_arrow
from driftwarden.contract.events import Prediction
try:
    encode_arrow([Prediction(event_id="a", model="m", timestamp=0.0, features={}, prediction=1)])
    arrow = "encoded"
except ImportError as exc:
    arrow = str(exc)
loaded = sorted({m.split(".")[0] for m in sys.modules} & set(sys.argv[1].split(",")))
print(json.dumps({"present": present, "loaded": loaded, "ids": ids, "delivered": dw.delivered,
                  "failed": dw.failed, "arrow": arrow}))
"""


def test_the_sdk_installs_and_sends_without_the_service(settings: Settings, stack_env: dict[str, str],
                                                        tmp_path: Path) -> None:
    source = tmp_path / "src"  # a copy: building the wheel writes build/ and egg-info beside the sources
    for name in ("detectors", "driftwarden", "stream", "retrain_worker"):
        shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    installed = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q",
                                str(source)], capture_output=True, text=True, timeout=300)
    assert installed.returncode == 0, installed.stderr[-3000:]

    topics = settings.kafka.topics
    ensure_topics(settings, [topics.predictions, topics.labels])
    env = {**stack_env, "PATH": "/usr/bin:/bin", "DRIFTWARDEN__KAFKA__TOPICS__PREDICTIONS": topics.predictions,
           "DRIFTWARDEN__KAFKA__TOPICS__LABELS": topics.labels}
    ran = subprocess.run([str(python), "-c", SENDER, ",".join(SERVICE_ONLY)], capture_output=True, text=True,
                         env=env, cwd=tmp_path, timeout=120)
    assert ran.returncode == 0, ran.stderr[-3000:]
    out = json.loads(ran.stdout.strip().splitlines()[-1])
    assert out["present"] == [] and out["loaded"] == [], out  # none installed, so none imported
    assert "pip install 'driftwarden[arrow]'" in out["arrow"]  # pyarrow is an extra, with a clear message
    assert (out["delivered"], out["failed"]) == (25, 0)

    predictions = [e for _, _, events in consume(settings, topics.predictions, 20, Prediction) for e in events]
    assert [p.event_id for p in predictions] == out["ids"]
    assert predictions[3] == Prediction(event_id=out["ids"][3], model="sdk-only", timestamp=1_700_000_003.0,
                                        features={"x": 3.0, "plan": "pro"}, prediction=1, score=3 / 20)
    labels = [e for _, _, events in consume(settings, topics.labels, 5, Label) for e in events]
    assert {lab.event_id: lab.label for lab in labels} == {out["ids"][i]: i % 2 for i in range(0, 20, 4)}
