"""The traffic watch and the idle timer's choices, as pure functions (no service)."""

from __future__ import annotations

import msgspec
import pytest

from driftwarden.contract.settings import MonitorSettings
from stream.alerts import AlertBook, on_window_closed
from stream.idle import due, event_now
from stream.state import Activity, TrafficState
from stream.watch import WatchPolicy, delay_quantiles, on_batch, on_tick

POLICY = WatchPolicy(silence_seconds=60.0, drop_share=0.1, coverage_share=0.5)


def test_a_replay_of_old_events_is_not_idle_until_wall_clock_idleness() -> None:
    ms = msgspec.structs.replace(MonitorSettings(), window_seconds=30.0, silence_seconds=None)
    # A replayed window opened in 2020 and its last event applied a moment ago: not due mid-replay.
    replay = Activity(last_prediction_at=1_800_000_000.0, last_event_at=1_577_836_829.0, partition=0,
                      window_start=1_577_836_800.0, silent=False)
    assert not due(replay, ms, now=1_800_000_000.5, min_idle=0.5)
    assert event_now(replay, 1_800_000_000.5) == pytest.approx(1_577_836_829.5)
    assert due(replay, ms, now=1_800_000_001.0, min_idle=0.5)  # 1 s of real idleness reaches start + 30
    no_window = msgspec.structs.replace(replay, window_start=None)
    assert not due(no_window, ms, now=1_800_010_000.0, min_idle=0.5)  # nothing to close, silence off


def test_silence_is_due_once_until_it_is_reported() -> None:
    ms = msgspec.structs.replace(MonitorSettings(), silence_seconds=60.0)
    quiet = Activity(1000.0, 1000.0, 0, None, silent=False)
    assert not due(quiet, ms, 1059.0, 0.5) and due(quiet, ms, 1060.0, 0.5)
    assert not due(msgspec.structs.replace(quiet, silent=True), ms, 2000.0, 0.5)


def test_watch_alerts_are_not_resolved_by_clean_drift_windows() -> None:
    book, traffic = AlertBook(), TrafficState()
    on_batch(book, traffic, "m", POLICY, 1000.0, 100, [], 0, 1000.0)
    assert on_tick(book, traffic, "m", POLICY, 1059.0) == []
    [fired] = on_tick(book, traffic, "m", POLICY, 1061.0)
    assert (fired.status, fired.labels.alertname, fired.labels.kind) == ("firing", "DriftwardenTraffic", "traffic")
    assert on_tick(book, traffic, "m", POLICY, 1090.0) == []
    for end in range(5):  # drift windows closing clean must not touch the traffic alert
        assert on_window_closed(book, "m", set(), float(end), _resolve_after_one()) == []
    [resolved] = on_batch(book, traffic, "m", POLICY, 1100.0, 10, [], 0, 1100.0)
    assert resolved.status == "resolved" and "predictions arrive again" in resolved.annotations.description


def test_label_delay_quantiles_keep_the_newest_delays() -> None:
    traffic = TrafficState()
    assert delay_quantiles(traffic) == {"p50": None, "p95": None}
    on_batch(AlertBook(), traffic, "m", POLICY, 0.0, 0, [float(d) for d in range(1, 101)], None, None)
    assert delay_quantiles(traffic) == {"p50": 50.0, "p95": 95.0}
    on_batch(AlertBook(), traffic, "m", POLICY, 1.0, 0, [1000.0] * 500, None, None)
    assert delay_quantiles(traffic) == {"p50": 1000.0, "p95": 1000.0}  # only the newest 500 are kept


def test_the_timer_runs_only_when_some_model_has_a_time_bound() -> None:
    from driftwarden.contract.errors import ConfigError
    from driftwarden.contract.settings import Settings
    from stream.app import timer_interval

    off = msgspec.structs.replace(Settings().monitor, silence_seconds=None, window_seconds=None)
    assert timer_interval(msgspec.structs.replace(Settings(), monitor=off)) is None
    assert timer_interval(Settings()) == 30.0  # silence_seconds 900 by default: a quarter, at most 30 s
    assert timer_interval(msgspec.structs.replace(Settings(), monitor=off,
                                                  models={"fast": {"window_seconds": 4.0}})) == 1.0
    bad = msgspec.structs.replace(Settings().monitor, label_coverage_drop_share=0.0)
    with pytest.raises(ConfigError, match="label_coverage_drop_share"):
        timer_interval(msgspec.structs.replace(Settings(), monitor=bad))


def test_watch_settings_are_validated() -> None:
    with pytest.raises(ValueError, match="traffic_drop_share"):
        WatchPolicy.from_settings(msgspec.structs.replace(MonitorSettings(), traffic_drop_share=1.5))
    with pytest.raises(ValueError, match="silence_seconds"):
        WatchPolicy.from_settings(msgspec.structs.replace(MonitorSettings(), silence_seconds=0.0))


def _resolve_after_one():  # type: ignore[no-untyped-def]
    from stream.alerts import AlertPolicy

    return AlertPolicy(resolve_after=1, cooldown_s=0.0)
