"""The demo's version 1: a labelled reference period of the demo's traffic, written as the training file.

The traffic's concept before the shift, its own seed. Training, registering and onboarding it is the retrain
worker's (``retrain_worker.initial``); devtools may not import a worker, so the CLI hands that step in as a
:data:`FirstVersionTrainer` and :func:`train_first_version` only composes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path

import pandas as pd

from driftwarden.contract.settings import Settings
from driftwarden.devtools.traffic import TrafficSpec, generate

REFERENCE_ROWS = 4000


@dataclass(frozen=True)
class FirstVersion:
    version: str
    training_file: Path
    holdout: Mapping[str, float]  # version 1 on its own (reference-period) holdout
    file: str  # the onboarded file's name
    sha256: str  # of its bytes


# (settings, model, labelled frame with a "label" column, the frame's CSV file) -> the registered, onboarded version
FirstVersionTrainer = Callable[[Settings, str, pd.DataFrame, Path], FirstVersion]


def reference_period(spec: TrafficSpec, rows: int = REFERENCE_ROWS) -> pd.DataFrame:
    """Labelled traffic of the reference period: the same generator, no shift, another seed."""
    period = replace(spec, total=rows, shift_at=rows, seed=spec.seed + 1000)
    return pd.DataFrame([{**p.features, "label": lab.label} for p, lab in generate(period)])


def train_first_version(settings: Settings, spec: TrafficSpec, folder: Path,
                        trainer: FirstVersionTrainer) -> FirstVersion:
    """Write the reference period of ``spec.model`` to ``folder`` and make it version 1 with ``trainer``."""
    folder.mkdir(parents=True, exist_ok=True)
    frame = reference_period(spec)
    training_file = folder / "v1-training.csv"
    frame.to_csv(training_file, index=False)
    return trainer(settings, spec.model, frame, training_file)
