"""One frozen settings object, loaded from ``config/*.yaml`` with declared environment overrides.

Precedence, lowest first: built-in defaults, the YAML file (``DRIFTWARDEN_CONFIG`` or
``config/driftwarden.yaml``), then environment variables. The three service addresses use the names
the ecosystem already uses (``KAFKA_BOOTSTRAP_SERVERS``, ``REDIS_URL``, ``MLFLOW_TRACKING_URI``); any
other field is reachable as ``DRIFTWARDEN__SECTION__FIELD`` (the value is parsed as a YAML scalar).
"""

from __future__ import annotations

import dataclasses
import os
import re
import typing
from pathlib import Path
from typing import Any

import msgspec
import yaml

from detectors.config import MonitorConfig
from driftwarden.contract.errors import ConfigError

DEFAULT_CONFIG = Path(__file__).resolve().parents[2] / "config" / "driftwarden.yaml"
ENV_ADDRESSES = {
    "KAFKA_BOOTSTRAP_SERVERS": ("kafka", "bootstrap_servers"),
    "REDIS_URL": ("redis", "url"),
    "MLFLOW_TRACKING_URI": ("mlflow", "tracking_uri"),
}
# Shorter names kept for what deployments set most (the Docker image, docker-compose.yml, MLflow's own names).
ENV_NAMES = {
    "DRIFTWARDEN_LOG_LEVEL": ("log_level",),
    "DRIFTWARDEN_WEB_HOST": ("stream", "web_host"),
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": ("mlflow", "request_max_retries"),
    "MLFLOW_HTTP_REQUEST_TIMEOUT": ("mlflow", "request_timeout_s"),
}
ENV_PREFIX = "DRIFTWARDEN__"


class Topics(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    predictions: str = "predictions"
    labels: str = "labels"
    drift_events: str = "drift-events"
    drift_alerts: str = "drift-alerts"
    performance_estimates: str = "performance-estimates"
    model_updates: str = "model-updates"
    dead_letters: str = "dead-letters"


class KafkaSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    bootstrap_servers: str = "127.0.0.1:9092"
    partitions: int = 4
    replication_factor: int = 1
    topics: Topics = Topics()
    # librdkafka security settings (security.protocol, sasl.mechanism, sasl.username, ...), passed through.
    client_config: dict[str, str] = {}


class RedisSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    url: str = "redis://127.0.0.1:6379/0"
    key_prefix: str = "dw"
    cluster: bool = False  # url names a node of a Redis Cluster: keys sharded per model (contract/storage.py)


class MlflowSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    tracking_uri: str = "http://127.0.0.1:5000"
    experiment: str = "driftwarden"
    # MLflow's client retries for minutes by default; the retrain worker retries an event itself instead.
    request_max_retries: int = 3
    request_timeout_s: int = 60

    def client_env(self) -> dict[str, str]:
        """The environment MLflow's client reads these from (it has no arguments for them)."""
        return {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": str(self.request_max_retries),
                "MLFLOW_HTTP_REQUEST_TIMEOUT": str(self.request_timeout_s)}


def _config_fields() -> list[tuple[str, Any, Any]]:
    """(name, type, default) of every ``detectors.MonitorConfig`` field, for the settings struct below."""
    hints = typing.get_type_hints(MonitorConfig)
    return [(f.name, hints[f.name], f.default if f.default is not dataclasses.MISSING
             else msgspec.field(default_factory=f.default_factory))
            for f in dataclasses.fields(MonitorConfig)]


# Each detector field is defined once, in MonitorConfig (type, default, the comment saying why): the settings
# struct takes them from there, so a new detector option is configurable from YAML and the environment at once.
_MonitorConfigFields = msgspec.defstruct("_MonitorConfigFields", _config_fields(), frozen=True,
                                         forbid_unknown_fields=True, module=__name__)


class MonitorSettings(_MonitorConfigFields, frozen=True, forbid_unknown_fields=True):  # type: ignore[misc, valid-type]
    """Per-model drift monitoring; ``models.<name>`` entries override any of these fields.

    Every ``detectors.MonitorConfig`` field, under its name and with its default (docs/detectors.md says where
    each default comes from; ``MonitorConfig`` validates the values), plus the stream's own fields below.
    """

    # Silent producers: a traffic alert when nothing arrives for this long (wall clock), or when a
    # bucket of this length carries less than traffic_drop_share of the usual rate; null = off.
    silence_seconds: float | None = 900.0
    traffic_drop_share: float = 0.1
    # Label coverage (labels joined per prediction, per bucket) below this share of its usual value alerts.
    label_coverage_drop_share: float = 0.5
    # HMAC-SHA256 key of pickled monitor snapshots (ModelMonitor.to_bytes/from_bytes); set it through
    # DRIFTWARDEN__MONITOR__SNAPSHOT_KEY so that a blob written into Redis by anyone else is rejected.
    snapshot_key: str = ""


CONFIG_FIELDS = tuple(f.name for f in dataclasses.fields(MonitorConfig))
# MonitorSettings fields the stream reads itself; every other one is a MonitorConfig field.
STREAM_MONITOR_FIELDS = frozenset(MonitorSettings.__struct_fields__) - frozenset(CONFIG_FIELDS)


def monitor_config(ms: MonitorSettings, **overrides: Any) -> MonitorConfig:
    """The detectors' configuration from the settings fields of the same name (with ``overrides``)."""
    return MonitorConfig(**{name: getattr(ms, name) for name in CONFIG_FIELDS} | overrides)


def snapshot_key(settings: Settings) -> bytes:
    """The HMAC key of every monitor snapshot the stream writes and reads (``monitor.snapshot_key``)."""
    return settings.monitor.snapshot_key.encode()


class StreamSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    app_id: str = "driftwarden-stream"
    web_port: int = 6066
    web_host: str = "127.0.0.1"  # Faust's web server (/status, /healthz, /metrics) binds here
    batch_size: int = 1000
    batch_timeout_s: float = 0.5
    onboarding: bool = True
    max_message_bytes: int = 1_000_000
    buffer_mib: int = 32  # consumed messages held ahead of the batch being applied (about a second of traffic)
    # Drain whole batches from Faust's queue (stream/faust_path.take_batches); false = Faust's take_events.
    fast_batches: bool = True
    label_ttl_s: int = 7 * 24 * 3600
    # Predictions waiting for a label, per model; beyond it the oldest are evicted (and counted), so a
    # model whose labels never come cannot fill Redis. ~100 bytes each (see stream/joins.py); 0 = no cap.
    pending_max: int = 500_000
    samples_max: int = 20_000
    alert_resolve_windows: int = 3
    alert_cooldown_s: float = 600.0
    data_dir: str = ""  # Faust's folder; empty = <temp dir>/driftwarden-stream/<app_id>
    # How often applied offsets are committed to Kafka. Redis holds the offsets every batch applied, so a
    # longer interval only replays more (harmless) records after a crash.
    commit_interval_s: float = 1.0
    session_timeout_s: float = 30.0  # a dead worker's partitions move after this long
    # Kafka static membership (group.instance.id): a stable name per worker (a StatefulSet pod name) lets a
    # restarted worker take its partitions back at once instead of after session_timeout_s; "" = dynamic.
    group_instance_id: str = ""


class RetrainSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The retrain worker. ``models.<name>`` overrides any of the policy fields (``min_samples`` on)."""

    group_id: str = "driftwarden-retrain"
    metrics_port: int = 6067  # 0 = do not serve /metrics
    poll_timeout_s: float = 1.0
    retry_backoff_s: float = 5.0  # wait before retrying an event after MLflow or Redis was unavailable
    # librdkafka consumer settings on top of the worker's own (session.timeout.ms=10000, ...).
    consumer_config: dict[str, Any] = {}
    models: dict[str, dict[str, Any]] = {}
    # -- policy, per model -------------------------------------------------------------------------
    min_samples: int = 500
    max_samples: int = 0  # newest N samples used for training; 0 = every sample kept in Redis
    holdout_fraction: float = 0.2
    metric: str = "accuracy"  # accuracy | f1 | roc_auc (classification), rmse | mae (regression)
    promote_margin: float = 0.0
    trigger_kinds: tuple[str, ...] = ("concept_drift", "data_drift")
    trigger_severities: tuple[str, ...] = ("critical",)
    cooldown_s: float = 600.0
    schedule_interval_s: float = 0.0  # scheduled retrain every N seconds; 0 = only on drift
    task: str = "auto"  # auto (inferred from the labels) | classification | regression
    trainer: str = "retrain_worker.trainer:train_default"  # package.module:function
    trainer_params: dict[str, Any] = {}

    def for_model(self, model: str) -> RetrainSettings:
        """These settings with the ``models.<model>`` overrides applied."""
        overrides = self.models.get(model)
        if not overrides:
            return self
        merged = msgspec.structs.asdict(self) | overrides
        try:
            return msgspec.convert(merged, RetrainSettings)
        except msgspec.ValidationError as exc:
            raise ConfigError(f"retrain.models.{model}: {exc}") from exc


class AlertRelaySettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """``driftwarden alert-relay``: ``drift-alerts`` to Alertmanager's v2 API and/or a JSON webhook."""

    group_id: str = "driftwarden-alert-relay"
    alertmanager_url: str = ""  # e.g. http://alertmanager:9093; alerts are POSTed to <url>/api/v2/alerts
    webhook_url: str = ""  # gets Alertmanager's webhook payload ({"version": "4", "alerts": [...], ...})
    webhook_headers: dict[str, str] = {}  # e.g. {Authorization: Bearer ...}; masked when printed
    timeout_s: float = 10.0  # per HTTP request
    retry_initial_s: float = 0.5  # first wait after a failed delivery; doubles up to retry_max_s
    retry_max_s: float = 30.0
    # A firing alert is sent with endsAt = now + firing_hold_s: Alertmanager keeps it open until the stream's
    # "resolved" for it arrives, or this long at most (the stream does not repeat a firing alert).
    firing_hold_s: float = 7 * 24 * 3600.0
    metrics_port: int = 6068  # 0 = do not serve /metrics
    consumer_config: dict[str, Any] = {}  # librdkafka consumer settings on top of the relay's own

    def targets(self) -> list[str]:
        return [name for name, url in (("alertmanager", self.alertmanager_url), ("webhook", self.webhook_url))
                if url]


class Settings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    kafka: KafkaSettings = KafkaSettings()
    redis: RedisSettings = RedisSettings()
    mlflow: MlflowSettings = MlflowSettings()
    monitor: MonitorSettings = MonitorSettings()
    stream: StreamSettings = StreamSettings()
    retrain: RetrainSettings = RetrainSettings()
    alert_relay: AlertRelaySettings = AlertRelaySettings()
    models: dict[str, dict[str, Any]] = {}
    log_level: str = "info"  # of the workers and the CLI (--log-level overrides it)

    def monitor_for(self, model: str) -> MonitorSettings:
        """The monitor settings of ``model``: the defaults with its ``models.<name>`` overrides."""
        overrides = self.models.get(model)
        if not overrides:
            return self.monitor
        merged = msgspec.structs.asdict(self.monitor) | overrides
        try:
            return msgspec.convert(merged, MonitorSettings)
        except msgspec.ValidationError as exc:
            raise ConfigError(f"models.{model}: {exc}") from exc

    def masked(self) -> dict[str, Any]:
        """The settings as a dict for printing: every URL's password, every client config's secrets
        (any section: Kafka, the retrain consumer, the relay's headers) and the snapshot key masked."""
        data: dict[str, Any] = _mask(msgspec.to_builtins(self), client=False)
        data["monitor"]["snapshot_key"] = "***" if data["monitor"]["snapshot_key"] else ""
        return data


# Fields passed through to a client (librdkafka settings, HTTP headers): any key naming a secret is masked,
# "key" included (ssl.key.pem holds a private key). Elsewhere only unambiguous words, so key_prefix shows.
CLIENT_CONFIGS = {"client_config", "consumer_config", "webhook_headers"}
SECRET_WORDS = ("password", "passwd", "secret", "token", "credential", "authorization", "api_key", "apikey")
CLIENT_SECRET_WORDS = (*SECRET_WORDS, "key", "auth", "jaas")


def _mask(node: Any, client: bool) -> Any:
    if isinstance(node, dict):
        words = CLIENT_SECRET_WORDS if client else SECRET_WORDS
        return {k: ("***" if isinstance(v, str) and v and any(w in str(k).lower() for w in words)
                    else _mask(v, client or k in CLIENT_CONFIGS)) for k, v in node.items()}
    if isinstance(node, list):
        return [_mask(v, client) for v in node]
    return _mask_url(node) if isinstance(node, str) else node


def _mask_url(url: str) -> str:
    return re.sub(r"(//[^:/@]*:)[^@]*@", r"\1***@", url)


def load_settings(path: str | Path | None = None, env: dict[str, str] | None = None) -> Settings:
    """Build the settings object from defaults, a YAML file and the environment."""
    env = dict(os.environ) if env is None else env
    config_path = Path(path or env.get("DRIFTWARDEN_CONFIG") or DEFAULT_CONFIG)
    data: dict[str, Any] = {}
    if config_path.exists():
        try:
            loaded = yaml.safe_load(config_path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{config_path}: not valid YAML: {exc}") from exc
        if not isinstance(loaded, dict):
            raise ConfigError(f"{config_path}: the top level must be a mapping")
        data = loaded
    elif path is not None:
        raise ConfigError(f"config file not found: {config_path}")
    for var, (section, field) in ENV_ADDRESSES.items():
        if env.get(var):
            data.setdefault(section, {})[field] = env[var]
    for var, path in ENV_NAMES.items():
        if env.get(var):
            node = data
            for key in path[:-1]:
                node = node.setdefault(key, {})
            node[path[-1]] = yaml.safe_load(env[var])
    for var, value in env.items():
        if var.startswith(ENV_PREFIX):
            keys = [k.lower() for k in var[len(ENV_PREFIX):].split("__") if k]
            node = data
            for key in keys[:-1]:
                node = node.setdefault(key, {})
            node[keys[-1]] = yaml.safe_load(value)
    try:
        return msgspec.convert(data, Settings)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"invalid configuration ({config_path}): {exc}") from exc
