"""JSON predictions decoded against the feature names their producer keeps sending: no mapping per row.

A producer sends the same features in every prediction. Once a message shows which (every row with the same
names), ``FeatureSchema`` makes a decoder whose features are a struct with exactly those fields, each typed as
the messages of its key had it so far (its ``Kind``): ``float | None`` for a feature that held only numbers and
nulls, a ``Literal`` of the strings seen (and null) for one that held a few strings, the contract's
``FeatureValue`` otherwise. Decoding with it is a third cheaper than into a ``dict`` per row, and the features
come out as columns in one C-level pass (``columns``). A message that does not fit (a feature missing, added or
of another type, a new category, any invalid input) fails that decoder and is decoded as before, so what is
accepted, its values and every dead letter's reason are the contract's
(``driftwarden.contract.events.decode_batch``); its key's schema is then widened to it.

Decoding with a schema accepts exactly what the contract's decoder accepts with those features: the same fields
and types, last duplicate key winning in both. Only the order of a row's features is the schema's, not the
row's (a mapping's order carries no meaning in the contract).
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from functools import lru_cache
from itertools import chain
from typing import Any, Literal

import msgspec

from driftwarden.contract.events import FeatureValue, Prediction, Timestamp

COLUMN_CHUNK = 1000  # rows turned into columns at a time
MAX_FEATURES = 4096  # a wider row is decoded as mappings (a struct type per schema is not worth it)
MAX_LITERALS = 256  # distinct strings a field may be decoded against (more: any string)

# What a schema knows of a field's values: numbers (and nulls), a few strings (and nulls), anything, or, as None,
# only nulls seen yet. A message with a value outside it is decoded the contract's way and the kind widened.
NUMBER = "number"
ANY = "any"
Kind = str | frozenset[str] | None


class FeatureSchema:
    """The decoder of JSON predictions whose features are exactly ``names``, each of a ``Kind``; ``models`` and
    ``versions`` are the kinds of the rows' model and model version.

    A few distinct strings (a categorical feature's categories, the model, its version) are decoded against a
    ``Literal`` of them: each value is then one shared string, neither allocated per row nor freed after the
    batch."""

    __slots__ = ("names", "kinds", "numeric", "models", "versions", "features_type", "prediction_type", "decoder")

    def __init__(self, names: Sequence[str], kinds: Sequence[Kind], models: Kind = ANY,
                 versions: Kind = ANY) -> None:
        self.names = tuple(names)
        self.kinds = tuple(kinds)
        self.numeric = tuple(kind == NUMBER for kind in self.kinds)
        self.models, self.versions = models, versions
        # Field names are positional (``f0``...): feature names need not be Python identifiers.
        # gc=False: the structs hold only numbers, strings and None (no cycles), so the collector never tracks them.
        self.features_type = msgspec.defstruct(
            "SchemaFeatures", [(f"f{i}", _feature_type(kind)) for i, kind in enumerate(self.kinds)],
            rename={f"f{i}": name for i, name in enumerate(self.names)}, forbid_unknown_fields=True, frozen=True,
            gc=False)
        # The contract's Prediction, field for field, but for its features (and a few models or versions).
        self.prediction_type = msgspec.defstruct(
            "SchemaPrediction",
            [("event_id", str), ("model", _string_type(models, nullable=False)), ("timestamp", Timestamp),
             ("features", self.features_type), ("prediction", float | str),
             ("model_version", _string_type(versions, nullable=True), None), ("score", float | None, None),
             ("scores", dict[str, float] | None, None)],
            frozen=True)
        self.features_type.__feature_schema__ = self  # type: ignore[attr-defined]  # a row's schema, from its features
        self.decoder: msgspec.json.Decoder[Any] = msgspec.json.Decoder(
            self.prediction_type | list[self.prediction_type])  # type: ignore[name-defined]

    @classmethod
    def of(cls, preds: Sequence[Prediction], previous: FeatureSchema | None = None) -> FeatureSchema | None:
        """The schema of decoded predictions when every row has the same feature names (in the first row's
        order), else None; widened by ``previous`` (the schema they did not fit) when it has the same names."""
        if not preds:
            return None
        first = preds[0].features
        if not first or len(first) > MAX_FEATURES:
            return None
        names = first.keys()
        if any(p.features.keys() != names for p in preds):
            return None
        kinds = [_kind([p.features[name] for p in preds]) for name in names]
        models = _kind([p.model for p in preds])
        versions = _kind([p.model_version for p in preds])
        if previous is not None and previous.names == tuple(names):
            kinds = [_merge(old, new) for old, new in zip(previous.kinds, kinds, strict=True)]
            models, versions = _merge(previous.models, models), _merge(previous.versions, versions)
        return cls(list(names), kinds, models, versions)

    def decode(self, data: bytes) -> list[Any]:
        """The message's predictions (structs with the contract's fields); raises ``msgspec.DecodeError`` when it
        does not fit this schema or is invalid (the caller decodes it the contract's way for the reason)."""
        value = self.decoder.decode(data)
        return value if isinstance(value, list) else [value]


def columns(schema: FeatureSchema, features: Sequence[Any]) -> dict[str, Any]:
    """Feature name -> column of rows decoded with ``schema``: a float64 array (NaN for null) for a numeric
    feature, the list of raw values for the others."""
    import numpy as np

    astuple = msgspec.structs.astuple
    parts: list[list[Any]] = [[] for _ in schema.names]
    n_numeric = sum(schema.numeric)
    # Rows in chunks: a column pass over a whole batch's rows would leave the cache (2.6x slower at 100k rows).
    for start in range(0, len(features), COLUMN_CHUNK):
        rows = features[start:start + COLUMN_CHUNK]
        # A chunk's numeric columns are the rows of one block, each packed in one call: twice as fast as fromiter.
        block = np.empty((n_numeric, len(rows)), dtype=np.float64)
        pack_into, k = _doubles(len(rows)).pack_into, 0
        for part, num, column in zip(parts, schema.numeric, zip(*map(astuple, rows), strict=True), strict=True):
            if num:
                try:
                    pack_into(block, k * 8 * len(rows), *column)  # type: ignore[arg-type]  # a C array
                except struct.error:  # a null: fromiter takes it as NaN (missing), as a float64 column means it
                    block[k] = np.fromiter(column, dtype=np.float64, count=len(column))
                part.append(block[k])
                k += 1
            else:
                part.append(column)
    out: dict[str, Any] = {}
    for name, num, part in zip(schema.names, schema.numeric, parts, strict=True):
        if num:
            out[name] = np.concatenate(part) if len(part) != 1 else part[0]
        else:
            out[name] = list(chain.from_iterable(part))
    if not features:
        out = {name: np.empty(0, dtype=np.float64) if num else [] for name, num in zip(schema.names, schema.numeric,
                                                                                          strict=True)}
    return out


@lru_cache(maxsize=64)
def _doubles(n: int) -> struct.Struct:
    return struct.Struct(f"={n}d")  # native doubles, as numpy's float64 holds them


def _kind(values: list[Any]) -> Kind:
    types = set(map(type, values))
    types.discard(type(None))
    if not types:
        return None
    if types == {float}:
        return NUMBER
    if types == {str}:
        strings = frozenset(values)
        strings -= {None}
        return strings if len(strings) <= MAX_LITERALS else ANY
    return ANY


def _merge(old: Kind, new: Kind) -> Kind:
    if old is None or old == new:
        return new
    if new is None:
        return old
    if isinstance(old, frozenset) and isinstance(new, frozenset) and len(old | new) <= MAX_LITERALS:
        return old | new
    return ANY


def _feature_type(kind: Kind) -> Any:
    if kind is None:
        return None  # only nulls so far: a value widens it
    if kind == NUMBER:
        return float | None
    if isinstance(kind, frozenset):
        return Literal[tuple(sorted(kind))] | None
    return FeatureValue


def _string_type(kind: Kind, nullable: bool) -> Any:
    if kind is None:
        return None
    if isinstance(kind, frozenset):
        strings = Literal[tuple(sorted(kind))]  # type: ignore[valid-type]
        return strings | None if nullable else strings
    return str | None if nullable else str


def schema_of_features(features: object) -> FeatureSchema | None:
    """The schema a row's features were decoded with, or None (a mapping)."""
    return getattr(type(features), "__feature_schema__", None)


def as_mapping(features: Any) -> dict[str, FeatureValue]:
    """A row's features as the contract's mapping (a schema struct's in the schema's order)."""
    schema = schema_of_features(features)
    if schema is None:
        return features  # type: ignore[no-any-return]
    return dict(zip(schema.names, msgspec.structs.astuple(features), strict=True))


class SchemaCache:
    """The last few schemas seen per Kafka key (producers key a model's messages by its name; a key shared by
    models of different features has one schema each), bounded by keys and by fields (a schema costs about 1 KB
    per feature).

    A key gets a schema from its second message decoded the contract's way, not its first: building one costs
    about three decodes of a 100-row message, so a key seen once per fill of the cache (more keys than it holds,
    in turn) must not pay it every time."""

    def __init__(self, size: int = 1024, max_fields: int = 50_000, per_key: int = 4) -> None:
        self.size = size
        self.max_fields = max_fields
        self.per_key = per_key
        self._schemas: dict[bytes | None, list[FeatureSchema]] = {}  # the most recently learned first
        self._fields = 0
        self._seen: set[bytes | None] = set()  # keys with one message decoded the contract's way

    def get(self, key: bytes | None) -> list[FeatureSchema]:
        return self._schemas.get(key, [])

    def learn(self, key: bytes | None, preds: Sequence[Prediction]) -> None:
        """Remember the schema of a message decoded the contract's way, if its rows have one (widening the key's
        schema of the same features, if any)."""
        known = self._schemas.get(key)
        if known is None and key not in self._seen:
            if len(self._seen) >= self.size:
                self._seen.clear()
            self._seen.add(key)
            return
        names = tuple(preds[0].features) if preds else ()
        old = next((s for s in known or () if s.names == names), None)
        schema = FeatureSchema.of(preds, old)
        if schema is None:
            return
        kept = [s for s in known or () if s is not old][:self.per_key - 1]
        dropped = sum(len(s.names) for s in known or ()) - sum(len(s.names) for s in kept)
        fields = self._fields - dropped + len(schema.names)
        if known is None and len(self._schemas) >= self.size or fields > self.max_fields:
            # many keys or wide rows: start over rather than track which is least used
            self._schemas.clear()
            self._seen.clear()
            kept, fields = [], len(schema.names)
        self._schemas[key] = [schema, *kept]
        self._fields = fields
