"""Fixtures every test folder may use: the network guard and a private working folder with its own $CAPC_HOME.

Each stage folder (spec/, build/, render/, plan/, local/, serve/, azure/, report/) has its own conftest.py for its
fixtures; plain shared names (the reference specs, data samples) are in tests/repo.py.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from repo import TEST_DOMAIN, use_private_capc_home

LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})


# ---------------------------------------------------------------- network


class OutboundBlocked(ConnectionRefusedError):
    """A test tried to reach beyond what its guard allows (Azure, the instance metadata service, a CDN)."""


@dataclass
class NetworkGuard:
    """What a test may reach: loopback (the default), or nothing at all. Records every refused destination."""

    loopback_allowed: bool = True
    refused: list[str] = field(default_factory=list)

    def allows(self, host) -> bool:
        return self.loopback_allowed and host in LOOPBACK

    def refuse(self, host, what: str):
        self.refused.append(host)
        reach = "loopback only" if self.loopback_allowed else "no connection at all"
        return f"capc tests: {what} {host} refused ({reach})"


@pytest.fixture
def no_outbound(monkeypatch) -> NetworkGuard:
    """Refuse every socket connect and name lookup that is not loopback, and fail the test if any was tried.

    Names under `.capc.test` (the fake services' domain) resolve to 127.0.0.1. Keeps the tests hermetic and makes it
    impossible to reach 169.254.169.254 (managed identity). The failure comes at teardown too, because the code
    under test may swallow the refusal.
    """
    guard = NetworkGuard()
    real_getaddrinfo = socket.getaddrinfo
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex

    def getaddrinfo(host, *args, **kwargs):
        name = host.decode() if isinstance(host, bytes) else host
        if isinstance(name, str) and name.endswith("." + TEST_DOMAIN):
            name = "127.0.0.1"
        if name is not None and not guard.allows(name):
            raise socket.gaierror(socket.EAI_NONAME, guard.refuse(name, "lookup of"))
        return real_getaddrinfo(name, *args, **kwargs)

    def check(address):
        if isinstance(address, tuple) and address and not guard.allows(address[0]):
            raise OutboundBlocked(guard.refuse(address[0], "connection to"))

    def connect(self, address):
        check(address)
        return real_connect(self, address)

    def connect_ex(self, address):
        check(address)
        return real_connect_ex(self, address)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
    yield guard
    assert not guard.refused, f"tried to reach beyond what the test allows: {guard.refused}"


@pytest.fixture
def no_network(no_outbound) -> NetworkGuard:
    """The guard at its strictest: no connection and no name lookup at all, not even loopback."""
    no_outbound.loopback_allowed = False
    return no_outbound


# ---------------------------------------------------------------- a private working folder


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch) -> Path:
    """tmp_path as the working directory, with a private $CAPC_HOME (tmp_path/home) and no MLflow telemetry.

    Stage folders extend it with the data their specs name (a fixture of the same name that asks for this one).
    """
    use_private_capc_home(monkeypatch, tmp_path)
    return tmp_path


@pytest.fixture
def capc_home(workdir: Path) -> Path:
    """The private $CAPC_HOME of `workdir` (not created: capc makes it when it first stores something)."""
    return workdir / "home"
