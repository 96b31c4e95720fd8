"""``driftwarden rollback MODEL``: move ``champion`` back to ``previous`` and announce it."""

from __future__ import annotations

import logging

from driftwarden.contract.errors import ServiceError
from driftwarden.contract.events import ModelUpdate, encode
from driftwarden.contract.kafka import make_producer
from driftwarden.contract.settings import Settings
from retrain_worker.registry import CHAMPION, ModelRegistry

log = logging.getLogger(__name__)


def rollback(settings: Settings, model: str, registry: ModelRegistry | None = None) -> ModelUpdate:
    """Swap ``champion`` and ``previous`` for ``model`` and publish the ``ModelUpdate`` the stream
    listens to (it adopts the reference data of the version that is champion again)."""
    if registry is None:
        registry = ModelRegistry(settings.mlflow.tracking_uri, settings.mlflow.experiment)
        registry.start()
    champion, rolled_back = registry.rollback(model)
    restored = registry.alias(model, CHAMPION)
    update = ModelUpdate(model=model, version=champion, previous_version=rolled_back, alias=CHAMPION,
                         promoted=True, run_id=restored.run_id if restored is not None else None,
                         drift_id=None, metrics={},
                         reason=f"rollback: champion moved back from version {rolled_back} to {champion}")
    producer = make_producer(settings)
    producer.produce(settings.kafka.topics.model_updates, key=model.encode(), value=encode(update))
    if producer.flush(15) > 0:
        raise ServiceError(f"the aliases moved but Kafka did not acknowledge the update for {model}")
    log.info("%s", update.reason)
    return update
