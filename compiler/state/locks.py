"""Shared state: one local run of a spec version at a time per $CAPC_HOME.

A submit (AutoML, sweep or pipeline) of a spec version writes folders only that version uses (the sweep's study and
trial folders under sweeps/NAME/SHA): a second submit of the same spec while one runs would overwrite them. The
lock is an fcntl lock on $CAPC_HOME/locks/NAME-SHA.lock, so the kernel releases it when its holder dies, however it
dies (SIGKILL included): a stale lock cannot exist. The file says who holds it, for the message the second submit gets.
"""

from __future__ import annotations

import fcntl
import json
import os
import shlex
import sys
import time
from contextlib import contextmanager
from pathlib import Path

from capc.errors import CapcError
from capc.state.home import capc_home


def lock_path(name: str, spec_sha256: str) -> Path:
    return capc_home() / "locks" / f"{name}-{spec_sha256[:16]}.lock"


@contextmanager
def spec_lock(name: str, spec_sha256: str):
    """Hold the lock of this spec version while the block runs; CapcError at once when another process holds it."""
    path = lock_path(name, spec_sha256)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = open(path, "a+", encoding="utf-8")  # not "w": truncating would wipe the holder's note
    try:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise _held(name, path) from None
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps({"pid": os.getpid(), "started": time.strftime("%Y-%m-%d %H:%M:%S"), "command": _command_line()}) + "\n")
        handle.flush()
        yield
    finally:
        handle.close()  # releases the lock


def _command_line() -> str:
    program = "capc" if sys.argv and sys.argv[0].endswith(("capc", "__main__.py")) else os.path.basename(sys.argv[0] if sys.argv else "")
    return shlex.join([program, *sys.argv[1:]])


def _held(name: str, path: Path) -> CapcError:
    try:
        holder = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        holder = {}
    who = f" (pid {holder['pid']}, since {holder['started']}: `{holder['command']}`)" if "pid" in holder else ""
    return CapcError(
        f"another local run of `{name}` with this same spec is in progress{who}, using {capc_home()}; "
        "two runs would write the same sweep trial folders.",
        f"wait for it to end, or stop it (kill -TERM {holder.get('pid', 'PID')}) and continue with --resume; "
        "or run this one with another CAPC_HOME",
    )
