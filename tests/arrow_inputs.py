"""Predictions and raw Arrow IPC messages the contract's Arrow tests share (tests/unit/contract)."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.ipc

from driftwarden.contract.events import Prediction


def predictions(n: int, models: tuple[str, ...] = ("m",), per_second: int = 1) -> list[Prediction]:
    """``n`` predictions of every feature kind (number, string, bool, a missing value), no version on one, no score
    on another, spread over ``models`` in turn, ``per_second`` of them a second."""
    return [Prediction(event_id=f"e{i}", model=models[i % len(models)], timestamp=1_700_000_000.0 + i / per_second,
                       features={"x": i * 0.5, "plan": "pro" if i % 2 else "free", "ok": i % 3 == 0,
                                 "gap": None if i % 4 == 0 else float(i)},
                       prediction=float(i % 2), model_version=None if i == 1 else "7",
                       score=None if i == 2 else i / n) for i in range(n)]


def ipc(columns: dict[str, pa.Array]) -> bytes:
    """One Arrow IPC stream of a record batch of ``columns``, written by pyarrow directly (not by the SDK)."""
    batch = pa.RecordBatch.from_pydict(columns)
    sink = pa.BufferOutputStream()
    with pyarrow.ipc.new_stream(sink, batch.schema) as writer:
        writer.write_batch(batch)
    return bytes(sink.getvalue())
