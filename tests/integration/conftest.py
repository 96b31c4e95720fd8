"""Fixtures shared by the integration tests of one component."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from prometheus_client import CollectorRegistry

from driftwarden.contract.settings import Settings
from retrain_worker.worker import RetrainWorker


@pytest.fixture
def start_worker() -> Iterator[Callable[..., RetrainWorker]]:
    """Start in-process retrain workers (optionally on a fake clock); all are closed after the test."""
    started: list[RetrainWorker] = []

    def start(settings: Settings, clock: Callable[[], float] | None = None) -> RetrainWorker:
        worker = RetrainWorker(settings, CollectorRegistry(), **({"clock": clock} if clock else {}))
        worker.start()
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.close()
