"""How a batch is split into transactions: one on one node; on a cluster one per model shard (a record
naming several models split into per-model views) and one per partition for records naming no model."""

from __future__ import annotations

from driftwarden.contract.columnar import encode_arrow
from driftwarden.contract.events import ARROW_FORMAT, ContractError, Label, Prediction
from driftwarden.contract.settings import load_settings
from driftwarden.contract.storage import Keys
from stream.decoding import Decoded, decode_record
from stream.processor import shard_batch
from stream.records import RawRecord


def pred(model: str, i: int) -> Prediction:
    return Prediction(event_id=f"{model}-{i}", model=model, timestamp=1.0 + i, features={"x": 1.0}, prediction=1)


def batch() -> list[Decoded]:
    def record(offset: int, partition: int = 0) -> RawRecord:
        return RawRecord("predictions", partition, offset, b"k", b"{}")
    return [
        Decoded(record(10), predictions=[pred("a", 0), pred("a", 1)]),
        Decoded(record(11), predictions=[pred("a", 2), pred("b", 0)],
                labels=[Label(event_id="b-9", model="b", timestamp=2.0, label=0)]),
        Decoded(record(12), error=ContractError("invalid_json", "not JSON")),
        Decoded(record(5, partition=1), predictions=[pred("b", 1)]),
    ]


def test_one_node_applies_the_batch_in_one_transaction() -> None:
    decoded = batch()
    assert shard_batch(Keys("dw"), decoded) == [(Keys("dw"), decoded)]


def test_a_cluster_splits_the_batch_by_shard_and_loses_no_event() -> None:
    keys = Keys("dw", cluster=True)
    parts = dict(shard_batch(keys, batch()))
    assert list(parts) == [keys.for_model("a"), keys.for_model("b"), keys.for_partition("predictions", 0)]
    a, b, dead = parts.values()
    assert [(d.record.offset, [p.event_id for p in d.predictions]) for d in a] == \
        [(10, ["a-0", "a-1"]), (11, ["a-2"])]
    assert [(d.record.partition, d.record.offset, [p.event_id for p in d.predictions], [x.event_id for x in d.labels])
            for d in b] == [(0, 11, ["b-0"], ["b-9"]), (1, 5, ["b-1"], [])]
    assert [(d.record.offset, d.error.reason if d.error else None) for d in dead] == [(12, "invalid_json")]


def test_a_cluster_splits_an_arrow_record_of_several_models_into_their_columns() -> None:
    record = RawRecord("predictions", 0, 20, b"k", encode_arrow([pred("a", 3), pred("b", 4), pred("a", 5)]),
                       None, ARROW_FORMAT)
    decoded = decode_record(record, load_settings(env={}))
    assert decoded.error is None and decoded.counts() == {"a": 2, "b": 1}
    keys = Keys("dw", cluster=True)
    parts = dict(shard_batch(keys, [decoded]))
    assert list(parts) == [keys.for_model("a"), keys.for_model("b")]
    assert [[(c.model, c.event_ids) for d in part for c in d.columns] for part in parts.values()] == [
        [("a", ["a-3", "a-5"])], [("b", ["b-4"])]]
