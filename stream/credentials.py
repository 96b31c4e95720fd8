"""Faust broker credentials from ``kafka.client_config``, the librdkafka-style keys every other client uses.

One set of settings secures every Kafka client: confluent-kafka reads the keys as they are, and this
maps them onto Faust's (aiokafka's) credential objects so the stream worker joins the same cluster.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping

import faust

from stream.exceptions import StreamError

PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")


def ssl_context(config: Mapping[str, str]) -> ssl.SSLContext:
    """A client TLS context from ``ssl.ca.location`` and an optional client certificate and key."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=config.get("ssl.ca.location"))
    certificate = config.get("ssl.certificate.location")
    if certificate:
        context.load_cert_chain(certificate, keyfile=config.get("ssl.key.location"),
                                password=config.get("ssl.key.password"))
    if config.get("ssl.endpoint.identification.algorithm", "https").lower() == "none":
        context.check_hostname = False
    return context


def broker_credentials(config: Mapping[str, str]) -> faust.types.auth.CredentialsT | None:
    """Faust ``broker_credentials`` for ``config``; None for a plaintext connection."""
    protocol = str(config.get("security.protocol", "PLAINTEXT")).upper()
    if protocol not in PROTOCOLS:
        raise StreamError(f"kafka.client_config security.protocol {protocol!r} is not one of {PROTOCOLS}")
    if protocol == "PLAINTEXT":
        return None
    context = ssl_context(config) if protocol.endswith("SSL") else None
    if protocol == "SSL":
        return faust.SSLCredentials(context)
    mechanism = str(config.get("sasl.mechanism", config.get("sasl.mechanisms", "PLAIN"))).upper()
    if mechanism == "GSSAPI":
        return faust.GSSAPICredentials(
            kerberos_service_name=config.get("sasl.kerberos.service.name", "kafka"),
            ssl_context=context, mechanism=mechanism)
    if "sasl.username" not in config or "sasl.password" not in config:
        raise StreamError(f"kafka.client_config: SASL {mechanism} needs sasl.username and sasl.password")
    return faust.SASLCredentials(username=config["sasl.username"], password=config["sasl.password"],
                                 ssl_context=context, mechanism=mechanism)
