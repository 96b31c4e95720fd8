"""Errors of the retrain worker. Each carries ``reason``: the short code published on ``model-updates``."""

from __future__ import annotations

from driftwarden.contract.errors import DriftwardenError


class RetrainError(DriftwardenError):
    """A retrain could not reach a decision. ``transient`` errors are retried, the others recorded."""

    reason = "retrain_failed"
    transient = False

    def __init__(self, detail: str, reason: str | None = None) -> None:
        super().__init__(detail)
        if reason is not None:
            self.reason = reason
        self.detail = detail


class NotEnoughSamples(RetrainError):
    reason = "too_few_samples"


class SingleClassHoldout(RetrainError):
    reason = "single_class_holdout"


class TrainerFailed(RetrainError):
    reason = "trainer_failed"


class InvalidRetrainConfig(RetrainError):
    reason = "invalid_config"


class ServiceUnavailable(RetrainError):
    """MLflow or Redis did not answer: the drift event stays uncommitted and is retried."""

    transient = True


class RollbackError(DriftwardenError):
    """There is no version to roll back to."""
