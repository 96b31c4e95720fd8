"""docker-compose.yml, the Dockerfile and deploy/ checked against the code, since no Docker runs here.

The metric names in the dashboard and the alert rules are checked against both docs/architecture.md
and the metrics the workers actually register on a fresh ``CollectorRegistry``, and the two sources
are checked against each other, so none of the three can drift from the others unnoticed.
"""

from __future__ import annotations

import base64
import json
import re
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import pytest
import yaml
from prometheus_client import CollectorRegistry
from prometheus_client.metrics import MetricWrapperBase

from driftwarden.cli import main as cli
from driftwarden.contract.settings import ENV_ADDRESSES, Settings, load_settings
from driftwarden.ops.alert_relay import RelayMetrics
from retrain_worker.metrics import RetrainMetrics
from stream.metrics import build_metrics

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
WORKERS = {"stream": "stream", "retrain-worker": "retrain-worker"}  # compose service -> CLI command
EXPECTED_SERVICES = {"kafka", "redis", "mlflow", "stream", "retrain-worker", "prometheus", "grafana"}
PROMETHEUS_BUILTIN = {"up"}  # series Prometheus itself writes for every target
PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless",
                "bool", "offset", "sum", "min", "max", "avg", "count", "topk", "bottomk", "quantile",
                "stddev", "stdvar", "count_values", "group", "inf", "nan"}
DURATION = re.compile(r"^(\d+(ms|s|m|h|d|w|y))+$")


# -- fixtures: the files and the metrics ------------------------------------------------------------

@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


@pytest.fixture(scope="module")
def prometheus() -> dict[str, Any]:
    return yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())


@pytest.fixture(scope="module")
def alert_rules() -> list[dict[str, Any]]:
    data = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())
    return [rule for group in data["groups"] for rule in group["rules"]]


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    return json.loads((DEPLOY / "grafana" / "dashboards" / "driftwarden.json").read_text())


@pytest.fixture(scope="module")
def code_metrics() -> dict[str, tuple[str, frozenset[str]]]:
    """name (as written in the docs: counters with ``_total``) -> (type, label names), from the code."""
    holders = [build_metrics(CollectorRegistry()), RetrainMetrics(CollectorRegistry()),
               RelayMetrics(CollectorRegistry())]
    out: dict[str, tuple[str, frozenset[str]]] = {}
    for holder in holders:
        for metric in vars(holder).values():
            if isinstance(metric, MetricWrapperBase):
                [family] = metric.describe()
                name = family.name + ("_total" if family.type == "counter" else "")
                assert name not in out, f"{name} registered twice"
                out[name] = (family.type, frozenset(metric._labelnames))
    return out


@pytest.fixture(scope="module")
def doc_metrics() -> dict[str, tuple[str, frozenset[str]]]:
    text = (REPO / "docs" / "architecture.md").read_text()
    section = text[text.index("## Prometheus metrics"):]
    rows = re.findall(r"^\| `(driftwarden_\w+)` \| (\w+) \| (.*?) \|$", section, flags=re.M)
    assert len(rows) >= 10, "could not read the metric tables of docs/architecture.md"
    # label cells list the names, with the values of a label in parentheses after it
    return {name: (kind, frozenset(re.findall(r"`(\w+)`", re.sub(r"\([^)]*\)", "", labels))))
            for name, kind, labels in rows}


@pytest.fixture(scope="module")
def series(code_metrics: dict[str, tuple[str, frozenset[str]]]) -> dict[str, frozenset[str]]:
    """Every series name a scrape of the workers can return -> the labels it carries."""
    out: dict[str, frozenset[str]] = {}
    for name, (kind, labels) in code_metrics.items():
        if kind == "histogram":
            out[f"{name}_bucket"] = labels | {"le"}
            out[f"{name}_sum"] = out[f"{name}_count"] = labels
        else:
            out[name] = labels
    return out


def worker_settings(service: dict[str, Any]) -> Settings:
    """The settings a worker container ends up with: defaults, config file, then its environment."""
    env = {k: str(v) for k, v in service.get("environment", {}).items()}
    return load_settings(env=env)


# -- PromQL, just enough to find metric and label names ---------------------------------------------

def promql_names(expr: str) -> tuple[set[str], list[tuple[str, set[str]]], set[str]]:
    """(metric names, [(metric, matcher labels)], grouping labels) of a PromQL expression."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # string literals: label values, regexes
    selectors = [(m, set(re.findall(r"([a-zA-Z_]\w*)\s*(?:=~|!~|!=|=)", body)))
                 for m, body in re.findall(r"([a-zA-Z_:][\w:]*)\s*\{([^}]*)\}", expr)]
    grouping: set[str] = set()
    for body in re.findall(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)", expr):
        grouping |= {g.strip() for g in body.split(",") if g.strip()}
    bare = re.sub(r"\{[^}]*\}", " ", expr)
    bare = re.sub(r"\[[^\]]*\]", " ", bare)
    bare = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", bare)
    names = set()
    for match in re.finditer(r"(?<![\w$.])([a-zA-Z_:][\w:]*)(?!\w)(\s*\()?", bare):
        word, call = match.group(1), match.group(2)
        if call or word.lower() in PROMQL_WORDS:
            continue  # a function or an aggregation
        names.add(word)
    return names, selectors, grouping


def check_expr(expr: str, series: dict[str, frozenset[str]], where: str) -> set[str]:
    """Assert ``expr`` only uses exported series and their labels; return the metrics it uses."""
    assert expr.count("(") == expr.count(")") and expr.count("{") == expr.count("}"), f"{where}: unbalanced"
    names, selectors, grouping = promql_names(expr)
    unknown = names - series.keys() - PROMETHEUS_BUILTIN
    assert not unknown, f"{where}: {sorted(unknown)} not exported by the workers"
    known_labels = {"instance", "job"}.union(*(series.get(n, frozenset()) for n in names))
    for metric, labels in selectors:
        allowed = series.get(metric, frozenset({"job", "instance"})) | {"job", "instance"}
        assert labels <= allowed, f"{where}: {metric} has no label {sorted(labels - allowed)}"
    assert grouping <= known_labels, f"{where}: grouping by {sorted(grouping - known_labels)}"
    return names


def test_promql_reader_finds_metrics_labels_and_groupings() -> None:
    names, selectors, grouping = promql_names(
        'histogram_quantile(0.9, sum by (le, model) (rate(x_bucket{model=~"$m", a!="b"}[5m]))) > 0.5 '
        'and on (model) up == 0')
    assert names == {"x_bucket", "up"}
    assert selectors == [("x_bucket", {"model", "a"})]
    assert grouping == {"le", "model"}


# -- compose ----------------------------------------------------------------------------------------

def test_compose_has_every_service_the_code_expects(services: dict[str, Any]) -> None:
    assert services.keys() >= EXPECTED_SERVICES


@pytest.mark.parametrize("name", sorted(WORKERS))
def test_workers_get_the_service_addresses_the_config_reads(
        services: dict[str, Any], name: str) -> None:
    service = services[name]
    assert set(ENV_ADDRESSES) <= set(service["environment"]), f"{name} misses an address variable"
    settings = worker_settings(service)

    host, port = settings.kafka.bootstrap_servers.split(":")
    assert host == "kafka"
    advertised = services["kafka"]["environment"]["KAFKA_ADVERTISED_LISTENERS"].split(",")
    assert f"kafka:{port}" in {a.split("://")[1] for a in advertised}, "workers use no advertised listener"
    redis = urlsplit(settings.redis.url)
    assert (redis.scheme, redis.hostname, redis.port or 6379) == ("redis", "redis", 6379)
    mlflow = urlsplit(settings.mlflow.tracking_uri)
    assert mlflow.hostname == "mlflow"
    assert f"--port={mlflow.port}" in services["mlflow"]["command"]


@pytest.mark.parametrize(("name", "command"), sorted(WORKERS.items()))
def test_workers_run_their_cli_command(services: dict[str, Any], name: str, command: str) -> None:
    service = services[name]
    assert service["command"] == [command]
    assert command in cli.commands
    assert service["image"] == services["mlflow"]["image"]
    assert service["build"] == "."


def test_dependencies_wait_for_healthchecks(services: dict[str, Any]) -> None:
    needs = {"stream": {"kafka", "redis"}, "retrain-worker": {"kafka", "redis", "mlflow"}}
    for name, deps in needs.items():
        depends = services[name]["depends_on"]
        assert deps <= depends.keys(), name
        assert all(depends[d]["condition"] == "service_healthy" for d in deps), name
    for name, service in services.items():
        for dep, cond in service.get("depends_on", {}).items():
            assert dep in services, f"{name} depends on unknown {dep}"
            if cond["condition"] == "service_healthy":
                assert services[dep].get("healthcheck", {}).get("test"), f"{dep} has no healthcheck"
    for name in EXPECTED_SERVICES:
        assert services[name].get("healthcheck", {}).get("test"), f"{name} has no healthcheck"


def test_worker_ports_match_the_settings(services: dict[str, Any]) -> None:
    stream = worker_settings(services["stream"]).stream
    retrain = worker_settings(services["retrain-worker"]).retrain
    ports = {"stream": stream.web_port, "retrain-worker": retrain.metrics_port}
    for name, port in ports.items():
        assert port > 0
        assert any(str(p).endswith(f":{port}") for p in services[name]["ports"]), name
        assert f"localhost:{port}/" in " ".join(services[name]["healthcheck"]["test"]), name
    assert ports["stream"] == Settings().stream.web_port == 6066
    assert ports["retrain-worker"] == Settings().retrain.metrics_port == 6067


def test_the_stream_web_server_listens_beyond_loopback(services: dict[str, Any]) -> None:
    # stream/app.py binds Faust's web server to stream.web_host ($DRIFTWARDEN_WEB_HOST; loopback by default):
    # Prometheus in another container could not scrape it otherwise.
    assert "settings.stream.web_host" in (REPO / "stream" / "app.py").read_text()
    assert services["stream"]["environment"]["DRIFTWARDEN_WEB_HOST"] == "0.0.0.0"
    assert Settings().stream.web_host == "127.0.0.1"
    assert load_settings(env={"DRIFTWARDEN_WEB_HOST": "0.0.0.0"}).stream.web_host == "0.0.0.0"


def test_kafka_is_a_single_kraft_node(services: dict[str, Any]) -> None:
    env = {k: str(v) for k, v in services["kafka"]["environment"].items()}
    assert services["kafka"]["image"].startswith("apache/kafka:")
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    listeners = dict(item.split("://") for item in env["KAFKA_LISTENERS"].split(","))
    protocols = dict(item.split(":") for item in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(","))
    assert set(listeners) <= set(protocols)
    controller = env["KAFKA_CONTROLLER_LISTENER_NAMES"]
    node, address = env["KAFKA_CONTROLLER_QUORUM_VOTERS"].split("@")
    assert node == env["KAFKA_NODE_ID"]
    assert address.split(":")[1] == listeners[controller].rsplit(":")[-1]
    advertised = dict(item.split("://") for item in env["KAFKA_ADVERTISED_LISTENERS"].split(","))
    assert controller not in advertised and set(advertised) <= set(listeners)
    for name, address in advertised.items():
        assert address.rsplit(":")[-1] == listeners[name].rsplit(":")[-1], name
    host_ports = {p.split(":")[-1] for p in services["kafka"]["ports"]}
    assert "localhost:9092" in advertised.values() and "9092" in host_ports  # the host's default address
    assert len(base64.urlsafe_b64decode(env["CLUSTER_ID"] + "==")) == 16


def test_mlflow_serves_artifacts_and_accepts_the_workers_host_header(services: dict[str, Any]) -> None:
    from mlflow.server.security_utils import is_allowed_host_header

    command = services["mlflow"]["command"]
    assert "--serve-artifacts" in command
    backend = next(c for c in command if c.startswith("--backend-store-uri="))
    assert backend.split("=", 1)[1].startswith("sqlite:////data/mlflow/")
    assert any(v.endswith(":/data/mlflow") for v in services["mlflow"]["volumes"])
    allowed = next(c for c in command if c.startswith("--allowed-hosts=")).split("=", 1)[1].split(",")
    uri = urlsplit(worker_settings(services["retrain-worker"]).mlflow.tracking_uri)
    assert is_allowed_host_header(allowed, uri.netloc)
    assert is_allowed_host_header(allowed, "localhost:5000")
    assert not is_allowed_host_header(allowed, "evil.example:5000")


def test_volumes_and_bind_mounts_exist(compose: dict[str, Any], services: dict[str, Any]) -> None:
    declared = set(compose.get("volumes") or {})
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (REPO / source).exists(), f"{name}: {source} missing"
            else:
                assert source in declared, f"{name}: volume {source} not declared"


# -- Dockerfile -------------------------------------------------------------------------------------

def test_dockerfile_installs_every_package_of_the_project() -> None:
    dockerfile = (REPO / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim\s*$", dockerfile, flags=re.M)
    assert 'ENTRYPOINT ["driftwarden"]' in dockerfile
    assert "pip install" in dockerfile
    ignored = {line.strip() for line in (REPO / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")}
    includes = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]
    packages = [p.rstrip("*") for p in includes["include"]]
    for package in [*packages, "config"]:
        if (REPO / package).is_dir():
            assert re.search(rf"^COPY {package} ", dockerfile, flags=re.M), f"{package} not copied"
            assert package not in ignored, f"{package} is in .dockerignore"


# -- Prometheus -------------------------------------------------------------------------------------

def test_prometheus_scrapes_both_workers_on_their_ports(
        prometheus: dict[str, Any], services: dict[str, Any]) -> None:
    jobs = {job["job_name"]: job for job in prometheus["scrape_configs"]}
    stream = worker_settings(services["stream"]).stream
    retrain = worker_settings(services["retrain-worker"]).retrain

    [dns] = jobs["driftwarden-stream"]["dns_sd_configs"]
    assert dns["names"] == ["stream"] and dns["port"] == stream.web_port
    [static] = jobs["driftwarden-retrain"]["static_configs"]
    assert static["targets"] == [f"retrain-worker:{retrain.metrics_port}"]
    for job in ("driftwarden-stream", "driftwarden-retrain"):
        assert jobs[job].get("metrics_path", "/metrics") == "/metrics"


def test_alerts_reach_the_alertmanager_service_from_prometheus_and_the_relay(
        prometheus: dict[str, Any], services: dict[str, Any]) -> None:
    [am] = prometheus["alerting"]["alertmanagers"]
    assert am["static_configs"][0]["targets"] == ["alertmanager:9093"]
    relay = services["alert-relay"]
    assert relay["command"] == ["alert-relay"]
    settings = worker_settings(relay).alert_relay
    assert settings.alertmanager_url == "http://alertmanager:9093"
    assert "--config.file=/etc/alertmanager/alertmanager.yml" in services["alertmanager"]["command"]
    assert "./deploy/alertmanager:/etc/alertmanager:ro" in services["alertmanager"]["volumes"]
    jobs = {job["job_name"]: job for job in prometheus["scrape_configs"]}
    assert jobs["driftwarden-alert-relay"]["static_configs"][0]["targets"] == [
        f"alert-relay:{settings.metrics_port}"]


def test_prometheus_files_are_where_the_container_looks(
        prometheus: dict[str, Any], services: dict[str, Any]) -> None:
    mounts = dict(v.split(":")[:2] for v in services["prometheus"]["volumes"] if v.startswith("."))
    config_arg = next(c for c in services["prometheus"]["command"] if c.startswith("--config.file="))
    config_file = config_arg.split("=", 1)[1]
    rule_files = [r if r.startswith("/") else f"{Path(config_file).parent}/{r}" for r in prometheus["rule_files"]]
    for path in [config_file, *rule_files]:
        host = next(REPO / src / Path(path).relative_to(dst) for src, dst in mounts.items()
                    if path.startswith(dst + "/"))
        assert host.is_file(), path


def test_alert_rules_are_complete(alert_rules: list[dict[str, Any]]) -> None:
    names = [rule["alert"] for rule in alert_rules]
    assert len(names) == len(set(names))
    for rule in alert_rules:
        assert rule["expr"].strip(), rule["alert"]
        assert DURATION.match(str(rule["for"])), rule["alert"]
        assert rule["labels"]["severity"] in {"warning", "critical"}, rule["alert"]
        assert rule["annotations"]["summary"].strip(), rule["alert"]
        assert rule["annotations"]["description"].strip(), rule["alert"]


def test_alert_rules_use_exported_metrics_and_labels(
        alert_rules: list[dict[str, Any]], series: dict[str, frozenset[str]]) -> None:
    used: set[str] = set()
    for rule in alert_rules:
        used |= check_expr(rule["expr"], series, rule["alert"])
        names, _, grouping = promql_names(rule["expr"])
        # {{ $labels.x }} must be a label the alert's series carry
        output = grouping - {"le"} if grouping else {"instance", "job"}.union(
            *(series.get(n, frozenset()) for n in names))
        for text in rule["annotations"].values():
            for label in re.findall(r"\$labels\.(\w+)", text):
                assert label in output, f"{rule['alert']}: $labels.{label} is not on the alert"
    # the drift and the service-health alerts the brief asks for
    for metric in ("driftwarden_alerts_active", "driftwarden_consumer_lag", "driftwarden_dead_letters_total",
                   "driftwarden_state_write_errors_total"):
        assert metric in used, f"no alert rule on {metric}"
    assert any(r["expr"].startswith("up{") for r in alert_rules)


# -- metrics: code and docs agree --------------------------------------------------------------------

def test_registered_metrics_match_the_documented_contract(
        code_metrics: dict[str, tuple[str, frozenset[str]]],
        doc_metrics: dict[str, tuple[str, frozenset[str]]]) -> None:
    assert code_metrics.keys() == doc_metrics.keys()
    for name, (kind, labels) in doc_metrics.items():
        assert code_metrics[name] == (kind, labels), name


def test_every_metric_in_the_source_is_in_the_checked_holders(
        code_metrics: dict[str, tuple[str, frozenset[str]]]) -> None:
    """A metric built outside the holders above would escape the docs check: find every one in the code."""
    found = set()
    for path in REPO.glob("*/*.py"):
        if path.parts[-2] in {"stream", "retrain_worker", "driftwarden", "detectors"}:
            found |= set(re.findall(r"\b(?:Counter|Gauge|Histogram|Summary)\(\s*\"(driftwarden_\w+)\"",
                                    path.read_text()))
    assert len(found) >= 20
    known = {name.removesuffix("_total") for name in code_metrics} | set(code_metrics)
    assert found <= known, f"registered but not documented/checked: {sorted(found - known)}"


# -- Grafana -----------------------------------------------------------------------------------------

def test_grafana_provisioning_points_at_prometheus_and_the_dashboards(services: dict[str, Any]) -> None:
    provisioning = DEPLOY / "grafana" / "provisioning"
    [source] = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())["datasources"]
    url = urlsplit(source["url"])
    assert url.hostname == "prometheus" and url.port == 9090 and "prometheus" in services
    assert any(str(p).endswith(":9090") for p in services["prometheus"]["ports"])
    [provider] = yaml.safe_load((provisioning / "dashboards" / "driftwarden.yml").read_text())["providers"]
    mounts = dict(v.split(":")[:2] for v in services["grafana"]["volumes"] if v.startswith("."))
    assert mounts["./deploy/grafana/provisioning"] == "/etc/grafana/provisioning"
    assert mounts["./deploy/grafana/dashboards"] == provider["options"]["path"]
    home = services["grafana"]["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert (DEPLOY / "grafana" / "dashboards" / Path(home).relative_to(provider["options"]["path"])).is_file()


def test_dashboard_is_valid_and_uses_exported_metrics(
        dashboard: dict[str, Any], series: dict[str, frozenset[str]]) -> None:
    uid = yaml.safe_load((DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yml")
                         .read_text())["datasources"][0]["uid"]
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    assert len({p["id"] for p in dashboard["panels"]}) == len(dashboard["panels"])
    used: set[str] = set()
    for panel in panels:
        assert panel["datasource"]["uid"] == uid, panel["title"]
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == uid
            used |= check_expr(target["expr"], series, panel["title"])
            for label in re.findall(r"\{\{\s*(\w+)\s*\}\}", target.get("legendFormat", "")):
                names, _, grouping = promql_names(target["expr"])
                available = grouping or set().union(*(series.get(n, frozenset()) for n in names))
                assert label in available, f"{panel['title']}: legend {{{{{label}}}}} is not on the series"
    for variable in dashboard["templating"]["list"]:
        metric, label = re.fullmatch(r"label_values\((\w+),\s*(\w+)\)", variable["query"]["query"]).groups()
        assert label in series[metric]
    for annotation in dashboard["annotations"]["list"]:
        used |= check_expr(annotation["expr"], series, annotation["name"])
    # what the dashboard must show: events/s, drift per feature, active alerts, label joins,
    # accuracy per version, retrains and promotions, performance estimated before labels beside the realised
    for metric in ("driftwarden_events_total", "driftwarden_drift_score", "driftwarden_alerts_active",
                   "driftwarden_labels_joined_total", "driftwarden_model_performance",
                   "driftwarden_retrains_total", "driftwarden_promotions_total", "driftwarden_performance_estimate",
                   "driftwarden_performance_realised", "driftwarden_performance_estimation_error"):
        assert metric in used, f"the dashboard shows nothing from {metric}"
    accuracy = [t for p in panels for t in p["targets"] if "driftwarden_model_performance" in t["expr"]]
    assert any('metric="accuracy"' in t["expr"] for t in accuracy)
    assert all("{{version}}" in t["legendFormat"] for t in accuracy)  # one line per model version


def test_dashboard_label_values_are_ones_the_stream_writes(dashboard: dict[str, Any],
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """The performance-estimation and multivariate panels select series by label values (``metric="accuracy"``,
    ``feature="multivariate"``...): each value must be one the stream writes, from a real monitor's window."""
    import functools

    import detectors.reference as reference_module
    from detectors.calibration import calibrate
    from detectors.monitor import ModelMonitor, MonitorConfig, Observation, Outcome
    from stream.batch_metrics import record_estimates, record_window_scores

    monkeypatch.setattr(reference_module, "calibrate", functools.partial(calibrate, draws=500))  # which, not how well

    rng = np.random.default_rng(0)
    monitor = ModelMonitor(MonitorConfig(reference_size=600, window_size=300, performance_reference_size=400))
    for start, n in ((0, 600), (600, 300), (900, 300)):
        x = rng.normal(size=(n, 6))
        x[:, 3:] = x[:, :3] + 0.3 * x[:, 3:]  # correlated pairs: the PCA keeps fewer components than features
        p = 1.0 / (1.0 + np.exp(-2.0 * x[:, 0]))
        y = (rng.random(n) < p).astype(int)
        monitor.update([Observation(start + i, {f"f{j}": float(x[i, j]) for j in range(6)}, int(p[i] > 0.5),
                                    float(p[i])) for i in range(n)])
        monitor.update_outcomes([Outcome(start + i + 0.5, int(p[i] > 0.5), int(y[i]), float(p[i]), start + i)
                                 for i in range(n)])
    registry = CollectorRegistry()
    metrics = build_metrics(registry)
    record_window_scores(metrics, "m", monitor.last_scores)
    record_estimates(metrics, "m", monitor.performance_status())
    written: dict[str, list[dict[str, str]]] = {}
    for family in registry.collect():
        for sample in family.samples:
            written.setdefault(sample.name, []).append(sample.labels)
    checked = set()
    for panel in (p for p in dashboard["panels"] if p["type"] != "row"):
        for target in panel["targets"]:
            for metric, body in re.findall(r"([a-zA-Z_:][\w:]*)\s*\{([^}]*)\}", target["expr"]):
                if not metric.startswith(("driftwarden_performance_", "driftwarden_drift_score")):
                    continue
                for label, op, value in re.findall(r'(\w+)\s*(=~|=)\s*"([^"]*)"', body):
                    if "$" in value:  # a dashboard variable
                        continue
                    for wanted in value.split("|") if op == "=~" else [value]:
                        seen = {s.get(label) for s in written.get(metric, [])}
                        assert wanted in seen, f"{panel['title']}: {metric} never has {label}={wanted!r}: {seen}"
                        checked.add((metric, label, wanted))
    assert {("driftwarden_drift_score", "feature", "multivariate"),
            ("driftwarden_drift_score", "feature", "accuracy_estimate"),
            ("driftwarden_performance_estimate", "metric", "accuracy"),
            ("driftwarden_performance_realised", "metric", "accuracy")} <= checked
