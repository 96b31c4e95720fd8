"""Seeded synthetic traffic for the demo, the end-to-end tests and the benchmarks.

A credit-style binary classifier with five numeric and two categorical features. From ``shift_at`` on,
``income`` moves up by ``shift`` reference standard deviations and the label rule changes with it
(concept drift), so a model retrained on recent data beats the old one. Every other feature keeps
its distribution, which is what lets a test assert that only the shifted feature drifts.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from driftwarden.contract.events import Label, Prediction

NUMERIC = ("income", "age", "debt_ratio", "tenure", "utilisation")
CATEGORICAL = ("region", "channel")
REGIONS = ("north", "south", "east", "west")
CHANNELS = ("web", "branch", "partner")
SHIFTED_FEATURE = "income"


@dataclass(frozen=True)
class TrafficSpec:
    model: str = "credit-risk"
    model_version: str = "1"
    total: int = 10_000
    shift_at: int = 5_000
    shift: float = 2.0  # in reference standard deviations of income
    seed: int = 7
    start_time: float = 1_767_225_600.0  # 2026-01-01T00:00:00Z
    seconds_per_event: float = 0.05
    label_delay_s: float = 30.0


def _label(income: float, debt: float, utilisation: float, shifted: bool, rng: np.random.Generator) -> int:
    # Before the shift default risk rises with debt; after it, with utilisation: a new concept.
    z = (2.5 * debt - 1.0) if not shifted else (2.5 * utilisation - 1.2 + 0.3 * (income - 52_000) / 12_000)
    return int(rng.random() < 1.0 / (1.0 + math.exp(-3.0 * z)))


def generate(spec: TrafficSpec) -> Iterator[tuple[Prediction, Label]]:
    """Yield (prediction, label) pairs in time order; deterministic for a given spec."""
    rng = np.random.default_rng(spec.seed)
    for i in range(spec.total):
        shifted = i >= spec.shift_at
        income = float(rng.normal(52_000 + (spec.shift * 12_000 if shifted else 0.0), 12_000))
        age = float(rng.normal(41, 11))
        debt = float(rng.beta(2, 5))
        tenure = float(rng.exponential(6.0))
        utilisation = float(rng.beta(2, 3))
        region = REGIONS[int(rng.integers(len(REGIONS)))]
        channel = CHANNELS[int(rng.choice(len(CHANNELS), p=[0.6, 0.3, 0.1]))]
        label = _label(income, debt, utilisation, shifted, rng)
        # The deployed model learned the old concept: it scores on debt ratio.
        score = 1.0 / (1.0 + math.exp(-3.0 * (2.5 * debt - 1.0)))
        ts = spec.start_time + i * spec.seconds_per_event
        event_id = f"{spec.model}-{spec.seed}-{i}"
        prediction = Prediction(
            event_id=event_id, model=spec.model, model_version=spec.model_version, timestamp=ts,
            features={"income": round(income, 2), "age": round(age, 1), "debt_ratio": round(debt, 4),
                      "tenure": round(tenure, 2), "utilisation": round(utilisation, 4),
                      "region": region, "channel": channel},
            prediction=int(score >= 0.5), score=round(score, 4),
        )
        yield prediction, Label(event_id=event_id, model=spec.model, label=label,
                                timestamp=ts + spec.label_delay_s)
