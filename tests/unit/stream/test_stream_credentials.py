"""kafka.client_config (librdkafka keys) -> Faust broker credentials, and where Faust keeps its files."""

from __future__ import annotations

import subprocess
from pathlib import Path

import faust
import pytest
from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth

from driftwarden.contract.settings import load_settings
from stream.app import data_dir
from stream.credentials import broker_credentials
from stream.exceptions import StreamError


@pytest.fixture(scope="module")
def ca_file(tmp_path_factory: pytest.TempPathFactory) -> str:
    folder = tmp_path_factory.mktemp("tls")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout",
                    str(folder / "key.pem"), "-out", str(folder / "ca.pem"), "-days", "1", "-subj", "/CN=t"],
                   check=True, capture_output=True)
    return str(folder / "ca.pem")


def test_plaintext_needs_no_credentials() -> None:
    assert broker_credentials({}) is None
    assert broker_credentials({"security.protocol": "plaintext"}) is None


def test_sasl_plaintext_maps_username_password_and_mechanism() -> None:
    creds = broker_credentials({"security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "SCRAM-SHA-512",
                                "sasl.username": "svc", "sasl.password": "s3cret"})
    assert isinstance(creds, faust.SASLCredentials)
    auth = credentials_to_aiokafka_auth(creds)
    assert auth["security_protocol"] == "SASL_PLAINTEXT"
    assert auth["sasl_mechanism"] == "SCRAM-SHA-512"
    assert (auth["sasl_plain_username"], auth["sasl_plain_password"]) == ("svc", "s3cret")
    assert auth["ssl_context"] is None


def test_sasl_ssl_carries_a_context_that_trusts_the_configured_ca(ca_file: str) -> None:
    creds = broker_credentials({"security.protocol": "SASL_SSL", "sasl.mechanism": "PLAIN",
                                "sasl.username": "u", "sasl.password": "p", "ssl.ca.location": ca_file})
    auth = credentials_to_aiokafka_auth(creds)
    assert auth["security_protocol"] == "SASL_SSL"
    assert auth["sasl_mechanism"] == "PLAIN"
    assert [c["subject"] for c in auth["ssl_context"].get_ca_certs()] == [((("commonName", "t"),),)]


def test_ssl_only(ca_file: str) -> None:
    creds = broker_credentials({"security.protocol": "SSL", "ssl.ca.location": ca_file,
                                "ssl.endpoint.identification.algorithm": "none"})
    assert isinstance(creds, faust.SSLCredentials)
    auth = credentials_to_aiokafka_auth(creds)
    assert auth["security_protocol"] == "SSL"
    assert auth["ssl_context"].check_hostname is False


def test_gssapi_takes_the_kerberos_service_name() -> None:
    auth = credentials_to_aiokafka_auth(broker_credentials({
        "security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "GSSAPI",
        "sasl.kerberos.service.name": "kafka-prod"}))
    assert (auth["sasl_mechanism"], auth["sasl_kerberos_service_name"]) == ("GSSAPI", "kafka-prod")


@pytest.mark.parametrize("config", [
    {"security.protocol": "SASL_SSL", "sasl.mechanism": "PLAIN", "sasl.username": "u"},
    {"security.protocol": "TLS"},
])
def test_incomplete_or_unknown_security_is_refused(config: dict[str, str]) -> None:
    with pytest.raises(StreamError):
        broker_credentials(config)


def test_faust_data_dir_is_never_the_working_directory(tmp_path: Path) -> None:
    default = data_dir(load_settings(env={"DRIFTWARDEN__STREAM__APP_ID": "dw-x"}))
    assert default.name == "dw-x" and Path.cwd() not in default.parents
    configured = load_settings(env={"DRIFTWARDEN__STREAM__DATA_DIR": str(tmp_path / "faust")})
    assert data_dir(configured) == tmp_path / "faust"
