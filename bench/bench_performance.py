"""Performance estimation and the multivariate check: how right, how early, how costly. One run, one machine.

    .venv/bin/python bench/bench_performance.py            # ~3 minutes
    .venv/bin/python bench/bench_performance.py --quick    # fewer seeds, a smoke test

Prints a table and writes ``bench/results/bench_performance.json``:

* **estimation error**: covariate-shift streams with labels (the inputs move, P(y | x) stays), 20 numeric features,
  many seeds: per 1,000-row window the absolute difference between the accuracy estimated from the calibrated
  scores and the realised one; for a calibrated model, for an over-confident one (its raw scores are
  sigmoid(3 logit): the reference's calibration has to repair them), and under concept drift (P(y | x) changes:
  where the method is wrong, shown for scale). The same for a three-class model sending a probability per class
  (``scores``, estimated one-vs-rest): calibrated, over-confident (softmax(3 logits)) and under concept drift.
* **alert timing**: the model's main input narrows towards the decision boundary from one window on, so accuracy
  falls; the performance alert's time (predictions since the drop began, at the close of the window that raised it)
  against when the drop could be seen with labels arriving 1,000 predictions late (the realised accuracy of a window
  tested like the estimate, with a two-proportion z test at the same per-test level, decided one window later).
* **cost**: one window (1,000 rows x 20 features in, window closed, signals out) with neither, either or both of
  the multivariate check and the estimation, each the best of 3 runs then the median over windows; the shares are
  the extra time over the window's whole cost with both.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Any

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # per-core figures

import numpy as np  # noqa: E402
from scipy import stats  # noqa: E402

from detectors.monitor import ModelMonitor, MonitorConfig, Observation, Outcome  # noqa: E402
from detectors.multivariate import as_matrix  # noqa: E402
from detectors.performance import expected_metrics, window_counts  # noqa: E402
from detectors.performance_multiclass import expected_metrics as multiclass_metrics  # noqa: E402
from detectors.performance_multiclass import window_counts as multiclass_counts  # noqa: E402

ROOT = Path(__file__).resolve().parent
FEATURES, WINDOW, REFERENCE = 20, 1000, 2000
WEIGHTS = np.array([2.0, -1.5, 1.0, 0.8, -0.6] + [0.0] * (FEATURES - 5))


def stream(rng: np.random.Generator, n: int, t0: float, shift: float = 0.0, narrow: float = 1.0,
           sharpen: float = 1.0, concept: float = 0.0) -> tuple[list[Observation], list[Outcome]]:
    """Rows of 20 correlated numeric features; P(y=1 | x) = sigmoid((1 - 0.75 concept) w.x); the model scores
    sigmoid(sharpen w.x) (1: calibrated) and predicts its 0.5 threshold. ``shift`` moves the five informative
    features' means, ``narrow`` scales them towards the decision boundary."""
    base = rng.normal(0.0, 1.0, (n, FEATURES))
    base[:, 5:10] = 0.7 * base[:, :5] + 0.7 * base[:, 5:10]  # correlated pairs, so the PCA has a subspace
    base[:, :5] += shift
    base[:, :5] *= narrow
    logit = base @ WEIGHTS
    truth = 1.0 / (1.0 + np.exp(-(1.0 - 0.75 * concept) * logit))  # concept drift: the same score right less often
    y = (rng.random(n) < truth).astype(int)
    score = 1.0 / (1.0 + np.exp(-sharpen * logit))
    predicted = (score > 0.5).astype(int)
    observations = [Observation(t0 + i, dict(zip(NAMES, map(float, base[i]), strict=True)), int(predicted[i]),
                                float(score[i])) for i in range(n)]
    outcomes = [Outcome(t0 + i, int(predicted[i]), int(y[i]), float(score[i]), t0 + i) for i in range(n)]
    return observations, outcomes


NAMES = [f"x{j}" for j in range(FEATURES)]
CLASSES = ("a", "b", "c")
WEIGHTS3 = np.zeros((3, FEATURES))
WEIGHTS3[:, :5] = [[2.0, -1.5, 0.0, 0.8, 0.0], [-1.0, 1.5, 1.0, 0.0, -0.6], [-1.0, 0.0, -1.0, -0.8, 0.6]]


def multiclass_stream(rng: np.random.Generator, n: int, t0: float, shift: float = 0.0, narrow: float = 1.0,
                      sharpen: float = 1.0, concept: float = 0.0) -> tuple[list[Observation], list[Outcome]]:
    """``stream``'s rows and shifts for a three-class model: P(class | x) = softmax((1 - 0.75 concept) W x), the
    model's scores softmax(sharpen W x) (1: calibrated), its top class the prediction."""
    base = rng.normal(0.0, 1.0, (n, FEATURES))
    base[:, 5:10] = 0.7 * base[:, :5] + 0.7 * base[:, 5:10]
    base[:, :5] += shift
    base[:, :5] *= narrow
    logits = base @ WEIGHTS3.T

    def softmax(z: np.ndarray) -> np.ndarray:
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    truth, sent = softmax((1.0 - 0.75 * concept) * logits), softmax(sharpen * logits)
    y = (rng.random(n)[:, None] > np.cumsum(truth, axis=1)).sum(axis=1)
    predicted = sent.argmax(axis=1)
    observations, outcomes = [], []
    for i in range(n):
        scores = dict(zip(CLASSES, map(float, sent[i]), strict=True))
        observations.append(Observation(t0 + i, dict(zip(NAMES, map(float, base[i]), strict=True)),
                                        CLASSES[predicted[i]], None, scores))
        outcomes.append(Outcome(t0 + i, CLASSES[predicted[i]], CLASSES[y[i]], None, t0 + i, scores))
    return observations, outcomes
FAMILY = 3 * (FEATURES + 2) + 2  # psi, js, wasserstein of 20 features, prediction and score; multivariate; performance


def calibrated_monitor(rng: np.random.Generator, config: MonitorConfig, sharpen: float = 1.0,
                       multiclass: bool = False) -> ModelMonitor:
    monitor = ModelMonitor(config)
    observations, outcomes = (multiclass_stream if multiclass else stream)(rng, REFERENCE, 0.0, sharpen=sharpen)
    monitor.update(observations)
    monitor.update_outcomes(outcomes[: config.performance_reference_size])
    return monitor


def estimation_error(seeds: int, windows: int) -> dict[str, Any]:
    config = MonitorConfig()
    out: dict[str, Any] = {}
    cases: dict[str, dict[str, float]] = {
        "calibrated": {}, "over-confident scores": {"sharpen": 3.0}, "concept drift": {"concept": 1.0},
        "3 classes, calibrated": {"classes": 3}, "3 classes, over-confident": {"classes": 3, "sharpen": 3.0},
        "3 classes, concept drift": {"classes": 3, "concept": 1.0}}
    for name, case in cases.items():
        errors = []
        raw = []  # the same windows estimated from the raw scores, as if they were probabilities
        multiclass = case.get("classes") == 3
        make = multiclass_stream if multiclass else stream
        for seed in range(seeds):
            rng = np.random.default_rng(1000 + seed)
            monitor = calibrated_monitor(rng, config, case.get("sharpen", 1.0), multiclass)
            for k in range(windows):
                shift = 1.0 * k / max(windows - 1, 1)  # from none to one sd over the run
                observations, outcomes = make(rng, WINDOW, 10_000.0 * (k + 1), shift=shift,
                                              sharpen=case.get("sharpen", 1.0),
                                              concept=case.get("concept", 0.0) * k / max(windows - 1, 1))
                monitor.update(observations)
                monitor.update_outcomes(outcomes)
                realised = np.mean([o.prediction == o.label for o in outcomes])
                if multiclass:  # the raw probability of the predicted class
                    raw.append(abs(float(np.mean([o.scores[o.prediction] for o in observations])) - realised))
                    continue
                s = np.array([o.score for o in observations])
                p = np.array([o.prediction for o in observations])
                raw.append(abs(float(np.mean(np.where(p == 1, s, 1 - s))) - realised))
            errors += [w["estimation_error"] for w in monitor.performance_status()["windows"]]
        e = np.asarray(errors)
        out[name] = {"windows": int(e.size), "mae": float(e.mean()), "p95": float(np.quantile(e, 0.95)),
                     "max": float(e.max()), "mae_raw_scores": float(np.mean(raw))}
    return out


def alert_timing(seeds: int) -> dict[str, Any]:
    config = MonitorConfig()
    narrowing = (1.0, 1.0, 0.85, 0.7, 0.6, 0.5, 0.4, 0.3, 0.25, 0.2)  # the drop begins at window 2
    begin = 2
    estimated_at, labels_at = [], []
    for seed in range(seeds):
        rng = np.random.default_rng(5000 + seed)
        monitor = calibrated_monitor(rng, config)
        calibration = monitor.reference.performance if monitor.reference is not None else None
        assert calibration is not None
        fired = None
        labelled = None
        for k, narrow in enumerate(narrowing):
            observations, outcomes = stream(rng, WINDOW, 10_000.0 * (k + 1), narrow=narrow)
            signals = monitor.update(observations)
            critical = [s for s in signals if s.kind == "performance" and s.severity == "critical"]
            if critical and fired is None:
                fired = (k + 1 - begin) * WINDOW  # predictions since the drop began, at this window's close
            # labels of window k, 1,000 predictions late: tested when window k + 1 closes
            accuracy = float(np.mean([o.prediction == o.label for o in outcomes]))
            a0, n0 = calibration.reference_accuracy, calibration.reference_n
            pooled = (a0 * n0 + accuracy * WINDOW) / (n0 + WINDOW)
            z = (a0 - accuracy) / np.sqrt(pooled * (1 - pooled) * (1 / n0 + 1 / WINDOW))
            level = config.false_alarm_rate / FAMILY  # the performance test's own level
            if labelled is None and stats.norm.sf(z) <= level and a0 - accuracy >= config.performance_margin:
                labelled = (k + 2 - begin) * WINDOW
        estimated_at.append(fired)
        labels_at.append(labelled)
    pairs = [(e, la) for e, la in zip(estimated_at, labels_at, strict=True) if e is not None and la is not None]
    return {
        "seeds": seeds,
        "estimate_alerted": sum(e is not None for e in estimated_at),
        "labels_detected": sum(la is not None for la in labels_at),
        "estimate_no_later": sum(e <= la for e, la in pairs),
        "median_estimate_predictions": statistics.median(e for e, _ in pairs) if pairs else None,
        "median_labels_predictions": statistics.median(la for _, la in pairs) if pairs else None,
    }


def window_cost(windows: int, repeats: int) -> dict[str, Any]:
    rng = np.random.default_rng(9)
    variants = {
        "neither": MonitorConfig(multivariate_variance=1.0),  # every component kept: no multivariate test
        "multivariate": MonitorConfig(),
        "estimation": MonitorConfig(multivariate_variance=1.0),
        "both": MonitorConfig(),
    }
    reference, reference_outcomes = stream(rng, REFERENCE, 0.0)
    data = [stream(rng, WINDOW, 10_000.0 * (k + 1), shift=0.5 * (k % 2))[0] for k in range(windows)]
    snapshots: dict[str, bytes] = {}
    for name, config in variants.items():
        monitor = ModelMonitor(config)
        monitor.update(reference)
        if name in ("estimation", "both"):
            monitor.update_outcomes(reference_outcomes[: config.performance_reference_size])
        monitor.update(data[0])  # warm: every calibration of the window size computed
        snapshots[name] = monitor.to_bytes()
    best: dict[str, list[float]] = {name: [] for name in variants}
    for observations in data:
        per_window = dict.fromkeys(variants, float("inf"))
        for _ in range(repeats):  # the variants interleaved, so that a load spike hits them alike
            for name in variants:
                fresh = ModelMonitor.from_bytes(snapshots[name])
                started = time.perf_counter()
                fresh.update(observations)
                per_window[name] = min(per_window[name], time.perf_counter() - started)
        for name, seconds in per_window.items():
            best[name].append(seconds)
    medians = {name: statistics.median(values) for name, values in best.items()}
    both = medians["both"]
    # the added work alone, timed the same way: steadier than a difference of two whole windows on a busy machine
    reference_state = ModelMonitor.from_bytes(snapshots["both"]).reference
    assert reference_state is not None and reference_state.pca is not None and reference_state.performance is not None
    pca, calibration = reference_state.pca, reference_state.performance
    alone: dict[str, list[float]] = {"multivariate": [], "estimation": []}
    for observations in data:
        rows = [o.features for o in observations]
        columns = list(zip(*[[row[name] for name in pca.features] for row in rows], strict=True))
        scores, predictions = [o.score for o in observations], [o.prediction for o in observations]
        def multivariate(columns: list[Any] = columns) -> object:
            return pca.row_errors(as_matrix(columns)).sum()

        def estimation(scores: list[Any] = scores, predictions: list[Any] = predictions) -> object:
            return expected_metrics(calibration, window_counts(calibration, scores, predictions)[0])

        for name, work in (("multivariate", multivariate), ("estimation", estimation)):
            fastest = float("inf")
            for _ in range(repeats):
                started = time.perf_counter()
                work()
                fastest = min(fastest, time.perf_counter() - started)
            alone[name].append(fastest)
    # the multiclass estimation of a three-class model's window, timed the same way, as a share of the binary window
    rng = np.random.default_rng(10)
    multiclass = calibrated_monitor(rng, MonitorConfig(), multiclass=True).reference
    assert multiclass is not None and multiclass.performance is not None
    three = multiclass.performance
    alone["estimation, 3 classes"] = []
    for k in range(len(data)):
        observations = multiclass_stream(rng, WINDOW, 10_000.0 * (k + 1))[0]
        class_scores, predictions = [o.scores for o in observations], [o.prediction for o in observations]
        fastest = float("inf")
        for _ in range(repeats):
            started = time.perf_counter()
            multiclass_metrics(multiclass_counts(three, class_scores, predictions)[0])  # type: ignore[arg-type]
            fastest = min(fastest, time.perf_counter() - started)
        alone["estimation, 3 classes"].append(fastest)
    return {
        "alone_ms": {k: statistics.median(v) * 1000 for k, v in alone.items()},
        "alone_share": {k: statistics.median(v) / both for k, v in alone.items()},
        "window_ms": {k: v * 1000 for k, v in medians.items()},
        "share_multivariate": (medians["multivariate"] - medians["neither"]) / both,
        "share_estimation": (medians["estimation"] - medians["neither"]) / both,
        "share_both": (both - medians["neither"]) / both,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    seeds, windows = (5, 4) if args.quick else (30, 8)
    started = time.time()
    load_before = os.getloadavg()[0]
    result = {
        "estimation_error": estimation_error(seeds, windows),
        "alert_timing": alert_timing(seeds),
        "cost": window_cost(5 if args.quick else 15, 3 if args.quick else 5),
        "machine": {"python": platform.python_version(), "cpu_count": os.cpu_count(),
                    "load_before": load_before, "load_after": os.getloadavg()[0]},
        "seconds": time.time() - started,
    }
    print(f"{'case':28} {'windows':>8} {'MAE':>7} {'p95':>7} {'max':>7} {'MAE raw scores':>15}")
    for name, e in result["estimation_error"].items():
        print(f"{name:28} {e['windows']:>8} {e['mae']:7.4f} {e['p95']:7.4f} {e['max']:7.4f} "
              f"{e['mae_raw_scores']:15.4f}")
    timing = result["alert_timing"]
    print(f"alert: estimate raised in {timing['estimate_alerted']}/{timing['seeds']} seeds, labels saw the drop in "
          f"{timing['labels_detected']}; estimate no later in {timing['estimate_no_later']}; median predictions "
          f"after the drop began: estimate {timing['median_estimate_predictions']}, labels "
          f"{timing['median_labels_predictions']}")
    cost = result["cost"]
    print("window ms: " + ", ".join(f"{k} {v:.1f}" for k, v in cost["window_ms"].items())
          + f"; shares of the whole window: multivariate {cost['share_multivariate']:.1%}, estimation "
            f"{cost['share_estimation']:.1%}, both {cost['share_both']:.1%}; the added work alone: "
          + ", ".join(f"{k} {cost['alone_ms'][k]:.2f} ms ({cost['alone_share'][k]:.1%})" for k in cost["alone_ms"]))
    (ROOT / "results").mkdir(exist_ok=True)
    (ROOT / "results" / "bench_performance.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
