"""Backend, Azure: follow submitted jobs until they end - status, child runs, best primary metric so far.

On a terminal it is one live table; elsewhere (CI logs, tests) one line per change, so logs stay readable, and the
unfinished jobs' lines again every 30 s (a heartbeat) while nothing changes.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from rich.console import Console
from rich.table import Table

from capc.azure.jobs import SubmittedJob, refresh

STATUS_COLOURS = {"Completed": "green", "Failed": "red", "Canceled": "yellow", "Running": "cyan", "NotResponding": "red"}


class JobProgress:
    """Shows the jobs of one submission while they run."""

    def __init__(self, console: Console, metric: str, goal: str, quiet: bool = False, heartbeat_s: float = 30.0,
                 clock: Callable[[], float] = time.monotonic):
        self.console = console
        self.metric = metric
        self.goal = goal
        self.quiet = quiet  # `capc submit --quiet`: neither the live table nor the lines
        self.heartbeat_s = heartbeat_s  # off a terminal, every unfinished job's line again at least this often
        self.clock = clock
        self._live = None
        self._last: dict[str, tuple] = {}
        self._printed = clock()

    def __enter__(self) -> "JobProgress":
        if self.console.is_terminal and not self.quiet:
            from rich.live import Live

            self._live = Live(console=self.console, refresh_per_second=2, transient=False)
            self._live.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        if self._live is not None:
            self._live.__exit__(*exc)
            self._live = None

    def update(self, jobs: list[SubmittedJob]) -> None:
        if self._live is not None:
            self._live.update(self.table(jobs))
            return
        if self.quiet:
            return
        beat = self.clock() - self._printed >= self.heartbeat_s
        for job in jobs:
            state = (job.status, job.children, job.best_value)
            if self._last.get(job.name) != state or (beat and not job.finished):
                prefix = "heartbeat " if self._last.get(job.name) == state else ""
                self._last[job.name] = state
                self._printed = self.clock()
                self.console.print(f"{prefix}{job.kind} {job.name}: {job.status}, {self._children(job)}, {self._best(job)}", highlight=False)

    def table(self, jobs: list[SubmittedJob]) -> Table:
        table = Table(title=f"Azure ML jobs - best {self.metric} ({self.goal})", header_style="bold")
        for column in ("job", "name", "status", "child runs", f"best {self.metric}", "studio"):
            table.add_column(column, overflow="fold")
        for job in jobs:
            colour = STATUS_COLOURS.get(job.status, "white")
            value = "-" if job.best_value is None else f"{job.best_value:.4f}"
            table.add_row(job.kind, job.name, f"[{colour}]{job.status}[/]", str(job.children), value, job.studio_url or "")
        return table

    @staticmethod
    def _children(job: SubmittedJob) -> str:
        return f"{job.children} child run{'s' if job.children != 1 else ''}"

    def _best(self, job: SubmittedJob) -> str:
        return f"best {self.metric} so far: {'-' if job.best_value is None else f'{job.best_value:.4f}'}"


def follow(
    ml_client,
    jobs: list[SubmittedJob],
    goal: str,
    workspace,
    progress: JobProgress,
    poll_seconds: float = 15.0,
    sleep: Callable[[float], None] = time.sleep,
) -> list[SubmittedJob]:
    """Poll every unfinished job until all have ended; returns the same (updated) list."""
    while True:
        for job in jobs:
            if not job.finished:
                refresh(ml_client, job, goal, workspace)
        progress.update(jobs)
        if all(job.finished for job in jobs):
            return jobs
        sleep(poll_seconds)
