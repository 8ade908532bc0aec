"""The ports the test support hands to servers started in other processes: free, outside the
kernel's range for outgoing connections, and apart from the other pytest-xdist workers'
(a Jupyter server once failed to start on a port that a client had taken meanwhile)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from tests.support import threaded
from tests.support.threaded import free_port

EPHEMERAL = Path("/proc/sys/net/ipv4/ip_local_port_range")


def test_a_free_port_is_free_and_out_of_the_ephemeral_range():
    ports = [free_port() for _ in range(20)]
    assert len(set(ports)) == 20  # in turn: no two servers started at once get the same one
    for port in ports:
        with socket.socket() as s:
            s.bind(("127.0.0.1", port))
    if EPHEMERAL.exists():
        low = int(EPHEMERAL.read_text().split()[0])
        assert all(port < low for port in ports)


def test_a_port_in_use_is_skipped(monkeypatch):
    first = free_port()
    monkeypatch.setattr(threaded, "_PORTS", range(first, first + 2))
    with socket.socket() as held:
        held.bind(("127.0.0.1", first))
        held.listen()
        assert {free_port() for _ in range(4)} == {first + 1}


@pytest.mark.skipif(not EPHEMERAL.exists(), reason="Linux tells its ephemeral range there")
def test_workers_get_ports_apart(monkeypatch):
    spans = []
    for worker in ("gw0", "gw1", "gw2"):
        monkeypatch.setenv("PYTEST_XDIST_WORKER", worker)
        monkeypatch.setenv("PYTEST_XDIST_WORKER_COUNT", "3")
        spans.append(set(threaded._port_span()))
    assert all(spans) and not (spans[0] & spans[1] or spans[1] & spans[2] or spans[0] & spans[2])
