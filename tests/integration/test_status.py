"""``driftwarden status`` against a real stream worker (subprocess, free web port) on real Kafka, Redis and
MLflow: the drifted model shows as drifting with its alert, its served version and performance, and the
champion comes from the MLflow alias."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from mlflow.tracking import MlflowClient

from driftwarden.cli import main
from driftwarden.contract.settings import load_settings
from driftwarden.devtools.demo import Workers, isolated_env, produce_traffic
from driftwarden.devtools.devstack import free_port
from driftwarden.devtools.status_view import StatusUnavailable, fetch_status
from driftwarden.devtools.traffic import SHIFTED_FEATURE, TrafficSpec


def test_status_is_a_clear_error_when_no_stream_listens() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = CliRunner().invoke(main, ["status", "--url", url])
    assert result.exit_code == 1
    assert "cannot reach the stream" in result.output and url in result.output


@pytest.mark.services
def test_status_shows_drift_alerts_champion_and_performance(
    stack_env: dict[str, str], unique: str, tmp_path: Path
) -> None:
    env = isolated_env(stack_env, unique)
    port = free_port()
    env["DRIFTWARDEN__STREAM__WEB_PORT"] = str(port)
    env["DRIFTWARDEN__STREAM__DATA_DIR"] = str(tmp_path / "faust")
    settings = load_settings(env=env)
    model = f"status-{unique}"
    # A registered champion, as the retrain worker would leave it (no training needed for this test).
    client = MlflowClient(tracking_uri=settings.mlflow.tracking_uri)
    client.create_registered_model(model)
    experiment = client.get_experiment_by_name(settings.mlflow.experiment)
    experiment_id = experiment.experiment_id if experiment else client.create_experiment(settings.mlflow.experiment)
    run = client.create_run(experiment_id)
    for _ in range(2):
        version = client.create_model_version(model, source=f"{run.info.artifact_uri}/model", run_id=run.info.run_id)
    client.set_registered_model_alias(model, "champion", version.version)

    workers = Workers(env, tmp_path / "workers")
    workers.start("stream", "stream")
    spec = TrafficSpec(model=model, total=4_000, shift_at=2_500, model_version="7")
    try:
        # The stream creates its topics on start; wait for its web page before sending.
        deadline = time.monotonic() + 60
        while True:
            try:
                fetch_status(f"http://127.0.0.1:{port}", timeout=2)
                break
            except StatusUnavailable:
                assert time.monotonic() < deadline, (tmp_path / "workers" / "stream.log").read_text()[-3000:]
                assert workers.procs["stream"].poll() is None, (tmp_path / "workers" / "stream.log").read_text()
                time.sleep(0.5)
        produce_traffic(settings, spec)
        deadline = time.monotonic() + 90
        while True:
            status = fetch_status(f"http://127.0.0.1:{port}")
            state = status["models"].get(model, {})
            if state.get("counters", {}).get("predictions") == spec.total and state.get("windows_closed") == 2:
                break
            assert time.monotonic() < deadline, (status, (tmp_path / "workers" / "stream.log").read_text()[-3000:])
            time.sleep(0.5)

        runner = CliRunner()
        cli_env = {**env, "COLUMNS": "220"}
        as_json = runner.invoke(main, ["status", "--url", f"http://127.0.0.1:{port}", "--json"], env=cli_env)
        table = runner.invoke(main, ["status", "--url", f"http://127.0.0.1:{port}"], env=cli_env)
        without_mlflow = runner.invoke(main, ["status", "--url", f"http://127.0.0.1:{port}", "--no-mlflow"],
                                       env=cli_env)
    finally:
        codes = workers.stop()
    assert all(code in (0, -15) for code in codes.values()), codes

    assert as_json.exit_code == 0, as_json.output
    model_json = json.loads(as_json.output)["models"][model]
    alerts = model_json["active_alerts"]
    assert any(a["feature"] == SHIFTED_FEATURE and a["severity"] == "critical" for a in alerts)
    assert table.exit_code == 0, table.output
    row = next(line for line in table.output.splitlines() if model in line)
    assert "DRIFT" in row and "v7" in row  # drift state; performance of the served version
    assert f"{SHIFTED_FEATURE}" in table.output and "critical" in table.output  # the open alert
    assert "4000 / 2" in table.output  # predictions / windows closed
    champion_cell = row.split("│")[4].strip()
    assert champion_cell == version.version == "2"
    accuracy = model_json["performance"]["7"]["value"]
    assert f"{accuracy:.3f}" in table.output
    assert without_mlflow.exit_code == 0 and "MLflow not read" in without_mlflow.output
    # Where the reference came from, and how well labels arrive (every prediction's label 30 s later).
    assert model_json["reference"] == {"source": "first_predictions", "n": 2000}
    assert model_json["labels"]["coverage"] == 1.0
    assert model_json["labels"]["delay_s"] == {"p50": 30.0, "p95": 30.0}
    assert "first 2000 predictions" in table.output and "labelled 100%" in table.output
    assert "label delay p50 30s, p95 30s" in table.output
