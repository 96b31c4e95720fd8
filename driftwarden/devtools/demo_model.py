"""The demo's version 1, made the way a team already in production made theirs.

Trained on a labelled reference period (the traffic's concept before the shift, its own seed), logged
and registered in MLflow with the retrain worker's own trainer and registry code, given the alias
``champion``, and onboarded with its training file, so the stream compares the first prediction on
against the data version 1 learned from and the first retrain has a champion to beat.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path

import pandas as pd

from driftwarden.contract.settings import Settings
from driftwarden.devtools.traffic import TrafficSpec, generate
from retrain_worker.dataset import build_dataset
from retrain_worker.evaluate import score
from retrain_worker.onboard import Onboarded, onboard
from retrain_worker.registry import ModelRegistry
from retrain_worker.trainer import train_default

REFERENCE_ROWS = 4000


@dataclass(frozen=True)
class FirstVersion:
    version: str
    training_file: Path
    holdout: dict[str, float]  # version 1 on its own (reference-period) holdout
    onboarded: Onboarded


def reference_period(spec: TrafficSpec, rows: int = REFERENCE_ROWS) -> pd.DataFrame:
    """Labelled traffic of the reference period: the same generator, no shift, another seed."""
    period = replace(spec, total=rows, shift_at=rows, seed=spec.seed + 1000)
    return pd.DataFrame([{**p.features, "label": lab.label} for p, lab in generate(period)])


def train_first_version(settings: Settings, spec: TrafficSpec, folder: Path) -> FirstVersion:
    """Train, register and promote version 1 of ``spec.model`` and onboard its training file."""
    folder.mkdir(parents=True, exist_ok=True)
    frame = reference_period(spec)
    training_file = folder / "v1-training.csv"
    frame.to_csv(training_file, index=False)
    samples = [json.dumps({"event_id": str(i), "timestamp": float(i), "features": row, "label": label}).encode()
               for i, (row, label) in enumerate(zip(frame.drop(columns="label").to_dict(orient="records"),
                                                     frame["label"].tolist(), strict=True))]
    cfg = settings.retrain.for_model(spec.model)
    dataset = build_dataset(spec.model, samples, min_samples=cfg.min_samples,
                            holdout_fraction=cfg.holdout_fraction)
    fitted = train_default(dataset, cfg.trainer_params)
    holdout = score(fitted, dataset.x_holdout, dataset.y_holdout, dataset.task)
    registry = ModelRegistry(settings.mlflow.tracking_uri, settings.mlflow.experiment)
    registry.start()
    tags = {"trigger": "initial", "data_sha256": dataset.sha256, "train_count": str(len(dataset.x_train)),
            "holdout_count": str(len(dataset.x_holdout)), "task": dataset.task}
    logged = registry.log_run(name=f"initial-{spec.model}", fitted=fitted, x_example=dataset.x_train,
                              params={"trainer": cfg.trainer, "rows": len(frame)},
                              metrics={f"holdout_{k}": v for k, v in holdout.items()}, tags=tags, artifacts={})
    version = str(registry.register(spec.model, logged, tags | {"run_id": logged.run_id}).version)
    registry.promote(spec.model, version)
    registry.tag_version(spec.model, version, {"decision": "promoted", "decision_reason": "initial version"})
    onboarded = onboard(settings, spec.model, training_file, label="label", version=version)
    return FirstVersion(version, training_file, holdout, onboarded)
