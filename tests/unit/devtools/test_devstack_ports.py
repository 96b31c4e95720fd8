"""Ports for the dev stack and the workers are chosen where the kernel never assigns outgoing connections."""

from __future__ import annotations

import socket
from types import SimpleNamespace

import pytest

from driftwarden.devtools import devstack
from driftwarden.devtools.devstack import _ephemeral_range, free_port


def test_free_ports_are_outside_the_ephemeral_range_and_bindable() -> None:
    low, high = _ephemeral_range()
    ports = [free_port() for _ in range(50)]
    assert all(p < low or p > high for p in ports)
    assert len(set(ports)) > 40  # spread out, so concurrent callers rarely pick the same one
    for port in ports[:5]:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))


def test_a_port_in_use_is_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", free_port()))
        busy.listen()
        taken = busy.getsockname()[1]
        other = free_port()
        picks = iter([taken, taken, other])
        monkeypatch.setattr(devstack, "_random", SimpleNamespace(choice=lambda _candidates: next(picks)))
        assert free_port() == other
