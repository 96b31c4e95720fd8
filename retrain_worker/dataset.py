"""The training data: the joined samples the stream keeps in Redis, in time order, split, fingerprinted.

The newest ``holdout_fraction`` of the samples (by prediction time) is the holdout, so both the
challenger and the champion are judged on the most recent behaviour. The SHA-256 covers the exact
bytes of the samples used, in the order used: the same data always gives the same fingerprint.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

import msgspec
import numpy as np
import pandas as pd

from detectors.task import TASKS, Task, infer_task, resolve_task
from driftwarden.contract.storage import JoinedSample, decode_sample
from retrain_worker.exceptions import InvalidRetrainConfig, NotEnoughSamples, SingleClassHoldout

__all__ = ["Dataset", "Sample", "Task", "build_dataset", "feature_frame", "infer_task", "parse_samples"]


Sample = JoinedSample  # one joined (prediction, label) pair, as the stream writes it


@dataclass(frozen=True)
class Dataset:
    """Train and holdout frames plus the lineage of the data they came from."""

    model: str
    task: Task
    x_train: pd.DataFrame
    y_train: pd.Series
    x_holdout: pd.DataFrame
    y_holdout: pd.Series
    numeric: tuple[str, ...]
    categorical: tuple[str, ...]
    sha256: str
    start: float  # timestamp of the oldest sample used
    end: float  # timestamp of the newest sample used
    skipped: int  # entries that were not valid samples

    @property
    def n_samples(self) -> int:
        return len(self.x_train) + len(self.x_holdout)

    def train_rows(self) -> list[dict[str, Any]]:
        """The training features as one dict per row (missing values as None), for reference building."""
        frame = self.x_train.astype(object).where(self.x_train.notna(), None)
        return cast(list[dict[str, Any]], frame.to_dict(orient="records"))


def parse_samples(raw: Sequence[bytes]) -> tuple[list[tuple[Sample, bytes]], int]:
    """Decode the Redis entries; returns the valid (sample, raw bytes) pairs and how many were not."""
    parsed: list[tuple[Sample, bytes]] = []
    skipped = 0
    for entry in raw:
        try:
            sample = decode_sample(entry)
        except msgspec.DecodeError:
            skipped += 1
            continue
        if not math.isfinite(sample.timestamp):
            skipped += 1
            continue
        parsed.append((sample, entry))
    return parsed, skipped


def _labels(values: list[float | str | bool], task: Task) -> pd.Series:
    if task == "regression":
        try:
            return pd.Series([float(v) for v in values], dtype="float64", name="label")
        except (TypeError, ValueError) as exc:
            raise InvalidRetrainConfig(f"task is regression but a label is not a number: {exc}") from exc
    if all(isinstance(v, bool) for v in values):
        return pd.Series([int(v) for v in values], dtype="int64", name="label")
    if all(isinstance(v, int | float) and not isinstance(v, bool) and float(v).is_integer() for v in values):
        return pd.Series([int(v) for v in values], dtype="int64", name="label")
    return pd.Series([str(v) for v in values], dtype=object, name="label")


FeatureRow = dict[str, float | str | bool | None]


def feature_frame(rows: Sequence[FeatureRow]) -> tuple[pd.DataFrame, tuple[str, ...], tuple[str, ...]]:
    """A frame with one column per feature: numeric columns as float64 (NaN when missing), any column
    holding a string or a boolean as categorical strings (NaN when missing)."""
    names = sorted({name for row in rows for name in row})
    numeric: list[str] = []
    categorical: list[str] = []
    columns: dict[str, pd.Series] = {}
    for name in names:
        values = [row.get(name) for row in rows]
        present = [v for v in values if v is not None]
        if present and all(isinstance(v, int | float) and not isinstance(v, bool) for v in present):
            numeric.append(name)
            columns[name] = pd.Series([np.nan if v is None else float(v) for v in values], dtype="float64")
        else:
            categorical.append(name)
            columns[name] = pd.Series([np.nan if v is None else str(v) for v in values], dtype=object)
    return pd.DataFrame(columns), tuple(numeric), tuple(categorical)


def build_dataset(model: str, raw: Sequence[bytes], *, min_samples: int, holdout_fraction: float,
                  task: str = "auto", max_samples: int = 0) -> Dataset:
    """Parse, order by time, keep the newest ``max_samples``, split off the newest part as the holdout."""
    if not 0 < holdout_fraction < 1:
        raise InvalidRetrainConfig(f"holdout_fraction must be in (0, 1), got {holdout_fraction}")
    if task not in TASKS:
        raise InvalidRetrainConfig(f"task must be auto, classification or regression, got {task!r}")
    parsed, skipped = parse_samples(raw)
    parsed.sort(key=lambda pair: pair[0].timestamp)  # stable: equal timestamps keep the list order
    if max_samples > 0:
        parsed = parsed[-max_samples:]
    if len(parsed) < max(min_samples, 2):
        raise NotEnoughSamples(f"{model}: {len(parsed)} labelled samples, {min_samples} needed"
                               + (f" ({skipped} invalid entries skipped)" if skipped else ""))
    samples = [s for s, _ in parsed]
    labels = [s.label for s in samples]
    resolved = resolve_task(task, labels)  # detectors.task: the stream's rule, so both agree on a model
    x, numeric, categorical = feature_frame([s.features for s in samples])
    y = _labels(labels, resolved)
    n_holdout = max(1, math.ceil(len(samples) * holdout_fraction))
    cut = len(samples) - n_holdout
    x_train, x_holdout = x.iloc[:cut].reset_index(drop=True), x.iloc[cut:].reset_index(drop=True)
    y_train, y_holdout = y.iloc[:cut].reset_index(drop=True), y.iloc[cut:].reset_index(drop=True)
    if resolved == "classification":
        if y_holdout.nunique() < 2:
            raise SingleClassHoldout(f"{model}: every holdout label is {y_holdout.iloc[0]!r}; "
                                     "no classifier can be compared on it")
        if y_train.nunique() < 2:
            raise SingleClassHoldout(f"{model}: every training label is {y_train.iloc[0]!r}",
                                     reason="single_class_training")
    digest = hashlib.sha256(b"\n".join(entry for _, entry in parsed)).hexdigest()
    return Dataset(model, resolved, x_train, y_train, x_holdout, y_holdout, numeric, categorical, digest,
                   samples[0].timestamp, samples[-1].timestamp, skipped)
