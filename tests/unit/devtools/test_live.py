"""The demo's live view, fed /status snapshots and event lines, rendered to a string console."""

from __future__ import annotations

import io
from typing import Any

from rich.console import Console

from detectors.config import MonitorConfig
from driftwarden.devtools.live import LiveView


def snapshot(predictions: int, labels: int, *, drifted: bool, version: str = "1") -> dict[str, Any]:
    """A model's entry of the stream's /status page, shaped as ``stream/status.py`` writes it."""
    income = {"psi": 0.912 if drifted else 0.013, "js": 0.41 if drifted else 0.02,
              "wasserstein": 1.9 if drifted else 0.03, "missing_share": 0.0,
              # the calibrated critical cut-offs the monitor reports beside each score
              "psi_threshold": 0.2, "js_threshold": 0.15, "wasserstein_threshold": 0.18}
    alerts = [{"kind": "data_drift", "feature": "income", "severity": "critical", "signal": "psi",
               "score": 0.912, "threshold": 0.2, "since": 1.0, "drift_id": "d1"}] if drifted else []
    return {
        "counters": {"predictions": predictions, "labels": labels},
        "model_version": version, "windows_closed": max(0, (predictions - 2000) // 1000),
        "reference_version": None, "active_alerts": alerts,
        "monitor": {"phase": "monitoring", "scores": {"features": {
            "income": income, "age": {"psi": 0.021, "js": 0.03, "wasserstein": 0.02, "missing_share": 0.01}}}},
    }


def render(view: LiveView) -> str:
    console = Console(file=io.StringIO(), width=140, color_system=None, force_terminal=False)
    console.print(view)
    return console.file.getvalue()  # type: ignore[attr-defined]


def test_before_any_snapshot_the_view_says_it_is_waiting() -> None:
    text = render(LiveView("credit-risk"))
    assert "no window closed yet" in text and "open alerts (0)" in text and "waiting for events" in text


def test_rates_scores_alerts_and_versions_follow_the_snapshots() -> None:
    view = LiveView("credit-risk", MonitorConfig())
    view.sent = 10_000
    view.observe(snapshot(3000, 2900, drifted=False), now=100.0)
    view.observe(snapshot(5000, 4400, drifted=False), now=102.0)
    calm = render(view)
    assert "predictions/s: 1,000" in calm and "labels/s: 750" in calm
    assert "applied: 5,000 of 10,000 sent" in calm and "windows closed: 3" in calm
    assert "0.013" in calm and "open alerts (0)" in calm and "champion: -" in calm

    view.observe(snapshot(8000, 8000, drifted=True), now=105.0)
    view.event("drift  data_drift psi income score=0.912 (threshold 0.200) critical window 5", "yellow")
    view.champion = "2"
    view.event("model  credit-risk version 2 promoted=True alias=champion", "green")
    drifting = render(view)
    assert "predictions/s: 1,000" in drifting and "labels/s: 1,200" in drifting
    income_row = next(line for line in drifting.splitlines() if line.strip("│ ").startswith("income"))
    assert "0.912 (0.200)" in income_row and "1.900" in income_row and "██████████" in income_row
    assert "critical: data_drift income psi 0.912 >= 0.200" in drifting and "open alerts (1)" in drifting
    assert "champion: 2" in drifting and "promoted=True" in drifting
    assert drifting != calm


def test_the_event_panel_keeps_only_the_latest_lines() -> None:
    view = LiveView("m", max_events=3)
    for i in range(5):
        view.event(f"event number {i}")
    text = render(view)
    assert "event number 1" not in text and all(f"event number {i}" in text for i in (2, 3, 4))


def test_the_plain_line_carries_the_same_facts_for_logs() -> None:
    view = LiveView("credit-risk")
    view.sent = 10_000
    view.observe(snapshot(4000, 4000, drifted=True, version="1"), now=10.0)
    view.observe(snapshot(6000, 5000, drifted=True, version="1"), now=12.0)
    view.champion = "2"
    line = view.line()
    assert line.startswith("[live] 1000 predictions/s, 500 labels/s; applied 6000/10000; windows 4;")
    assert "income psi 0.912, age psi 0.021" in line and "open alerts 1" in line
    assert line.endswith("serving v1, champion 2")
