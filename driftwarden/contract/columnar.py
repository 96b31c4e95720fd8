"""The columnar wire format: a batch of one model's predictions or labels as one Arrow IPC stream.

A message in this format carries the Kafka header ``driftwarden-format: arrow`` (``events.FORMAT_HEADER``);
without the header a message is JSON. The columns are the contract's fields (``docs/events.md``):

* predictions: ``event_id`` and ``model`` (strings), ``timestamp`` (epoch seconds as a number, an
  ISO-8601 string or an Arrow timestamp), ``prediction`` (number or string), optional ``model_version``
  (string), ``score`` (number) and ``scores`` (map of class name to number, a multiclass model's probabilities),
  and ``features``: a struct with one child per feature (number,
  bool or string). A null feature is a missing value (``None``), as in JSON.
* labels: ``event_id``, ``model``, ``label`` (number or string), ``timestamp``.

Decoding checks the schema once per message and the values column by column, with the reasons the JSON path
gives; a malformed payload is a ``ContractError`` like malformed JSON. Predictions decode straight into columns
(``decode_prediction_columns``: a ``PredictionColumns``, no struct or feature mapping per row), which the stream
carries to the monitor and the joins; ``decode_arrow`` builds the same frozen structs JSON decoding does, for
callers that want events. pyarrow (and numpy) are imported on first use: the contract module stays cheap to import.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from driftwarden.contract.events import (
    ARROW_FORMAT,
    FORMAT_HEADER,
    JSON_FORMAT,
    ContractError,
    Label,
    Prediction,
    check_all,
    check_scores,
    decode_batch,
    to_epoch,
)
from driftwarden.contract.prediction_columns import PredictionColumns

T = TypeVar("T", Prediction, Label)
R = TypeVar("R")


def _pa() -> Any:
    try:
        import pyarrow as pa
        import pyarrow.ipc  # noqa: F401 - registers pa.ipc
    except ImportError as exc:  # the SDK's base install has no pyarrow
        raise ImportError("the Arrow wire format needs pyarrow: pip install 'driftwarden[arrow]'") from exc

    return pa


def encode_arrow(events: Sequence[Prediction] | Sequence[Label]) -> bytes:
    """One Arrow IPC stream (schema plus one record batch) holding ``events``, all of one kind."""
    pa = _pa()
    if not events:
        raise ValueError("an Arrow batch needs at least one event")
    columns: dict[str, Any] = {"event_id": [e.event_id for e in events], "model": [e.model for e in events]}
    columns["timestamp"] = _column(pa, [e.timestamp for e in events])
    if isinstance(events[0], Prediction):
        preds: Sequence[Prediction] = events  # type: ignore[assignment]
        columns["prediction"] = _column(pa, [p.prediction for p in preds])
        columns["model_version"] = pa.array([p.model_version for p in preds], pa.string())
        columns["score"] = pa.array([p.score for p in preds], pa.float64())
        if any(p.scores is not None for p in preds):  # a binary model's batch keeps its old schema
            columns["scores"] = pa.array([None if p.scores is None else list(p.scores.items()) for p in preds],
                                         pa.map_(pa.string(), pa.float64()))
        names = list(dict.fromkeys(name for p in preds for name in p.features))
        children = [_column(pa, [p.features.get(name) for p in preds]) for name in names]
        columns["features"] = (pa.StructArray.from_arrays(children, names=names) if names
                               else pa.array([{}] * len(preds), pa.struct([])))
    else:
        columns["label"] = _column(pa, [lab.label for lab in events])  # type: ignore[union-attr]
    batch = pa.RecordBatch.from_pydict(columns)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, batch.schema) as writer:
        writer.write_batch(batch)
    return bytes(sink.getvalue())


def _column(pa: Any, values: list[Any]) -> Any:
    """One typed column from Python values: all numbers as float64, else bools, else strings.

    A column mixing numbers and strings is stored as strings of the JSON form of each value; the
    contract allows it in JSON, so the decoder reads such a column back value by value."""
    present = [v for v in values if v is not None]
    if all(isinstance(v, bool) for v in present) and present:
        return pa.array(values, pa.bool_())
    if all(isinstance(v, int | float) and not isinstance(v, bool) for v in present):
        return pa.array(values, pa.float64())
    if all(isinstance(v, str) for v in present):
        return pa.array(values, pa.string())
    raise ContractError("invalid_field", "a column mixes strings, numbers and booleans; send it as JSON")


def decode_arrow(kind: type[Prediction] | type[Label], data: bytes) -> list[Any]:
    """The events of one Arrow message as structs, validated as the JSON path validates them."""
    if kind is Prediction:
        return decode_prediction_columns(data).events()
    pa = _pa()
    return _guarded(pa, _labels, pa, _table(pa, data))


def decode_prediction_columns(data: bytes) -> PredictionColumns:
    """The predictions of one Arrow message as columns (no struct or mapping per row), validated as a unit with
    the reasons the JSON path gives; ``split()`` it by model."""
    pa = _pa()
    return _guarded(pa, _predictions, pa, _table(pa, data))


def _table(pa: Any, data: bytes) -> Any:
    try:
        return pa.ipc.open_stream(pa.py_buffer(data)).read_all()
    except (pa.ArrowException, ValueError, OSError, TypeError) as exc:
        raise ContractError("invalid_arrow", f"not an Arrow IPC stream: {exc}") from exc


def _guarded(pa: Any, decode: Callable[..., R], *args: Any) -> R:
    try:
        return decode(*args)
    except (pa.ArrowException, TypeError, ValueError, KeyError) as exc:
        if isinstance(exc, ContractError):
            raise
        raise ContractError("invalid_field", f"Arrow column of the wrong type: {exc}") from exc


def _required(pa: Any, table: Any, name: str, kinds: tuple[str, ...]) -> list[Any]:
    if name not in table.column_names:
        raise ContractError("missing_field", f"Arrow batch has no column {name!r}")
    column = table.column(name)
    if column.null_count:
        raise ContractError("missing_field", f"column {name!r} has {column.null_count} nulls")
    return _values(pa, column, name, kinds)


def _optional(pa: Any, table: Any, name: str, kinds: tuple[str, ...], n: int) -> list[Any]:
    if name not in table.column_names:
        return [None] * n
    return _values(pa, table.column(name), name, kinds)


def _values(pa: Any, column: Any, name: str, kinds: tuple[str, ...]) -> list[Any]:
    """Python values of a column whose type is one of ``kinds`` (number, string, bool, timestamp)."""
    t = column.type
    if pa.types.is_dictionary(t):
        column, t = column.cast(t.value_type), t.value_type
    if "number" in kinds and (pa.types.is_integer(t) or pa.types.is_floating(t)):
        return column.cast(pa.float64()).to_pylist()  # the contract's numbers are floats
    if "string" in kinds and (pa.types.is_string(t) or pa.types.is_large_string(t)):
        return column.to_pylist()
    if "bool" in kinds and pa.types.is_boolean(t):
        return column.to_pylist()
    if "timestamp" in kinds and pa.types.is_timestamp(t):
        micros = column.cast(pa.timestamp("us", tz=t.tz)).cast(pa.int64()).to_pylist()
        return [None if v is None else v / 1e6 for v in micros]
    if pa.types.is_null(t):
        return [None] * len(column)
    raise ContractError("invalid_field", f"column {name!r} is {t}, expected {' or '.join(kinds)}")


def _typed(pa: Any, child: Any, name: str) -> Any:
    """A feature column as the contract types it: numbers as float64, strings and bools as they are."""
    t = child.type
    if pa.types.is_dictionary(t):
        child, t = child.cast(t.value_type), t.value_type
    if pa.types.is_integer(t) or pa.types.is_floating(t):
        return child.cast(pa.float64())
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_boolean(t) or pa.types.is_null(t):
        return child
    raise ContractError("invalid_field", f"column {name!r} is {t}, expected number, string or bool")


def _checked(events: list[Any]) -> list[Any]:
    check_all(events)
    return events


def _present(pa: Any, table: Any, name: str) -> Any:
    """A required column, one chunk, without nulls."""
    if name not in table.column_names:
        raise ContractError("missing_field", f"Arrow batch has no column {name!r}")
    column = table.column(name)
    if column.null_count:
        raise ContractError("missing_field", f"column {name!r} has {column.null_count} nulls")
    return column.combine_chunks()


def _strings(pa: Any, table: Any, name: str) -> list[str]:
    """A required string column, no value empty (``check_semantics``'s rule for ids and models)."""
    values = _values(pa, _present(pa, table, name), name, ("string",))
    if "" in values:
        raise ContractError("invalid_field", f"{name} must not be empty")
    return values


def _epochs(pa: Any, table: Any) -> Any:
    """The timestamp column as finite epoch seconds (float64): numbers and Arrow timestamps as a whole, ISO
    strings one by one (``to_epoch``, the JSON path's rule)."""
    import numpy as np

    column = _present(pa, table, "timestamp")
    t = column.type
    if pa.types.is_dictionary(t):
        column, t = column.cast(t.value_type), t.value_type
    if pa.types.is_integer(t) or pa.types.is_floating(t):
        stamps = column.cast(pa.float64()).to_numpy(zero_copy_only=False, writable=True)
    elif pa.types.is_timestamp(t):
        micros = column.cast(pa.timestamp("us", tz=t.tz)).cast(pa.int64()).to_numpy(zero_copy_only=False)
        stamps = micros / 1e6
    elif pa.types.is_string(t) or pa.types.is_large_string(t):
        stamps = np.fromiter(map(to_epoch, column.to_pylist()), np.float64, len(column))
    else:
        raise ContractError("invalid_field", f"column 'timestamp' is {t}, expected number or string or timestamp")
    finite = np.isfinite(stamps)
    if not finite.all():
        raise ContractError("invalid_field", f"timestamp is not finite: {float(stamps[np.argmin(finite)])!r}")
    return stamps


def _numbers(pa: Any, column: Any) -> list[Any]:
    """A number column as Python floats (None for a null), through numpy when it has no nulls (faster)."""
    column = column.cast(pa.float64())
    values: list[Any] = column.to_pylist() if column.null_count else column.to_numpy(zero_copy_only=False).tolist()
    return values


def _feature_column(pa: Any, child: Any, name: str) -> Any:
    """A feature column in the monitor's form: numbers as float64 arrays (NaN: missing), else a list. Arrays are
    the batch's own (writable), like those a concatenation of several messages makes."""
    typed = _typed(pa, child, name)
    if pa.types.is_floating(typed.type):
        return typed.to_numpy(zero_copy_only=False, writable=True)  # nulls become NaN; a copy, not a read-only view
    if pa.types.is_null(typed.type):
        return [None] * len(typed)
    return typed.to_pylist()


def _predictions(pa: Any, table: Any) -> PredictionColumns:
    n = table.num_rows
    ids = _strings(pa, table, "event_id")
    model_column = _present(pa, table, "model")
    distinct = _values(pa, model_column.unique(), "model", ("string",))
    if "" in distinct:
        raise ContractError("invalid_field", "model must not be empty")
    models = None if len(distinct) <= 1 else _values(pa, model_column, "model", ("string",))
    stamps = _epochs(pa, table)
    prediction = _present(pa, table, "prediction")
    t = prediction.type
    if pa.types.is_integer(t) or pa.types.is_floating(t) or (
            pa.types.is_dictionary(t) and (pa.types.is_integer(t.value_type) or pa.types.is_floating(t.value_type))):
        predictions = _numbers(pa, prediction.cast(t.value_type) if pa.types.is_dictionary(t) else prediction)
    else:
        predictions = _values(pa, prediction, "prediction", ("number", "string"))
    versions = _repeated(pa, table, "model_version", n)
    if "score" in table.column_names and _is_number(pa, table.column("score").type):
        scores = _numbers(pa, table.column("score").combine_chunks())
    else:
        scores = _optional(pa, table, "score", ("number",), n)
    per_class = _class_scores(pa, table, n) if "scores" in table.column_names else None
    if "features" not in table.column_names:
        raise ContractError("missing_field", "Arrow batch has no column 'features'")
    features = table.column("features")
    if not pa.types.is_struct(features.type):
        raise ContractError("invalid_field", f"column 'features' is {features.type}, expected a struct")
    if features.null_count:
        raise ContractError("missing_field", f"column 'features' has {features.null_count} nulls")
    names = [features.type.field(i).name for i in range(features.type.num_fields)]
    flat = features.combine_chunks() if hasattr(features, "combine_chunks") else features
    columns = {name: _feature_column(pa, flat.field(i), f"features.{name}") for i, name in enumerate(names)}
    class_scores = per_class if per_class is not None and any(s is not None for s in per_class) else None
    if class_scores is not None:
        for s, p in zip(class_scores, predictions, strict=True):
            if s is not None:
                check_scores(s, p)
    return PredictionColumns(distinct[0] if n else "", ids, stamps, predictions, versions, scores, class_scores,
                             features=columns, models=models)


def _repeated(pa: Any, table: Any, name: str, n: int) -> list[Any]:
    """An optional string column, as a list; one value (or none) for every row, without a Python object per row
    from Arrow (a model version is the same for a whole batch as a rule)."""
    if name not in table.column_names:
        return [None] * n
    column = table.column(name)
    distinct = _values(pa, column.unique(), name, ("string",))  # a null is one of them
    return distinct * n if len(distinct) == 1 else _values(pa, column, name, ("string",))


def _is_number(pa: Any, t: Any) -> bool:
    return bool(pa.types.is_integer(t) or pa.types.is_floating(t))


def _class_scores(pa: Any, table: Any, n: int) -> list[dict[str, float] | None]:
    """The optional ``scores`` column: a map of class name to probability per row."""
    if "scores" not in table.column_names:
        return [None] * n
    column = table.column("scores")
    t = column.type
    if pa.types.is_null(t):
        return [None] * n
    if not (pa.types.is_map(t) and (pa.types.is_string(t.key_type) or pa.types.is_large_string(t.key_type))
            and (pa.types.is_floating(t.item_type) or pa.types.is_integer(t.item_type))):
        raise ContractError("invalid_field", f"column 'scores' is {t}, expected map<string, number>")
    return [None if row is None else {str(k): (float("nan") if v is None else float(v)) for k, v in row}
            for row in column.to_pylist()]


def _labels(pa: Any, table: Any) -> list[Label]:
    ids = _required(pa, table, "event_id", ("string",))
    models = _required(pa, table, "model", ("string",))
    labels = _required(pa, table, "label", ("number", "string"))
    times = _required(pa, table, "timestamp", ("number", "string", "timestamp"))
    return _checked([Label(event_id=e, model=m, label=lab, timestamp=t)
                     for e, m, lab, t in zip(ids, models, labels, times, strict=True)])


def decode_message(kind: type[T], data: bytes, fmt: str = JSON_FORMAT) -> list[T]:
    """Decode a ``predictions`` or ``labels`` message in the format its header names (``events.wire_format``)."""
    if fmt == JSON_FORMAT:
        return decode_batch(kind, data)
    if fmt == ARROW_FORMAT:
        return decode_arrow(kind, data)
    raise ContractError("unknown_format", f"header {FORMAT_HEADER}={fmt!r}; expected json or arrow")
