"""The retrain worker: drift events in; retrained, evaluated and registered models out.

``run_worker(settings)`` (in :mod:`retrain_worker.worker`) is the entry point; the other modules are
the steps it chains: :mod:`policy` (which events retrain), :mod:`dataset` (the labelled samples),
:mod:`trainer`, :mod:`evaluate`, :mod:`registry` (MLflow), :mod:`incidents` (idempotency state in Redis).
:mod:`onboard` (``driftwarden onboard``) registers a model the team trained itself: its training file becomes the
reference the stream compares against, attached to its MLflow version as the worker does for its own.
"""
