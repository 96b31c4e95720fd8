"""One retrain, from the incident to its ``ModelUpdate``: data, trainer, evaluation, MLflow, aliases.

``Retrainer.run(incident)`` never registers two versions for one incident: it looks for a version
tagged with the incident id before training and again before registering, and a version found there
(left by a worker killed after registering) is finished instead of trained again.
"""

from __future__ import annotations

import logging
import subprocess
import tempfile
import time
from pathlib import Path

from mlflow.entities.model_registry import ModelVersion

import driftwarden
from driftwarden.contract.events import ModelUpdate, iso
from driftwarden.contract.settings import Settings
from retrain_worker.dataset import Dataset, build_dataset
from retrain_worker.evaluate import Verdict, compare, resolve_metric, score
from retrain_worker.exceptions import RetrainError, ServiceUnavailable, TrainerFailed
from retrain_worker.incidents import IncidentStore
from retrain_worker.metrics import RetrainMetrics
from retrain_worker.policy import Incident
from retrain_worker.reference import build_reference
from retrain_worker.registry import CHAMPION, ModelRegistry, mlflow_errors
from retrain_worker.trainer import load_trainer

log = logging.getLogger(__name__)


def code_version() -> tuple[str, str]:
    """(driftwarden version, git sha or "unknown") of the running code."""
    repo = Path(driftwarden.__file__).resolve().parent.parent
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True,
                             timeout=5, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        sha = "unknown"
    return driftwarden.__version__, sha or "unknown"


def failure_update(incident: Incident, error: RetrainError, champion: str | None = None) -> ModelUpdate:
    return ModelUpdate(model=incident.model, version=None, previous_version=champion, alias=CHAMPION,
                       promoted=False, run_id=None, drift_id=incident.drift_id, metrics={},
                       reason=f"{error.reason}: {error.detail}")


class Retrainer:
    def __init__(self, settings: Settings, store: IncidentStore, registry: ModelRegistry,
                 metrics: RetrainMetrics, code: tuple[str, str]) -> None:
        self.settings = settings
        self.store = store
        self.registry = registry
        self.metrics = metrics
        self.code = code

    def run(self, incident: Incident) -> ModelUpdate:
        """Train, evaluate and register for ``incident``; raises ``RetrainError`` when no decision."""
        model = incident.model
        cfg = self.settings.retrain.for_model(model)
        dataset = build_dataset(model, self.store.load_samples(model), min_samples=cfg.min_samples,
                                holdout_fraction=cfg.holdout_fraction, task=cfg.task,
                                max_samples=cfg.max_samples)
        metric = resolve_metric(cfg.metric, dataset.task)
        champion = self.registry.alias(model, CHAMPION)
        existing = self.registry.find_version(model, incident.incident_id)
        if existing is not None:
            log.warning("%s: version %s is already registered for incident %s; finishing it", model,
                        existing.version, incident.incident_id)
            return self._finish_existing(incident, existing, champion, metric, cfg.promote_margin)
        trainer = load_trainer(cfg.trainer)
        log.info("%s: training on %d samples (%s, sha256 %s…) for incident %s (%s)", model,
                 dataset.n_samples, dataset.task, dataset.sha256[:12], incident.incident_id, incident.trigger)
        started = time.monotonic()
        try:
            fitted = trainer(dataset, cfg.trainer_params)
        except RetrainError:
            raise
        except Exception as exc:  # noqa: BLE001 - a team's trainer may raise anything; it is a decision
            raise TrainerFailed(f"{cfg.trainer} raised {type(exc).__name__}: {exc}") from exc
        finally:
            self.metrics.training_seconds.labels(model).observe(time.monotonic() - started)
        scores = {f"challenger_{k}": v for k, v in score(fitted, dataset.x_holdout, dataset.y_holdout,
                                                          dataset.task).items()}
        if f"challenger_{metric}" not in scores:
            raise RetrainError(f"the challenger cannot be scored with {metric} (no predict_proba?)",
                               reason="metric_unavailable")
        champion_scores, champion_note = self._score_champion(model, champion, dataset)
        scores.update({f"champion_{k}": v for k, v in champion_scores.items()})
        verdict = compare(metric, scores[f"challenger_{metric}"], champion_scores.get(metric),
                          cfg.promote_margin)
        if champion is not None and metric not in champion_scores:
            verdict = Verdict(True, f"champion_unscorable: {champion_note}")
        reference = build_reference(dataset.train_rows(), self.settings.monitor_for(model))
        tags = self._lineage(incident, dataset, metric, cfg.trainer) | {"reference_format": reference.format}
        params = {"task": dataset.task, "metric": metric, "trainer": cfg.trainer,
                  "holdout_fraction": cfg.holdout_fraction, "min_samples": cfg.min_samples,
                  "max_samples": cfg.max_samples, "promote_margin": cfg.promote_margin,
                  "numeric_features": ",".join(dataset.numeric),
                  "categorical_features": ",".join(dataset.categorical),
                  **{f"trainer_params.{k}": v for k, v in cfg.trainer_params.items()}}
        logged = self.registry.log_run(
            name=f"retrain-{model}-{incident.incident_id[:8]}", fitted=fitted, x_example=dataset.x_train,
            params=params, metrics=scores, tags=tags, artifacts={reference.filename: reference.data})
        existing = self.registry.find_version(model, incident.incident_id)  # a concurrent worker?
        version = existing or self.registry.register(model, logged, tags | {"run_id": logged.run_id})
        self.store.save_reference(model, version.version, reference.data)
        return self._apply(incident, version.version, logged.run_id, verdict, champion, scores)

    # -- steps -------------------------------------------------------------------------------------

    def _score_champion(self, model: str, champion: ModelVersion | None,
                        dataset: Dataset) -> tuple[dict[str, float], str]:
        if champion is None:
            return {}, "no champion"
        loaded = self.registry.load(model, champion.version)
        try:
            return score(loaded, dataset.x_holdout, dataset.y_holdout, dataset.task), ""
        except ServiceUnavailable:
            raise
        except Exception as exc:  # noqa: BLE001 - e.g. the champion expects features that are gone
            log.warning("%s: champion v%s cannot score the holdout: %s", model, champion.version, exc)
            return {}, f"champion v{champion.version} cannot score the holdout: {type(exc).__name__}: {exc}"

    def _lineage(self, incident: Incident, dataset: Dataset, metric: str, trainer: str) -> dict[str, str]:
        version, sha = self.code
        return {
            "drift_id": incident.drift_id or "none", "incident_id": incident.incident_id,
            "trigger": incident.trigger, "window": incident.window_key,
            "data_sha256": dataset.sha256, "sample_count": str(dataset.n_samples),
            "train_count": str(len(dataset.x_train)), "holdout_count": str(len(dataset.x_holdout)),
            "data_start": iso(dataset.start), "data_end": iso(dataset.end),
            "data_start_epoch": repr(dataset.start), "data_end_epoch": repr(dataset.end),
            "task": dataset.task, "metric": metric, "trainer": trainer,
            "code_version": f"{version}+{sha[:12]}" if sha != "unknown" else version, "git_sha": sha,
            "driftwarden_version": version,
        }

    def _apply(self, incident: Incident, version: str, run_id: str, verdict: Verdict,
               champion: ModelVersion | None, scores: dict[str, float]) -> ModelUpdate:
        model = incident.model
        previous = champion.version if champion is not None else None
        if verdict.promote:
            previous = self.registry.promote(model, version)
            self.metrics.promotions.labels(model).inc()
            self.metrics.champion_version.labels(model).set(float(version))
        self.registry.tag_version(model, version, {
            "decision": "promoted" if verdict.promote else "rejected", "decision_reason": verdict.reason})
        log.info("%s: version %s %s (%s)", model, version, "promoted" if verdict.promote else "rejected",
                 verdict.reason)
        return ModelUpdate(model=model, version=version, previous_version=previous, alias=CHAMPION,
                           promoted=verdict.promote, run_id=run_id, drift_id=incident.drift_id,
                           metrics=scores, reason=verdict.reason)

    def _finish_existing(self, incident: Incident, version: ModelVersion, champion: ModelVersion | None,
                         metric: str, margin: float) -> ModelUpdate:
        """Complete the decision for a version registered before the worker was killed."""
        scores = self.registry.run_metrics(version.run_id) if version.run_id else {}
        decided = version.tags.get("decision")
        if champion is not None and champion.version == version.version:
            verdict = Verdict(True, version.tags.get("decision_reason", "promoted before a restart"))
        elif decided == "rejected":
            verdict = Verdict(False, version.tags.get("decision_reason", "rejected before a restart"))
        else:
            challenger = scores.get(f"challenger_{metric}")
            verdict = compare(metric, challenger if challenger is not None else float("nan"),
                              scores.get(f"champion_{metric}"), margin)
        self._restore_reference(incident.model, version)
        return self._apply(incident, version.version, version.run_id or "", verdict, champion, scores)

    def _restore_reference(self, model: str, version: ModelVersion) -> None:
        if not version.run_id:
            return
        with tempfile.TemporaryDirectory() as tmp, mlflow_errors("download the reference"):
            folder = Path(self.registry.client.download_artifacts(version.run_id, "reference", tmp))
            for path in folder.iterdir():
                self.store.save_reference(model, version.version, path.read_bytes())

