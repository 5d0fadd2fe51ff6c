"""Backend, local endpoints: what an endpoint leaves in $CAPC_HOME/endpoints/<name>/ and how it is read back.

    state.json     pids and ports of the front end (proxy) and the live azmlinfsrv, the model it serves
    keys.json      primary and secondary key, owner-only (0600), like Azure's `auth_mode: key`
    control.json   the token deploy uses to tell the proxy to switch servers (0600, never shown)
    requests.log   one JSON line per request: time, status, latency, request id (no payload, no key)
    proxy.log      the proxy's own output; gen-<n>/server.log is azmlinfsrv's for generation n
    gen-<n>/       the score.py snapshot served by generation n (a redeploy is generation n+1)

The folder is 0700 so nothing in it is readable by other users.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import secrets
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

from capc.artifacts import atomic_write_bytes
from capc.errors import CapcError
from capc.state.home import capc_home

STATE = "state.json"
KEYS = "keys.json"
CONTROL = "control.json"
REQUEST_LOG = "requests.log"
PROXY_LOG = "proxy.log"
SERVER_LOG = "server.log"

# Azure's endpoint-name rule, relaxed to 2 characters so every valid spec name is a valid endpoint name.
NAME_PATTERN = re.compile(r"^[a-zA-Z][a-zA-Z0-9-]{0,30}[a-zA-Z0-9]$")


def endpoints_root(home: Path | None) -> Path:
    return Path(home or capc_home()).absolute() / "endpoints"


def endpoint_dir(name: str, home: Path | None) -> Path:
    check_name(name)
    return endpoints_root(home) / name


def check_name(name: str) -> None:
    if not NAME_PATTERN.match(name or ""):
        raise CapcError(
            f"`{name}` is not a valid endpoint name.",
            "use 2-32 letters, digits and dashes, starting with a letter and not ending with a dash",
        )


@dataclass
class Process:
    """One process of an endpoint: the proxy, or one generation of azmlinfsrv."""

    pid: int
    port: int
    generation: int = 0


@dataclass
class EndpointState:
    name: str
    model: str  # "name:version" as shown to users
    model_dir: str
    job_dir: str
    proxy: Process | None
    server: Process | None
    worker_count: int
    request_timeout_ms: int
    max_body_bytes: int
    created: str
    updated: str
    history: list = field(default_factory=list)  # previous generations: {generation, model, replaced}

    def to_json(self) -> bytes:
        return (json.dumps(asdict(self), indent=2, sort_keys=True) + "\n").encode()

    @classmethod
    def from_dict(cls, data: dict) -> "EndpointState":
        data = dict(data)
        for key in ("proxy", "server"):
            data[key] = Process(**data[key]) if data.get(key) else None
        return cls(**data)


def read_state(folder: Path) -> EndpointState | None:
    try:
        return EndpointState.from_dict(json.loads((folder / STATE).read_text()))
    except FileNotFoundError:
        return None
    except (ValueError, TypeError) as exc:
        raise CapcError(f"{folder / STATE} is damaged ({exc}).", f"remove {folder} and deploy again") from None


def write_state(folder: Path, state: EndpointState) -> None:
    atomic_write_bytes(folder / STATE, state.to_json())


def make_private_dir(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    os.chmod(folder, 0o700)


def new_key() -> str:
    # 32 random bytes, URL-safe: the same strength as Azure's generated endpoint keys.
    return secrets.token_urlsafe(32)


def ensure_secrets(folder: Path) -> None:
    """Keys and the control token are made once per endpoint; a redeploy keeps them, as Azure keeps its keys."""
    if not (folder / KEYS).exists():
        write_keys(folder, {"primaryKey": new_key(), "secondaryKey": new_key()})
    if not (folder / CONTROL).exists():
        atomic_write_bytes(folder / CONTROL, json.dumps({"token": new_key()}).encode(), mode=0o600)


def write_keys(folder: Path, keys: dict) -> None:
    atomic_write_bytes(folder / KEYS, (json.dumps(keys, indent=2, sort_keys=True) + "\n").encode(), mode=0o600)


def read_keys(folder: Path) -> dict:
    return json.loads((folder / KEYS).read_text())


def read_control_token(folder: Path) -> str:
    return json.loads((folder / CONTROL).read_text())["token"]


@contextmanager
def locked(folder: Path):
    """One deploy or delete of an endpoint at a time (two `capc deploy` of one name would fight over ports)."""
    make_private_dir(folder)
    with open(folder / ".lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
