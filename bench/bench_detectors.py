"""Benchmarks of the detector engine, every ratio measured in one run on the same machine and data.

    .venv/bin/python bench/bench_detectors.py            # everything (Evidently if its venv exists)
    .venv/bin/python bench/bench_detectors.py --quick    # fewer repetitions, for a smoke test

Prints a table and writes ``bench/results/bench_detectors.json``. Evidently runs in its own venv
(``bench/.venv-evidently``, never a project dependency) through a subprocess, on the very same arrays.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # per-core figures

import numpy as np  # noqa: E402
from river.drift import ADWIN  # noqa: E402
from river.drift.binary import DDM  # noqa: E402

from detectors.concept import ConceptDetector  # noqa: E402
from detectors.histogram import CategoricalHistogram, NumericHistogram  # noqa: E402
from detectors.monitor import (  # noqa: E402
    ModelMonitor,
    MonitorConfig,
    Observation,
    Outcome,
    Predictions,
    build_reference,
)

ROOT = Path(__file__).resolve().parent
EVIDENTLY_PYTHON = ROOT / ".venv-evidently" / "bin" / "python"
N_NUMERIC, N_CATEGORICAL, WINDOW = 16, 4, 1000  # 20 columns, windows of 1,000 rows

# Runs inside the Evidently venv: reads the arrays, times DataDriftPreset per window, prints JSON.
EVIDENTLY_WORKER = r"""
import json, sys, time, warnings
warnings.filterwarnings("ignore")
import numpy as np, pandas as pd
from evidently import Report
from evidently.presets import DataDriftPreset
import evidently
data = np.load(sys.argv[1])
def frame(prefix):
    columns = {k.split(":", 1)[1]: data[k] for k in data.files if k.startswith(prefix + ":")}
    return pd.DataFrame(columns)
reference = frame("ref")
windows = sorted({k.split(":")[0] for k in data.files if k.startswith("cur")})
report = Report([DataDriftPreset()])
report.run(current_data=frame(windows[0]), reference_data=reference)  # warm-up (imports, caches)
seconds, drifted = [], []
for name in windows:  # per window the best of `repeat` runs, as for driftwarden
    times = []
    for _ in range(int(sys.argv[2])):
        start = time.perf_counter()
        snapshot = report.run(current_data=frame(name), reference_data=reference)
        times.append(time.perf_counter() - start)
    seconds.append(min(times))
    drifted.append(snapshot.dict()["metrics"][0]["value"]["count"])
print(json.dumps({"version": evidently.__version__, "seconds": seconds, "drifted_columns": drifted}))
"""


def columns(seed: int, n: int, shift: float) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    data: dict[str, np.ndarray] = {}
    for i in range(N_NUMERIC):
        data[f"num{i}"] = rng.normal(shift * (i % 3 == 0), 1.0 + i / 10, n)
    for i in range(N_CATEGORICAL):
        p = np.array([0.4, 0.3, 0.2, 0.1]) if shift == 0 or i else np.array([0.1, 0.2, 0.3, 0.4])
        data[f"cat{i}"] = rng.choice(np.array(["a", "b", "c", "d"]), n, p=p)
    return data


def rows(data: dict[str, np.ndarray]) -> list[dict[str, Any]]:
    lists = {name: values.tolist() for name, values in data.items()}
    n = len(next(iter(lists.values())))
    return [{name: lists[name][i] for name in lists} for i in range(n)]


def observations(data: dict[str, np.ndarray], start: float = 0.0) -> list[Observation]:
    return [Observation(start + i, row, 0.0, None) for i, row in enumerate(rows(data))]


def columnar(data: dict[str, np.ndarray], start: float = 0.0) -> Predictions:
    """The same predictions as ``observations``, as the stream's columnar decode gives them: a float64 array per
    numeric feature, a list of str per categorical one."""
    n = len(next(iter(data.values())))
    return Predictions(start + np.arange(n, dtype=np.float64), [], [0.0] * n, [None] * n,
                       columns={name: values if values.dtype.kind == "f" else values.tolist()
                                for name, values in data.items()})


def best(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def bench_histograms(repeat: int) -> dict[str, float]:
    rng = np.random.default_rng(0)
    values = rng.normal(size=1_000_000)
    numeric = NumericHistogram.from_values(values[:2000], 20)
    numeric_s = best(lambda: [numeric.update(chunk) for chunk in np.split(values, 100)], repeat)
    keys = rng.choice(np.array([f"k{i}" for i in range(50)]), 200_000).tolist()
    categorical = CategoricalHistogram.from_values(keys[:2000], 100)
    categorical_s = best(lambda: [categorical.update(keys[i : i + 10_000]) for i in range(0, 200_000, 10_000)],
                         repeat)
    # the whole path from the stream's rows: typing, missing/invalid counts, both kinds of histogram
    config = MonitorConfig(reference_size=WINDOW, window_size=10**9)
    # calibrated for windows of WINDOW rows: a reference calibrated for 10**9-row windows would draw a null of
    # that size (the multivariate test's needs 7.5 GiB); no window closes here anyway
    blob = build_reference(rows(columns(1, WINDOW, 0.0)), MonitorConfig(reference_size=WINDOW, window_size=WINDOW))
    batch = observations(columns(2, 10_000, 0.0))

    def ingest() -> None:
        ModelMonitor.with_reference(config, blob).update(batch)

    ingest_s = best(ingest, repeat)
    return {
        "numeric_values_per_s": values.size / numeric_s,
        "categorical_values_per_s": len(keys) / categorical_s,
        "monitor_values_per_s": len(batch) * (N_NUMERIC + N_CATEGORICAL) / ingest_s,
    }


def bench_windows(n_windows: int, repeat: int) -> dict[str, Any]:
    config = MonitorConfig(reference_size=WINDOW, window_size=WINDOW)
    reference = columns(1, WINDOW, 0.0)
    currents = [columns(100 + w, WINDOW, 0.5 if w % 2 else 0.0) for w in range(n_windows)]
    reference_rows = rows(reference)
    blob = build_reference(reference_rows, config)
    window_obs = [observations(c, start=WINDOW * (w + 1)) for w, c in enumerate(currents)]
    window_columns = [columnar(c, start=WINDOW * (w + 1)) for w, c in enumerate(currents)]

    close_ms, columns_ms, steady_ms, cold_ms, drifted = [], [], [], [], []
    for obs, batch in zip(window_obs, window_columns, strict=True):
        # per window the best of `repeat` runs (the machine is shared), then the median
        closes, by_columns, steadies, colds = [], [], [], []
        for _ in range(repeat):
            monitor = ModelMonitor.with_reference(config, blob)
            assert monitor.window is not None
            monitor.window.add_columns(batch, monitor.reference)
            start = time.perf_counter()
            monitor._close()  # noqa: SLF001 - the window-close step alone
            closes.append((time.perf_counter() - start) * 1e3)

            monitor = ModelMonitor.with_reference(config, blob)
            start = time.perf_counter()
            signals = monitor.update_columns(batch)  # columns in, window filled and closed, signals out
            by_columns.append((time.perf_counter() - start) * 1e3)

            monitor = ModelMonitor.with_reference(config, blob)
            start = time.perf_counter()
            by_rows = monitor.update(obs)  # the same from rows (each a mapping of feature -> value)
            steadies.append((time.perf_counter() - start) * 1e3)
            assert [s.to_dict() for s in by_rows] == [s.to_dict() for s in signals]

            start = time.perf_counter()  # as Evidently does it: the reference processed again every time
            ModelMonitor.with_reference(config, build_reference(reference_rows, config)).update_columns(batch)
            colds.append((time.perf_counter() - start) * 1e3)
        close_ms.append(min(closes))
        columns_ms.append(min(by_columns))
        steady_ms.append(min(steadies))
        cold_ms.append(min(colds))
        drifted.append(len({s.feature for s in signals if s.kind == "data_drift"}))
    return {
        "close_ms": statistics.median(close_ms),
        "window_ms": statistics.median(columns_ms),  # the headline: the stream's columnar form
        "window_rows_ms": statistics.median(steady_ms),
        "window_cold_ms": statistics.median(cold_ms),
        "drifted_columns": drifted,
        "reference": reference,
        "currents": currents,
    }


def bench_evidently(reference: dict[str, np.ndarray], currents: list[dict[str, np.ndarray]],
                    repeat: int) -> dict[str, Any]:
    if not EVIDENTLY_PYTHON.exists():
        return {"skipped": f"{EVIDENTLY_PYTHON} not found: see bench/README.md"}
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "windows.npz"
        arrays = {f"ref:{k}": v for k, v in reference.items()}
        for w, current in enumerate(currents):
            arrays.update({f"cur{w:03d}:{k}": v for k, v in current.items()})
        np.savez(path, **arrays)  # type: ignore[arg-type]
        run = subprocess.run([str(EVIDENTLY_PYTHON), "-c", EVIDENTLY_WORKER, str(path), str(repeat)],
                             capture_output=True, text=True, check=False, timeout=3600)
    if run.returncode != 0:
        return {"skipped": f"Evidently failed: {run.stderr.strip().splitlines()[-1:]}"}
    result: dict[str, Any] = json.loads(run.stdout.strip().splitlines()[-1])
    result["window_ms"] = statistics.median(result["seconds"]) * 1e3
    return result


def bench_river(n: int, repeat: int) -> dict[str, float]:
    rng = np.random.default_rng(3)
    errors = (rng.random(n) < np.where(np.arange(n) < n // 2, 0.1, 0.3)).astype(float).tolist()
    outcomes = [Outcome(float(i), "a", "b" if e else "a") for i, e in enumerate(errors)]

    def direct() -> None:
        adwin, ddm = ADWIN(), DDM()
        for error in errors:
            adwin.update(error)
            ddm.update(error)
            _ = adwin.drift_detected, ddm.drift_detected, ddm.warning_detected

    def wrapped() -> None:
        adwin, ddm = ConceptDetector("ADWIN"), ConceptDetector("DDM")
        for error in errors:
            adwin.update(error)
            ddm.update(error)

    def monitor() -> None:
        ModelMonitor(MonitorConfig()).update_outcomes(outcomes)

    direct_s, wrapped_s, monitor_s = best(direct, repeat), best(wrapped, repeat), best(monitor, repeat)
    return {
        "river_updates_per_s": n / direct_s,
        "wrapper_updates_per_s": n / wrapped_s,
        "monitor_outcomes_per_s": n / monitor_s,
        "wrapper_overhead": wrapped_s / direct_s,
        "monitor_overhead": monitor_s / direct_s,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer repetitions (a smoke test)")
    parser.add_argument("--no-evidently", action="store_true", help="skip the Evidently comparison")
    args = parser.parse_args()
    repeat, n_windows, n_outcomes = (1, 4, 20_000) if args.quick else (5, 20, 100_000)

    load_before = os.getloadavg()
    histograms = bench_histograms(repeat)
    windows = bench_windows(n_windows, min(repeat, 3))
    evidently = {"skipped": "--no-evidently"} if args.no_evidently else bench_evidently(
        windows.pop("reference"), windows.pop("currents"), min(repeat, 3))
    windows.pop("reference", None)
    windows.pop("currents", None)
    river = bench_river(n_outcomes, repeat)

    ratio = evidently["window_ms"] / windows["window_ms"] if "window_ms" in evidently else None
    ratio_rows = evidently["window_ms"] / windows["window_rows_ms"] if "window_ms" in evidently else None
    ratio_cold = evidently["window_ms"] / windows["window_cold_ms"] if "window_ms" in evidently else None
    table = [
        ("numeric histogram update", f"{histograms['numeric_values_per_s'] / 1e6:,.1f} M values/s"),
        ("categorical histogram update", f"{histograms['categorical_values_per_s'] / 1e6:,.1f} M values/s"),
        ("monitor ingest (rows -> 20 histograms)", f"{histograms['monitor_values_per_s'] / 1e6:,.2f} M values/s"),
        ("window close, 20 features", f"{windows['close_ms']:.2f} ms"),
        ("window of 1,000 x 20 from columns (update + close)", f"{windows['window_ms']:.2f} ms"),
        ("  same from rows", f"{windows['window_rows_ms']:.2f} ms"),
        ("  from columns, reference rebuilt each time", f"{windows['window_cold_ms']:.2f} ms"),
        ("Evidently DataDriftPreset, same window",
         f"{evidently['window_ms']:.0f} ms" if ratio else str(evidently.get("skipped"))),
        ("  ratio Evidently / driftwarden (columns)", f"{ratio:,.0f}x (cold: {ratio_cold:,.0f}x)"
         if ratio and ratio_cold else "-"),
        ("  ratio Evidently / driftwarden (rows)", f"{ratio_rows:,.0f}x" if ratio_rows else "-"),
        ("River ADWIN+DDM direct", f"{river['river_updates_per_s'] / 1e3:,.0f} k outcomes/s"),
        ("  through ConceptDetector wrappers", f"{river['wrapper_updates_per_s'] / 1e3:,.0f} k outcomes/s "
                                               f"(overhead {river['wrapper_overhead']:.2f}x)"),
        ("  through ModelMonitor.update_outcomes", f"{river['monitor_outcomes_per_s'] / 1e3:,.0f} k outcomes/s "
                                                   f"(overhead {river['monitor_overhead']:.2f}x)"),
    ]
    load = {"before": load_before, "after": os.getloadavg()}  # the machine is shared: say how busy it was
    table.append(("load average 1/5/15 min, before / after", " / ".join(
        ", ".join(f"{v:.2f}" for v in values) for values in load.values())))
    width = max(len(name) for name, _ in table)
    print(f"driftwarden detectors benchmark ({platform.python_implementation()} {platform.python_version()}, "
          f"{platform.machine()}, 1 thread{', quick' if args.quick else ''})")
    for name, value in table:
        print(f"  {name:<{width}}  {value}")
    results = {
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "python": platform.python_version(),
        "machine": platform.machine(),
        "quick": args.quick,
        "load_average": load,
        "histograms": histograms,
        "windows": windows,
        "evidently": {k: v for k, v in evidently.items() if k != "seconds"},
        "evidently_ratio": ratio,
        "evidently_ratio_rows": ratio_rows,
        "evidently_ratio_cold": ratio_cold,
        "river": river,
    }
    out = ROOT / "results" / "bench_detectors.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {out.relative_to(ROOT.parent)}")


if __name__ == "__main__":
    sys.exit(main())
