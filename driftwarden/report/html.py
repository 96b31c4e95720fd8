"""The offline drift report as one self-contained HTML page: inline CSS and SVG, no script, no fetch.

Each feature gets a reference-vs-current histogram (shares per bin, so files of different lengths
compare) and one bar per statistic showing its score against the threshold it is decided by.
"""

from __future__ import annotations

import html
import math
import time
from collections.abc import Sequence
from pathlib import Path

from detectors.histogram import CategoricalHistogram, Histogram, NumericHistogram
from driftwarden.contract.settings import MonitorSettings, monitor_config
from driftwarden.contract.tables import read_table
from driftwarden.report.comparison import (
    FeatureResult,
    Report,
    Statistic,
    compare,
    fmt,
)

REFERENCE_COLOUR = "#4e79a7"
CURRENT_COLOUR = "#f28e2b"
FIRED_COLOUR = "#d62728"
QUIET_COLOUR = "#59a14f"
SHOWN_COLOUR = "#b0b0b0"
MAX_CATEGORIES = 25  # bars per categorical plot; the rest are summed into "(more)"

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:24px;color:#222;background:#fafafa}
h1{font-size:22px;margin:0 0 4px} h2{font-size:17px;margin:0 0 6px} .muted{color:#666;font-size:13px}
table{border-collapse:collapse;font-size:13px;margin:10px 0}
th,td{border:1px solid #ddd;padding:4px 8px;text-align:left} th{background:#eee}
td.num{text-align:right;font-variant-numeric:tabular-nums}
.badge{display:inline-block;padding:1px 7px;border-radius:9px;font-size:12px;color:#fff}
.drift{background:#d62728} .ok{background:#59a14f} .warn{background:#e8a317}
.grid{display:flex;flex-wrap:wrap;gap:16px;margin-top:16px}
.card{background:#fff;border:1px solid #ddd;border-radius:6px;padding:12px;width:560px}
.card.drifted{border-color:#d62728;box-shadow:0 0 0 1px #d62728}
.legend span{display:inline-block;width:10px;height:10px;margin:0 4px 0 10px;vertical-align:middle}
svg text{font-family:inherit}
"""


def _ranking(report: Report) -> str:
    """The drifted features most relevant first, and the multivariate test when it fired."""
    parts = []
    if report.ranking:
        parts.append("<p>Drifted features ranked by effect size (JS distance): "
                     + ", ".join(f"<b>{_e(name)}</b> {fmt(effect)}" for name, effect in report.ranking) + "</p>")
    if report.multivariate is not None:
        m = report.multivariate
        parts.append(f'<p><span class="badge drift">multivariate drift: {_e(m.severity)}</span> PCA reconstruction '
                     f"error {fmt(m.score)} &ge; {fmt(m.threshold)}: how the numeric features move together "
                     "changed</p>")
    return "".join(parts)


def render(report: Report) -> str:
    """The whole page as a string."""
    drifted = report.drifted
    verdict = (f'<span class="badge drift">{len(drifted)} of {len(report.features)} drifted</span>' if drifted
               else f'<span class="badge ok">no drift in {len(report.features)} columns</span>')
    config = report.config
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        f"<title>driftwarden report: {_e(report.current_path)}</title><style>{_CSS}</style></head><body>",
        f"<h1>Drift report {verdict}</h1>",
        f'<div class="muted">reference <b>{_e(report.reference_path)}</b> ({report.reference_rows} rows) vs '
        f"current <b>{_e(report.current_path)}</b> ({report.current_rows} rows) &middot; decided by "
        f"{_e(', '.join(config.drift_signals))} against cut-offs calibrated to each statistic's noise "
        f"(false-alarm rate {fmt(config.false_alarm_rate)} per window) and effect floors PSI "
        f"{fmt(config.psi_floor)}, JS {fmt(config.js_floor)}, Wasserstein/sd {fmt(config.wasserstein_floor)} "
        f"&middot; {config.n_bins} quantile bins (a bin per value for discrete columns) "
        f"&middot; generated {time.strftime('%Y-%m-%d %H:%M:%S %Z')}</div>",
        _summary_table(report),
        _ranking(report),
        _notes(report),
        f'<div class="legend muted">histograms:<span style="background:{REFERENCE_COLOUR}"></span>reference'
        f'<span style="background:{CURRENT_COLOUR}"></span>current &middot; score bars: the dashed line is '
        "the threshold; grey bars are shown, not used to decide (see drift_signals)</div>",
        '<div class="grid">', *(_card(f) for f in report.features), "</div>",
        "</body></html>",
    ]
    return "\n".join(parts)


def _e(text: object) -> str:
    return html.escape(str(text))


def _summary_table(report: Report) -> str:
    rows = []
    for f in sorted(report.features, key=lambda f: (not f.drifted, f.role != "feature", f.name)):
        status = (f'<span class="badge drift">{_e(f.severity)}</span>' if f.drifted
                  else '<span class="badge ok">ok</span>')
        scores = "".join(f'<td class="num">{_e(fmt(s.score))}</td>' for s in _by_name(f.statistics,
                                                                                       ("psi", "js")))
        other = [s for s in f.statistics if s.name not in ("psi", "js")]
        extra = ", ".join(f"{s.label} {fmt(s.score)}" for s in other)
        quality = "; ".join(f"{q.signal} {fmt(q.score)} &ge; {fmt(q.threshold)}" for q in f.quality)
        missing = f.current.n_missing / f.current.total if f.current.total else math.nan
        rows.append(
            f"<tr><td><b>{_e(f.name)}</b></td><td>{_e(f.kind)}{' (prediction)' if f.role != 'feature' else ''}"
            f"</td><td>{status}</td>{scores}<td>{_e(extra)}</td><td class=\"num\">{_e(_percent(missing))}</td>"
            f"<td>{quality or '&ndash;'}</td></tr>")
    return ("<table><tr><th>column</th><th>kind</th><th>drift</th><th>PSI</th><th>JS</th><th>other scores</th>"
            "<th>missing (current)</th><th>quality signals</th></tr>" + "".join(rows) + "</table>")


def _notes(report: Report) -> str:
    notes = []
    if report.only_reference:
        notes.append(f"only in the reference: {_e(', '.join(report.only_reference))}")
    if report.only_current:
        notes.append(f"only in the current file (not compared): {_e(', '.join(report.only_current))}")
    if report.skipped:
        notes.append(f"skipped (dates or durations): {_e(', '.join(report.skipped))}")
    return "".join(f'<div class="muted">{n}</div>' for n in notes)


def _by_name(statistics: Sequence[Statistic], names: Sequence[str]) -> list[Statistic]:
    index = {s.name: s for s in statistics}
    return [index[n] if n in index else Statistic(n, None, math.nan, False, False) for n in names]


def _percent(share: float) -> str:
    return "n/a" if not math.isfinite(share) else f"{100 * share:.1f}%"


def _card(f: FeatureResult) -> str:
    badge = (f'<span class="badge drift">drift: {_e(f.severity)}</span>' if f.drifted
             else '<span class="badge ok">no drift</span>')
    head = (f'<h2 id="{_e(f.name)}">{_e(f.name)} {badge}</h2><div class="muted">{_e(f.kind)} {_e(f.role)}: '
            f"{f.reference.n} reference / {f.current.n} current values in bins, "
            f"{f.current.n_missing} missing, {f.current.n_invalid} of another type</div>")
    return (f'<div class="card{" drifted" if f.drifted else ""}">{head}{histogram_svg(f.reference, f.current)}'
            f"{scores_svg(f.statistics)}</div>")


# -- plots -------------------------------------------------------------------------------------------
def bin_labels(histogram: Histogram) -> list[str]:
    """One label per bin of ``counts``: ``< lo``, ``a-b`` ..., ``> hi`` or the category names."""
    if isinstance(histogram, NumericHistogram):
        edges = histogram.edges.tolist()
        inner = [f"{fmt(a)}–{fmt(b)}" for a, b in zip(edges[:-1], edges[1:], strict=True)] or [fmt(edges[0])]
        return [f"< {fmt(edges[0])}", *inner, f"> {fmt(edges[-1])}"][: histogram.counts.size]
    assert isinstance(histogram, CategoricalHistogram)
    return [*histogram.categories, "(other)", "(unseen)"]


def _shares(counts: Sequence[int]) -> list[float]:
    total = sum(counts)
    return [c / total if total else 0.0 for c in counts]


def histogram_svg(reference: Histogram, current: Histogram, width: int = 536, height: int = 210) -> str:
    """Grouped bars of the reference's and the current file's share per bin."""
    labels = bin_labels(reference)
    ref, cur = list(map(int, reference.counts)), list(map(int, current.counts))
    if isinstance(reference, CategoricalHistogram) and len(labels) > MAX_CATEGORIES:
        keep = MAX_CATEGORIES - 3  # top categories, then (more), (other), (unseen)
        labels = [*labels[:keep], "(more)", *labels[-2:]]
        ref = [*ref[:keep], sum(ref[keep:-2]), *ref[-2:]]
        cur = [*cur[:keep], sum(cur[keep:-2]), *cur[-2:]]
    ref_s, cur_s = _shares(ref), _shares(cur)
    left, right, top, bottom = 40, 8, 10, 52
    plot_w, plot_h = width - left - right, height - top - bottom
    peak = max([*ref_s, *cur_s, 1e-9])
    slot = plot_w / len(labels)
    bar = max(slot * 0.4, 1.0)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
           f'class="histogram" aria-label="reference vs current histogram">']
    for tick in (0.0, 0.5, 1.0):
        y = top + plot_h * (1 - tick)
        out.append(f'<line x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e5e5e5"/>'
                   f'<text x="{left - 4}" y="{y + 4:.1f}" font-size="10" text-anchor="end" fill="#666">'
                   f"{100 * peak * tick:.{0 if peak >= 0.1 else 1}f}%</text>")
    every = max(1, math.ceil(len(labels) / 12))  # keep the axis readable with many bins
    for i, (label, r, c) in enumerate(zip(labels, ref_s, cur_s, strict=True)):
        x = left + i * slot + slot * 0.1
        for offset, share, colour, name in ((0.0, r, REFERENCE_COLOUR, "reference"),
                                            (bar, c, CURRENT_COLOUR, "current")):
            h = plot_h * share / peak
            out.append(f'<rect x="{x + offset:.1f}" y="{top + plot_h - h:.1f}" width="{bar:.1f}" '
                       f'height="{h:.1f}" fill="{colour}"><title>{_e(label)} {name}: '
                       f"{100 * share:.1f}%</title></rect>")
        if i % every == 0 or label.startswith("("):  # the (more)/(other)/(unseen) buckets always
            cx, cy = left + (i + 0.5) * slot, top + plot_h + 10
            out.append(f'<text x="{cx:.1f}" y="{cy:.1f}" font-size="9" fill="#444" text-anchor="end" '
                       f'transform="rotate(-35 {cx:.1f} {cy:.1f})">{_e(label[:14])}</text>')
    out.append(f'<line x1="{left}" x2="{width - right}" y1="{top + plot_h}" y2="{top + plot_h}" stroke="#999"/>')
    out.append("</svg>")
    return "".join(out)


def scores_svg(statistics: Sequence[Statistic], width: int = 536) -> str:
    """One row per statistic: a bar for the score on a scale that shows the threshold (dashed line).

    Every statistic fires at or above its threshold.
    """
    row, left, right = 22, 150, 120
    height = row * len(statistics) + 6
    plot_w = width - left - right
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
           f'class="scores" aria-label="scores against thresholds">']
    for i, s in enumerate(statistics):
        y = 3 + i * row
        score_pos, threshold_pos = _positions(s)
        # a statistic outside drift_signals decides nothing: grey, whatever its value
        colour = FIRED_COLOUR if s.fired else QUIET_COLOUR if s.decides else SHOWN_COLOUR
        opacity = "1"
        verb = "&ge;"
        out.append(f'<text x="0" y="{y + 14}" font-size="12">{_e(s.label)}{"" if s.decides else " (shown)"}</text>')
        out.append(f'<rect x="{left}" y="{y + 3}" width="{plot_w}" height="14" fill="#f0f0f0"/>')
        if score_pos is not None:
            out.append(f'<rect x="{left}" y="{y + 3}" width="{plot_w * score_pos:.1f}" height="14" '
                       f'fill="{colour}" fill-opacity="{opacity}"/>')
        out.append(f'<line x1="{left + plot_w * threshold_pos:.1f}" x2="{left + plot_w * threshold_pos:.1f}" '
                   f'y1="{y}" y2="{y + 20}" stroke="#222" stroke-dasharray="3,2"/>')
        out.append(f'<text x="{left + plot_w + 6}" y="{y + 14}" font-size="11" class="score" '
                   f'data-statistic="{_e(s.name)}" data-score="{_e(repr(s.score))}">{_e(fmt(s.score))} '
                   f"{verb if s.fired else '&middot;'} {_e(fmt(s.threshold))}</text>")
    out.append("</svg>")
    return "".join(out)


def _positions(s: Statistic) -> tuple[float | None, float]:
    """Score and threshold as fractions of the bar's width."""
    # a statistic that does not decide has no threshold (NaN): its bar is scaled by its score alone
    threshold = s.threshold * 2 if math.isfinite(s.threshold) else 0.0
    top = max(threshold, (s.score or 0.0) * 1.1 if s.score is not None and math.isfinite(s.score) else 0.0)
    if not math.isfinite(top) or top <= 0:
        return None, 0.5
    score = None if s.score is None or not math.isfinite(s.score) else s.score / top
    return score, s.threshold / top if math.isfinite(s.threshold) else 0.5


def write_report(reference_path: str | Path, current_path: str | Path, output: str | Path,
                 settings: MonitorSettings, *, prediction: str | None = None,
                 ignore: Sequence[str] = ()) -> Report:
    """Compare two files (``comparison.compare``) and write the page to ``output``."""
    reference, current = read_table(reference_path), read_table(current_path)
    # the stream's detectors, with the whole current file as one window
    config = monitor_config(settings, window_size=max(len(current), 1), window_seconds=None)
    report = compare(reference, current, config, prediction=prediction,
                     ignore=ignore, reference_path=str(reference_path), current_path=str(current_path))
    Path(output).write_text(render(report), encoding="utf-8")
    return report
