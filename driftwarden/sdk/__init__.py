"""The producer SDK and replay: what a model service installs (``pip install driftwarden``) to send predictions and
labels. Imports only ``driftwarden.contract``."""

from driftwarden.sdk.producer import DriftwardenProducer

__all__ = ["DriftwardenProducer"]
