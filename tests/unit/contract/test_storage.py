"""The Redis storage contract: the one-node key layout as it always was, the cluster layout's shards each
in one hash slot, the joined sample both workers share, and no key built outside the contract."""

from __future__ import annotations

import ast
from pathlib import Path

import msgspec
import pytest
from redis.crc import key_slot

from driftwarden.contract.storage import JoinedSample, Keys, decode_sample, encode_sample, model_tag

ROOT = Path(__file__).resolve().parents[3]


def shard_keys(keys: Keys, model: str) -> list[str]:
    """Every key a batch, the timer, the retrain worker or ``onboard`` touches for ``model``."""
    return [keys.state(model), keys.state_version(model), keys.pending_predictions(model),
            keys.pending_prediction_expiry(model), keys.pending_prediction_features(model),
            keys.pending_labels(model), keys.pending_label_expiry(model), keys.samples(model),
            keys.counters(model), keys.reference_switch(model), keys.reference(model, "7"),
            keys.reference_origin(model, "7"), keys.onboarding(model), keys.retrain(model),
            keys.offsets("predictions"), keys.offsets("labels"), keys.fence("predictions", 3),
            keys.fence("labels", 0), keys.outbox("predictions", 3), keys.models(), keys.activity()]


def test_one_node_keys_are_the_layout_existing_deployments_hold() -> None:
    keys = Keys("dw")
    assert keys.for_model("fraud") is keys and keys.for_partition("predictions", 1) is keys
    assert shard_keys(keys, "fraud") == [
        "dw:monitor:fraud", "dw:monitor-version:fraud", "dw:pending:pred:fraud", "dw:pending:pred-exp:fraud",
        "dw:pending:pred-feat:fraud", "dw:pending:label:fraud", "dw:pending:label-exp:fraud", "dw:samples:fraud",
        "dw:counters:fraud", "dw:switch:fraud", "dw:reference:fraud:7", "dw:reference-origin:fraud:7",
        "dw:onboard:fraud", "dw:retrain:fraud", "dw:offsets:predictions", "dw:offsets:labels",
        "dw:fence:predictions:3", "dw:fence:labels:0", "dw:outbox:predictions:3", "dw:models", "dw:activity"]
    assert keys.all_models() == keys.models()


@pytest.mark.parametrize("model", ["fraud", "churn-v2", "a:b", "{odd}", "}x{", "{}", "näive model", "x" * 300])
def test_a_models_shard_is_one_hash_slot(model: str) -> None:
    keys = Keys("dw", cluster=True)
    shard = keys.for_model(model)
    slots = {key_slot(k.encode()) for k in shard_keys(shard, model)}
    assert len(slots) == 1, slots
    # The unbound cluster keys route each model to its shard: a reader needs no partition or lookup.
    assert [keys.state(model), keys.samples(model), keys.retrain(model)] == \
        [shard.state(model), shard.samples(model), shard.retrain(model)]


def test_models_spread_over_the_slots_and_shards_do_not_mix() -> None:
    keys = Keys("dw", cluster=True)
    slots = {key_slot(keys.state(f"model-{i}").encode()) for i in range(200)}
    assert len(slots) > 190  # 200 models in 16,384 slots: a few collide, most do not
    with pytest.raises(ValueError, match="not in shard"):
        keys.for_model("a").state("b")
    dead = keys.for_partition("predictions", 2)
    assert len({key_slot(k.encode()) for k in (dead.offsets("predictions"), dead.fence("predictions", 2),
                                                 dead.outbox("predictions", 2))}) == 1
    assert dead.outbox("predictions", 2) != keys.for_partition("predictions", 3).outbox("predictions", 2)
    assert keys.all_models() == "dw:models" and "{" not in keys.all_models()


def test_tags_of_names_with_braces_are_digests_and_distinct() -> None:
    assert model_tag("fraud") == "m:fraud"
    assert model_tag("{a}").startswith("h:") and model_tag("{a}") != model_tag("{b}")
    with pytest.raises(ValueError, match="braces"):
        Keys("dw{1}", cluster=True)
    assert Keys("dw{1}").state("a") == "dw{1}:monitor:a"  # one node: any prefix, as before


def test_a_joined_sample_has_the_bytes_the_stream_always_wrote() -> None:
    sample = JoinedSample(event_id="e1", timestamp=1.5, features={"x": 1.0, "c": "web", "m": None},
                          prediction="yes", label=1, model_version=None)
    data = encode_sample(sample)
    # The dict the stream encoded before the contract: samples already in Redis decode, fingerprints hold.
    assert data == msgspec.json.encode({"event_id": "e1", "timestamp": 1.5, "features": {"x": 1.0, "c": "web",
                                        "m": None}, "prediction": "yes", "label": 1, "model_version": None})
    assert decode_sample(data) == sample
    assert isinstance(decode_sample(data).label, int)  # an int label stays an int (classification)
    with pytest.raises(msgspec.ValidationError):
        decode_sample(b'{"event_id": "e", "timestamp": 1, "features": {}}')  # no label


def _key_like_fstrings(path: Path) -> list[str]:
    """f-strings in ``path`` that put a prefix (or a model) before a ':': a Redis key built by hand."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, ast.JoinedStr):
            continue
        literal = "".join(v.value for v in node.values if isinstance(v, ast.Constant) and isinstance(v.value, str))
        names = {n.id if isinstance(n, ast.Name) else n.attr for v in node.values if isinstance(v, ast.FormattedValue)
                 for n in ast.walk(v.value) if isinstance(n, ast.Name | ast.Attribute)}
        if ":" in literal and names & {"prefix", "key_prefix", "_prefix"}:
            found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    return found


def test_no_redis_key_is_built_outside_the_contract() -> None:
    sources = [p for package in ("stream", "retrain_worker", "driftwarden") for p in (ROOT / package).rglob("*.py")
               if p != ROOT / "driftwarden" / "contract" / "storage.py"]
    assert sources
    assert [hit for p in sources for hit in _key_like_fstrings(p)] == []
