"""The Faust stream worker: decode, validate, call ``detectors/``, keep state in Redis, publish."""
