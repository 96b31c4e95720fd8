"""The environment is read in one place: the settings object, with its declared names."""

from __future__ import annotations

import ast
from pathlib import Path

from driftwarden.contract.settings import load_settings

ROOT = Path(__file__).resolve().parents[2]
SETTINGS = ROOT / "driftwarden" / "contract" / "settings.py"


def environment_reads(source: str) -> list[int]:
    """Lines that read one variable: os.environ.get/setdefault/pop, os.environ[...], os.getenv. Copying the whole
    environment for a child process, or writing MLflow's variables, is not reading one."""
    lines = []
    for node in ast.walk(ast.parse(source)):
        target = None
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            if node.func.attr in ("get", "setdefault", "pop"):
                target = node.func.value
            elif node.func.attr == "getenv":
                lines.append(node.lineno)
        elif isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Load):
            target = node.value
        if isinstance(target, ast.Attribute) and target.attr == "environ":
            lines.append(node.lineno)
    return lines


def test_only_the_settings_object_reads_the_environment() -> None:
    found = {str(p.relative_to(ROOT)): lines
             for package in ("detectors", "driftwarden", "stream", "retrain_worker")
             for p in sorted((ROOT / package).rglob("*.py")) if p != SETTINGS
             and (lines := environment_reads(p.read_text(encoding="utf-8")))}
    assert not found, f"environment variables read outside driftwarden/contract/settings.py: {found}"


def test_the_scan_finds_each_way_of_reading_a_variable() -> None:
    source = ("import os\nos.environ.get('A')\nos.environ['B']\nos.getenv('C')\nos.environ.setdefault('D', '1')\n"
              "env = {**os.environ}\nos.environ.update({'E': '1'})\n")
    assert environment_reads(source) == [2, 3, 4, 5]


def test_the_short_names_set_their_fields() -> None:
    settings = load_settings(env={"DRIFTWARDEN_LOG_LEVEL": "debug", "DRIFTWARDEN_WEB_HOST": "0.0.0.0",
                                  "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "5"})
    assert (settings.log_level, settings.stream.web_host) == ("debug", "0.0.0.0")
    assert settings.mlflow.client_env() == {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "5"}
    defaults = load_settings(env={})
    assert (defaults.log_level, defaults.stream.web_host) == ("info", "127.0.0.1")
    assert defaults.mlflow.client_env() == {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "3", "MLFLOW_HTTP_REQUEST_TIMEOUT": "60"}
