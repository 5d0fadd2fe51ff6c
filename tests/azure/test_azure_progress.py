"""Following Azure jobs off a terminal (CI logs): a line per change, a heartbeat while nothing changes, none with --quiet."""

from __future__ import annotations

import io

from rich.console import Console

from capc.azure.jobs import SubmittedJob
from capc.azure.progress import JobProgress


def follow_lines(quiet: bool = False) -> list[str]:
    now = [0.0]
    out = io.StringIO()
    progress = JobProgress(Console(file=out, width=200), "accuracy", "maximize", quiet=quiet, clock=lambda: now[0])
    job = SubmittedJob("sweep", "sweep-1", None, "Running")
    for t, children, best, status in [(0, 0, None, "Running"), (15, 0, None, "Running"), (30, 0, None, "Running"),
                                      (45, 1, 0.91, "Running"), (60, 1, 0.91, "Running"), (90, 2, 0.92, "Completed"),
                                      (150, 2, 0.92, "Completed")]:
        now[0] = t
        job.children, job.best_value, job.status = children, best, status
        progress.update([job])
    return out.getvalue().splitlines()


def test_off_a_terminal_each_change_prints_a_line_and_a_quiet_stretch_a_heartbeat():
    assert follow_lines() == [
        "sweep sweep-1: Running, 0 child runs, best accuracy so far: -",
        "heartbeat sweep sweep-1: Running, 0 child runs, best accuracy so far: -",
        "sweep sweep-1: Running, 1 child run, best accuracy so far: 0.9100",
        "sweep sweep-1: Completed, 2 child runs, best accuracy so far: 0.9200",  # a finished job beats no more
    ]


def test_quiet_prints_nothing():
    assert follow_lines(quiet=True) == []
