"""A model's first version, made the way a team already in production made theirs.

Trained on a labelled frame with the worker's own trainer, logged and registered in MLflow with its registry
code, given the alias ``champion``, and onboarded with its training file (``retrain_worker.onboard``), so the
stream compares the first prediction on against the data version 1 learned from and the first retrain has a
champion to beat. The demo makes its version 1 with it (the CLI passes it to ``driftwarden.devtools.demo``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from driftwarden.contract.settings import Settings
from retrain_worker.dataset import build_dataset
from retrain_worker.evaluate import score
from retrain_worker.onboard import Onboarded, onboard
from retrain_worker.registry import ModelRegistry
from retrain_worker.trainer import train_default


@dataclass(frozen=True)
class InitialVersion:
    version: str
    holdout: dict[str, float]  # the version on its own holdout
    onboarded: Onboarded


def train_initial_version(settings: Settings, model: str, frame: pd.DataFrame, training_file: Path,
                          label: str = "label") -> InitialVersion:
    """Train, register and promote version 1 of ``model`` on ``frame`` (features and ``label``), whose CSV copy
    ``training_file`` becomes the model's reference."""
    samples = [json.dumps({"event_id": str(i), "timestamp": float(i), "features": row, "label": truth}).encode()
               for i, (row, truth) in enumerate(zip(frame.drop(columns=label).to_dict(orient="records"),
                                                    frame[label].tolist(), strict=True))]
    cfg = settings.retrain.for_model(model)
    dataset = build_dataset(model, samples, min_samples=cfg.min_samples, holdout_fraction=cfg.holdout_fraction)
    fitted = train_default(dataset, cfg.trainer_params)
    holdout = score(fitted, dataset.x_holdout, dataset.y_holdout, dataset.task)
    registry = ModelRegistry(settings.mlflow.tracking_uri, settings.mlflow.experiment)
    registry.start()
    tags = {"trigger": "initial", "data_sha256": dataset.sha256, "train_count": str(len(dataset.x_train)),
            "holdout_count": str(len(dataset.x_holdout)), "task": dataset.task}
    logged = registry.log_run(name=f"initial-{model}", fitted=fitted, x_example=dataset.x_train,
                              params={"trainer": cfg.trainer, "rows": len(frame)},
                              metrics={f"holdout_{k}": v for k, v in holdout.items()}, tags=tags, artifacts={})
    version = str(registry.register(model, logged, tags | {"run_id": logged.run_id}).version)
    registry.promote(model, version)
    registry.tag_version(model, version, {"decision": "promoted", "decision_reason": "initial version"})
    onboarded = onboard(settings, model, training_file, label=label, version=version)
    return InitialVersion(version, holdout, onboarded)
