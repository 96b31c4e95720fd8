# One image for the stream worker, the retrain worker and the MLflow server, so the MLflow client and
# server versions always match (both come from this project's pinned dependencies).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DRIFTWARDEN_CONFIG=/app/config/driftwarden.yaml

WORKDIR /app

# Dependencies first, in their own layer: editing the source does not reinstall numpy, mlflow, ...
# (README.md* matches nothing while the repository has no README; setuptools only warns then.)
COPY pyproject.toml README.md* ./
RUN mkdir -p driftwarden detectors stream retrain_worker \
    && touch driftwarden/__init__.py detectors/__init__.py stream/__init__.py retrain_worker/__init__.py \
    && pip install '.[service]' \
    && pip uninstall -y driftwarden \
    && rm -rf driftwarden detectors stream retrain_worker build *.egg-info

COPY driftwarden ./driftwarden
COPY detectors ./detectors
COPY stream ./stream
COPY retrain_worker ./retrain_worker
COPY config ./config
RUN pip install --no-deps . && rm -rf build *.egg-info

# An unprivileged user; /data holds the MLflow store when this image runs `mlflow server`
# (a named volume mounted there starts with this ownership).
RUN useradd --create-home --uid 10001 driftwarden \
    && mkdir -p /data/mlflow/artifacts \
    && chown -R driftwarden:driftwarden /data
USER driftwarden

# Faust's web server listens on loopback unless told otherwise; in a container it must be reachable.
ENV DRIFTWARDEN_WEB_HOST=0.0.0.0
EXPOSE 6066 6067 5000

ENTRYPOINT ["driftwarden"]
CMD ["--help"]
