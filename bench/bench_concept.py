"""Concept-drift detectors against the false-alarm budget, through ``detectors.concept.ConceptDetector``.

    .venv/bin/python bench/bench_concept.py            # ~4 minutes on one core
    .venv/bin/python bench/bench_concept.py --quick    # a tenth of the seeds, a smoke test

The budget: ``monitor.false_alarm_rate`` = 0.001 false critical alarms per window of 1,000
observations; for concept detectors per 1,000 labelled outcomes, i.e. at most 0.1 per 100,000
stationary outcomes, warm-up included (every new model and every promotion restarts the detectors).

For every detector River offers (at River's settings, at driftwarden's default, and strict settings
that try to fit the budget), in one run:

* **false alarms** (critical incidents and warnings, with the defaults' confirmation and cooldown)
  per 100,000 outcomes on stationary Bernoulli error streams at 5% and 20% error: fresh starts of
  5,000 outcomes, and long streams of 100,000 (each also a fresh start), with a one-sided 95% Poisson
  upper bound when few or none are seen;
* **detection delay** on a binary classifier whose concept switches at outcome 6,000: before it the
  labels follow the model's rule ``x0 > 0`` with label noise; after it a share ``q`` of the input
  space (``Phi(x2) < q``) follows ``x1 > 0`` instead, independent of the model. ``q = 1`` with 5% noise
  takes the error from 5% to 50%; ``q = 4/9`` from 5% to 25%; ``q = 2/3`` with 20% noise from 20% to 40%;
* **throughput** of each detector through the wrapper, as a ratio to River's ADWIN in the same run;
* the **service's default monitor** (``ModelMonitor(MonitorConfig())``, labels and predictions as a
  binary classifier sends them) against the previous defaults (River's ADWIN + DDM) on 20 fresh starts
  of 5,000 outcomes at 5% error, and on 400.

Prints markdown tables and writes ``bench/results/bench_concept.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import chi2, norm

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT.parent))

from detectors.concept import ConceptDetector  # noqa: E402
from detectors.config import MonitorConfig  # noqa: E402
from detectors.monitor import ModelMonitor, Outcome  # noqa: E402
from detectors.records import CONCEPT_DRIFT, CRITICAL  # noqa: E402

FRESH, LONG, SWITCH, AFTER = 5_000, 100_000, 6_000, 1_500
RATES = (0.05, 0.2)
SCENARIOS = {"5%->50%": (0.05, 1.0), "5%->25%": (0.05, 4 / 9), "20%->40%": (0.2, 2 / 3)}
PREVIOUS_DEFAULTS = ({"kind": "ADWIN", "params": {}}, {"kind": "DDM", "params": {}})


@dataclass(frozen=True)
class Case:
    name: str
    kind: str
    params: dict[str, Any]
    fresh_seeds: int  # fresh starts of 5,000 per error rate
    long_seeds: int  # streams of 100,000 per error rate
    switch_seeds: int  # per switch scenario


def cases() -> list[Case]:
    default = MonitorConfig().concept_detectors
    # seeds by speed: ADWIN's Rust core takes ~3 M outcomes/s, so it is measured on 10 M per error rate,
    # enough for a 95% bound under the budget when it raises nothing
    fast, medium, slow = (1000, 50, 200), (100, 5, 60), (40, 2, 30)
    listed = [Case(f"{spec['kind']} (driftwarden default)", spec["kind"], dict(spec["params"]), *fast)
              for spec in default]
    listed += [
        Case("ADWIN (River)", "ADWIN", {}, *fast),
        Case("ADWIN (delta 0.01, clock 16)", "ADWIN", {"delta": 0.01, "clock": 16}, *fast),
        Case("DDM (River)", "DDM", {}, *medium),
        Case("DDM (strict: warm_start 100, 5 / 6 sigma)", "DDM",
             {"warm_start": 100, "warning_threshold": 5.0, "drift_threshold": 6.0}, *medium),
        Case("EDDM (River)", "EDDM", {}, *medium),
        Case("HDDM_A (River)", "HDDM_A", {}, *slow),
        Case("HDDM_A (strict: 1e-5 / 1e-4)", "HDDM_A", {"drift_confidence": 1e-5, "warning_confidence": 1e-4},
             *slow),
        Case("HDDM_W (River)", "HDDM_W", {}, *slow),
        Case("HDDM_W (strict: 1e-5 / 1e-4)", "HDDM_W", {"drift_confidence": 1e-5, "warning_confidence": 1e-4},
             *slow),
        Case("PageHinkley (River)", "PageHinkley", {}, *medium),
        Case("KSWIN (River, seed 42)", "KSWIN", {}, 4, 0, 3),  # a KS test per outcome: ~2,000/s
    ]
    return listed


def wrapper(case: Case) -> ConceptDetector:
    config = MonitorConfig()
    return ConceptDetector(case.kind, case.params, config.concept_confirmation,
                           config.concept_confirmation_window, config.concept_cooldown)


def feed(case: Case, errors: np.ndarray) -> tuple[list[int], int]:
    """Critical incident positions and warnings of one fresh detector over ``errors``."""
    detector = wrapper(case)
    critical: list[int] = []
    warnings = 0
    for value in errors.tolist():
        event = detector.update(value)
        if event is not None:
            if event.severity == CRITICAL:
                critical.append(event.position)
            else:
                warnings += 1
    return critical, warnings


def stationary(n: int, rate: float, seed: int) -> np.ndarray:
    return (np.random.default_rng([seed, n, int(rate * 1000)]).random(n) < rate).astype(float)


def classifier_stream(n_before: int, n_after: int, noise: float, q: float,
                      seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(predictions, labels) of a binary model predicting ``x0 > 0``; from ``n_before`` on, inputs with
    ``Phi(x2) < q`` follow the concept ``x1 > 0``."""
    rng = np.random.default_rng([seed, 6000, int(noise * 100), int(q * 1000)])
    n = n_before + n_after
    x = rng.normal(size=(n, 3))
    prediction = (x[:, 0] > 0).astype(int)
    moved = (np.arange(n) >= n_before) & (norm.cdf(x[:, 2]) < q)
    truth = np.where(moved, x[:, 1] > 0, x[:, 0] > 0) ^ (rng.random(n) < noise)
    return prediction, truth.astype(int)


def upper95(k: int, n: int) -> float:
    """One-sided 95% Poisson upper bound of a rate per 100,000, from k events in n outcomes."""
    return float(0.5 * chi2.ppf(0.95, 2 * (k + 1)) / n * 100_000)


def false_alarms(case: Case, rate: float, scale: float) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for label, n, seeds in (("fresh", FRESH, case.fresh_seeds), ("long", LONG, case.long_seeds)):
        seeds = max(1, round(seeds * scale)) if seeds else 0
        critical = warnings = 0
        for seed in range(seeds):
            positions, warned = feed(case, stationary(n, rate, seed))
            critical += len(positions)
            warnings += warned
        total = n * seeds
        out[label] = {"seeds": seeds, "outcomes": total, "critical": critical, "warnings": warnings,
                      "critical_per_100k": critical / total * 100_000 if total else None,
                      "critical_per_100k_upper95": upper95(critical, total) if total else None,
                      "warnings_per_100k": warnings / total * 100_000 if total else None,
                      "critical_per_fresh_start": critical / seeds if seeds and label == "fresh" else None}
    return out


def delays(case: Case, scale: float) -> dict[str, Any]:
    out: dict[str, Any] = {}
    seeds = max(1, round(case.switch_seeds * scale))
    for name, (noise, q) in SCENARIOS.items():
        found: list[int | None] = []
        before = 0
        rates = []
        for seed in range(seeds):
            prediction, truth = classifier_stream(SWITCH, AFTER, noise, q, seed)
            errors = (prediction != truth).astype(float)
            rates.append((errors[:SWITCH].mean(), errors[SWITCH:].mean()))
            positions, _ = feed(case, errors)
            before += sum(p < SWITCH for p in positions)
            after = [p - SWITCH for p in positions if p >= SWITCH]
            found.append(after[0] if after else None)
        caught = np.array([d for d in found if d is not None], dtype=float)
        out[name] = {
            "seeds": seeds,
            "error_before": float(np.mean([r[0] for r in rates])),
            "error_after": float(np.mean([r[1] for r in rates])),
            "median": float(np.median(caught)) if caught.size else None,
            "p90": float(np.percentile(caught, 90)) if caught.size else None,
            "max": float(caught.max()) if caught.size else None,
            "within_100": float(np.mean([d is not None and d <= 100 for d in found])),
            "missed": sum(d is None for d in found),
            "false_alarms_before_switch": before,
        }
    return out


def throughput(case: Case, n: int) -> float:
    """Outcomes per second through the wrapper, the best of 3 runs on the same stream."""
    errors = stationary(n, 0.05, 99).tolist()
    best = float("inf")
    for _ in range(3):
        detector = wrapper(case)
        start = time.perf_counter()
        for value in errors:
            detector.update(value)
        best = min(best, time.perf_counter() - start)
    return n / best


def monitor_fresh_starts(specs: tuple[dict[str, Any], ...], starts: int) -> dict[str, Any]:
    """Critical and warning concept signals of ``ModelMonitor`` over fresh starts of a stationary binary
    classifier at 5% error (int labels and float predictions, as the contract hands them over)."""
    config = MonitorConfig(concept_detectors=specs)
    critical = warnings = 0
    by_signal: dict[str, int] = {}
    for seed in range(starts):
        prediction, truth = classifier_stream(FRESH, 0, 0.05, 0.0, 10_000 + seed)
        monitor = ModelMonitor(config)
        outcomes = [Outcome(float(i), float(p), int(y)) for i, (p, y) in enumerate(zip(prediction, truth,
                                                                                         strict=True))]
        for s in monitor.update_outcomes(outcomes):
            assert s.kind == CONCEPT_DRIFT
            if s.severity == CRITICAL:
                critical += 1
                by_signal[s.signal] = by_signal.get(s.signal, 0) + 1
            else:
                warnings += 1
    return {"fresh_starts": starts, "outcomes": starts * FRESH, "critical": critical, "warnings": warnings,
            "critical_by_signal": by_signal}


def fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a tenth of the seeds (a smoke test)")
    args = parser.parse_args()
    scale = 0.1 if args.quick else 1.0
    started = time.time()
    results: dict[str, Any] = {"budget_critical_per_100k": 0.1, "fresh_start": FRESH, "long_stream": LONG,
                               "switch_at": SWITCH, "after_switch": AFTER, "quick": args.quick,
                               "python": platform.python_version(), "machine": platform.machine(),
                               "detectors": {}}
    speed_n = {"ADWIN": 200_000, "DDM": 50_000, "EDDM": 50_000, "PageHinkley": 50_000, "KSWIN": 2_000}
    river_adwin = Case("ADWIN (River)", "ADWIN", {}, 0, 0, 0)
    for case in cases():
        t0 = time.time()
        n_speed = speed_n.get(case.kind, 20_000)
        speed = throughput(case, n_speed)
        baseline = throughput(river_adwin, n_speed)  # right after, on as many outcomes: the load is shared
        results["detectors"][case.name] = {
            "kind": case.kind, "params": case.params,
            "false_alarms": {str(rate): false_alarms(case, rate, scale) for rate in RATES},
            "delays": delays(case, scale),
            "outcomes_per_s": speed, "speed_vs_river_adwin": speed / baseline,
        }
        print(f"  {case.name}: {time.time() - t0:.0f} s", file=sys.stderr, flush=True)
    starts = (20, 400 if not args.quick else 40)
    results["monitor"] = {
        "current_defaults": {str(n): monitor_fresh_starts(MonitorConfig().concept_detectors, n) for n in starts},
        "previous_defaults": {str(n): monitor_fresh_starts(PREVIOUS_DEFAULTS, n) for n in starts},
    }
    results["seconds"] = time.time() - started
    report(results)
    out = ROOT / "results" / "bench_concept.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nwritten to {out.relative_to(ROOT.parent)} in {results['seconds']:.0f} s")


def report(results: dict[str, Any]) -> None:
    print("\nFalse alarms per 100,000 stationary outcomes: critical (95% upper bound) / warnings")
    print("| detector | 5%: fresh starts | 5%: 100k streams | 20%: fresh starts | 20%: 100k streams "
          "| critical per fresh start (5% / 20%) | all: critical per 100k (95% bound) | outcomes |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for name, r in results["detectors"].items():
        cells = []
        for rate in map(str, RATES):
            for label in ("fresh", "long"):
                fa = r["false_alarms"][rate][label]
                cells.append("-" if not fa["outcomes"] else
                             f"{fmt(fa['critical_per_100k'])} (<{fmt(fa['critical_per_100k_upper95'])}) / "
                             f"{fmt(fa['warnings_per_100k'], 1)}")
        per_start = " / ".join(fmt(r["false_alarms"][rate]["fresh"]["critical_per_fresh_start"], 3)
                               for rate in map(str, RATES))
        cells_all = [r["false_alarms"][str(rate)][label] for rate in RATES for label in ("fresh", "long")]
        total = sum(c["outcomes"] for c in cells_all)
        critical = sum(c["critical"] for c in cells_all)
        r["all"] = {"outcomes": total, "critical": critical, "critical_per_100k": critical / total * 100_000,
                    "critical_per_100k_upper95": upper95(critical, total)}
        print(f"| {name} | {' | '.join(cells)} | {per_start} | {fmt(r['all']['critical_per_100k'], 3)} "
              f"(<{fmt(r['all']['critical_per_100k_upper95'], 3)}) | {total:,} |")
    print("\nDetection delay after the switch at 6,000 (outcomes): median / p90 / max, share within 100, "
          "missed within 1,500, false alarms before the switch")
    print("| detector | " + " | ".join(SCENARIOS) + " | seeds | speed vs River ADWIN |")
    print("| --- |" + " --- |" * (len(SCENARIOS) + 2))
    for name, r in results["detectors"].items():
        cells = []
        for scenario in SCENARIOS:
            d = r["delays"][scenario]
            cells.append(f"{fmt(d['median'], 0)} / {fmt(d['p90'], 0)} / {fmt(d['max'], 0)}, "
                         f"{d['within_100']:.0%}, {d['missed']}, {d['false_alarms_before_switch']}")
        seeds = r["delays"][next(iter(SCENARIOS))]["seeds"]
        print(f"| {name} | {' | '.join(cells)} | {seeds} | {r['speed_vs_river_adwin']:.3g}x |")
    rates = next(iter(results["detectors"].values()))["delays"]
    print("\nMeasured error before / after: " + ", ".join(
        f"{s}: {rates[s]['error_before']:.3f} / {rates[s]['error_after']:.3f}" for s in SCENARIOS))
    print("\nModelMonitor on fresh starts of 5,000 stationary outcomes at 5% error (binary classifier):")
    for which, by_n in results["monitor"].items():
        for n, m in by_n.items():
            print(f"  {which}: {n} fresh starts -> {m['critical']} critical ({m['critical_by_signal']}), "
                  f"{m['warnings']} warnings")


if __name__ == "__main__":
    main()
