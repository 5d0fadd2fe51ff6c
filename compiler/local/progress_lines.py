"""Backend, local: the progress of a submit as plain lines, for when no terminal is attached (CI logs, `nohup`,
`capc submit ... > run.log 2>&1`), where a live display would print nothing until the end.

Every line is `[MM:SS] <phase> <event> key=value ...` (elapsed time since the submit started; values never hold
spaces, except a step's last `detail=`, which is quoted), so a log stays greppable and parseable:

    [00:00] automl started budget_s=120 metric=accuracy
    [00:04] automl trial index=0 algorithm=LightGBM status=completed accuracy=0.9012 best=0.9012 best_trial=LightGBM-0
    [00:30] heartbeat automl trials=9 best=0.9104 best_trial=LightGBM-3 left_s=90
    [02:01] automl finished trials=40 best=0.9104 best_trial=LightGBM-3 ended_by=trials
    [00:00] step automl status=running

Every HEARTBEAT_S a heartbeat line per running phase sums up where it stands (trials, best so far, time left), so a
log read later shows the search's course, and a quiet stretch never looks like a hang.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Callable

HEARTBEAT_S = 30.0


def value_text(value) -> str:
    """A metric value in a line: six significant digits, `-` when there is none."""
    return "-" if value is None else f"{value:.6g}"


def field_text(key: str, value) -> str:
    text = str(value)
    if not text or any(ch.isspace() or ch in '"=' for ch in text):
        text = json.dumps(text, ensure_ascii=False)  # quoted, so the line still splits into key=value fields
    return f"{key}={text}"


class ProgressLines:
    """Writes progress lines to a stream (stderr by default), thread-safe, with a heartbeat thread that asks
    `status()` for one line per running phase every `heartbeat_s`."""

    def __init__(self, status: Callable[[], list[str]], stream=None, heartbeat_s: float | None = None,
                 clock: Callable[[], float] = time.monotonic):
        self.status = status
        self.stream = stream if stream is not None else sys.stderr
        self.heartbeat_s = HEARTBEAT_S if heartbeat_s is None else heartbeat_s
        self.clock = clock
        self.started = clock()
        self.last_beat = self.started
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._beat, name="capc-heartbeat", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)

    def line(self, phase: str, event: str, **fields) -> None:
        words = [phase, event, *(field_text(k, v) for k, v in fields.items())]
        self.write(" ".join(words))

    def write(self, text: str) -> None:
        with self._lock:
            now = self.clock()
            elapsed = int(now - self.started)
            try:
                self.stream.write(f"[{elapsed // 60:02d}:{elapsed % 60:02d}] {text}\n")
                self.stream.flush()
            except (OSError, ValueError):  # the log's reader went away (a closed pipe): progress is not worth failing for
                pass

    def beat_if_due(self) -> None:
        """One heartbeat line per running phase once heartbeat_s has passed since the last (the thread calls this)."""
        with self._lock:
            if self.clock() - self.last_beat < self.heartbeat_s:
                return
            self.last_beat = self.clock()
            lines = self.status() or ["submit status=working"]
            for text in lines:
                self.write(f"heartbeat {text}")

    def _beat(self) -> None:
        while not self._stop.wait(min(1.0, self.heartbeat_s)):
            self.beat_if_due()
