"""Trainers: ``fn(dataset, params) -> fitted model`` with ``predict`` (and ``predict_proba`` for
classifiers). Which one runs is configuration (``retrain.trainer: package.module:function``)."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from retrain_worker.dataset import Dataset
from retrain_worker.exceptions import InvalidRetrainConfig

Trainer = Callable[[Dataset, Mapping[str, Any]], Any]


def load_trainer(spec: str) -> Trainer:
    """Resolve ``package.module:function``; a bad spec is a configuration error, reported at once."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise InvalidRetrainConfig(f"trainer must be 'package.module:function', got {spec!r}")
    try:
        fn = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise InvalidRetrainConfig(f"trainer {spec!r} cannot be loaded: {exc}") from exc
    if not callable(fn):
        raise InvalidRetrainConfig(f"trainer {spec!r} is not callable")
    return fn  # type: ignore[no-any-return]


def preprocessor(numeric: tuple[str, ...], categorical: tuple[str, ...]) -> ColumnTransformer:
    """Numeric columns: median-imputed and scaled; categorical: imputed as 'missing' and one-hot encoded
    (categories unseen in training encode as all zeros)."""
    return ColumnTransformer([
        ("numeric", Pipeline([("impute", SimpleImputer(strategy="median", keep_empty_features=True)),
                              ("scale", StandardScaler())]), list(numeric)),
        ("categorical", Pipeline([
            ("impute", SimpleImputer(strategy="constant", fill_value="missing", keep_empty_features=True)),
            ("onehot", OneHotEncoder(handle_unknown="ignore", min_frequency=5, sparse_output=False)),
        ]), list(categorical)),
    ], remainder="drop")


def train_default(dataset: Dataset, params: Mapping[str, Any]) -> Pipeline:
    """The default trainer: preprocessing plus gradient-boosted trees (``estimator: boosting``) or a
    linear model (``estimator: linear``). Other params go to the estimator."""
    options = dict(params)
    kind = options.pop("estimator", "boosting")
    estimator: Any
    if kind == "boosting":
        options.setdefault("random_state", 0)
        estimator = (HistGradientBoostingClassifier(**options) if dataset.task == "classification"
                     else HistGradientBoostingRegressor(**options))
    elif kind == "linear":
        estimator = (LogisticRegression(max_iter=1000, **options) if dataset.task == "classification"
                     else Ridge(**options))
    else:
        raise InvalidRetrainConfig(f"trainer_params.estimator must be boosting or linear, got {kind!r}")
    pipeline = Pipeline([("features", preprocessor(dataset.numeric, dataset.categorical)),
                         ("model", estimator)])
    return pipeline.fit(dataset.x_train, dataset.y_train)
