"""Prometheus metrics of the retrain worker (names are a contract with ``deploy/`` dashboards)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

# A retrain takes seconds to tens of minutes depending on the data and the trainer.
TRAINING_BUCKETS = (0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0)


class RetrainMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.retrains = Counter(
            "driftwarden_retrains_total", "Retrain decisions by trigger and outcome "
            "(promoted, rejected, failed, skipped).", ["model", "trigger", "outcome"], registry=registry)
        self.training_seconds = Histogram(
            "driftwarden_training_seconds", "Time spent in the trainer.", ["model"],
            buckets=TRAINING_BUCKETS, registry=registry)
        self.promotions = Counter(
            "driftwarden_promotions_total", "Versions moved to the champion alias (rollbacks included).",
            ["model"], registry=registry)
        self.champion_version = Gauge(
            "driftwarden_champion_version", "The version the champion alias points at.", ["model"],
            registry=registry)
