"""``driftwarden config`` prints no secret, whichever section a client config or URL sits in."""

from __future__ import annotations

import json

from click.testing import CliRunner

from driftwarden.cli import main as cli

SECRETS = {
    "REDIS_URL": ("redis://workers:redis-pw-1@127.0.0.1:6379/0", "redis-pw-1"),
    "MLFLOW_TRACKING_URI": ("https://ml:mlflow-pw-2@mlflow.example:443", "mlflow-pw-2"),
    "DRIFTWARDEN__KAFKA__CLIENT_CONFIG": (
        "{security.protocol: SASL_SSL, sasl.username: dw, sasl.password: kafka-pw-3, ssl.key.pem: PRIVATE-4}",
        "kafka-pw-3", "PRIVATE-4"),
    "DRIFTWARDEN__RETRAIN__CONSUMER_CONFIG": (
        "{session.timeout.ms: 10000, sasl.password: consumer-pw-5, sasl.oauthbearer.client.secret: oauth-6}",
        "consumer-pw-5", "oauth-6"),
    "DRIFTWARDEN__ALERT_RELAY__CONSUMER_CONFIG": ("{sasl.password: relay-pw-7}", "relay-pw-7"),
    "DRIFTWARDEN__ALERT_RELAY__WEBHOOK_HEADERS": ("{Authorization: Bearer token-8, X-Team: models}", "token-8"),
    "DRIFTWARDEN__ALERT_RELAY__WEBHOOK_URL": ("https://hook:hook-pw-9@hooks.example/dw", "hook-pw-9"),
    "DRIFTWARDEN__ALERT_RELAY__ALERTMANAGER_URL": ("http://am:am-pw-10@127.0.0.1:9093", "am-pw-10"),
    "DRIFTWARDEN__MONITOR__SNAPSHOT_KEY": ("hmac-key-11", "hmac-key-11"),
    "DRIFTWARDEN__RETRAIN__TRAINER_PARAMS": ("{api_token: trainer-12, depth: 3}", "trainer-12"),
}


def test_config_masks_every_secret_and_keeps_everything_else(tmp_path) -> None:  # type: ignore[no-untyped-def]
    env = {var: value for var, (value, *_secrets) in SECRETS.items()}
    env["DRIFTWARDEN_CONFIG"] = str(tmp_path / "none.yaml")
    result = CliRunner().invoke(cli, ["config"], env=env)
    assert result.exit_code == 0, result.output
    for var, (_value, *secrets) in SECRETS.items():
        for secret in secrets:
            assert secret not in result.output, f"{var}: {secret} printed in clear"
    shown = json.loads(result.output)
    # what is not secret stays readable: an operator checks these with `driftwarden config`
    assert shown["redis"]["url"] == "redis://workers:***@127.0.0.1:6379/0"
    assert shown["redis"]["key_prefix"] == "dw"
    assert shown["kafka"]["client_config"]["sasl.username"] == "dw"
    assert shown["retrain"]["consumer_config"]["session.timeout.ms"] == 10000
    assert shown["alert_relay"]["webhook_headers"] == {"Authorization": "***", "X-Team": "models"}
    assert shown["retrain"]["trainer_params"] == {"api_token": "***", "depth": 3}
    assert shown["monitor"]["snapshot_key"] == "***"
