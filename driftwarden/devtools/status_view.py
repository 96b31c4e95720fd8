"""``driftwarden status``: the running stream's ``/status`` page as a terminal table.

The stream knows each model's drift state, open alerts, the version its traffic carries and the version
whose reference it compares against; the champion alias lives in MLflow, so it is read from there when
MLflow answers, and otherwise the stream's reference version is shown, marked as such.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping
from typing import Any

from rich.table import Table
from rich.text import Text

from driftwarden.contract.errors import DriftwardenError

CHAMPION = "champion"


class StatusUnavailable(DriftwardenError):
    """The stream's ``/status`` page could not be read."""


def fetch_status(url: str, timeout: float = 5.0) -> dict[str, Any]:
    """The JSON of ``<url>/status`` (``url`` may already end in ``/status``)."""
    target = url.rstrip("/")
    if not target.endswith("/status"):
        target += "/status"
    try:
        with urllib.request.urlopen(target, timeout=timeout) as response:  # noqa: S310 - an operator's URL
            body = response.read()
    except urllib.error.HTTPError as exc:
        if exc.code == 503:
            raise StatusUnavailable(f"the stream at {target} is still starting (HTTP 503); try again") from exc
        raise StatusUnavailable(f"the stream at {target} answered HTTP {exc.code}") from exc
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise StatusUnavailable(f"cannot reach the stream at {target}: {reason}. Is `driftwarden stream` "
                                f"running there (stream.web_port)?") from exc
    try:
        data = json.loads(body)
    except ValueError as exc:
        raise StatusUnavailable(f"{target} did not return JSON: {body[:80]!r}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("models"), dict):
        raise StatusUnavailable(f"{target} returned JSON without a 'models' mapping")
    return data


def champion_versions(tracking_uri: str, models: Iterable[str], timeout_s: int = 3) -> dict[str, str | None]:
    """Each model's ``champion`` version from the MLflow registry; {} when MLflow does not answer.

    MLflow's client retries for minutes by default: one quick try is enough for a status line.
    """
    # MLflow's client reads its retries and timeout only from the environment
    os.environ.update({"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": str(timeout_s)})
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    out: dict[str, str | None] = {}
    for model in models:
        try:
            out[model] = str(client.get_model_version_by_alias(model, CHAMPION).version)
        except MlflowException as exc:
            if getattr(exc, "error_code", "") in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
                out[model] = None  # registry answered: no champion yet
                continue
            return {}
        except Exception:  # noqa: BLE001 - connection errors come as several types; the stream's view is shown
            return {}
    return out


def drift_state(model: Mapping[str, Any]) -> Text:
    """``DRIFT``, ``warning``, ``ok`` or the reference phase, from the open alerts and the monitor."""
    monitor = model.get("monitor") or {}
    alerts = model.get("active_alerts") or []
    severities = {a.get("severity") for a in alerts}
    if "critical" in severities:
        return Text("DRIFT", style="bold red")
    if "warning" in severities:
        return Text("warning", style="yellow")
    if monitor.get("phase") == "reference":
        counts = monitor.get("counts", {})
        return Text(f"collecting reference ({counts.get('reference', 0)})", style="cyan")
    if not monitor:
        return Text("no predictions yet", style="dim")
    return Text("ok", style="green")


def alert_lines(model: Mapping[str, Any]) -> str:
    alerts = model.get("active_alerts") or []
    if not alerts:
        return "-"
    return "\n".join(f"{a.get('severity')}: {a.get('kind')} {a.get('feature') or ''} {a.get('signal')} "
                     f"{_num(a.get('score'))} >= {_num(a.get('threshold'))}".replace("  ", " ") for a in alerts)


def performance_lines(model: Mapping[str, Any]) -> str:
    """Running accuracy (classification) or mean absolute error (regression) per served version, and the last
    window's accuracy estimated from the scores, with the realised one beside it once its labels are in."""
    performance = model.get("performance") or {}
    lines = [f"v{version}: {_num(p.get('value'))} (n={p.get('n', 0)})"
             for version, p in sorted(performance.items(), key=lambda kv: _version_key(kv[0]))]
    windows = ((model.get("monitor") or {}).get("performance") or {}).get("windows") or []
    if windows:
        last = windows[-1]
        realised = last.get("realised") or {}
        lines.append(f"window {last.get('index')}: est. acc {_num((last.get('estimated') or {}).get('accuracy'))}"
                     + (f", realised {_num(realised.get('accuracy'))} (n={last.get('realised_n')})"
                        if realised else ""))
    return "\n".join(lines) or "-"


def ranking_lines(model: Mapping[str, Any]) -> str:
    """The last window's drifted features, most relevant first (effect size, and how they track performance)."""
    ranking = (model.get("monitor") or {}).get("ranking") or []
    if not ranking:
        return "-"
    return "\n".join(f"{r.get('rank')}. {r.get('feature')} effect {_num(r.get('effect'))}"
                     + (f" tracks {_num(r['tracks_performance'])}" if r.get("tracks_performance") is not None else "")
                     for r in ranking[:5])


def champion_text(model: Mapping[str, Any], champion: str | None, registry_answered: bool) -> Text:
    if registry_answered:
        return Text(champion or "none yet", style="bold" if champion else "dim")
    reference = model.get("reference_version")
    return Text(f"{reference} (stream's reference)" if reference else "unknown (MLflow not read)",
                style="dim")


def reference_text(model: Mapping[str, Any]) -> str:
    """Where the model's reference came from: a training file (name, rows, SHA-256), a version's
    training data, or its first N predictions."""
    reference = model.get("reference") or {}
    source = reference.get("source")
    pending = " (adopted with the next prediction)" if reference.get("pending") else ""
    if source == "training_file":
        version = f", version {reference['version']}" if reference.get("version") else ""
        return (f"training file {reference.get('file')}{version}\n{reference.get('rows')} rows, "
                f"sha256 {str(reference.get('sha256'))[:12]}…{pending}")
    if source == "version_training":
        return f"version {reference.get('version')}'s training data"
    if source == "first_predictions":
        return f"first {reference.get('n')} predictions"
    return "-"


def traffic_lines(model: Mapping[str, Any]) -> str:
    """Prediction rate of the last traffic bucket, label coverage and label delay p50/p95."""
    traffic, labels = model.get("traffic") or {}, model.get("labels") or {}
    if not traffic and not labels:
        return "-"
    rate = traffic.get("rate_per_s")
    delay = labels.get("delay_s") or {}
    coverage = labels.get("coverage")
    return "\n".join([
        f"{rate:.3g} predictions/s" if isinstance(rate, int | float) else "rate: first bucket open",
        f"labelled {coverage:.0%}" if isinstance(coverage, int | float) else "labelled: -",
        f"label delay p50 {_secs(delay.get('p50'))}, p95 {_secs(delay.get('p95'))}",
    ])


def _secs(value: Any) -> str:
    return f"{value:.0f}s" if isinstance(value, int | float) else "-"


def status_table(status: Mapping[str, Any], champions: Mapping[str, str | None] | None = None) -> Table:
    """One row per model. ``champions`` is ``champion_versions``' answer ({} or None: MLflow not read)."""
    table = Table(title="driftwarden status", title_justify="left", show_lines=True)
    for header in ("model", "drift state", "open alerts", "champion", "serving", "reference",
                   "performance per version", "traffic / labels", "predictions / windows",
                   "drifted features (ranked)"):
        table.add_column(header)
    champions = champions or {}
    for name, model in sorted(status.get("models", {}).items()):
        counters = model.get("counters", {})
        table.add_row(
            name, drift_state(model), alert_lines(model), champion_text(model, champions.get(name), name in champions),
            str(model.get("model_version") or "-"), reference_text(model), performance_lines(model),
            traffic_lines(model),
            f"{counters.get('predictions', model.get('observations', 0))} / {model.get('windows_closed', 0)}",
            ranking_lines(model),
        )
    return table


def _num(value: Any) -> str:
    if isinstance(value, int | float):
        return f"{value:.3f}"
    return "n/a"


def _version_key(version: str) -> tuple[int, str]:
    return (int(version), "") if version.isdigit() else (1 << 30, version)
