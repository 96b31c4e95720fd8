"""The stream's JSON predictions once their key's feature schema is learned: every bad input is the dead letter it
was before, and a good message is the same predictions."""

from __future__ import annotations

from itertools import count

import msgspec
import pytest
from stream_inputs import bad_inputs, pred

from driftwarden.contract.events import Prediction, encode
from driftwarden.contract.feature_schema import as_mapping
from driftwarden.contract.prediction_columns import PredictionColumns
from driftwarden.contract.settings import load_settings
from stream.decoding import COLUMNS_FROM, decode_record
from stream.records import RawRecord

SETTINGS = msgspec.structs.replace(
    load_settings(env={}), stream=msgspec.structs.replace(load_settings(env={}).stream, max_message_bytes=2_000))
TOPIC = SETTINGS.kafka.topics.predictions
_keys = count()


def record(value: bytes | None, key: bytes | None) -> RawRecord:
    return RawRecord(TOPIC, 0, 0, key, value)


def plain(preds: list[Prediction]) -> list[Prediction]:
    """The contract's structs of decoded predictions (a schema's struct has its fields, its features a struct)."""
    return [Prediction(p.event_id, p.model, p.timestamp, as_mapping(p.features), p.prediction, p.model_version,
                       p.score, p.scores) for p in preds]


def primed(models: tuple[str, ...] = ("known",)) -> bytes:
    """A key whose schema (feature ``x``, a number; ``models``) the stream has learned from a good message."""
    key = b"primed-%d" % next(_keys)
    for _ in range(2):  # a key gets its schema from its second message
        first = decode_record(record(encode([pred(m, i, 1.0) for i, m in enumerate(models)]), key), SETTINGS)
        assert first.error is None and type(first.predictions[0]) is Prediction
    again = decode_record(record(encode([pred(models[0], 2, 3.0)]), key), SETTINGS)
    assert type(again.predictions[0]) is not Prediction  # decoded against the learned schema
    return key


def sound_but_wrong() -> dict[str, bytes]:
    """Messages that fit the schema's types but break the contract's other checks (the first bad row decides)."""
    def one(**fields: object) -> bytes:
        base = {"event_id": "e", "model": "known", "timestamp": 1.0, "features": {"x": 1.0}, "prediction": 1}
        return msgspec.json.encode([base, {**base, "event_id": "f", **fields}])
    return {
        "empty_id": one(event_id=""),
        "empty_model": one(model=""),
        "bad_time": one(timestamp="yesterday"),
        "bad_scores": one(scores={"0": 0.2, "1": 0.2}),
        "not_a_class": one(scores={"0": 0.5, "1": 0.5}, prediction=2),
        "bool_feature": one(features={"x": True}),
        "missing_feature": one(features={}),
    }


@pytest.mark.parametrize("case", [*bad_inputs("known"), *sound_but_wrong()])
def test_bad_input_gives_the_same_reason_with_a_learned_schema(case: str) -> None:
    value = {**bad_inputs("known"), **sound_but_wrong()}[case]
    cold = decode_record(record(value, b"cold-%d" % next(_keys)), SETTINGS)
    warm = decode_record(record(value, primed()), SETTINGS)
    if cold.error is None:  # valid, only not of the schema: decoded the contract's way
        assert warm.error is None and plain(warm.predictions) == cold.predictions
        return
    assert warm.error is not None
    assert (warm.error.reason, warm.error.detail) == (cold.error.reason, cold.error.detail)


def test_a_good_message_is_the_same_predictions_with_a_learned_schema() -> None:
    preds = [pred("known", i, 10.0 + i, x=float(i)) for i in range(5)]
    cold = decode_record(record(encode(preds), b"cold-%d" % next(_keys)), SETTINGS)
    warm = decode_record(record(encode(preds), primed()), SETTINGS)
    assert cold.predictions == plain(warm.predictions) == preds and cold.counts() == warm.counts() == {"known": 5}
    from_warm = PredictionColumns.from_events("known", warm.predictions)
    assert from_warm.events() == PredictionColumns.from_events("known", cold.predictions).events() == preds


def test_a_long_message_becomes_one_batch_of_columns_per_model_in_its_order() -> None:
    n = COLUMNS_FROM + 10
    preds = [pred(["a", "b"][i % 3 == 0], i, 10.0 + i, x=float(i)) for i in range(n)]
    roomy = load_settings(env={})
    cold = decode_record(record(encode(preds), b"cold-%d" % next(_keys)), roomy)
    warm = decode_record(record(encode(preds), primed(("a", "b"))), roomy)
    assert cold.columns == [] and len(cold.predictions) == n
    assert warm.predictions == [] and [c.model for c in warm.columns] == ["b", "a"]
    assert warm.counts() == cold.counts() == {"a": n - len(preds[::3]), "b": len(preds[::3])}
    for c in warm.columns:
        assert c.features is not None and c.rows is None
        assert c.events() == [p for p in preds if p.model == c.model]


def test_a_key_shared_by_two_feature_sets_decodes_both_against_their_schemas() -> None:
    key = b"shared-%d" % next(_keys)
    xs = encode([pred("known", i, 1.0 + i, x=float(i)) for i in range(3)])
    ys = encode([Prediction(f"y-{i}", "known", 1.0 + i, {"y": "a"}, 0, "1") for i in range(3)])
    for value in (xs, xs, ys, ys):  # each feature set's second message teaches its schema
        decode_record(record(value, key), SETTINGS)
    for value in (xs, ys):
        warm = decode_record(record(value, key), SETTINGS)
        assert warm.error is None and type(warm.predictions[0]) is not Prediction
        assert plain(warm.predictions) == decode_record(record(value, b"cold-%d" % next(_keys)), SETTINGS).predictions
