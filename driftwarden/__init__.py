"""driftwarden: streaming drift detection and self-healing for ML models in production."""

__version__ = "0.1.0"
