"""Loading the joined samples: time order, holdout, fingerprint, failures; the default trainer and the
champion/challenger comparison on top of it (no services)."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

from retrain_worker.dataset import build_dataset, feature_frame, infer_task
from retrain_worker.evaluate import compare, resolve_metric, score
from retrain_worker.exceptions import InvalidRetrainConfig, NotEnoughSamples, SingleClassHoldout
from retrain_worker.trainer import load_trainer, train_default


def sample(i: int, label: object, ts: float | None = None, **features: object) -> bytes:
    feats = {"amount": float(i % 97), "channel": ["web", "app", "store"][i % 3]} | features
    return json.dumps({"event_id": f"e{i}", "timestamp": 1000.0 + i if ts is None else ts,
                       "features": feats, "prediction": 0, "label": label, "model_version": "1"}).encode()


def rows(n: int) -> list[bytes]:
    return [sample(i, int((i * 7) % 5 < 2)) for i in range(n)]


def test_holdout_is_the_newest_fifth_whatever_the_list_order() -> None:
    raw = rows(100)
    shuffled = raw[:]
    random.Random(3).shuffle(shuffled)
    ds = build_dataset("m", shuffled, min_samples=50, holdout_fraction=0.2)
    assert (len(ds.x_train), len(ds.x_holdout), ds.n_samples) == (80, 20, 100)
    # row i has amount i % 97: the holdout is samples 80..99 in time order
    assert ds.x_holdout["amount"].tolist() == [float(i % 97) for i in range(80, 100)]
    assert (ds.start, ds.end) == (1000.0, 1099.0)
    assert ds.sha256 == build_dataset("m", raw, min_samples=50, holdout_fraction=0.2).sha256


def test_fingerprint_changes_with_the_data() -> None:
    raw = rows(60)
    base = build_dataset("m", raw, min_samples=10, holdout_fraction=0.2).sha256
    changed = raw[:10] + [sample(10, 1 - json.loads(raw[10])["label"])] + raw[11:]
    assert build_dataset("m", changed, min_samples=10, holdout_fraction=0.2).sha256 != base
    assert len(base) == 64


def test_max_samples_keeps_the_newest() -> None:
    ds = build_dataset("m", rows(200), min_samples=10, holdout_fraction=0.25, max_samples=100)
    assert ds.n_samples == 100
    assert ds.start == 1100.0


def test_too_few_samples_counts_invalid_entries_out() -> None:
    raw = rows(40) + [b"{not json", json.dumps({"event_id": "x"}).encode()]
    with pytest.raises(NotEnoughSamples, match="40 labelled samples, 50 needed .2 invalid") as info:
        build_dataset("m", raw, min_samples=50, holdout_fraction=0.2)
    assert info.value.reason == "too_few_samples"
    assert build_dataset("m", raw, min_samples=40, holdout_fraction=0.2).skipped == 2


def test_single_class_holdout_is_refused() -> None:
    raw = [sample(i, int(i % 2 == 0) if i < 80 else 0) for i in range(100)]
    with pytest.raises(SingleClassHoldout) as info:
        build_dataset("m", raw, min_samples=10, holdout_fraction=0.2)
    assert info.value.reason == "single_class_holdout"
    regression = build_dataset("m", raw, min_samples=10, holdout_fraction=0.2, task="regression")
    assert regression.task == "regression"


def test_task_inference() -> None:
    assert infer_task([0, 1, 1, 0]) == "classification"
    assert infer_task(["cat", "dog"]) == "classification"
    assert infer_task([True, False]) == "classification"
    assert infer_task([0.5, 1.25, 3.0]) == "regression"
    assert infer_task(list(range(50))) == "regression"
    with pytest.raises(InvalidRetrainConfig):
        build_dataset("m", rows(20), min_samples=10, holdout_fraction=1.5)


def test_feature_frame_types_and_missing_values() -> None:
    frame, numeric, categorical = feature_frame([
        {"amount": 1, "age": None, "vip": True, "country": "fr"},
        {"amount": 2.5, "age": 30, "vip": False},
        {"amount": None, "age": 40, "vip": None, "country": None},
    ])
    assert numeric == ("age", "amount")
    assert categorical == ("country", "vip")
    assert frame["amount"].isna().tolist() == [False, False, True]
    assert frame["vip"].tolist()[:2] == ["True", "False"]
    assert frame["country"].isna().tolist() == [False, True, True]


def test_default_trainer_learns_categorical_rules_with_missing_values() -> None:
    rng = np.random.default_rng(0)
    raw = []
    for i in range(600):
        channel = str(rng.choice(["web", "app", "store"]))
        amount = None if rng.random() < 0.1 else float(rng.uniform(0, 100))
        label = int(channel == "app" and (amount or 0) > 50)
        raw.append(sample(i, label, amount=amount, channel=channel, country=None if i % 4 else "fr"))
    ds = build_dataset("m", raw, min_samples=100, holdout_fraction=0.2)
    model = train_default(ds, {})
    scores = score(model, ds.x_holdout, ds.y_holdout, ds.task)
    assert scores["accuracy"] > 0.9
    assert set(scores) == {"accuracy", "f1", "roc_auc"}
    majority = max(ds.y_holdout.mean(), 1 - ds.y_holdout.mean())
    assert scores["accuracy"] > majority + 0.05


def test_default_trainer_regression() -> None:
    raw = [sample(i, 3.0 * (i % 97) + (5.0 if i % 3 == 1 else 0.0) + 0.01 * (i % 7)) for i in range(400)]
    ds = build_dataset("m", raw, min_samples=100, holdout_fraction=0.2)
    assert ds.task == "regression"
    scores = score(train_default(ds, {"estimator": "linear"}), ds.x_holdout, ds.y_holdout, ds.task)
    assert scores["rmse"] < 1.0 and scores["r2"] > 0.99
    assert resolve_metric("accuracy", "regression") == "rmse"
    with pytest.raises(InvalidRetrainConfig):
        resolve_metric("logloss", "classification")


def test_compare_honours_direction_and_margin() -> None:
    assert compare("accuracy", 0.8, None, 0.05).promote
    assert compare("accuracy", 0.86, 0.8, 0.05).promote
    assert not compare("accuracy", 0.84, 0.8, 0.05).promote
    assert not compare("accuracy", 0.8, 0.8, 0.0).promote  # a tie keeps the champion
    assert compare("rmse", 1.0, 1.5, 0.1).promote
    assert not compare("rmse", 1.5, 1.0, 0.0).promote
    assert compare("accuracy", 0.5, 0.9, 0).reason.startswith("challenger_not_better")


def test_load_trainer_reports_bad_specs() -> None:
    assert load_trainer("retrain_worker.trainer:train_default") is train_default
    for spec in ("retrain_worker.trainer", "no.such.module:fn", "retrain_worker.trainer:nope"):
        with pytest.raises(InvalidRetrainConfig):
            load_trainer(spec)
