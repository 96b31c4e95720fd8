"""A multiclass model's per-class scores (``Prediction.scores``): what the SDK sends decodes the same from JSON and
Arrow, and bad scores are a ContractError with the reason its dead letter carries."""

from __future__ import annotations

import math
from typing import Any
from unittest.mock import create_autospec

import numpy as np
import pyarrow as pa
import pytest
from confluent_kafka import Producer
from sklearn.linear_model import LogisticRegression

from driftwarden.contract.columnar import decode_arrow, encode_arrow
from driftwarden.contract.events import ContractError, Prediction, decode_batch, encode
from driftwarden.contract.settings import load_settings
from driftwarden.sdk.producer import DriftwardenProducer


def prediction(scores: dict[str, float], predicted: object = "b") -> Prediction:
    return Prediction(event_id="e1", model="m", timestamp=1.0, features={"x": 1.0},
                      prediction=predicted, scores=scores)  # type: ignore[arg-type]


def test_scikit_learns_predict_proba_is_sent_as_is_and_decodes_the_same_from_json_and_arrow() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 2))
    y = np.digitize(x[:, 0], [-0.5, 0.5])  # three int classes: numpy ints as class names
    model = LogisticRegression().fit(x, y)
    producer = create_autospec(Producer, instance=True)
    for fmt in ("json", "arrow"):
        dw = DriftwardenProducer(load_settings(env={}), producer=producer, background=False, max_batch_size=4,
                                 wire_format=fmt)
        proba, predicted = model.predict_proba(x[:4]), model.predict(x[:4])
        for i in range(4):
            dw.log_prediction("m", {"a": x[i, 0], "b": x[i, 1]}, predicted[i], event_id=f"{fmt}{i}",
                              timestamp=1.0 + i, scores=dict(zip(model.classes_, proba[i], strict=True)))
        dw.close()
    json_call, arrow_call = (c.kwargs for c in producer.produce.call_args_list)
    from_json = decode_batch(Prediction, json_call["value"])
    from_arrow = decode_arrow(Prediction, arrow_call["value"])
    assert [p.scores for p in from_json] == [p.scores for p in from_arrow]
    assert list(from_json[0].scores or {}) == ["0", "1", "2"]
    assert sum((from_json[0].scores or {}).values()) == pytest.approx(1.0)
    # a binary model's Arrow batch has no scores column: its schema is what it was
    binary = encode_arrow([Prediction(event_id="b", model="m", timestamp=1.0, features={}, prediction=1.0,
                                      score=0.7)])
    assert "scores" not in pa.ipc.open_stream(binary).schema.names


@pytest.mark.parametrize(("scores", "predicted", "match"), [
    ({"a": 0.5, "b": 0.6}, "b", "sum to 1.1"),
    ({"a": 0.2, "c": 0.8}, "b", "not one of the scores' classes"),
    ({"a": math.nan, "b": 1.0}, "b", "score of class 'a' is nan"),
    ({"a": -0.1, "b": 1.1}, "b", "expected 0 to 1"),
    ({"b": 1.0}, "b", "at least two classes"),
    ({"1": 0.5, "1.0": 0.5}, 1, "name a class twice"),
])
def test_bad_scores_are_a_contract_error(scores: dict[str, float], predicted: object, match: str) -> None:
    with pytest.raises(ContractError, match=match) as raised:
        # Arrow carries a NaN as it is (JSON has none), and both paths run the same checks
        decode_arrow(Prediction, encode_arrow([prediction(scores, predicted)]))
    assert raised.value.reason == "invalid_scores"
    dw = DriftwardenProducer(load_settings(env={}), producer=create_autospec(Producer, instance=True),
                             background=False)
    with pytest.raises(ContractError, match=match):
        dw.log_prediction("m", {"x": 1.0}, predicted, scores=scores)  # type: ignore[arg-type]
    dw.close()


def test_good_scores_pass_within_the_rounding_tolerance_and_numeric_classes_match_by_value() -> None:
    payload: Any = [prediction({"0": 0.333, "1": 0.333, "2": 0.333}, 2.0)]
    assert decode_batch(Prediction, encode(payload))[0].scores == {"0": 0.333, "1": 0.333, "2": 0.333}
    with pytest.raises(ContractError, match="scores sum"):
        decode_batch(Prediction, encode([prediction({"0": 0.3, "1": 0.3, "2": 0.3}, 2)]))
