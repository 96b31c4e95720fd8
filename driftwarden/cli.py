"""The ``driftwarden`` console script. Each subcommand imports its worker lazily so that
``driftwarden --help`` stays fast and no IO happens at import time."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from driftwarden.contract.errors import DriftwardenError
from driftwarden.contract.settings import Settings, load_settings

if TYPE_CHECKING:
    import pandas as pd

    from driftwarden.devtools.demo_model import FirstVersion


def _setup_logging(level: str) -> None:
    logging.basicConfig(level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None,
              help="YAML config file (default: $DRIFTWARDEN_CONFIG or config/driftwarden.yaml).")
@click.option("--log-level", default=None, help="Log level (default: the settings' log_level, info).")
@click.pass_context
def main(ctx: click.Context, config_path: str | None, log_level: str | None) -> None:
    """driftwarden: streaming drift detection and self-healing for ML models."""
    if log_level is None:
        try:
            log_level = load_settings(config_path).log_level
        except DriftwardenError:
            log_level = "info"  # the command that needs the settings reports the error
    _setup_logging(log_level)
    ctx.obj = {"config_path": config_path}


def _settings(ctx: click.Context):  # type: ignore[no-untyped-def]
    try:
        return load_settings(ctx.obj["config_path"])
    except DriftwardenError as exc:
        raise click.ClickException(str(exc)) from exc


@main.command("config")
@click.pass_context
def show_config(ctx: click.Context) -> None:
    """Print the effective configuration (secrets masked)."""
    click.echo(json.dumps(_settings(ctx).masked(), indent=2))


@main.command("redis-acl")
@click.option("--user", default="driftwarden", show_default=True, help="Redis user name of the workers.")
@click.pass_context
def redis_acl(ctx: click.Context, user: str) -> None:
    """Print the workers' least-privilege Redis ACL (an ACL file line) for the configured key prefix."""
    from driftwarden.ops.redis_acl import acl_user_line

    click.echo(acl_user_line(user, _settings(ctx).redis.key_prefix))


@main.group()
def stack() -> None:
    """Start, inspect and stop the local Kafka, Redis and MLflow stack (no Docker needed)."""


@stack.command("up")
@click.option("--home", type=click.Path(file_okay=False), default=None, help="State folder (default .devstack).")
def stack_up(home: str | None) -> None:
    """Start whatever is not running and print the addresses as shell exports."""
    from driftwarden.devtools.devstack import DEFAULT_HOME, Stack

    try:
        env = Stack(Path(home) if home else DEFAULT_HOME).up(log=lambda s: click.echo(s, err=True))
    except DriftwardenError as exc:
        raise click.ClickException(str(exc)) from exc
    for key, value in env.items():
        click.echo(f"export {key}={value}")


@stack.command("down")
@click.option("--home", type=click.Path(file_okay=False), default=None)
def stack_down(home: str | None) -> None:
    """Stop the stack's services (their data stays in the state folder)."""
    from driftwarden.devtools.devstack import DEFAULT_HOME, Stack

    Stack(Path(home) if home else DEFAULT_HOME).down(log=click.echo)


@stack.command("status")
@click.option("--home", type=click.Path(file_okay=False), default=None)
def stack_status(home: str | None) -> None:
    """Say which services are up; exit 1 if any is down."""
    from driftwarden.devtools.devstack import DEFAULT_HOME, Stack

    status = Stack(Path(home) if home else DEFAULT_HOME).status()
    for name, up in status.items():
        click.echo(f"{name:6} {'up' if up else 'down'}")
    sys.exit(0 if all(status.values()) else 1)


@main.command("stream")
@click.pass_context
def run_stream(ctx: click.Context) -> None:
    """Run the Faust stream worker (predictions and labels in; drift events, alerts, dead letters out)."""
    from stream.app import run_worker

    try:
        run_worker(_settings(ctx))
    except DriftwardenError as exc:  # e.g. an invalid setting found when the app is built
        raise click.ClickException(str(exc)) from exc


@main.command("retrain-worker")
@click.pass_context
def run_retrain_worker(ctx: click.Context) -> None:
    """Run the retrain worker (drift events in; MLflow versions and model updates out)."""
    from retrain_worker.worker import run_worker

    run_worker(_settings(ctx))


@main.command("alert-relay")
@click.pass_context
def run_alert_relay(ctx: click.Context) -> None:
    """Forward drift-alerts to Alertmanager and/or a JSON webhook (alert_relay settings), at least once."""
    from driftwarden.ops.alert_relay import run_relay

    try:
        run_relay(_settings(ctx))
    except DriftwardenError as exc:
        raise click.ClickException(str(exc)) from exc


@main.command("rollback")
@click.argument("model")
@click.pass_context
def run_rollback(ctx: click.Context, model: str) -> None:
    """Move MODEL's champion alias back to the previous version and announce it on model-updates."""
    from retrain_worker.rollback import rollback

    try:
        update = rollback(_settings(ctx), model)
    except DriftwardenError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(update.reason)


@main.command("onboard")
@click.argument("model")
@click.argument("training_file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--prediction", default=None, help="Column holding the model's prediction (prediction drift).")
@click.option("--score", default=None, help="Column holding the model's score (score drift).")
@click.option("--label", default=None, help="Column holding the truth (left out of the features).")
@click.option("--ignore", multiple=True, help="Column to leave out (ids, timestamps); repeatable.")
@click.option("--version", default=None, help="Registered MLflow version to attach the reference to.")
@click.pass_context
def run_onboard(ctx: click.Context, model: str, training_file: Path, prediction: str | None, score: str | None,
                label: str | None, ignore: tuple[str, ...], version: str | None) -> None:
    """Make TRAINING_FILE (CSV or Parquet) MODEL's reference: the stream compares from its first prediction."""
    from retrain_worker.onboard import onboard

    try:
        done = onboard(_settings(ctx), model, training_file, prediction=prediction, score=score, label=label,
                       ignore=ignore, version=version)
    except DriftwardenError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"{done.model}: reference from {done.file} ({done.rows} rows, sha256 {done.sha256[:16]}…, "
               f"features {', '.join(done.features)}); {done.reason}")


@main.command("replay")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--model", default=None, help="Model name to publish as (overrides the file's model column).")
@click.option("--rate", type=click.FloatRange(min=0, min_open=True), default=None, help="Events per second limit.")
@click.option("--batch-size", type=click.IntRange(min=1), default=500, show_default=True,
              help="Events per Kafka message.")
@click.option("--format", "fmt", type=click.Choice(["auto", "csv", "jsonl"]), default="auto", show_default=True)
@click.option("--wire-format", type=click.Choice(["arrow", "json"]), default="arrow", show_default=True,
              help="Kafka message format: one Arrow record batch or one JSON array per batch.")
@click.option("--no-progress", is_flag=True, help="No progress bar (for logs and CI).")
@click.pass_context
def run_replay(ctx: click.Context, file: Path, model: str | None, rate: float | None, batch_size: int,
               fmt: str, wire_format: str, no_progress: bool) -> None:
    """Send a historical CSV or JSONL file of predictions (and labels) through the topics."""
    from driftwarden.sdk.replay import run

    sys.exit(run(_settings(ctx), file, fmt=fmt, model=model, rate=rate,  # type: ignore[arg-type]
                 batch_size=batch_size, show_progress=not no_progress, wire_format=wire_format))


@main.command("report")
@click.argument("reference", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("current", type=click.Path(dir_okay=False, path_type=Path))
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=Path("report.html"),
              show_default=True, help="Where to write the HTML page.")
@click.option("--model", default=None, help="Use this model's monitor settings (models.<name> overrides).")
@click.option("--prediction", default=None, help="Column holding the model's prediction (prediction drift).")
@click.option("--ignore", multiple=True, help="Column to leave out (ids, timestamps); repeatable.")
@click.option("--fail-on-drift", is_flag=True, help="Exit 3 when a column drifted (for CI checks of a batch).")
@click.pass_context
def run_report(ctx: click.Context, reference: Path, current: Path, output: Path, model: str | None,
               prediction: str | None, ignore: tuple[str, ...], fail_on_drift: bool) -> None:
    """Compare CURRENT with REFERENCE (CSV or Parquet) with the stream's detectors; write an HTML report."""
    from driftwarden.report.comparison import summary_lines
    from driftwarden.report.html import write_report

    settings = _settings(ctx)
    try:
        monitor = settings.monitor_for(model) if model else settings.monitor
        report = write_report(reference, current, output, monitor, prediction=prediction, ignore=ignore)
    except (DriftwardenError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    for line in summary_lines(report):
        click.echo(line)
    click.echo(f"report written to {output}")
    if fail_on_drift and report.drifted:
        sys.exit(3)


@main.command("status")
@click.option("--url", default=None, help="The stream worker's web address (default http://127.0.0.1:<stream.web_port>).")
@click.option("--no-mlflow", is_flag=True, help="Do not ask MLflow for the champion version.")
@click.option("--json", "as_json", is_flag=True, help="Print the stream's /status JSON instead of a table.")
@click.pass_context
def run_status(ctx: click.Context, url: str | None, no_mlflow: bool, as_json: bool) -> None:
    """Each model's drift state, open alerts, champion version and performance, from the running stream."""
    from rich.console import Console

    from driftwarden.devtools.status_view import champion_versions, fetch_status, status_table

    settings = _settings(ctx)
    try:
        status = fetch_status(url or f"http://127.0.0.1:{settings.stream.web_port}")
    except DriftwardenError as exc:
        raise click.ClickException(str(exc)) from exc
    if as_json:
        click.echo(json.dumps(status, indent=2))
        return
    if not status["models"]:
        click.echo("the stream has seen no model yet")
        return
    champions = {} if no_mlflow else champion_versions(settings.mlflow.tracking_uri, status["models"])
    console = Console()
    # a log or a pipe has no width: wide enough that no cell of the ten columns wraps mid-word
    console.width = max(console.width, 140 if console.is_terminal else 240)
    console.print(status_table(status, champions))


@main.command("demo")
@click.option("--home", type=click.Path(file_okay=False), default=None, help="Dev stack state folder.")
@click.pass_context
def run_demo(ctx: click.Context, home: str | None) -> None:
    """Start the stack and both workers, send drifting traffic, show detection, retrain and promotion."""
    from driftwarden.devtools.demo import run_demo as demo

    sys.exit(demo(_demo_first_version, ctx.obj["config_path"], Path(home) if home else None))


def _demo_first_version(settings: Settings, model: str, frame: pd.DataFrame, training_file: Path) -> FirstVersion:
    """The demo's version 1, made by the retrain worker's code (devtools may not import the worker)."""
    from driftwarden.devtools.demo_model import FirstVersion
    from retrain_worker.initial import train_initial_version

    made = train_initial_version(settings, model, frame, training_file)
    return FirstVersion(made.version, training_file, made.holdout, made.onboarded.file, made.onboarded.sha256)


if __name__ == "__main__":
    main()
