"""JSON predictions decoded against their features' schema: the same predictions as the contract's decoding, or a
refusal that sends the message back to it; their features as columns."""

from __future__ import annotations

import msgspec
import numpy as np
import pytest

from driftwarden.contract.events import Prediction, decode_batch, encode
from driftwarden.contract.feature_schema import (
    ANY,
    COLUMN_CHUNK,
    MAX_LITERALS,
    NUMBER,
    FeatureSchema,
    SchemaCache,
    as_mapping,
)
from driftwarden.contract.prediction_columns import PredictionColumns

FIELDS = ("event_id", "model", "timestamp", "prediction", "model_version", "score", "scores")


def row(i: int, **features: object) -> dict[str, object]:
    return {"event_id": f"e-{i}", "model": "m", "timestamp": 1_000.0 + i, "prediction": i % 2, "score": 0.5,
            "features": features}


def learned(rows: list[dict[str, object]]) -> FeatureSchema:
    schema = FeatureSchema.of(decode_batch(Prediction, msgspec.json.encode(rows)))
    assert schema is not None
    return schema


def assert_same(schema: FeatureSchema, data: bytes) -> None:
    got, want = schema.decode(data), decode_batch(Prediction, data)
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        assert all(getattr(g, f) == getattr(w, f) for f in FIELDS)
        features = as_mapping(g.features)
        assert features == w.features and {k: type(v) for k, v in features.items()} == {
            k: type(v) for k, v in w.features.items()}


def test_a_message_decoded_with_its_schema_equals_the_contracts_decoding() -> None:
    names = {"x": 1.5, "n": None, "": 2.0, "a b é": "cat", "flag": True}
    schema = learned([row(0, **names), row(1, **{**names, "n": 3.0, "a b é": "dog"})])
    assert schema.numeric == (True, True, True, False, False)
    assert schema.kinds[3] == frozenset({"cat", "dog"}) and schema.models == frozenset({"m"})
    # ints become floats, nulls stay, strings and bools in the features that had them, keys in any order
    assert_same(schema, msgspec.json.encode([row(2, flag=False, x=7, n=None, **{"": -0.0, "a b é": "dog"}),
                                             row(3, x=None, n=1e308, **{"": 1, "a b é": None, "flag": "yes"})]))
    # a category is one string object however many rows hold it
    rows = schema.decode(msgspec.json.encode([row(i, **names) for i in range(3)]))
    assert len({id(as_mapping(r.features)["a b é"]) for r in rows}) == 1
    # a duplicate key: the last one wins, as in a mapping
    assert_same(schema, b'{"event_id": "e", "model": "m", "timestamp": "2026-01-01T00:00:00Z", "prediction": "c", '
                        b'"features": {"x": 1, "x": 2, "n": 0, "": 0, "a b \\u00e9": "c\\u0061t", "flag": null}, '
                        b'"extra": 1}')


@pytest.mark.parametrize("payload", [
    b'{"event_id": "e", "model": "m", "timestamp": 1.0, "prediction": 1, "features": {"x": 1.0}}',  # one missing
    b'{"event_id": "e", "model": "m", "timestamp": 1.0, "prediction": 1, "features": {"x": 1.0, "k": "a", "y": 1}}',
    b'{"event_id": "e", "model": "m", "timestamp": 1.0, "prediction": 1, "features": {"x": "1.0", "k": "a"}}',
    b'{"event_id": "e", "model": "m", "timestamp": 1.0, "prediction": 1, "features": {"x": true, "k": "a"}}',
    b'{"event_id": "e", "model": "m", "timestamp": 1.0, "prediction": 1, "features": {"x": 1.0, "k": "new"}}',
    b'{"event_id": "e", "model": "other", "timestamp": 1.0, "prediction": 1, "features": {"x": 1.0, "k": "a"}}',
    b'{"event_id": "e", "model": "m", "timestamp": 1.0, "prediction": 1, "features": {"x": 1.0, "k": "a"}, '
    b'"model_version": "2"}',
    b'{"event_id": "e", "model": "m", "timestamp": 1.0, "features": {"x": 1.0, "k": "a"}}',
    b'[{"event_id": "e", "model": "m", "timestamp": 1.0, "prediction": 1, "features": {"x": 1.0, "k": "a"}',
])
def test_a_message_that_does_not_fit_its_schema_is_refused(payload: bytes) -> None:
    schema = learned([row(0, x=1.0, k="a")])
    with pytest.raises(msgspec.DecodeError):
        schema.decode(payload)


def test_rows_without_one_set_of_features_have_no_schema() -> None:
    assert FeatureSchema.of([]) is None
    assert FeatureSchema.of(decode_batch(Prediction, msgspec.json.encode([row(0)]))) is None
    assert FeatureSchema.of(decode_batch(Prediction, msgspec.json.encode([row(0, x=1.0), row(1, y=1.0)]))) is None


def test_the_schema_cache_keeps_a_few_schemas_per_key_widened_and_stays_bounded() -> None:
    cache = SchemaCache(size=2, per_key=2)
    x, y, z = (decode_batch(Prediction, msgspec.json.encode([row(0, **{name: 1.0})])) for name in "xyz")
    cache.learn(b"a", x)
    assert cache.get(b"a") == []  # a key seen once costs no schema
    cache.learn(b"a", x)
    cache.learn(b"a", y)
    assert [s.names for s in cache.get(b"a")] == [("y",), ("x",)]  # one key, two models' features
    cache.learn(b"a", z)
    assert [s.names for s in cache.get(b"a")] == [("z",), ("y",)]
    # what a message did not fit widens what its key's schema of those features accepts: categories add up, then
    # any value
    for values in (["a", None], ["b"], [None], [1.0]):
        cache.learn(b"a", decode_batch(Prediction, msgspec.json.encode([row(i, y=v) for i, v in enumerate(values)])))
        assert cache.get(b"a")[0].names == ("y",)
    assert cache.get(b"a")[0].kinds == (ANY,) and len(cache.get(b"a")) == 2
    for key in (b"b", b"c"):  # a third key over size 2: start over
        cache.learn(key, x)
        cache.learn(key, x)
    assert cache.get(b"c") and not cache.get(b"a") and len(cache._schemas) <= 2  # noqa: SLF001
    wide = SchemaCache(max_fields=3)
    for key in (b"a", b"a", b"b", b"b"):
        wide.learn(key, decode_batch(Prediction, msgspec.json.encode([row(0, p=1.0, q=1.0)])))
    assert wide.get(b"b") and not wide.get(b"a")  # 4 fields over 3: start over
    many = [row(i, y=f"c{i}") for i in range(MAX_LITERALS + 1)]
    assert learned(many[:-1]).kinds == (frozenset(f"c{i}" for i in range(MAX_LITERALS)),)
    assert learned(many).kinds == (ANY,)
    only_nulls = learned([row(0, y=None)])
    with pytest.raises(msgspec.DecodeError):
        only_nulls.decode(msgspec.json.encode([row(0, y=1.0)]))
    assert FeatureSchema.of(decode_batch(Prediction, msgspec.json.encode([row(0, y=1.0)])), only_nulls).kinds == (
        NUMBER,)
    cache.learn(b"b", decode_batch(Prediction, msgspec.json.encode([row(0, x=1.0)])))
    cache.learn(b"c", decode_batch(Prediction, msgspec.json.encode([row(0, x=1.0)])))
    assert cache.get(b"c") is not None and len(cache._schemas) <= 2  # noqa: SLF001


def test_rows_of_one_schema_become_columns_equal_to_their_mappings() -> None:
    n = COLUMN_CHUNK + 7  # across a chunk
    rows = [row(i, x=float(i) if i % 5 else None, k=f"c{i % 3}" if i % 7 else None) for i in range(n)]
    data = msgspec.json.encode(rows)
    mappings = decode_batch(Prediction, data)
    structs = learned(rows[:7]).decode(data)
    columns = PredictionColumns.from_events("m", structs)
    assert columns.rows is None and columns.features is not None
    x = columns.features["x"]
    assert x.dtype == np.float64 and np.isnan(x[::5]).all() and x[1] == 1.0
    assert columns.features["k"] == [m.features["k"] for m in mappings]
    assert columns.feature_rows(range(n)) == [m.features for m in mappings]
    for encode_with in (msgspec.msgpack.encode, msgspec.json.encode):  # what a waiting prediction stores
        assert encode_with(columns.feature_records([0, 5, n - 1])) == encode_with(
            [mappings[i].features for i in (0, 5, n - 1)])
    expected = PredictionColumns.from_events("m", mappings)
    assert columns.event_ids == expected.event_ids and columns.timestamps.tolist() == expected.timestamps.tolist()
    # rows of several schemas (or mappings among them) keep their mappings
    other = learned([row(0, x=1.0)]).decode(encode([Prediction("e", "m", 1.0, {"x": 2.0}, 1)]))
    mixed = PredictionColumns.from_events("m", [*structs[:2], *other, mappings[2]])
    assert mixed.features is None
    assert mixed.rows == [mappings[0].features, mappings[1].features, {"x": 2.0}, mappings[2].features]
