"""One model's predictions of a batch as columns: what the stream carries from decoding to the monitor and joins.

The Arrow wire format decodes straight into this form (``driftwarden.contract.columnar``): no ``Prediction``
struct and no feature mapping per row. A JSON message's structs are turned into it once per model and batch
(``from_events``), keeping each row's feature mapping (``rows``), which the monitor takes as it always did. A row's
struct or feature mapping is built only where one is needed (a waiting prediction that keeps its features, a
joined sample).

numpy is imported on first use: the SDK's base install (which imports the contract) has none.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from itertools import chain, starmap
from operator import attrgetter
from typing import Any

from driftwarden.contract.events import FeatureValue, Prediction, to_epoch
from driftwarden.contract.feature_schema import as_mapping, columns, schema_of_features

# one C-level pass per field over a JSON batch's structs
_event_id, _timestamp, _prediction = attrgetter("event_id"), attrgetter("timestamp"), attrgetter("prediction")
_version, _score, _scores = attrgetter("model_version"), attrgetter("score"), attrgetter("scores")
_features = attrgetter("features")


@dataclass(frozen=True, slots=True)
class PredictionColumns:
    """Predictions as columns, one entry per row in every column.

    ``models`` is the model of each row, or None when every row is ``model``'s (``split`` makes one batch per
    model). The features are ``features`` (name -> column: a float64 array with NaN for a missing number, or a
    list of raw values with None for missing; every row has every column) or ``rows`` (each row's mapping, the
    JSON form), never both."""

    model: str
    event_ids: list[str]
    timestamps: Any  # float64 array, epoch seconds, finite
    predictions: list[float | str]
    versions: list[str | None]
    scores: list[float | None]
    class_scores: list[dict[str, float] | None] | None  # None: no row has per-class scores
    features: dict[str, Any] | None = None
    rows: list[dict[str, FeatureValue]] | None = None
    models: list[str] | None = None

    def __len__(self) -> int:
        return len(self.event_ids)

    @classmethod
    def from_events(cls, model: str, preds: Sequence[Prediction]) -> PredictionColumns:
        """The columns of one model's decoded structs (the JSON path); timestamps to epoch seconds here, once.
        Rows decoded against one feature schema (``driftwarden.contract.feature_schema``) give feature columns;
        any other mix gives each row's mapping."""
        import numpy as np

        stamps = list(map(_timestamp, preds))
        if not set(map(type, stamps)) <= {float}:  # ISO strings or integers: decoding checked they convert
            stamps = [ts if type(ts) is float else to_epoch(ts) for ts in stamps]
        class_scores = list(map(_scores, preds))
        features = list(map(_features, preds))
        kinds = set(map(type, features))
        schema = schema_of_features(features[0]) if len(kinds) == 1 else None  # every row of one schema
        if schema is None and not kinds <= {dict}:
            features = list(map(as_mapping, features))
        return cls(model, list(map(_event_id, preds)), np.array(stamps, dtype=np.float64),
                   list(map(_prediction, preds)), list(map(_version, preds)), list(map(_score, preds)),
                   class_scores if class_scores.count(None) != len(class_scores) else None,
                   features=None if schema is None else columns(schema, features),
                   rows=features if schema is None else None)

    @classmethod
    def concat(cls, parts: Sequence[PredictionColumns]) -> PredictionColumns:
        """One batch of several parts of the same model, in order. Columns stay columns when every part has the
        same feature columns; otherwise (mixed wire formats, differing features) the rows are built."""
        import numpy as np

        if len(parts) == 1:
            return parts[0]
        first = parts[0]
        n = sum(map(len, parts))
        features: dict[str, Any] | None = None
        rows: list[dict[str, FeatureValue]] | None = None
        if all(p.features is not None and p.features.keys() == first.features.keys() for p in parts):  # type: ignore[union-attr]
            features = {name: _concat([p.features[name] for p in parts]) for name in first.features}  # type: ignore[index,union-attr]
        else:
            rows = [row for p in parts for row in p.feature_rows(range(len(p)))]
        class_scores = None
        if any(p.class_scores is not None for p in parts):
            class_scores = [s for p in parts for s in (p.class_scores or [None] * len(p))]
        return cls(first.model, _chain(p.event_ids for p in parts),
                   np.concatenate([p.timestamps for p in parts]) if n else np.empty(0),
                   _chain(p.predictions for p in parts), _chain(p.versions for p in parts),
                   _chain(p.scores for p in parts), class_scores, features, rows,
                   None if all(p.models is None and p.model == first.model for p in parts)
                   else [m for p in parts for m in (p.models or [p.model] * len(p))])

    def split(self) -> dict[str, PredictionColumns]:
        """One batch per model, each keeping its rows' order."""
        if self.models is None:
            return {self.model: self}
        indices: dict[str, list[int]] = {}
        for i, m in enumerate(self.models):
            indices.setdefault(m, []).append(i)
        return {m: self.take(m, index) for m, index in indices.items()}

    def take(self, model: str, index: list[int]) -> PredictionColumns:
        """Rows ``index`` (all of ``model``)."""
        import numpy as np

        def pick(column: Any) -> Any:
            return column[np.asarray(index, dtype=np.intp)] if isinstance(column, np.ndarray) else [
                column[i] for i in index]

        return PredictionColumns(
            model, pick(self.event_ids), pick(self.timestamps), pick(self.predictions), pick(self.versions),
            pick(self.scores), None if self.class_scores is None else pick(self.class_scores),
            None if self.features is None else {name: pick(c) for name, c in self.features.items()},
            None if self.rows is None else pick(self.rows))

    def feature_rows(self, index: Sequence[int]) -> list[dict[str, FeatureValue]]:
        """The feature mappings of rows ``index`` (made from the columns only for them); a missing value is None."""
        if self.rows is not None:
            return [self.rows[i] for i in index]
        assert self.features is not None
        names = list(self.features)
        if not names:
            return [{} for _ in index]
        return [dict(zip(names, values, strict=True)) for values in self._row_values(index)]

    def feature_records(self, index: Sequence[int]) -> list[Any]:
        """The features of rows ``index`` as objects that encode (msgpack or JSON) exactly as ``feature_rows``'s
        mappings do: from columns, a struct per row with a field per feature (in the columns' order), built and
        encoded twice as fast as a mapping; else the mappings themselves."""
        if self.rows is not None or not self.features:
            return self.feature_rows(index)
        return list(starmap(_record_type(tuple(self.features)), self._row_values(index)))

    def _row_values(self, index: Sequence[int]) -> Iterable[tuple[FeatureValue, ...]]:
        """Each of rows ``index``'s feature values from the columns, in the columns' order (None for missing)."""
        assert self.features is not None
        rows = _selector(index)
        return zip(*[_python_values(column, rows) for column in self.features.values()], strict=True)

    def model_of(self, i: int) -> str:
        return self.model if self.models is None else self.models[i]

    def events(self) -> list[Prediction]:
        """Each row as the contract's struct (what ``decode_arrow`` returns)."""
        index = range(len(self))
        stamps = self.timestamps.tolist()
        class_scores = self.class_scores or [None] * len(self)
        return [Prediction(event_id=self.event_ids[i], model=self.model_of(i), timestamp=stamps[i], features=f,
                           prediction=self.predictions[i], model_version=self.versions[i], score=self.scores[i],
                           scores=class_scores[i])
                for i, f in zip(index, self.feature_rows(index), strict=True)]

    def last_version(self) -> str | None:
        """The newest row's model version that is set (the model's current version), else None."""
        return next((v for v in reversed(self.versions) if v is not None), None)


def _selector(index: Sequence[int]) -> slice | Any:
    """Rows ``index`` as a slice when they are consecutive (as a rule: the first rows of a batch), else an array."""
    import numpy as np

    if isinstance(index, range) and index.step == 1:
        return slice(index.start, index.stop)
    rows = np.asarray(index, dtype=np.intp)
    if len(rows) and rows[-1] - rows[0] == len(rows) - 1 and (len(rows) < 2 or bool((np.diff(rows) == 1).all())):
        return slice(int(rows[0]), int(rows[-1]) + 1)
    return rows


def _python_values(column: Any, rows: slice | Any) -> list[FeatureValue]:
    """Values of ``rows`` (a slice or an index array) of a column as Python objects; NaN of a float array is None
    (missing)."""
    import numpy as np

    if isinstance(column, list):
        return column[rows] if isinstance(rows, slice) else [column[i] for i in rows.tolist()]
    picked = column[rows]
    values: list[FeatureValue] = picked.tolist()
    if picked.dtype.kind == "f" and np.isnan(picked).any():
        return [None if v != v else v for v in values]  # NaN != NaN
    return values


@lru_cache(maxsize=64)
def _record_type(names: tuple[str, ...]) -> Any:
    """A struct that encodes as a mapping of ``names`` (fields are positional: a name need not be an identifier)."""
    import msgspec

    return msgspec.defstruct("FeatureRecord", [(f"f{i}", Any) for i in range(len(names))],
                             rename={f"f{i}": name for i, name in enumerate(names)}, gc=False)


def _chain(lists: Iterable[list[Any]]) -> list[Any]:
    return list(chain.from_iterable(lists))


def _concat(columns: Sequence[Any]) -> Any:
    """One column of several parts' columns: an array when all are float64 arrays, else a list."""
    import numpy as np

    if all(isinstance(c, np.ndarray) for c in columns):
        return np.concatenate(columns)
    out: list[Any] = []
    for c in columns:
        out.extend(_python_values(c, slice(None)) if isinstance(c, np.ndarray) else c)
    return out
