"""The JSON ``/status`` page: the current drift state of every model, read from Redis."""

from __future__ import annotations

from typing import Any

import redis

from detectors.exceptions import SnapshotError
from detectors.monitor import ModelMonitor
from stream.onboarding import describe
from stream.state import Keys, decode_onboarding, decode_state
from stream.watch import coverage, delay_quantiles


def model_status(client: redis.Redis, keys: Keys, model: str, snapshot_key: bytes = b"",
                 reference_size: int = 2000) -> dict[str, Any]:
    pipe = client.pipeline(transaction=False)
    pipe.get(keys.state(model))
    pipe.hgetall(keys.counters(model))
    pipe.llen(keys.samples(model))
    pipe.get(keys.pending_prediction_count(model))
    pipe.hlen(keys.pending_predictions(model))  # entries of an earlier version, until the next batch rewrites them
    pipe.get(keys.onboarding(model))
    blob, counters, samples, pending, legacy, onboarding = pipe.execute()
    out: dict[str, Any] = {
        "counters": {k.decode(): int(v) for k, v in counters.items()},
        "samples": int(samples),
        "pending_predictions": int(pending or 0) + int(legacy),
    }
    if onboarding is not None:  # built by `driftwarden onboard`, adopted with the model's next batch
        out["reference"] = describe(decode_onboarding(onboarding).origin, reference_size) | {"pending": True}
    if blob is None:
        return out
    state = decode_state(blob)
    out.update({
        "model_version": state.version,
        "observations": state.observations,
        "windows_closed": state.windows_closed,
        "outcomes": state.outcomes,
        "reference_version": state.reference_version,
        "reference": out.get("reference") or describe(state.reference_origin, reference_size),
        "traffic": {
            "last_prediction_at": state.traffic.last_prediction_at or None,
            "rate_per_s": state.traffic.last_rate,
            "usual_rate_per_s": state.traffic.usual_rate if state.traffic.buckets else None,
        },
        "labels": {
            "coverage": coverage(state.traffic, state.observations),
            "recent_coverage": state.traffic.last_coverage,
            "delay_s": delay_quantiles(state.traffic),
        },
        "active_alerts": [
            {"kind": a.kind, "feature": a.feature, "severity": a.severity, "signal": a.signal,
             "score": a.score, "threshold": a.threshold, "since": a.started_at, "drift_id": a.drift_id}
            for a in state.alerts.active.values()
        ],
        "performance": {v: {"n": p.n, "value": p.total / p.n if p.n else None}
                        for v, p in state.performance.items()},
    })
    try:
        out["monitor"] = ModelMonitor.from_bytes(state.monitor, snapshot_key).status()
    except SnapshotError as exc:  # the next batch of the model starts it over; say so meanwhile
        out["monitor"] = {"error": f"snapshot refused: {exc}"}
    return out
