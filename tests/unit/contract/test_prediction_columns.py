"""Predictions as columns (``PredictionColumns``): what an Arrow message decodes to equals what its JSON twin gives,
row by row; per-column validation gives the JSON path's reasons; a message naming several models splits by model
keeping each model's order; parts of a batch concatenate (columns stay columns, mixed formats become rows)."""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pytest
from arrow_inputs import ipc, predictions

from driftwarden.contract.columnar import decode_prediction_columns, encode_arrow
from driftwarden.contract.events import ContractError, Prediction, decode_batch, encode, to_epoch
from driftwarden.contract.prediction_columns import PredictionColumns


def same(a: PredictionColumns, b: PredictionColumns) -> None:
    """Every column of two batches equal, row by row, features as mappings (None for missing)."""
    assert (a.model, a.event_ids, a.predictions, a.versions, a.scores, a.class_scores) == (
        b.model, b.event_ids, b.predictions, b.versions, b.scores, b.class_scores)
    assert a.timestamps.dtype == b.timestamps.dtype == np.float64
    assert a.timestamps.tolist() == b.timestamps.tolist()
    assert a.feature_rows(range(len(a))) == b.feature_rows(range(len(b)))


def test_an_arrow_message_gives_the_columns_its_json_twin_gives() -> None:
    events = predictions(50, per_second=3)
    arrow = decode_prediction_columns(encode_arrow(events))
    json = PredictionColumns.from_events("m", decode_batch(Prediction, encode(events)))
    same(arrow, json)
    assert arrow.rows is None and json.features is None  # Arrow stays columns: no mapping per row was made
    assert isinstance(arrow.features["x"], np.ndarray) and math.isnan(arrow.features["gap"][0])  # type: ignore[index]
    assert arrow.features["x"].flags.writeable and arrow.timestamps.flags.writeable  # type: ignore[index]
    assert arrow.features["plan"][:2] == ["free", "pro"]  # type: ignore[index]
    assert arrow.last_version() == "7" and arrow.events() == events
    for index in ([3, 1, 7], [5, 6, 7], [4], []):  # any rows, consecutive or not
        assert arrow.feature_rows(index) == json.feature_rows(index) == [events[i].features for i in index]


def test_a_message_of_several_models_splits_by_model_in_order() -> None:
    events = predictions(30, models=("a", "b", "c"), per_second=3)
    batch = decode_prediction_columns(encode_arrow(events))
    assert batch.events() == events  # the message's own order
    parts = batch.split()
    assert sorted(parts) == ["a", "b", "c"]
    for model, part in parts.items():
        mine = [e for e in events if e.model == model]
        same(part, PredictionColumns.from_events(model, mine))
        assert part.models is None


def test_parts_concatenate_as_columns_or_as_rows_when_formats_mix() -> None:
    events = predictions(40, per_second=3)
    first, second = (decode_prediction_columns(encode_arrow(events[i:i + 20])) for i in (0, 20))
    whole = PredictionColumns.concat([first, second])
    same(whole, PredictionColumns.from_events("m", events))
    assert whole.features is not None and isinstance(whole.features["x"], np.ndarray)
    mixed = PredictionColumns.concat([first, PredictionColumns.from_events("m", events[20:])])
    same(mixed, PredictionColumns.from_events("m", events))
    assert mixed.rows is not None  # the JSON part's mappings and the Arrow part's rows, in order


def test_iso_and_integer_timestamps_become_the_json_paths_epoch_seconds() -> None:
    stamps = ["2024-05-01T00:00:00Z", "2024-05-01T00:00:01.250+02:00", "2024-05-01 00:00:02"]
    feats = pa.StructArray.from_arrays([pa.array([1.0, 2.0, 3.0])], names=["x"])
    base = {"event_id": pa.array(["a", "b", "c"]), "model": pa.array(["m"] * 3),
            "prediction": pa.array([1, 0, 1], pa.int64()), "features": feats}
    iso = decode_prediction_columns(ipc({**base, "timestamp": pa.array(stamps)}))
    assert iso.timestamps.tolist() == [to_epoch(s) for s in stamps]
    ints = decode_prediction_columns(ipc({**base, "timestamp": pa.array([5, 6, 7], pa.int64())}))
    assert ints.timestamps.tolist() == [5.0, 6.0, 7.0] and ints.predictions == [1.0, 0.0, 1.0]


@pytest.mark.parametrize(("column", "values", "detail"), [
    ("model", ["m", ""], "model must not be empty"),
    ("event_id", ["a", ""], "event_id must not be empty"),
    ("timestamp", [1.0, math.nan], "timestamp is not finite: nan"),
    ("timestamp", [1.0, math.inf], "timestamp is not finite: inf"),
    ("timestamp", ["2024-05-01T00:00:00Z", "later"], "timestamp is not ISO-8601: 'later'"),
])
def test_per_column_checks_give_the_json_paths_reason(column: str, values: list[object], detail: str) -> None:
    columns = {"event_id": pa.array(["a", "b"]), "model": pa.array(["m", "m"]), "timestamp": pa.array([1.0, 2.0]),
               "prediction": pa.array([1.0, 0.0]),
               "features": pa.StructArray.from_arrays([pa.array([1.0, 2.0])], names=["x"])}
    columns[column] = pa.array(values)
    with pytest.raises(ContractError) as caught:
        decode_prediction_columns(ipc(columns))
    assert (caught.value.reason, caught.value.detail) == ("invalid_field", detail)
    # the JSON twin of the same rows is refused for the same reason
    rows = [{"event_id": e, "model": m, "timestamp": t, "features": {"x": 1.0}, "prediction": 1.0}
            for e, m, t in zip(columns["event_id"].to_pylist(), columns["model"].to_pylist(),
                               columns["timestamp"].to_pylist(), strict=True)]
    with pytest.raises(ContractError) as twin:
        decode_batch(Prediction, encode(rows))  # type: ignore[arg-type]
    assert twin.value.reason == "invalid_field"


def test_per_class_scores_are_checked_per_row() -> None:
    scores = pa.array([[("a", 0.7), ("b", 0.3)], [("a", 0.7), ("b", 0.7)]], pa.map_(pa.string(), pa.float64()))
    columns = {"event_id": pa.array(["e0", "e1"]), "model": pa.array(["m", "m"]), "timestamp": pa.array([1.0, 2.0]),
               "prediction": pa.array(["a", "b"]), "scores": scores,
               "features": pa.StructArray.from_arrays([pa.array([1.0, 2.0])], names=["x"])}
    with pytest.raises(ContractError) as caught:
        decode_prediction_columns(ipc(columns))
    assert caught.value.reason == "invalid_scores"
    columns["scores"] = pa.array([[("a", 0.7), ("b", 0.3)], None], pa.map_(pa.string(), pa.float64()))
    assert decode_prediction_columns(ipc(columns)).class_scores == [{"a": 0.7, "b": 0.3}, None]
