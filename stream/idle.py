"""What the stream's timer does for a model no prediction reached lately (no IO here).

A model whose producer stopped would otherwise keep its window open forever and nobody would hear of
it. Each tick reads the small ``{p}:activity`` index (one hash), picks the models of this worker's
partitions whose open window is due (``monitor.window_seconds``) or whose silence is due
(``monitor.silence_seconds``), and the processor closes or alerts them in the same kind of Redis
transaction as a batch, so a window closes by time exactly once, whichever worker and restart it is.
"""

from __future__ import annotations

from detectors.monitor import ModelMonitor
from driftwarden.contract.settings import MonitorSettings
from stream.state import Activity, ModelState
from stream.watch import silent


def activity(state: ModelState, monitor: ModelMonitor) -> Activity:
    window = monitor.window
    return Activity(state.traffic.last_prediction_at, state.traffic.last_event_at, state.traffic.partition,
                    window.start if window is not None and window.n > 0 else None, silent(state.alerts))


def event_now(entry: Activity, now: float) -> float:
    """Event time projected to wall-clock ``now``: the newest event plus the time since it was applied
    (a replay of old events closes a window only after real idleness, never mid-replay)."""
    return entry.last_event_at + max(0.0, now - entry.last_prediction_at)


def due(entry: Activity, ms: MonitorSettings, now: float, min_idle: float) -> bool:
    """Whether the timer has work for this model: an open window past its time, or a silence to report."""
    idle = now - entry.last_prediction_at
    if idle < min_idle:
        return False
    if (ms.window_seconds is not None and entry.window_start is not None
            and event_now(entry, now) >= entry.window_start + ms.window_seconds):
        return True
    return ms.silence_seconds is not None and not entry.silent and idle >= ms.silence_seconds
