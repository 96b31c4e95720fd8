"""Inputs the stream's tests share: the pure step's (tests/unit/stream) and the batch processor's on real Redis
(tests/integration), so both layers are held to the same events and the same table of bad input."""

from __future__ import annotations

import numpy as np
from scipy.stats import norm

from driftwarden.contract.events import Prediction, encode


def pred(model: str, i: int, t: float, x: float | str = 0.0, version: str | None = "1",
         prediction: float | str = 0) -> Prediction:
    return Prediction(event_id=f"{model}-{i}", model=model, timestamp=t, features={"x": x},
                      prediction=prediction, model_version=version)


def quantiles(n: int, shift: float = 0.0) -> list[float]:
    """n values spread exactly like a standard normal: windows of them never drift by chance."""
    values = norm.ppf((np.arange(n) + 0.5) / n) + shift
    np.random.default_rng(n).shuffle(values)
    return [float(v) for v in values]


def bad_inputs(model: str) -> dict[str, bytes | None]:
    """One message per dead-letter reason, keyed by it, for settings with ``max_message_bytes=2_000``, onboarding off
    and ``model`` the only configured model."""
    return {
        "undecodable": b"\xff\xfe\x00garbage",
        "invalid_json": b'{"event_id": "a", "model": ',
        "missing_field": b'{"event_id": "a", "model": "%s", "timestamp": 1.0, "prediction": 1}' % model.encode(),
        "invalid_field": b'{"event_id": "a", "model": "%s", "timestamp": 1.0, "features": "x", '
                         b'"prediction": 1}' % model.encode(),
        "oversize": encode([pred(model, 1000 + i, 1.0) for i in range(40)]),
        "unknown_model": encode(pred("stranger", 0, 1.0)),
        "empty_message": None,
    }
