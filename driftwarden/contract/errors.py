"""The service's root exception and the errors shared by every package."""

from __future__ import annotations


class DriftwardenError(Exception):
    """Root of every error driftwarden raises on purpose."""


class ConfigError(DriftwardenError):
    """The configuration is missing, unreadable or invalid."""


class ServiceError(DriftwardenError):
    """A backing service (Kafka, Redis, MLflow) could not be started or reached."""


class TableError(DriftwardenError):
    """A file that cannot be read as a table (CSV or Parquet)."""
