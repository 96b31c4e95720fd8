"""MLflow: runs with their lineage, registered versions, the ``champion``/``previous`` aliases.

The registered model's name is the monitored model's name. Every call is wrapped so that an MLflow
that does not answer becomes ``ServiceUnavailable`` (retried), and any other MLflow refusal a
``RetrainError`` with reason ``mlflow_error`` (recorded).
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import requests
import sklearn
from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.models import infer_signature

from retrain_worker.exceptions import RetrainError, RollbackError, ServiceUnavailable

log = logging.getLogger(__name__)
CHAMPION = "champion"
PREVIOUS = "previous"


@contextmanager
def mlflow_errors(what: str) -> Iterator[None]:
    try:
        yield
    except (requests.RequestException, ConnectionError, TimeoutError) as exc:
        raise ServiceUnavailable(f"MLflow is unavailable ({what}): {exc}",
                                 reason="mlflow_unavailable") from exc
    except MlflowException as exc:
        if is_transient(exc):
            raise ServiceUnavailable(f"MLflow is unavailable ({what}): {exc}",
                                     reason="mlflow_unavailable") from exc
        raise RetrainError(f"MLflow refused {what}: {exc}", reason="mlflow_error") from exc


def is_transient(exc: MlflowException) -> bool:
    """The server did not answer or answered 5xx/429 (MLflow reports both as INTERNAL_ERROR with the
    request in the message); any other MlflowException is a refusal that retrying will not change."""
    if exc.error_code in ("TEMPORARILY_UNAVAILABLE", "REQUEST_LIMIT_EXCEEDED"):
        return True
    text = str(exc)
    return exc.error_code == "INTERNAL_ERROR" and (
        "API request to" in text or "Max retries exceeded" in text or "Connection" in text)


@dataclass(frozen=True)
class LoggedRun:
    run_id: str
    model_uri: str
    model_id: str | None = None


class ModelRegistry:
    def __init__(self, tracking_uri: str, experiment: str) -> None:
        self.tracking_uri = tracking_uri
        self.experiment = experiment
        self._client: MlflowClient | None = None
        self._experiment_id: str | None = None

    def start(self) -> None:
        """Point the MLflow client (and the fluent API used to log models) at the tracking server."""
        mlflow.set_tracking_uri(self.tracking_uri)
        self._client = MlflowClient(tracking_uri=self.tracking_uri)

    @property
    def client(self) -> MlflowClient:
        if self._client is None:
            raise RuntimeError("ModelRegistry.start() was not called")
        return self._client

    def experiment_id(self) -> str:
        if self._experiment_id is None:
            with mlflow_errors("get the experiment"):
                found = self.client.get_experiment_by_name(self.experiment)
                self._experiment_id = (found.experiment_id if found is not None
                                       else self.client.create_experiment(self.experiment))
        return self._experiment_id

    # -- versions and aliases ----------------------------------------------------------------------

    def find_version(self, model: str, incident_id: str) -> ModelVersion | None:
        """The version already registered for an incident (a worker killed after registering)."""
        with mlflow_errors("search model versions"):
            found = self.client.search_model_versions(
                f"name = '{_quote(model)}' and tags.incident_id = '{_quote(incident_id)}'")
        return min(found, key=lambda v: int(v.version)) if found else None

    def alias(self, model: str, alias: str) -> ModelVersion | None:
        with mlflow_errors(f"read alias {alias}"):
            try:
                return self.client.get_model_version_by_alias(model, alias)
            except MlflowException as exc:
                if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND"):
                    return None
                raise

    def load(self, model: str, version: str) -> Any:
        """A registered version as an object with ``predict`` (sklearn flavour when it has one)."""
        uri = f"models:/{model}/{version}"
        with mlflow_errors(f"load {uri}"):
            try:
                return mlflow.sklearn.load_model(uri)
            except MlflowException as exc:
                if is_transient(exc):
                    raise
                log.info("%s has no sklearn flavour (%s); using pyfunc", uri, exc)
                return mlflow.pyfunc.load_model(uri)

    def run_metrics(self, run_id: str) -> dict[str, float]:
        with mlflow_errors("read run metrics"):
            return dict(self.client.get_run(run_id).data.metrics)

    def register(self, model: str, logged: LoggedRun, tags: Mapping[str, str]) -> ModelVersion:
        with mlflow_errors("register a version"):
            try:
                self.client.create_registered_model(model, description=f"Monitored by driftwarden: {model}")
            except MlflowException as exc:
                if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                    raise
            return self.client.create_model_version(model, logged.model_uri, run_id=logged.run_id,
                                                    tags=dict(tags), model_id=logged.model_id)

    def tag_version(self, model: str, version: str, tags: Mapping[str, str]) -> None:
        with mlflow_errors("tag a version"):
            for key, value in tags.items():
                self.client.set_model_version_tag(model, version, key, value)

    def promote(self, model: str, version: str) -> str | None:
        """Make ``version`` the champion; the former champion becomes ``previous``. Returns the former."""
        current = self.alias(model, CHAMPION)
        if current is not None and current.version == version:  # promoted before a restart
            previous = self.alias(model, PREVIOUS)
            return previous.version if previous is not None else None
        with mlflow_errors("move the champion alias"):
            if current is not None:
                self.client.set_registered_model_alias(model, PREVIOUS, current.version)
            self.client.set_registered_model_alias(model, CHAMPION, version)
        return current.version if current is not None else None

    def rollback(self, model: str) -> tuple[str, str]:
        """Move ``champion`` back to ``previous`` (and ``previous`` to the rolled-back version, so a
        second rollback undoes the first). Returns (new champion, rolled-back version)."""
        champion, previous = self.alias(model, CHAMPION), self.alias(model, PREVIOUS)
        if champion is None or previous is None:
            raise RollbackError(f"{model}: nothing to roll back to (champion={champion and champion.version},"
                                f" previous={previous and previous.version})")
        with mlflow_errors("roll back"):
            self.client.set_registered_model_alias(model, CHAMPION, previous.version)
            self.client.set_registered_model_alias(model, PREVIOUS, champion.version)
            self.client.set_model_version_tag(model, champion.version, "rolled_back", "true")
        return previous.version, champion.version

    # -- runs --------------------------------------------------------------------------------------

    def log_run(self, *, name: str, fitted: Any, x_example: pd.DataFrame, params: Mapping[str, Any],
                metrics: Mapping[str, float], tags: Mapping[str, str],
                artifacts: Mapping[str, bytes]) -> LoggedRun:
        """One run: params, metrics, tags, the model with its signature and input example, artifacts."""
        experiment_id = self.experiment_id()
        with mlflow_errors("log the run"), mlflow.start_run(experiment_id=experiment_id, run_name=name,
                                                             tags=dict(tags)) as run:
            mlflow.log_params({k: _param(v) for k, v in params.items()})
            mlflow.log_metrics({k: float(v) for k, v in metrics.items() if np.isfinite(v)})
            example = x_example.head(5)
            signature = infer_signature(example, np.asarray(fitted.predict(example)))
            info = mlflow.sklearn.log_model(
                fitted, name="model", signature=signature, input_example=example,
                pip_requirements=[f"scikit-learn=={sklearn.__version__}", f"pandas=={pd.__version__}",
                                  f"numpy=={np.__version__}"], **_serialization(fitted))
            with tempfile.TemporaryDirectory() as tmp:
                for filename, data in artifacts.items():
                    path = Path(tmp) / filename
                    path.write_bytes(data)
                    mlflow.log_artifact(str(path), artifact_path="reference")
            return LoggedRun(run.info.run_id, info.model_uri, getattr(info, "model_id", None))


def _serialization(fitted: Any) -> dict[str, Any]:
    """skops (MLflow's safe default) with the types of this model trusted: the worker built the model
    in this process a moment ago, so they are known good. A model skops cannot write (a custom
    trainer's object) falls back to cloudpickle."""
    try:
        import skops.io

        return {"serialization_format": "skops",
                "skops_trusted_types": skops.io.get_untrusted_types(data=skops.io.dumps(fitted))}
    except Exception as exc:  # noqa: BLE001 - any skops failure means: use the universal format
        log.warning("skops cannot serialise %s (%s); logging it with cloudpickle", type(fitted).__name__, exc)
        return {"serialization_format": "cloudpickle"}


def _quote(value: str) -> str:
    return value.replace("'", "\\'")


def _param(value: Any) -> str:
    text = str(value)
    return text if len(text) <= 500 else text[:497] + "..."


