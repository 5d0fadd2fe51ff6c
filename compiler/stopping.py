"""The command boundary: how a long command (`capc submit`, `capc predict`) stops when it is told to.

A run is stopped by Ctrl-C (SIGINT to the whole process group), and just as often by a supervisor, a CI cancel,
`timeout`, a closed SSH session or the OOM killer, which signal the capc process alone (SIGTERM, SIGHUP). While
`stopping_on_signals()` is active, all three become one exception in the main thread, `Stopped` - a
KeyboardInterrupt, so every engine's Ctrl-C path serves them all: running trials end and are recorded as
interrupted, what finished stays. A second signal while stopping does not cut the clean stop short (it is bounded:
trials get SIGKILL a few seconds after SIGTERM); SIGKILL ends capc at once, and its child processes die with it
(capc.local.launch says how).

A stop never cuts a store call in half: inside `deferred()` (every call on the run store's client,
capc.state.tracking) the signal is recorded and Stopped is raised when the block ends. Raised inside SQLAlchemy it
would leave a cursor half-closed, a traceback logged and the store call's write undone.

Exit status: 128 + the signal, the shell's rule: 130 for SIGINT, 143 for SIGTERM; SIGHUP exits 143 too, because
what a supervisor or a dropped session means by it is "terminate", and 143 is what scripts test for.
"""

from __future__ import annotations

import os
import signal
import threading
from contextlib import contextmanager

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
EXIT_STATUS = {signal.SIGINT: 130, signal.SIGTERM: 143, signal.SIGHUP: 143}

_received: list[int] = []  # the stop signals this process received, in order
_deferring = 0  # depth of deferred() blocks in the main thread
_pending: list[int] = []  # a stop signal that arrived inside deferred(), raised when the block ends


class Stopped(KeyboardInterrupt):
    """A stop signal arrived; `exit_status` is what capc exits with."""

    def __init__(self, signum: int = signal.SIGINT):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def exit_status(self) -> int:
        return EXIT_STATUS.get(self.signum, 130)


def stop_signal() -> int | None:
    """The first stop signal received (None: none yet)."""
    return _received[0] if _received else None


def signal_name() -> str:
    """How the stop is named in messages and trial records: the signal's name, or Ctrl-C without one."""
    signum = stop_signal()
    return "Ctrl-C" if signum in (None, signal.SIGINT) else signal.Signals(signum).name


def exit_status() -> int:
    """The exit status of an interrupted command: 130 for Ctrl-C (or no signal seen), 143 for SIGTERM/SIGHUP."""
    return EXIT_STATUS.get(stop_signal(), 130)


def exit_status_of(exc: BaseException) -> int:
    return exc.exit_status if isinstance(exc, Stopped) else exit_status()


def _on_signal(signum: int, frame) -> None:
    _received.append(signum)
    if len(_received) == 1:
        if _deferring:
            _pending.append(signum)
            return
        raise Stopped(signum)
    # Already stopping; os.write because a signal handler may run in the middle of a print.
    os.write(2, f"capc: already stopping ({signal.Signals(signum).name} ignored); SIGKILL ends it at once\n".encode())


@contextmanager
def deferred():
    """A stop signal that arrives inside the block raises Stopped when the block ends, not in the middle of it.
    Only the main thread receives signals, so elsewhere this changes nothing."""
    global _deferring
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _deferring += 1
    try:
        yield
    finally:
        _deferring -= 1
        if not _deferring and _pending:
            raise Stopped(_pending.pop())  # the stop is what the user asked for, even over an error in flight


@contextmanager
def stopping_on_signals():
    """SIGINT, SIGTERM and SIGHUP raise Stopped in the main thread while the block runs; the old handlers come back
    after it. Elsewhere than in the main thread (Python allows handlers only there) it changes nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {signum: signal.getsignal(signum) for signum in STOP_SIGNALS}
    _received.clear()
    _pending.clear()
    for signum in STOP_SIGNALS:
        signal.signal(signum, _on_signal)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)
