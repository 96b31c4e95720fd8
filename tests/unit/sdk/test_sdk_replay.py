"""Replay's file parsing, id assignment and pacing, through the SDK with an autospec'd Producer."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from unittest.mock import create_autospec

import pytest
from confluent_kafka import Producer

from driftwarden.contract.events import ContractError, Label, Prediction, decode_batch
from driftwarden.contract.settings import Settings
from driftwarden.sdk.producer import DriftwardenProducer
from driftwarden.sdk.replay import ReplayRow, detect_format, read_rows, replay

CSV = """event_id,model,timestamp,prediction,score,label,age,plan,churned_before
e1,churn,1700000000,1,0.9,1,41,pro,true
e2,churn,2024-05-01T10:00:00Z,0,0.2,,,free,false
e3,churn,1700000002,yes,,no,29.5,,
"""


@pytest.fixture
def kafka() -> Any:
    producer = create_autospec(Producer, instance=True)
    producer.flush.return_value = 0
    return producer


def events(kafka: Any, topic: str, kind: type[Prediction] | type[Label]) -> list[Any]:
    return [e for c in kafka.produce.call_args_list if c.args[0] == topic
            for e in decode_batch(kind, c.kwargs["value"])]


def sdk(kafka: Any) -> DriftwardenProducer:
    return DriftwardenProducer(Settings(), producer=kafka, background=False, linger_s=60)


def test_csv_cells_are_typed_and_extra_columns_are_features(tmp_path: Path) -> None:
    path = tmp_path / "h.csv"
    path.write_text(CSV)
    rows = list(read_rows(path))
    assert all(isinstance(r, ReplayRow) for r in rows)
    assert [r.line for r in rows] == [2, 3, 4]  # type: ignore[union-attr]
    first, second, third = rows
    assert first == ReplayRow(line=2, event_id="e1", model="churn", timestamp=1_700_000_000.0,
                              features={"age": 41.0, "plan": "pro", "churned_before": True},
                              prediction=1.0, score=0.9, label=1.0)
    assert second.timestamp == "2024-05-01T10:00:00Z"  # type: ignore[union-attr]
    assert second.features == {"age": None, "plan": "free", "churned_before": False}  # type: ignore[union-attr]
    assert second.label is None  # type: ignore[union-attr]
    assert (third.prediction, third.score, third.label) == ("yes", None, "no")  # type: ignore[union-attr]


def test_bad_csv_rows_become_errors_with_their_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("model,prediction,score,x\nm,1,0.5,1\nm,,0.5,1\nm,1,high,1\nm,1,0.5,1,extra\nm,0,0.1,2\n")
    rows = list(read_rows(path))
    assert [type(r).__name__ for r in rows] == ["ReplayRow", "ContractError", "ContractError",
                                                "ContractError", "ReplayRow"]
    assert [str(r.detail).split(":")[0] for r in rows if isinstance(r, ContractError)] == [
        "line 3", "line 4", "line 5"]


def test_a_csv_without_a_prediction_column_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "np.csv"
    path.write_text("model,x\nm,1\n")
    with pytest.raises(ContractError, match="prediction"):
        list(read_rows(path))


def test_format_comes_from_the_extension(tmp_path: Path) -> None:
    assert detect_format(Path("a.CSV")) == "csv"
    assert detect_format(Path("a.ndjson")) == "jsonl"
    assert detect_format(Path("a.txt"), "jsonl") == "jsonl"
    with pytest.raises(ValueError):
        detect_format(Path("a.txt"))


def test_csv_replay_sends_predictions_and_their_labels(tmp_path: Path, kafka: Any) -> None:
    path = tmp_path / "h.csv"
    path.write_text(CSV)
    dw = sdk(kafka)
    result = replay(path, dw)
    dw.flush()

    assert (result.predictions, result.labels, result.skipped) == (3, 2, 0)
    assert result.bytes_read == len(CSV.encode())
    preds = events(kafka, "predictions", Prediction)
    assert [p.event_id for p in preds] == ["e1", "e2", "e3"]
    assert preds[0].features == {"age": 41.0, "plan": "pro", "churned_before": True}
    labels = events(kafka, "labels", Label)
    assert [(lab.event_id, lab.label, lab.timestamp) for lab in labels] == [
        ("e1", 1.0, 1_700_000_000.0), ("e3", "no", 1_700_000_002.0)]


def test_missing_ids_are_deterministic_and_model_can_be_given(tmp_path: Path, kafka: Any) -> None:
    path = tmp_path / "noid.csv"
    path.write_text("timestamp,prediction,label,x\n1,1,1,0.5\n2,0,,0.7\n")
    orphan = sdk(kafka)
    result = replay(path, orphan)  # no model column and no --model: every row is skipped
    orphan.flush()
    assert (result.events, result.skipped) == (0, 2)
    assert "--model" in result.errors[0]
    assert not kafka.produce.called

    first = sdk(kafka)
    replay(path, first, model="fraud")
    first.flush()
    second = sdk(kafka)
    replay(path, second, model="fraud")
    second.flush()
    preds = events(kafka, "predictions", Prediction)
    assert len(preds) == 4 and {p.model for p in preds} == {"fraud"}
    assert [p.event_id for p in preds[:2]] == [p.event_id for p in preds[2:]]
    assert preds[0].event_id != preds[1].event_id
    assert [lab.event_id for lab in events(kafka, "labels", Label)] == [preds[0].event_id] * 2


def test_jsonl_takes_predictions_with_labels_and_bare_labels(tmp_path: Path, kafka: Any) -> None:
    lines = [
        {"event_id": "a", "model": "m", "timestamp": 1.0, "features": {"x": 1}, "prediction": 1, "label": 0},
        {"event_id": "b", "model": "m", "timestamp": 2.0, "features": {"x": 2}, "prediction": 0},
        {"event_id": "b", "model": "m", "timestamp": 9.0, "label": 1},
        {"event_id": "c", "model": "m", "timestamp": 3.0, "features": {"x": [1]}, "prediction": 0},
        {"model": "m", "timestamp": 3.0},
    ]
    path = tmp_path / "h.jsonl"
    path.write_text("\n".join(json.dumps(obj) for obj in lines) + "\n\n{not json\n")
    dw = sdk(kafka)
    result = replay(path, dw)
    dw.flush()

    assert (result.predictions, result.labels, result.skipped) == (2, 2, 3)
    assert [e.split(":")[0] for e in result.errors] == ["line 4", "line 5", "line 7"]
    assert [p.event_id for p in events(kafka, "predictions", Prediction)] == ["a", "b"]
    assert [(lab.event_id, lab.label, lab.timestamp) for lab in events(kafka, "labels", Label)] == [
        ("a", 0, 1.0), ("b", 1, 9.0)]


def test_rate_paces_events_against_the_start(tmp_path: Path, kafka: Any) -> None:
    path = tmp_path / "r.csv"
    path.write_text("model,prediction,label\n" + "m,1,1\n" * 10)  # 20 events
    now = [0.0]
    slept: list[float] = []

    def sleep(s: float) -> None:
        slept.append(s)
        now[0] += s

    result = replay(path, sdk(kafka), rate=5.0, clock=lambda: now[0], sleep=sleep)
    assert result.events == 20
    assert now[0] == pytest.approx(4.0)  # 20 events at 5/s
    assert len(slept) == 10
    with pytest.raises(ValueError):
        replay(path, sdk(kafka), rate=0)


def test_jsonl_carries_per_class_scores_and_skips_bad_ones(tmp_path: Path, kafka: Any) -> None:
    lines = [
        {"event_id": "a", "model": "m", "timestamp": 1.0, "features": {"x": 1}, "prediction": "dog",
         "scores": {"cat": 0.1, "dog": 0.7, "fox": 0.2}},
        {"event_id": "b", "model": "m", "timestamp": 2.0, "features": {"x": 2}, "prediction": "dog",
         "scores": {"cat": 0.5, "dog": 0.7}},
    ]
    path = tmp_path / "h.jsonl"
    path.write_text("\n".join(json.dumps(obj) for obj in lines) + "\n")
    dw = sdk(kafka)
    result = replay(path, dw)
    dw.flush()
    assert (result.predictions, result.skipped) == (1, 1)
    assert result.errors[0].startswith("line 2") and "invalid_scores" in result.errors[0]
    assert [p.scores for p in events(kafka, "predictions", Prediction)] == [{"cat": 0.1, "dog": 0.7, "fox": 0.2}]
