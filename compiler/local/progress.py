"""Backend, local: the live display of a submit (rich): time left, current best, trials done/running/stopped."""

from __future__ import annotations

import time

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from capc.goal import Goal
from capc.jobfolder.folder import sweep_limit
from capc.local.progress_lines import ProgressLines, field_text, value_text


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


class SubmitProgress:
    """Receives engine events; safe to call from the sweep's worker thread (rich Progress is thread-safe).

    On a terminal a live display; elsewhere (a pipe, a file, CI) plain lines (capc.local.progress_lines) with a
    heartbeat; with `quiet` neither (notes still print)."""

    def __init__(self, metric: str, goal: str, console: Console | None = None, quiet: bool = False,
                 heartbeat_s: float | None = None):
        self.metric = metric
        self.goal = Goal(goal)
        self.console = console or Console(stderr=True)
        live = (self.console.is_terminal or self.console.is_jupyter) and not quiet
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
            disable=not live,
        )
        self.lines = None if live or quiet else ProgressLines(self._status, self.console.file, heartbeat_s)
        self.automl_task = None
        self.automl_best = None
        self.automl_best_label = ""  # the best candidate's name: it changes only when the best does
        self.automl_count = 0
        self.automl_deadline = 0.0
        self.automl_running = False
        self.sweeps: dict[str, dict] = {}  # sweep name -> its bar, best value and trial counts

    def __enter__(self):
        self.progress.__enter__()
        if self.lines:
            self.lines.start()
        return self

    def __exit__(self, *exc):
        if self.lines:
            self.lines.close()
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
        self.automl_running = True
        if self.lines:
            self.lines.line("automl", "started", budget_s=f"{budget_s:g}", metric=self.metric)

    def automl_candidate(self, candidate) -> None:
        self.automl_count += 1
        if candidate.status == "completed" and self.goal.better(candidate.value, self.automl_best):
            self.automl_best = candidate.value
            self.automl_best_label = f"{candidate.estimator}-{candidate.index}"
        elapsed = min(time.monotonic() - self._started, self._budget)
        self.progress.update(self.automl_task, completed=elapsed, description=self._automl_text())
        if self.lines:
            self.lines.line("automl", "trial", index=candidate.index, algorithm=candidate.estimator, status=candidate.status,
                            **{self.metric: value_text(candidate.value if candidate.status == "completed" else None)},
                            best=value_text(self.automl_best), best_trial=self.automl_best_label or "-")

    def _automl_text(self) -> str:
        best = f"{self.automl_best:.4f} ({self.automl_best_label})" if self.automl_best is not None else "-"
        return f"{plural(self.automl_count, 'candidate')}, best {self.metric} {best}"

    def automl_finished(self, result) -> None:
        self.automl_running = False
        self.automl_count = len(result.candidates)
        self.automl_best, self.automl_best_label = result.best.value, f"{result.best.estimator}-{result.best.index}"
        self.progress.update(self.automl_task, completed=self._budget, description=self._automl_text())
        if self.lines:
            end = getattr(result, "end", None)
            self.lines.line("automl", "finished", trials=len(result.candidates), best=value_text(result.best.value),
                            best_trial=self.automl_best_label, ended_by=end.limit if end else "-")

    # Sweeps: a trial budget, so each bar counts trials (a conditional sweep runs one sweep per family).
    def sweep_started(self, job: dict, name: str = "sweep") -> None:
        limits = job.get("limits") or {}
        total = sweep_limit(limits, "max_total_trials")
        self.sweeps[name] = {"task": self.progress.add_task("starting", total=total, phase=name), "best": None, "best_trial": "",
                             "counts": {"running": 0, "done": 0, "stopped": 0, "failed": 0}, "total": total, "running": True}
        if self.lines:
            self.lines.line(name, "started", trials=total, concurrent=sweep_limit(limits, "max_concurrent_trials"), metric=self.metric)

    def sweep_event(self, kind: str, trial, name: str = "sweep") -> None:
        sweep = self.sweeps[name]
        counts = sweep["counts"]
        ended = kind in ("finished", "failed", "stopped", "interrupted")  # not "started" nor "reported" (a metric)
        if kind == "started":
            counts["running"] += 1
        elif ended:
            counts["running"] = max(0, counts["running"] - 1)
            counts[{"finished": "done", "failed": "failed", "stopped": "stopped", "interrupted": "stopped"}[kind]] += 1
            value = getattr(trial, "value", None)
            if kind == "finished" and value is not None and self.goal.better(value, sweep["best"]):
                sweep["best"], sweep["best_trial"] = value, str(getattr(trial, "trial_id", ""))
        finished = counts["done"] + counts["failed"] + counts["stopped"]
        self.progress.update(sweep["task"], completed=finished, description=self._sweep_text(name))
        if self.lines and ended:
            self.lines.line(name, "trial", id=getattr(trial, "trial_id", "-"), status=getattr(trial, "status", kind),
                            **{self.metric: value_text(getattr(trial, "value", None))},
                            best=value_text(sweep["best"]), best_trial=sweep["best_trial"] or "-", done=f"{finished}/{sweep['total']}")

    def _sweep_text(self, name: str) -> str:
        sweep = self.sweeps[name]
        c = sweep["counts"]
        best = f"{sweep['best']:.4f}" if sweep["best"] is not None else "-"
        return f"done {c['done']} running {c['running']} stopped {c['stopped']} failed {c['failed']}, best {self.metric} {best}"

    def sweep_finished(self, result, name: str = "sweep") -> None:
        if name in self.sweeps:
            self.sweeps[name]["running"] = False
            self.progress.update(self.sweeps[name]["task"], total=max(len(result.trials), 1), completed=len(result.trials))
        if self.lines:
            best, end = getattr(result, "best", None), getattr(result, "end", None)
            self.lines.line(name, "finished", trials=len(result.trials), best=value_text(best.value if best else None),
                            best_trial=best.trial_id if best else "-", ended_by=end.limit if end else "-")

    def _status(self) -> list[str]:
        """The heartbeat: one line per phase still running."""
        out = []
        if self.automl_running:
            left = max(0.0, self.automl_deadline - time.monotonic())
            out.append(f"automl trials={self.automl_count} best={value_text(self.automl_best)} "
                       f"best_trial={self.automl_best_label or '-'} left_s={left:.0f}")
        for name, sweep in self.sweeps.items():
            if sweep["running"]:
                c = sweep["counts"]
                out.append(f"{name} done={c['done']} running={c['running']} stopped={c['stopped']} failed={c['failed']} "
                           f"best={value_text(sweep['best'])} best_trial={sweep['best_trial'] or '-'}")
        if not out:  # before the engines start (the build, the data) or after they end (measuring, registering)
            out.append("submit status=selecting" if self.automl_task is not None or self.sweeps else "submit status=starting")
        return out


class PipelineProgress:
    """One line per pipeline step: its state, time and the last thing it printed. Off a terminal a plain line each
    time a step changes state (capc.local.progress_lines), with a heartbeat; with `quiet` nothing."""

    ICONS = {"waiting": "·", "running": "▶", "completed": "✔", "failed": "✘", "skipped": "-", "interrupted": "■"}

    def __init__(self, console: Console | None = None, quiet: bool = False, heartbeat_s: float | None = None):
        from rich.progress import SpinnerColumn

        self.console = console or Console(stderr=True)
        live = (self.console.is_terminal or self.console.is_jupyter) and not quiet
        self.progress = Progress(
            SpinnerColumn(finished_text=" "),
            TextColumn("[bold]{task.fields[step]:<12}"),
            TextColumn("{task.fields[state]:<13}"),
            TimeElapsedColumn(),
            TextColumn("[dim]{task.description}"),
            console=self.console,
            transient=False,
            disable=not live,
        )
        self.lines = None if live or quiet else ProgressLines(self._status, self.console.file, heartbeat_s)
        self.tasks: dict[str, int] = {}
        self.states: dict[str, str] = {}  # step -> the status last printed
        self.running: dict[str, str] = {}  # running step -> the last line it printed

    def __enter__(self):
        self.progress.__enter__()
        if self.lines:
            self.lines.start()
        return self

    def __exit__(self, *exc):
        if self.lines:
            self.lines.close()
        self.progress.__exit__(*exc)

    def note(self, text: str) -> None:
        """A line said before or between the steps (an environment being built), never read as markup."""
        self.console.print(text, style="yellow", markup=False, highlight=False, soft_wrap=True)

    def step(self, step) -> None:
        state = f"{self.ICONS.get(step.status, '?')} {step.status}"
        if step.name not in self.tasks:
            self.tasks[step.name] = self.progress.add_task("", total=1, step=step.name, state=state, start=step.status == "running")
        task = self.tasks[step.name]
        if step.status == "running":
            self.progress.start_task(task)
            self.running.setdefault(step.name, "")
        else:
            self.running.pop(step.name, None)
        detail = step.detail.splitlines()[0] if step.detail else ""
        self.progress.update(task, state=state, description=detail)
        if step.status not in ("waiting", "running"):
            self.progress.update(task, completed=1)
            self.progress.stop_task(task)
        if self.lines and self.states.get(step.name) != step.status and step.status != "waiting":
            fields = {"status": step.status}
            if getattr(step, "duration_s", None) is not None and step.status != "running":
                fields["duration_s"] = f"{step.duration_s:.1f}"
            if getattr(step, "value", None) is not None:
                fields["best"] = value_text(step.value)
            if detail:
                fields["detail"] = detail
            self.lines.line("step", step.name, **fields)
        self.states[step.name] = step.status

    def poll(self, steps) -> None:
        """Show the last line each running step printed."""
        for step in steps:
            if step.status == "running" and step.log and step.name in self.tasks:
                last = _last_line(step.log)
                self.running[step.name] = last
                self.progress.update(self.tasks[step.name], description=last)

    def _status(self) -> list[str]:
        return [f"step {name} status=running {field_text('last', last)}" if last else f"step {name} status=running"
                for name, last in self.running.items()]


def _last_line(path) -> str:
    from capc.local.launch import output_tail

    lines = [line for line in output_tail(path, 5).splitlines() if line.strip()]
    return lines[-1][:100] if lines else ""
