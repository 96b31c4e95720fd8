#!/usr/bin/env bash
# Installs what driftwarden needs on a fresh Debian machine, idempotently:
# redis-server, a JDK/Maven, Prometheus and Alertmanager (promtool, amtool) and chromium (apt; chromium renders the HTML report in its test), the
# Python virtual environment (.venv) and the Kafka jars (Maven Central, cached in ~/.cache/driftwarden
# so later runs are offline).
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
apt_updated=""
apt_install() {
  if [ -z "$apt_updated" ]; then $SUDO apt-get update -qq; apt_updated=1; fi
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$@" >/dev/null
}

command -v redis-server >/dev/null 2>&1 || { echo "[bootstrap] installing redis-server"; apt_install redis-server; }
command -v java >/dev/null 2>&1 || { echo "[bootstrap] installing a JDK"; apt_install openjdk-17-jre-headless; }
command -v mvn >/dev/null 2>&1 || { echo "[bootstrap] installing Maven"; apt_install maven; }
# Prometheus and Alertmanager: the alert rules and the relay are tested on the real tools. Debian's
# packages also install service units; nothing here starts them (tests run their own on loopback).
command -v promtool >/dev/null 2>&1 || { echo "[bootstrap] installing prometheus"; apt_install --no-install-recommends prometheus; }
command -v amtool >/dev/null 2>&1 || { echo "[bootstrap] installing prometheus-alertmanager";
  apt_install --no-install-recommends prometheus-alertmanager; }
# chromium only serves the report's browser test: if it cannot be installed, that test fails, not the rest.
command -v chromium >/dev/null 2>&1 || { echo "[bootstrap] installing chromium"; apt_install chromium ||
  echo "[bootstrap] WARNING: chromium could not be installed; the report's browser test will fail"; }

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "[bootstrap] creating .venv"
  "$PY" -m venv .venv
fi
stamp=.venv/.driftwarden-installed
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "[bootstrap] installing Python packages into .venv"
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q -e '.[service,dev]'
  echo "$want" > "$stamp"
fi

.venv/bin/python -c "from driftwarden.devtools.devstack import ensure_kafka_jars; print('[bootstrap] kafka jars in', ensure_kafka_jars())"
