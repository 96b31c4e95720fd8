"""``driftwarden onboard``: monitor a model that already exists against the data it was trained on.

The training file (CSV or Parquet) becomes the model's reference through the detectors' own
``build_reference`` (histograms and whatever calibration that API carries in its bytes; nothing here
bins a column). The bytes wait in ``{p}:onboard:{model}`` until the model's next batch adopts them in
its state transaction, so the stream compares from the first prediction on. With ``version``, the
reference is also attached to that registered MLflow version (``{p}:reference:{model}:{version}``,
its origin beside it, tags and the run artifact ``reference/``), as the retrain worker does for the
versions it registers: a promotion or a rollback to that version restores this reference.

From Python: ``onboard(load_settings(), "churn", "train.parquet", label="churned", version="3")``.
"""

from __future__ import annotations

import hashlib
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import redis

from detectors.exceptions import SnapshotError
from detectors.monitor import ModelMonitor
from detectors.reference import build_reference
from driftwarden.contract.errors import DriftwardenError, TableError
from driftwarden.contract.events import ContractError, Prediction, decode_batch, encode
from driftwarden.contract.settings import Settings, monitor_config, snapshot_key
from driftwarden.contract.storage import (
    REFERENCE_FILENAME,
    Keys,
    Onboarding,
    ReferenceOrigin,
    connect,
    encode_onboarding,
    state_monitor,
)
from driftwarden.contract.tables import read_table


class OnboardError(DriftwardenError):
    """The model cannot be onboarded with this file or these options; the message says why."""


@dataclass(frozen=True)
class TrainingData:
    rows: list[dict[str, Any]]
    predictions: list[Any] | None
    scores: list[Any] | None
    features: tuple[str, ...]
    file: str
    sha256: str


@dataclass(frozen=True)
class Onboarded:
    model: str
    file: str
    sha256: str
    rows: int
    features: tuple[str, ...]
    version: str | None
    adopted: bool  # the stream switches to it with the model's next batch (False: only attached to version)
    reason: str


def check_model_name(model: str) -> None:
    """The name must pass the event contract, exactly as the stream will check the model's predictions."""
    try:
        decode_batch(Prediction, encode([Prediction(event_id="onboard", model=model, timestamp=0.0, features={},
                                                    prediction=0.0)]))
    except ContractError as exc:
        raise OnboardError(f"model name {model!r}: {exc.detail}") from exc


def read_training(path: str | Path, *, prediction: str | None = None, score: str | None = None,
                  label: str | None = None, ignore: Sequence[str] = ()) -> TrainingData:
    """Rows of feature values (None for missing) plus the prediction and score columns, from a file."""
    import pandas as pd

    path = Path(path)
    try:
        frame = read_table(path)
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
    except TableError as exc:
        raise OnboardError(str(exc)) from exc
    except OSError as exc:
        raise OnboardError(f"cannot read {path}: {exc}") from exc
    if len(frame) == 0:
        raise OnboardError(f"{path} has no rows")
    columns = [str(c) for c in frame.columns]
    for role, name in (("prediction", prediction), ("score", score), ("label", label)):
        if name is not None and name not in columns:
            raise OnboardError(f"--{role} column {name!r} is not in {path.name} (columns: {', '.join(columns[:20])})")
    left_out = {*ignore, *(n for n in (prediction, score, label) if n is not None)}
    features = tuple(c for c in columns if c not in left_out and not (
        pd.api.types.is_datetime64_any_dtype(frame[c].dtype) or pd.api.types.is_timedelta64_dtype(frame[c].dtype)))
    if not features:
        raise OnboardError(f"{path.name} has no feature column left (columns: {', '.join(columns[:20])}; "
                           f"prediction, score, label, ignored and date columns are not features)")

    def values(name: str) -> list[Any]:
        series = frame[name]
        return list(series.astype(object).where(series.notna(), None).tolist())  # Python scalars, None if missing

    data = {name: values(name) for name in features}
    rows = [dict(zip(features, row, strict=True)) for row in zip(*data.values(), strict=True)]
    return TrainingData(rows, values(prediction) if prediction else None, values(score) if score else None,
                        features, path.name, digest)


def onboard(settings: Settings, model: str, path: str | Path, *, prediction: str | None = None,
            score: str | None = None, label: str | None = None, ignore: Sequence[str] = (),
            version: str | None = None, client: redis.Redis | None = None) -> Onboarded:
    """Build ``model``'s reference from a training file and hand it to the stream (see the module doc)."""
    check_model_name(model)
    data = read_training(path, prediction=prediction, score=score, label=label, ignore=ignore)
    client = client if client is not None else connect(settings.redis.url, settings.redis.cluster, socket_timeout=10)
    keys = Keys(settings.redis.key_prefix, settings.redis.cluster).for_model(model)  # one slot: one transaction
    try:
        _check_common_columns(settings, client, keys, model, data)
        reference = build_reference(data.rows, monitor_config(settings.monitor_for(model)), data.predictions,
                                    data.scores)
        origin = ReferenceOrigin(kind="training_file", version=version, file=data.file, sha256=data.sha256,
                                 rows=len(data.rows), at=time.time())
        adopted, reason = True, "the stream compares the model's next prediction on against it"
        if version is not None:
            adopted, reason = _attach_to_version(settings, model, version, reference, origin)
        tx = client.pipeline(transaction=True)
        if version is not None:
            tx.set(keys.reference(model, version), reference)
            tx.set(keys.reference_origin(model, version), encode_onboarding(origin))
        if adopted:
            tx.set(keys.onboarding(model), encode_onboarding(Onboarding(reference, origin)))
            tx.sadd(keys.models(), model)
        tx.execute()
        if adopted and keys.cluster:  # the index outside every shard (one node: the same set, written above)
            client.sadd(keys.all_models(), model)
    except redis.RedisError as exc:
        raise OnboardError(f"cannot store the reference in Redis at {settings.redis.url}: {exc}") from exc
    return Onboarded(model, data.file, data.sha256, len(data.rows), data.features, version, adopted, reason)


def _check_common_columns(settings: Settings, client: redis.Redis, keys: Keys, model: str,
                          data: TrainingData) -> None:
    """A model the stream already monitors must share at least one feature with the file."""
    blob: bytes | None = client.get(keys.state(model))  # type: ignore[assignment]
    if blob is None:
        return
    try:
        monitor = ModelMonitor.from_bytes(state_monitor(blob), snapshot_key(settings))
    except (SnapshotError, ValueError, msgspec.DecodeError):
        return  # the stream starts such a model over anyway
    known = set(monitor.reference.features) if monitor.reference is not None else {
        name for o in monitor.buffer for name in (o.features or {})}
    if known and not known & set(data.features):
        raise OnboardError(f"{data.file} has no column in common with the features the stream sees for {model} "
                           f"(file: {', '.join(data.features[:10])}; stream: {', '.join(sorted(known)[:10])})")


def _attach_to_version(settings: Settings, model: str, version: str, reference: bytes,
                       origin: ReferenceOrigin) -> tuple[bool, str]:
    """Tag the registered version and log the reference to its run; adopt it now only if it is the
    champion (or the model has none): attaching to an older version must not change what is served."""
    from mlflow.exceptions import MlflowException

    from retrain_worker.registry import CHAMPION, ModelRegistry, mlflow_errors

    registry = ModelRegistry(settings.mlflow.tracking_uri, settings.mlflow.experiment)
    registry.start()
    try:
        with mlflow_errors(f"read version {version} of {model}"):
            try:
                found = registry.client.get_model_version(model, version)
            except MlflowException as exc:
                if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND"):
                    raise OnboardError(f"{model} has no registered version {version!r} in MLflow at "
                                       f"{settings.mlflow.tracking_uri}") from exc
                raise
        registry.tag_version(model, version, {"reference_source": "training_file",
                                              "reference_file": origin.file or "",
                                              "reference_sha256": origin.sha256 or "",
                                              "reference_rows": str(origin.rows)})
        if found.run_id:
            with tempfile.TemporaryDirectory() as tmp, mlflow_errors("log the reference artifact"):
                target = Path(tmp) / REFERENCE_FILENAME
                target.write_bytes(reference)
                registry.client.log_artifact(found.run_id, str(target), artifact_path="reference")
        champion = registry.alias(model, CHAMPION)
    except OnboardError:
        raise
    except DriftwardenError as exc:
        raise OnboardError(str(exc)) from exc
    if champion is None or champion.version == version:
        return True, f"attached to version {version}, which the stream compares against from the next prediction on"
    return False, (f"attached to version {version}; the champion is version {champion.version}, so the stream "
                   f"adopts it when version {version} is promoted or rolled back to")
