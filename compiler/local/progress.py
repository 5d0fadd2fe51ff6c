"""Backend, local: the live display of a submit (rich): time left, current best, trials done/running/stopped."""

from __future__ import annotations

import time

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from capc.goal import Goal
from capc.jobfolder.folder import sweep_limit


class SubmitProgress:
    """Receives engine events; safe to call from the sweep's worker thread (rich Progress is thread-safe)."""

    def __init__(self, metric: str, goal: str, console: Console | None = None):
        self.metric = metric
        self.goal = Goal(goal)
        self.console = console or Console(stderr=True)
        self.progress = Progress(
            TextColumn("[bold]{task.fields[phase]:<7}"),  # automl, sweep or sweep_<family>
            BarColumn(bar_width=28),
            TextColumn("{task.completed:>4.0f}/{task.total:<4.0f}"),
            TimeElapsedColumn(),
            TextColumn("left"),
            TimeRemainingColumn(),
            TextColumn("{task.description}"),
            console=self.console,
            transient=False,
            disable=not self.console.is_terminal and not self.console.is_jupyter,
        )
        self.automl_task = None
        self.automl_best = None
        self.automl_count = 0
        self.automl_deadline = 0.0
        self.sweeps: dict[str, dict] = {}  # sweep name -> its bar, best value and trial counts

    def __enter__(self):
        self.progress.__enter__()
        return self

    def __exit__(self, *exc):
        self.progress.__exit__(*exc)

    def note(self, text: str) -> None:
        # Notes carry names and parameter values: never read as markup. Whole lines, so a log keeps them greppable.
        self.console.print(text, style="yellow", markup=False, highlight=False, soft_wrap=True)

    # AutoML: a time budget, so the bar counts seconds.
    def automl_started(self, budget_s: float) -> None:
        self.automl_deadline = time.monotonic() + budget_s
        self.automl_task = self.progress.add_task("starting", total=budget_s, phase="automl")
        self._budget = budget_s
        self._started = time.monotonic()

    def automl_candidate(self, candidate) -> None:
        self.automl_count += 1
        if candidate.status == "completed" and self.goal.better(candidate.value, self.automl_best):
            self.automl_best = candidate.value
        elapsed = min(time.monotonic() - self._started, self._budget)
        best = f"{self.automl_best:.4f}" if self.automl_best is not None else "-"
        self.progress.update(
            self.automl_task, completed=elapsed,
            description=f"{self.automl_count} candidates, best {self.metric} {best} ({candidate.estimator})",
        )

    def automl_finished(self, result) -> None:
        self.progress.update(self.automl_task, completed=self._budget, description=f"{len(result.candidates)} candidates, best {self.metric} {result.best.value:.4f} ({result.best.estimator})")

    # Sweeps: a trial budget, so each bar counts trials (a conditional sweep runs one sweep per family).
    def sweep_started(self, job: dict, name: str = "sweep") -> None:
        total = sweep_limit(job.get("limits"), "max_total_trials")
        self.sweeps[name] = {"task": self.progress.add_task("starting", total=total, phase=name), "best": None,
                             "counts": {"running": 0, "done": 0, "stopped": 0, "failed": 0}}

    def sweep_event(self, kind: str, trial, name: str = "sweep") -> None:
        sweep = self.sweeps[name]
        counts = sweep["counts"]
        if kind == "started":
            counts["running"] += 1
        elif kind in ("finished", "failed", "stopped", "interrupted"):
            counts["running"] = max(0, counts["running"] - 1)
            counts[{"finished": "done", "failed": "failed", "stopped": "stopped", "interrupted": "stopped"}[kind]] += 1
            value = getattr(trial, "value", None)
            if kind == "finished" and value is not None and self.goal.better(value, sweep["best"]):
                sweep["best"] = value
        finished = counts["done"] + counts["failed"] + counts["stopped"]
        best = f"{sweep['best']:.4f}" if sweep["best"] is not None else "-"
        c = counts
        self.progress.update(
            sweep["task"], completed=finished,
            description=f"done {c['done']} running {c['running']} stopped {c['stopped']} failed {c['failed']}, best {self.metric} {best}",
        )

    def sweep_finished(self, result, name: str = "sweep") -> None:
        if name in self.sweeps:
            self.progress.update(self.sweeps[name]["task"], total=max(len(result.trials), 1), completed=len(result.trials))


class PipelineProgress:
    """One line per pipeline step: its state, time and the last thing it printed."""

    ICONS = {"waiting": "·", "running": "▶", "completed": "✔", "failed": "✘", "skipped": "-", "interrupted": "■"}

    def __init__(self, console: Console | None = None):
        from rich.progress import SpinnerColumn

        self.console = console or Console(stderr=True)
        self.progress = Progress(
            SpinnerColumn(finished_text=" "),
            TextColumn("[bold]{task.fields[step]:<12}"),
            TextColumn("{task.fields[state]:<13}"),
            TimeElapsedColumn(),
            TextColumn("[dim]{task.description}"),
            console=self.console,
            transient=False,
            disable=not self.console.is_terminal and not self.console.is_jupyter,
        )
        self.tasks: dict[str, int] = {}

    def __enter__(self):
        self.progress.__enter__()
        return self

    def __exit__(self, *exc):
        self.progress.__exit__(*exc)

    def step(self, step) -> None:
        state = f"{self.ICONS.get(step.status, '?')} {step.status}"
        if step.name not in self.tasks:
            self.tasks[step.name] = self.progress.add_task("", total=1, step=step.name, state=state, start=step.status == "running")
        task = self.tasks[step.name]
        if step.status == "running":
            self.progress.start_task(task)
        self.progress.update(task, state=state, description=step.detail.splitlines()[0] if step.detail else "")
        if step.status not in ("waiting", "running"):
            self.progress.update(task, completed=1)
            self.progress.stop_task(task)

    def poll(self, steps) -> None:
        """Show the last line each running step printed."""
        for step in steps:
            if step.status == "running" and step.log and step.name in self.tasks:
                self.progress.update(self.tasks[step.name], description=_last_line(step.log))


def _last_line(path) -> str:
    from capc.local.launch import output_tail

    lines = [line for line in output_tail(path, 5).splitlines() if line.strip()]
    return lines[-1][:100] if lines else ""
