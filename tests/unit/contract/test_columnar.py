"""The Arrow wire format: what the SDK writes decodes to the same events as JSON; bad payloads are
ContractErrors with the reason the dead letter carries."""

from __future__ import annotations

from unittest.mock import create_autospec

import pyarrow as pa
import pytest
from arrow_inputs import ipc, predictions
from confluent_kafka import Producer

from driftwarden.contract.columnar import decode_arrow, decode_message, encode_arrow
from driftwarden.contract.events import (
    ARROW_FORMAT,
    FORMAT_HEADER,
    ContractError,
    Label,
    Prediction,
    decode_batch,
    encode,
    wire_format,
)
from driftwarden.contract.settings import load_settings
from driftwarden.sdk.producer import DriftwardenProducer


def test_arrow_and_json_decode_to_the_same_events() -> None:
    events = predictions(50)
    assert decode_message(Prediction, encode_arrow(events), ARROW_FORMAT) == decode_batch(Prediction, encode(events))
    labels = [Label(event_id=f"e{i}", model="m", label="yes" if i % 2 else "no", timestamp="2024-05-01T00:00:00Z")
              for i in range(5)]
    assert decode_arrow(Label, encode_arrow(labels)) == labels


def test_producers_may_use_integers_dictionaries_and_arrow_timestamps() -> None:
    data = ipc({"event_id": pa.array(["a", "b"]).dictionary_encode(), "model": pa.array(["m", "m"]),
                "timestamp": pa.array([1_700_000_000_000_000, 1_700_000_001_000_000], pa.timestamp("us", tz="UTC")),
                "prediction": pa.array([1, 0], pa.int64()),
                "features": pa.StructArray.from_arrays([pa.array([3, 4], pa.int32())], names=["n"])})
    a, b = decode_arrow(Prediction, data)
    assert (a.timestamp, a.prediction, a.features, a.score, a.model_version) == (1_700_000_000.0, 1.0, {"n": 3.0},
                                                                               None, None)
    assert type(a.prediction) is float and type(a.features["n"]) is float and b.event_id == "b"


@pytest.mark.parametrize(("payload", "reason"), [
    (b"not arrow at all", "invalid_arrow"),
    (encode_arrow(predictions(3))[:-40], "invalid_arrow"),
    (ipc({"event_id": pa.array(["a"]), "model": pa.array(["m"]), "timestamp": pa.array([1.0]),
          "prediction": pa.array([1.0])}), "missing_field"),
    (ipc({"event_id": pa.array(["a", None]), "model": pa.array(["m", "m"]), "timestamp": pa.array([1.0, 2.0]),
          "prediction": pa.array([1.0, 2.0]),
          "features": pa.StructArray.from_arrays([pa.array([1.0, 2.0])], names=["x"])}), "missing_field"),
    (ipc({"event_id": pa.array(["a"]), "model": pa.array(["m"]), "timestamp": pa.array([1.0]),
          "prediction": pa.array([1.0]), "features": pa.array([[1.0]])}), "invalid_field"),
    (ipc({"event_id": pa.array(["a"]), "model": pa.array(["m"]), "timestamp": pa.array([1.0]),
          "prediction": pa.array([[1.0]]),
          "features": pa.StructArray.from_arrays([pa.array([1.0])], names=["x"])}), "invalid_field"),
    (ipc({"event_id": pa.array([""]), "model": pa.array(["m"]), "timestamp": pa.array([1.0]),
          "prediction": pa.array([1.0]),
          "features": pa.StructArray.from_arrays([pa.array([1.0])], names=["x"])}), "invalid_field"),
    (ipc({"event_id": pa.array(["a"]), "model": pa.array(["m"]), "timestamp": pa.array(["yesterday"]),
          "prediction": pa.array([1.0]),
          "features": pa.StructArray.from_arrays([pa.array([1.0])], names=["x"])}), "invalid_field"),
])
def test_a_bad_arrow_payload_is_a_contract_error_with_its_reason(payload: bytes, reason: str) -> None:
    with pytest.raises(ContractError) as caught:
        decode_message(Prediction, payload, ARROW_FORMAT)
    assert caught.value.reason == reason


def test_the_format_comes_from_the_header_and_unknown_ones_are_refused() -> None:
    assert wire_format(None) == "json" and wire_format([("other", b"x")]) == "json"
    assert wire_format([(FORMAT_HEADER, b"arrow")]) == "arrow" == wire_format({FORMAT_HEADER: b"arrow"})
    with pytest.raises(ContractError) as caught:
        decode_message(Prediction, b"{}", "avro")
    assert caught.value.reason == "unknown_format"


def test_the_sdk_sends_arrow_with_its_header_and_json_when_a_column_mixes_types() -> None:
    producer = create_autospec(Producer, instance=True)
    dw = DriftwardenProducer(load_settings(env={}), producer=producer, background=False, max_batch_size=3,
                             wire_format="arrow")
    for i in range(3):
        dw.log_prediction("m", {"x": float(i)}, 1, event_id=f"a{i}", timestamp=1.0 + i)
    for i, value in enumerate([1.0, "two", 3.0]):
        dw.log_prediction("m", {"x": value}, 1, event_id=f"b{i}", timestamp=1.0 + i)
    first, second = (c.kwargs for c in producer.produce.call_args_list)
    assert first["headers"] == [(FORMAT_HEADER, b"arrow")]
    assert [e.event_id for e in decode_arrow(Prediction, first["value"])] == ["a0", "a1", "a2"]
    assert second["headers"] is None
    assert [e.features["x"] for e in decode_batch(Prediction, second["value"])] == [1.0, "two", 3.0]
    with pytest.raises(ValueError, match="wire_format"):
        DriftwardenProducer(load_settings(env={}), producer=producer, background=False, wire_format="avro")
    dw.close()
