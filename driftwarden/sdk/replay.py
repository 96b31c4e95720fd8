"""``driftwarden replay FILE``: send a historical file of predictions (and labels) through the topics.

Two formats, told apart by the file's extension (or ``fmt``):

* CSV with the columns ``event_id, model, timestamp, prediction, score, label`` (all but
  ``prediction`` optional; also ``model_version`` and ``label_timestamp``); every other column is a
  feature. Cells are typed on the way in: empty is missing, ``true``/``false`` are booleans, numbers
  are floats, anything else is a category.
* JSONL, one contract object per line: a ``Prediction`` (``driftwarden.contract.events``) that may carry a
  ``label`` (and ``label_timestamp``), or a bare ``Label`` (no ``features``). A multiclass model's per-class
  ``scores`` (an object of class -> probability) come this way; CSV carries only ``score``.

Rows go through the producer SDK, so they are validated exactly as live traffic is; each model's batch
is sent as one Arrow record batch (``--wire-format json`` for JSON arrays). A row that breaks
the contract is skipped and reported with its line number rather than stopping a long replay.
"""

from __future__ import annotations

import csv
import hashlib
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import msgspec

from driftwarden.contract.events import ContractError, FeatureValue, Timestamp
from driftwarden.contract.settings import Settings
from driftwarden.sdk.producer import DriftwardenProducer

Format = Literal["auto", "csv", "jsonl"]
RESERVED = ("event_id", "model", "timestamp", "prediction", "score", "label", "model_version", "label_timestamp")
MAX_ERRORS_KEPT = 20


class ReplayLine(msgspec.Struct, frozen=True):
    """One JSONL line as decoded: a prediction, a label, or both (``features`` None means label only)."""

    event_id: str | None = None
    model: str | None = None
    timestamp: Timestamp | None = None
    features: dict[str, FeatureValue] | None = None
    prediction: float | str | None = None
    model_version: str | None = None
    score: float | None = None
    label: int | float | str | bool | None = None
    label_timestamp: Timestamp | None = None
    scores: dict[str, float] | None = None


class ReplayRow(ReplayLine, frozen=True, kw_only=True):
    """A line of either format with its line number, what the sender reports errors by."""

    line: int


@dataclass
class ReplayResult:
    predictions: int = 0
    labels: int = 0
    skipped: int = 0
    errors: list[str] = field(default_factory=list)  # the first MAX_ERRORS_KEPT, "line N: reason"
    bytes_read: int = 0

    @property
    def events(self) -> int:
        return self.predictions + self.labels


def detect_format(path: Path, fmt: Format = "auto") -> Literal["csv", "jsonl"]:
    if fmt != "auto":
        return fmt
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return "csv"
    if suffix in (".jsonl", ".ndjson", ".json"):
        return "jsonl"
    raise ValueError(f"cannot tell the format of {path.name} from its extension; pass --format")


def _lines(path: Path, progress: Callable[[int], None]) -> Iterator[str]:
    """The file's lines as text, reporting the bytes read so far (for a bar that needs no first pass)."""
    done = 0
    with open(path, "rb") as fh:
        for raw in fh:
            done += len(raw)
            progress(done)
            yield raw.decode("utf-8").lstrip("\ufeff") if done == len(raw) else raw.decode("utf-8")


def read_rows(path: Path, fmt: Format = "auto", progress: Callable[[int], None] = lambda n: None,
              ) -> Iterator[ReplayRow | ContractError]:
    """Parse ``path`` row by row; a bad row is yielded as a ``ContractError`` naming its line."""
    if detect_format(path, fmt) == "csv":
        yield from _csv_rows(_lines(path, progress))
    else:
        yield from _jsonl_rows(_lines(path, progress))


def _csv_rows(lines: Iterable[str]) -> Iterator[ReplayRow | ContractError]:
    reader = csv.DictReader(lines)
    if reader.fieldnames is None:
        return
    if "prediction" not in reader.fieldnames:
        raise ContractError("missing_field", "the CSV has no 'prediction' column")
    feature_cols = [c for c in reader.fieldnames if c not in RESERVED]
    for row in reader:
        line = reader.line_num
        if None in row:
            yield ContractError("invalid_field", f"line {line}: more cells than columns")
            continue
        prediction = _cell(row["prediction"])
        if prediction is None or isinstance(prediction, bool):
            yield ContractError("missing_field", f"line {line}: no prediction")
            continue
        score = _cell(row.get("score") or "")
        label = _cell(row.get("label") or "")
        if isinstance(score, str | bool) or isinstance(label, bool):
            yield ContractError("invalid_field", f"line {line}: score must be a number, label a number or text")
            continue
        yield ReplayRow(
            line=line,
            event_id=row.get("event_id") or None,
            model=row.get("model") or None,
            timestamp=_timestamp_cell(row.get("timestamp") or ""),
            features={c: _cell(row[c]) for c in feature_cols},
            prediction=prediction,
            model_version=row.get("model_version") or None,
            score=score,
            label=label,
            label_timestamp=_timestamp_cell(row.get("label_timestamp") or ""),
        )


def _jsonl_rows(lines: Iterable[str]) -> Iterator[ReplayRow | ContractError]:
    decoder = msgspec.json.Decoder(ReplayLine)
    for n, text in enumerate(lines, start=1):
        if not text.strip():
            continue
        try:
            obj = decoder.decode(text)
        except msgspec.DecodeError as exc:
            yield ContractError("invalid_json", f"line {n}: {exc}")
            continue
        if obj.features is None and obj.label is None:
            yield ContractError("missing_field", f"line {n}: neither features (a prediction) nor a label")
            continue
        if obj.features is not None and obj.prediction is None:
            yield ContractError("missing_field", f"line {n}: a prediction needs 'prediction'")
            continue
        yield ReplayRow(line=n, **msgspec.structs.asdict(obj))


def _cell(text: str) -> FeatureValue:
    text = text.strip()
    if text == "":
        return None
    low = text.lower()
    if low in ("true", "false"):
        return low == "true"
    try:
        return float(text)
    except ValueError:
        return text


def _timestamp_cell(text: str) -> Timestamp | None:
    text = text.strip()
    if not text:
        return None
    try:
        return float(text)
    except ValueError:
        return text


def _default_event_id(path: Path, line: int) -> str:
    # Deterministic, so replaying the same file twice gives the same ids (and the stream's dedupe works).
    return hashlib.sha256(f"{path.name}:{line}".encode()).hexdigest()[:32]


def replay(
    path: Path,
    producer: DriftwardenProducer,
    *,
    fmt: Format = "auto",
    model: str | None = None,
    rate: float | None = None,
    progress: Callable[[int, ReplayResult], None] = lambda n, r: None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> ReplayResult:
    """Send every row of ``path`` through ``producer``; ``model`` overrides the file's model column and
    ``rate`` caps the events (predictions plus labels) per second. The caller flushes the producer."""
    if rate is not None and rate <= 0:
        raise ValueError(f"rate must be > 0, got {rate}")
    result = ReplayResult()

    def on_bytes(n: int) -> None:
        result.bytes_read = n

    started = clock()
    for item in read_rows(path, fmt, on_bytes):
        if isinstance(item, ContractError):
            _skip(result, str(item.detail))
            continue
        try:
            sent = _send_row(path, item, producer, model)
        except ContractError as exc:
            _skip(result, f"line {item.line}: {exc}")
            continue
        result.predictions += sent[0]
        result.labels += sent[1]
        if rate is not None:
            # Pace against the start, not the previous row, so sleep overshoot does not add up.
            ahead = started + result.events / rate - clock()
            if ahead > 0:
                sleep(ahead)
        progress(result.bytes_read, result)
    progress(result.bytes_read, result)
    return result


def _skip(result: ReplayResult, message: str) -> None:
    result.skipped += 1
    if len(result.errors) < MAX_ERRORS_KEPT:
        result.errors.append(message)


def _send_row(path: Path, row: ReplayRow, producer: DriftwardenProducer, model: str | None) -> tuple[int, int]:
    name = model or row.model
    if not name:
        raise ContractError("missing_field", "no model (add a 'model' column or pass --model)")
    event_id = row.event_id or _default_event_id(path, row.line)
    predictions = labels = 0
    if row.features is not None:
        assert row.prediction is not None  # checked when the row was parsed
        producer.log_prediction(name, row.features, row.prediction, event_id=event_id,
                                model_version=row.model_version, score=row.score, timestamp=row.timestamp,
                                scores=row.scores)
        predictions = 1
    if row.label is not None:
        if row.features is None and row.event_id is None:
            raise ContractError("missing_field", "a label needs the event_id of its prediction")
        producer.log_label(name, event_id, row.label, timestamp=row.label_timestamp or row.timestamp)
        labels = 1
    return predictions, labels


def run(settings: Settings, path: Path, *, fmt: Format = "auto", model: str | None = None,
        rate: float | None = None, batch_size: int = 500, show_progress: bool = True,
        wire_format: str = "arrow") -> int:
    """The CLI's body: replay with a progress bar, print a summary, return the exit code."""
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from driftwarden.contract.kafka import ensure_topics

    console = Console(stderr=True)
    try:
        detect_format(path, fmt)
    except ValueError as exc:
        console.print(f"[red]error:[/] {exc}")
        return 2
    topics = settings.kafka.topics
    ensure_topics(settings, [topics.predictions, topics.labels])
    columns = (TextColumn("[bold]replay"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
               TextColumn("{task.fields[events]} events"), TimeElapsedColumn(), TimeRemainingColumn())
    with DriftwardenProducer(settings, max_batch_size=batch_size, wire_format=wire_format) as producer, \
            Progress(*columns, console=console, disable=not show_progress) as bar:
        task = bar.add_task("replay", total=path.stat().st_size or 1, events=0)
        try:
            result = replay(path, producer, fmt=fmt, model=model, rate=rate,
                            progress=lambda n, r: bar.update(task, completed=n, events=r.events))
        except ContractError as exc:  # the file as a whole is unusable (e.g. no prediction column)
            console.print(f"[red]error:[/] {path}: {exc}")
            return 2
        undelivered = producer.flush(30.0)
    console.print(f"sent {result.predictions} predictions and {result.labels} labels "
                  f"({producer.delivered} events delivered, {producer.failed} failed, "
                  f"{undelivered} messages undelivered), skipped {result.skipped} rows")
    for error in result.errors[:5]:
        console.print(f"  [yellow]skipped[/] {error}")
    return 0 if result.skipped == 0 and producer.failed == 0 and undelivered == 0 else 1
