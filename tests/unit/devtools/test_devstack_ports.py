"""Ports for the dev stack and the workers are chosen where the kernel never assigns outgoing connections."""

from __future__ import annotations

import random
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
        monkeypatch.setattr(devstack, "_handed", {})  # as if ``other`` had not been handed out yet
        picks = iter([taken, taken, other])
        monkeypatch.setattr(devstack, "_random", SimpleNamespace(choice=lambda _candidates: next(picks)))
        assert free_port() == other


def test_a_port_handed_out_is_not_handed_out_again_before_it_is_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    # Servers bind their ports after all of them are chosen: a port handed out and still free must not be
    # chosen twice (a Redis Cluster node failed to start on its neighbour's port).
    first, second = free_port(), free_port()
    picks = iter([first, second, first, second])
    system = random.SystemRandom()
    monkeypatch.setattr(devstack, "_random", SimpleNamespace(
        choice=lambda candidates: next(picks, None) or system.choice(candidates)))
    assert free_port() not in (first, second)
