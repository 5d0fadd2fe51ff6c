"""Backend, local endpoints: background processes (start detached, find, stop) and loopback ports.

Processes are started in their own session so they outlive the `capc` command that started them, and are
only ever signalled after checking that the pid still runs a command line naming the endpoint's folder
(pids get reused; a stale state.json must never make capc kill somebody else's process).
"""

from __future__ import annotations

import http.client
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

LOOPBACK = "127.0.0.1"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return sock.getsockname()[1]


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((LOOPBACK, port))
        except OSError:
            return False
        return True


def start_detached(argv: list[str], log_file: Path, env: dict, cwd: Path) -> subprocess.Popen:
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with open(log_file, "ab") as log:
        os.chmod(log_file, 0o600)
        return subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=cwd,
            start_new_session=True, close_fds=True,
        )


def python_argv(module: str, *args: str) -> list[str]:
    return [sys.executable, "-m", module, *args]


def is_ours(pid: int | None, marker: str) -> bool:
    """True when `pid` is alive and its command line names `marker` (the endpoint folder)."""
    if not pid:
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    if marker.encode() not in cmdline:
        return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def stop(pid: int | None, marker: str, grace_s: float = 30.0) -> None:
    """SIGTERM (gunicorn and the proxy finish what they are serving), then SIGKILL the group after `grace_s`."""
    if not is_ours(pid, marker):
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        _reap(pid)
        if not is_ours(pid, marker):
            return
        time.sleep(0.05)
    try:
        os.killpg(pid, signal.SIGKILL)  # the session we started: the master and its workers
    except (ProcessLookupError, PermissionError):
        pass
    _reap(pid)


def _reap(pid: int) -> None:
    # Our own children would stay zombies (and look alive in /proc) until waited for.
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def http_get(port: int, path: str, headers: dict | None = None, timeout: float = 2.0) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection(LOOPBACK, port, timeout=timeout)
    try:
        conn.request("GET", path, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def http_post(port: int, path: str, body: bytes, headers: dict, timeout: float) -> tuple[int, dict, bytes]:
    conn = http.client.HTTPConnection(LOOPBACK, port, timeout=timeout)
    try:
        conn.request("POST", path, body=body, headers=headers)
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


def wait_until_healthy(process: subprocess.Popen, port: int, path: str, timeout_s: float, expect: bytes | None = None) -> str | None:
    """Poll GET path until it answers 200 (and `expect` in the body); None when ready, else why not."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        code = process.poll()
        if code is not None:
            return f"it exited with status {code} before answering"
        try:
            status, body = http_get(port, path, timeout=1.0)
            if status == 200 and (expect is None or expect in body):
                return None
        except OSError:
            pass
        time.sleep(0.1)
    return f"it did not answer GET {path} within {timeout_s:.0f} s"


def raised_errors(path: Path, limit: int = 3) -> list[str]:
    """The exception lines ("RuntimeError: ...") that end the tracebacks in a log, first seen first.

    gunicorn ends a failed boot with its own HaltServer traceback, which buries the scoring script's
    real error above the last lines; this digs it out.
    """
    try:
        lines = path.read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return []
    found: list[str] = []
    in_traceback = False
    for line in lines:
        if "Traceback (most recent call last):" in line:  # azmlinfsrv logs it after a "... Exception" prefix
            in_traceback = True
        elif in_traceback and line and not line[0].isspace():
            in_traceback = False
            if _EXCEPTION_LINE.match(line) and "HaltServer" not in line and line not in found:
                found.append(line)
    return found[:limit]


_EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt|Warning)?(: .*)?$")


def tail(path: Path, lines: int = 25) -> str:
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return ""
    return "\n".join(text.splitlines()[-lines:])
