"""The demo's live terminal view: one model's throughput, per-feature drift scores, open alerts, versions
and the latest drift events, rebuilt from the stream's ``/status`` snapshots and the event topics.

``LiveView`` holds no IO: the demo feeds it snapshots and event lines, rich's ``Live`` renders it (via
``__rich__``) on a terminal, and ``line()`` gives the same facts as one log line when stdout is not one.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from rich.console import Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from detectors.config import MonitorConfig

BAR_WIDTH = 20


@dataclass
class Rate:
    """Events per second between the last two counter readings."""

    last: tuple[float, int] | None = None
    per_second: float = 0.0

    def update(self, now: float, count: int) -> None:
        if self.last is not None and now > self.last[0]:
            self.per_second = max(count - self.last[1], 0) / (now - self.last[0])
        self.last = (now, count)


@dataclass
class LiveView:
    model: str
    config: MonitorConfig = field(default_factory=MonitorConfig)
    max_events: int = 8
    snapshot: Mapping[str, Any] = field(default_factory=dict)
    predictions: Rate = field(default_factory=Rate)
    labels: Rate = field(default_factory=Rate)
    champion: str | None = None
    sent: int = 0
    events: deque[Text] = field(default_factory=deque)
    phase_note: str = "waiting for the stream worker"

    # -- what the demo feeds in ------------------------------------------------------------------
    def observe(self, model_status: Mapping[str, Any], now: float) -> None:
        """One ``/status`` entry of the model (``status["models"][model]``), read at ``now`` (seconds)."""
        self.snapshot = model_status
        counters = model_status.get("counters", {})
        self.predictions.update(now, int(counters.get("predictions", 0)))
        self.labels.update(now, int(counters.get("labels", 0)))

    def event(self, text: str, style: str = "") -> str:
        """Remember a drift event, alert or model update line; returns it for plain logging."""
        self.events.append(Text(text, style=style))
        while len(self.events) > self.max_events:
            self.events.popleft()
        return text

    # -- reading ---------------------------------------------------------------------------------
    @property
    def alerts(self) -> list[Mapping[str, Any]]:
        return list(self.snapshot.get("active_alerts") or [])

    @property
    def feature_scores(self) -> dict[str, Mapping[str, Any]]:
        """The last closed window's scores per feature (empty until a window has closed)."""
        monitor = self.snapshot.get("monitor") or {}
        return dict((monitor.get("scores") or {}).get("features") or {})

    def line(self) -> str:
        """The view as one log line, for a stdout that is not a terminal."""
        counters = self.snapshot.get("counters", {})
        top = sorted(((s.get("psi") or 0.0, name) for name, s in self.feature_scores.items()), reverse=True)[:3]
        scores = ", ".join(f"{name} psi {psi:.3f}" for psi, name in top) or "no window closed yet"
        windows = self.snapshot.get("windows_closed", 0)
        return (f"[live] {self.predictions.per_second:.0f} predictions/s, {self.labels.per_second:.0f} labels/s; "
                f"applied {counters.get('predictions', 0)}/{self.sent}; windows {windows}; "
                f"{scores}; open alerts {len(self.alerts)}; serving v{self.snapshot.get('model_version') or '-'}, "
                f"champion {self.champion or '-'}")

    def __rich__(self) -> Group:
        return Group(self._header(), self._scores(), self._alerts(), self._events())

    def _header(self) -> Table:
        counters = self.snapshot.get("counters", {})
        monitor = self.snapshot.get("monitor") or {}
        grid = Table.grid(padding=(0, 3))
        for _ in range(4):
            grid.add_column()
        grid.add_row(Text(f"model {self.model}", style="bold"), f"phase: {monitor.get('phase', self.phase_note)}",
                     f"serving version: {self.snapshot.get('model_version') or '-'}",
                     Text(f"champion: {self.champion or '-'}", style="bold green" if self.champion else ""))
        grid.add_row(f"predictions/s: {self.predictions.per_second:,.0f}", f"labels/s: {self.labels.per_second:,.0f}",
                     f"applied: {counters.get('predictions', 0):,} of {self.sent:,} sent",
                     f"windows closed: {self.snapshot.get('windows_closed', 0)}")
        return grid

    def _scores(self) -> Table:
        c = self.config
        table = Table(title="drift scores of the last closed window", title_justify="left", expand=False)
        table.add_column("feature")
        table.add_column("PSI (critical at)", justify="right")
        table.add_column("", no_wrap=True)
        table.add_column("JS", justify="right")
        table.add_column("Wasserstein/sd", justify="right")
        table.add_column("missing", justify="right")
        for name, s in self.feature_scores.items():
            psi, cut = s.get("psi"), s.get("psi_threshold")  # the calibrated critical cut-off of this window
            style = "bold red" if _at_least(psi, cut) else ""
            table.add_row(Text(name, style=style), f"{_fmt(psi)} ({_fmt(cut)})", _bar(psi, cut or c.psi_floor, style),
                          Text(_fmt(s.get("js")), style="red" if _at_least(s.get("js"), s.get("js_threshold")) else ""),
                          Text(_fmt(s.get("wasserstein")),
                               style="red" if _at_least(s.get("wasserstein"), s.get("wasserstein_threshold")) else ""),
                          _percent(s.get("missing_share")))
        if not self.feature_scores:
            table.add_row(Text("(no window closed yet)", style="dim"), "", "", "", "", "")
        return table

    def _alerts(self) -> Panel:
        lines = [Text(f"{a.get('severity')}: {a.get('kind')} {a.get('feature') or '-'} {a.get('signal')} "
                      f"{_fmt(a.get('score'))} >= {_fmt(a.get('threshold'))}",
                      style="bold red" if a.get("severity") == "critical" else "yellow") for a in self.alerts]
        return Panel(Group(*lines) if lines else Text("none", style="green"), title=f"open alerts ({len(lines)})",
                     title_align="left")

    def _events(self) -> Panel:
        return Panel(Group(*self.events) if self.events else Text("waiting for events", style="dim"),
                     title="latest drift events and model updates", title_align="left")


def _at_least(value: Any, threshold: Any) -> bool:
    numbers = isinstance(value, int | float) and isinstance(threshold, int | float)
    return numbers and math.isfinite(value) and value >= threshold


def _fmt(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, int | float) and math.isfinite(value) else "n/a"


def _percent(value: Any) -> str:
    return f"{100 * value:.1f}%" if isinstance(value, int | float) else "n/a"


def _bar(value: Any, threshold: float, style: str) -> Text:
    """A bar whose full width is twice the threshold, with the threshold marked at half."""
    if not isinstance(value, int | float) or not math.isfinite(value):
        return Text("")
    filled = min(round(BAR_WIDTH * value / (2 * threshold)), BAR_WIDTH)
    cells = ["█" if i < filled else "·" for i in range(BAR_WIDTH)]
    cells[BAR_WIDTH // 2] = "|" if filled <= BAR_WIDTH // 2 else cells[BAR_WIDTH // 2]
    return Text("".join(cells), style=style or "green")
