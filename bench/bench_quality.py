"""Detection quality of the default drift decisions: false alarms on stationary streams, power on drifted ones,
beside Evidently 0.7's default per-column decisions on the very same data, in one run.

What is measured (all through the engine's own functions: the reference's histograms and calibration, the window's
histogram, ``window_scores`` and ``drift_signals``, exactly as ``ModelMonitor`` closes a window):

* stationary: 9 shapes (normal, lognormal, bimodal, integer counts, a normal with 10% outliers; categoricals of
  3, 20, 200 and 2,000 levels) x references of 500, 2,000, 20,000 rows x windows of 100, 1,000, 10,000 rows,
  ``--seeds`` references each. The share of windows with any critical signal, at the default rate (0.001) and at
  a loose rate (0.05) where a 1,000-window cell can resolve it.
* the 25-feature model of issue 10 (20 numeric, 5 categorical, one with 200 levels; a 0/1 prediction): 60 windows
  of 1,000 rows per seed through ``ModelMonitor`` itself.
* drifted: mean shifts of 0.1, 0.25 and 0.5 sd, a scale change (x1.5), a 10-point change of a category's share,
  a new category at 5%: the share of seeds whose first drifted window raises a critical signal on the drifted
  feature, with that feature's test held to the level of the 25-feature model's family (76 tests).
* Evidently 0.7 ``DataDriftPreset`` (its own defaults: KS / chi-square p < 0.05 up to 1,000 rows, Wasserstein /
  Jensen-Shannon 0.1 above) on the same frames, in ``bench/.venv-evidently`` (``make bench`` makes it).

Run: ``.venv/bin/python bench/bench_quality.py`` (``--seeds 20``; ``--no-evidently``); JSON in bench/results/.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT.parent))

from detectors.config import MonitorConfig  # noqa: E402
from detectors.drift import drift_signals, tests_in, window_scores  # noqa: E402
from detectors.histogram import NumericHistogram  # noqa: E402
from detectors.monitor import ModelMonitor, Observation  # noqa: E402
from detectors.records import CRITICAL  # noqa: E402
from detectors.reference import Reference, column_histogram, field_key  # noqa: E402
from detectors.window import WindowInfo  # noqa: E402

EVIDENTLY_PYTHON = ROOT / ".venv-evidently" / "bin" / "python"
RESULTS = ROOT / "results"
Array = np.ndarray
LEVELS = {"cat3": 3, "cat20": 20, "cat200": 200, "cat2000": 2000}
NUMERIC = ("normal", "lognormal", "bimodal", "counts", "outliers")
SHAPES = (*NUMERIC, *LEVELS)
FAMILY_25 = 76  # 20 numeric x 3 + 5 categorical x 3 + the 0/1 prediction (PSI, JS, Wasserstein)


def cat_probs(kind: str) -> Array:
    if kind == "cat3":
        return np.array([0.6, 0.3, 0.1])
    if kind == "cat20":  # Zipf-like
        weights = 1.0 / np.arange(1, 21)
        return weights / weights.sum()
    return np.full(LEVELS[kind], 1.0 / LEVELS[kind])


def draw(kind: str, rng: np.random.Generator, n: int, shift: float = 0.0, scale: float = 1.0,
         probs: Array | None = None) -> Array:
    """``n`` values of a shape; ``shift`` and ``scale`` in units of the shape's standard deviation."""
    if kind in LEVELS:
        p = cat_probs(kind) if probs is None else probs
        return np.array([f"v{i}" for i in rng.choice(p.size, n, p=p)], dtype=object)
    if kind == "normal":
        x, sd = rng.normal(size=n), 1.0
    elif kind == "lognormal":
        x, sd = rng.lognormal(0.0, 0.5, n), math.sqrt((math.exp(0.25) - 1) * math.exp(0.25))
    elif kind == "bimodal":
        x, sd = np.where(rng.random(n) < 0.5, rng.normal(-2, 1, n), rng.normal(2, 0.5, n)), 2.14
    elif kind == "counts":
        x, sd = rng.poisson(3.0, n).astype(float), math.sqrt(3.0)
    else:  # outliers
        x, sd = np.where(rng.random(n) < 0.9, rng.normal(size=n), rng.uniform(-6, 6, n)), 1.9
    mean = float(np.mean(x)) if scale != 1.0 else 0.0
    return (x - mean) * scale + mean + shift * sd


def reference_of(columns: dict[str, Array], config: MonitorConfig) -> Reference:
    features = {}
    for name, values in columns.items():
        features[name] = column_histogram(values.tolist() if values.dtype == object else values,
                                          "categorical" if values.dtype == object else "numeric", config)
    return Reference(features, None, None, len(next(iter(columns.values()))))


def decide(reference: Reference, columns: dict[str, Array], configs: tuple[MonitorConfig, ...],
           family: int | None = None) -> list[bool]:
    """Whether one window raises a critical signal under each config, as ``ModelMonitor._close`` decides."""
    pairs = {}
    for name, values in columns.items():
        histogram = reference.features[name].like()
        histogram.update(values if isinstance(histogram, NumericHistogram) else values.tolist())
        pairs[name] = (reference.features[name], histogram)
    scores = window_scores(pairs, configs[0])
    fits = {name: reference.fits(field_key(name), pairs[name][1].n, configs[0]) for name in scores}
    size = family if family is not None else tests_in(scores, configs[0])
    info = WindowInfo(0, 0.0, 0.0, len(next(iter(columns.values()))))
    return [any(s.severity == CRITICAL for s in drift_signals("data_drift", scores, fits, config, info, size))
            for config in configs]


def clopper_pearson(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    alpha = 1 - level
    low = 0.0 if k == 0 else float(stats.beta.ppf(alpha / 2, k, n - k + 1))
    high = 1.0 if k == n else float(stats.beta.ppf(1 - alpha / 2, k + 1, n - k))
    return low, high


# -- stationary streams -------------------------------------------------------------------------------------
def stationary(seeds: int, sizes: tuple[int, ...], windows: tuple[int, ...], evidently: list[dict[str, Any]],
               loose: float) -> list[dict[str, Any]]:
    strict_config = MonitorConfig()
    loose_config = replace(strict_config, false_alarm_rate=loose, warning_rate=max(loose, 0.01))
    rows = []
    for n in sizes:
        for m in windows:
            n_windows = 25 if m <= 1000 else 5
            counts = {shape: [0, 0, 0] for shape in SHAPES}  # windows, alarms at default, alarms at loose
            started = time.perf_counter()
            for seed in range(seeds):
                rng = np.random.default_rng([n, m, seed])
                ref_columns = {shape: draw(shape, rng, n) for shape in SHAPES}
                reference = reference_of(ref_columns, strict_config)
                frames = []
                for _ in range(n_windows):
                    current = {shape: draw(shape, rng, m) for shape in SHAPES}
                    for shape in SHAPES:  # each shape is a one-feature model of its own
                        one = {shape: current[shape]}
                        strict, lax = decide(reference, one, (strict_config, loose_config), 3)
                        counts[shape][0] += 1
                        counts[shape][1] += strict
                        counts[shape][2] += lax
                    if evidently is not None and n == 2000 and m <= 1000 and len(frames) < 5:
                        frames.append(current)
                if evidently is not None and n == 2000 and m <= 1000:
                    evidently.append({"cell": f"{n}/{m}", "reference": ref_columns, "windows": frames})
            for shape, (total, strict, lax) in counts.items():
                rows.append({"shape": shape, "reference": n, "window": m, "windows": total,
                             "alarms": strict, "rate": strict / total, "rate_ci95": clopper_pearson(strict, total),
                             "alarms_loose": lax, "rate_loose": lax / total,
                             "rate_loose_ci95": clopper_pearson(lax, total)})
            print(f"  stationary ref {n:>6} window {m:>6}: {time.perf_counter() - started:6.1f} s", flush=True)
    return rows


def model_25(seeds: int, n_windows: int = 60) -> dict[str, Any]:
    """Issue 10's model: 20 numeric (normal, lognormal, bimodal, counts), 5 categorical (four of 5 levels, one of
    200), a 0/1 prediction; a 2,000-row reference and ``n_windows`` windows of 1,000, through ``ModelMonitor``."""
    shapes = ["normal", "lognormal", "bimodal", "counts"] * 5
    alarms = windows = 0
    per_seed = []
    for seed in range(seeds):
        rng = np.random.default_rng([25, seed])
        total = 2000 + n_windows * 1000
        columns: dict[str, list[Any]] = {f"x{i}_{shape}": draw(shape, rng, total).tolist()
                                         for i, shape in enumerate(shapes)}
        for j in range(4):
            columns[f"c{j}"] = [f"l{v}" for v in rng.integers(0, 5, total)]
        columns["c_200"] = [f"l{v}" for v in rng.integers(0, 200, total)]
        prediction = (rng.random(total) < 0.3).astype(float).tolist()
        names = list(columns)
        observations = [Observation(float(i), dict(zip(names, values, strict=True)), prediction[i], None)
                        for i, values in enumerate(zip(*columns.values(), strict=True))]
        monitor = ModelMonitor(MonitorConfig())
        signals = monitor.update(observations)
        critical = {s.window_index for s in signals if s.severity == CRITICAL
                    and s.kind in ("data_drift", "prediction_drift")}
        per_seed.append(len(critical))
        alarms += len(critical)
        windows += monitor.windows_closed
    return {"seeds": seeds, "windows": windows, "windows_with_alarm": alarms, "rate": alarms / windows,
            "rate_ci95": clopper_pearson(alarms, windows), "per_seed": per_seed}


# -- drifted streams ----------------------------------------------------------------------------------------
def scenarios() -> dict[str, tuple[str, Callable[[np.random.Generator, int], Array]]]:
    """name -> (the shape whose reference it drifts from, the drifted window's values)."""
    p3 = cat_probs("cat3")

    def moved(points: float, index: int) -> Array:  # a category's share up by `points`, the others scaled down
        q = p3 * (1 - points / (1 - p3[index]))
        q[index] = p3[index] + points
        return q

    return {
        "mean +0.1 sd": ("normal", lambda rng, m: draw("normal", rng, m, shift=0.1)),
        "mean +0.25 sd": ("normal", lambda rng, m: draw("normal", rng, m, shift=0.25)),
        "mean +0.5 sd": ("normal", lambda rng, m: draw("normal", rng, m, shift=0.5)),
        "mean +0.25 sd lognormal": ("lognormal", lambda rng, m: draw("lognormal", rng, m, shift=0.25)),
        "mean +0.25 sd counts": ("counts", lambda rng, m: draw("counts", rng, m, shift=0.25)),
        "scale x1.5": ("normal", lambda rng, m: draw("normal", rng, m, scale=1.5)),
        "share 10% -> 20%": ("cat3", lambda rng, m: draw("cat3", rng, m, probs=moved(0.10, 2))),
        "share 30% -> 40%": ("cat3", lambda rng, m: draw("cat3", rng, m, probs=moved(0.10, 1))),
        "share 60% -> 50%": ("cat3", lambda rng, m: draw("cat3", rng, m, probs=moved(-0.10, 0))),
        "60/30/10 -> 45/40/15": ("cat3", lambda rng, m: draw("cat3", rng, m, probs=np.array([0.45, 0.40, 0.15]))),
        "new category at 5%": ("cat3", lambda rng, m: np.where(rng.random(m) < 0.05, "new",
                                                               draw("cat3", rng, m)).astype(object)),
    }


def drifted(seeds: int, n: int, m: int, evidently: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    config = MonitorConfig()
    rows = []
    for name, (shape, make) in scenarios().items():
        caught = caught_single = 0
        frames = []
        for seed in range(seeds):
            rng = np.random.default_rng([7, seed, n, m])
            ref_values = draw(shape, rng, n)
            reference = reference_of({"f": ref_values}, config)
            window = {"f": make(rng, m)}
            caught += decide(reference, window, (config,), FAMILY_25)[0]
            caught_single += decide(reference, window, (config,), 3)[0]
            frames.append({"reference": {"f": ref_values}, "windows": [window]})
        row = {"scenario": name, "reference": n, "window": m, "seeds": seeds,
               "caught_in_25_feature_model": caught / seeds,
               "caught_as_one_feature_model": caught_single / seeds}
        rows.append(row)
        if evidently is not None:
            evidently.append({"cell": f"drift:{name}:{n}/{m}", "frames": frames})
    return rows


# -- Evidently ------------------------------------------------------------------------------------------------
EVIDENTLY_WORKER = r"""
import json, sys, warnings
warnings.filterwarnings("ignore")
import numpy as np, pandas as pd
from evidently import Report
from evidently.presets import DataDriftPreset
import evidently
jobs = json.load(open(sys.argv[1]))
out = []
for job in jobs:
    report = Report([DataDriftPreset()])
    drifted = []
    for ref, windows in job["pairs"]:
        reference = pd.DataFrame(ref)
        for window in windows:
            snapshot = report.run(current_data=pd.DataFrame(window), reference_data=reference)
            flags = {}
            for metric in snapshot.dict()["metrics"][1:]:
                config = metric.get("config", {})
                column = config.get("column")
                method = config.get("method")
                threshold = config.get("threshold")
                value = metric.get("value")
                if column is None or value is None:
                    continue
                p_value = method in ("K-S p_value", "chi-square p_value", "Z-test p_value") or "p_value" in str(method)
                flags[column] = bool(value < threshold) if p_value else bool(value >= threshold)
            drifted.append(flags)
    out.append({"cell": job["cell"], "drifted": drifted})
print(json.dumps({"version": evidently.__version__, "results": out}))
"""


def as_lists(columns: dict[str, Array]) -> dict[str, list[Any]]:
    return {k: v.tolist() for k, v in columns.items()}


def run_evidently(jobs: list[dict[str, Any]]) -> dict[str, Any]:
    if not EVIDENTLY_PYTHON.exists():
        return {"skipped": f"{EVIDENTLY_PYTHON} missing: run `make bench` once"}
    payload = []
    for job in jobs:
        if "frames" in job:
            pairs = [(as_lists(f["reference"]), [as_lists(w) for w in f["windows"]]) for f in job["frames"]]
        else:
            pairs = [(as_lists(job["reference"]), [as_lists(w) for w in job["windows"]])]
        payload.append({"cell": job["cell"], "pairs": pairs})
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump(payload, handle)
    run = subprocess.run([str(EVIDENTLY_PYTHON), "-c", EVIDENTLY_WORKER, handle.name],
                         capture_output=True, text=True, check=False)
    Path(handle.name).unlink()
    if run.returncode != 0:
        return {"skipped": f"Evidently failed: {run.stderr.strip().splitlines()[-1:]}"}
    return json.loads(run.stdout)


def evidently_rates(result: dict[str, Any]) -> dict[str, Any]:
    """Per stationary cell and shape: the share of windows Evidently calls drifted; per scenario: its power."""
    out: dict[str, Any] = {"version": result.get("version"), "stationary": {}, "drifted": {}}
    for cell in result.get("results", []):
        flags = cell["drifted"]
        if cell["cell"].startswith("drift:"):
            out["drifted"][cell["cell"][6:]] = sum(f.get("f", False) for f in flags) / max(len(flags), 1)
        else:  # one job per seed: add up the windows of every seed of the cell
            windows = out["stationary"].setdefault(cell["cell"], [])
            windows.extend(flags)
    for name, flags in list(out["stationary"].items()):
        columns = sorted({c for f in flags for c in f})
        rates = {c: sum(f.get(c, False) for f in flags) / max(len(flags), 1) for c in columns}
        rates["any column"] = sum(any(f.values()) for f in flags) / max(len(flags), 1)
        rates["windows"] = len(flags)
        out["stationary"][name] = rates
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--drift-seeds", type=int, default=100)
    parser.add_argument("--loose", type=float, default=0.05, help="the loose rate every cell can resolve")
    parser.add_argument("--no-evidently", action="store_true")
    parser.add_argument("--quick", action="store_true", help="references of 2,000 and windows of 1,000 only")
    args = parser.parse_args()
    started = time.perf_counter()
    jobs: list[dict[str, Any]] | None = None if args.no_evidently else []
    sizes = (2000,) if args.quick else (500, 2000, 20000)
    windows = (1000,) if args.quick else (100, 1000, 10000)
    print("stationary streams", flush=True)
    still = stationary(args.seeds, sizes, windows, jobs, args.loose)
    print("drifted streams", flush=True)
    moved = [row for m in windows for row in drifted(args.drift_seeds, 2000, m, jobs)]
    print("25-feature model", flush=True)
    model = model_25(args.seeds)
    evidently = evidently_rates(run_evidently(jobs)) if jobs is not None else {"skipped": "--no-evidently"}
    result = {"seconds": time.perf_counter() - started, "config": {"false_alarm_rate": 0.001, "loose": args.loose},
              "stationary": still, "drifted": moved, "model_25": model, "evidently": evidently}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "bench_quality.json").write_text(json.dumps(result, indent=1))
    pooled = sum(r["alarms"] for r in still), sum(r["windows"] for r in still)
    pooled_loose = sum(r["alarms_loose"] for r in still)
    print(f"\nstationary, pooled over {len(still)} cells: {pooled[0]} alarms in {pooled[1]} windows "
          f"({pooled[0] / pooled[1]:.5f}, 95% CI {clopper_pearson(*pooled)[0]:.5f}-{clopper_pearson(*pooled)[1]:.5f}) "
          f"at 0.001; {pooled_loose / pooled[1]:.4f} at {args.loose}")
    worst = max(still, key=lambda r: r["rate_loose"])
    print(f"worst cell at {args.loose}: {worst['shape']} ref {worst['reference']} window {worst['window']}: "
          f"{worst['rate_loose']:.4f} (CI {worst['rate_loose_ci95'][0]:.4f}-{worst['rate_loose_ci95'][1]:.4f})")
    print(f"25-feature model: {model['windows_with_alarm']} windows with a critical alarm of {model['windows']}")
    for row in moved:
        name = f"{row['scenario']} ({row['window']} rows)"
        ev = evidently.get("drifted", {}).get(f"{row['scenario']}:2000/{row['window']}")
        print(f"  {name:<36} caught {row['caught_in_25_feature_model']:.2f} (25-feature family), "
              f"{row['caught_as_one_feature_model']:.2f} (alone)" + (f"; Evidently {ev:.2f}" if ev is not None else ""))
    print(f"took {result['seconds']:.0f} s; bench/results/bench_quality.json")


if __name__ == "__main__":
    main()
