"""Backend, local: `capc submit` on this machine - AutoML and the sweeps side by side, then best-model selection
and registry. They share one core budget (capc.local.cores): the sweeps run in worker threads, their trials as
processes, while AutoML searches in the main thread, where Ctrl-C lands and stops them all.

Reads only the job folder through capc.jobfolder (automl_job.yml, the sweep jobs, src/, data/MLTable, capc.json),
never the raw spec: what runs here is what would run on Azure, and a folder runs with no spec present. One submit
of a spec version at a time per $CAPC_HOME (capc.state.locks);
a stop (Ctrl-C, SIGTERM, SIGHUP: capc.stopping) ends the running work and returns what finished, marked interrupted.
"""

from __future__ import annotations

import math
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from capc.data_location import is_remote
from capc.errors import CapcError
from capc.goal import Goal
from capc.jobfolder import JobFile, JobFolder
from capc.state import held_out, locks, registry, tracking
from capc.state.tracking import COMPLETED, FAILED, INTERRUPTED
from capc.local.automl_run import automl_job_run
from capc.local.cores import CoreBudget
from capc.jobfolder.data import check_target, mltable_source, read_frame
from capc.local import reproducible
from capc.local.outcome import Outcome
from capc.local.reproducible import RunSeed, SubmitRecord
from capc.local.search_end import SearchReport, sweep_end
from capc.local.winner import select
from capc.load_budget import load_budget_of
from capc.selection import IMAGE_TASK, Selection, budget_of
from capc.serving_cost import may_serve
from capc.spec.conditional import COMBINATION_PARAMETER


@dataclass
class SubmitResult:
    name: str
    metric: str
    goal: str
    submit_run_id: str
    outcomes: list[Outcome]
    winner: Outcome | None
    model: registry.ModelVersion | None
    interrupted: bool = False
    selection: Selection | None = None  # the winner's serving cost, and the better candidates the budget passed over
    searches: list[SearchReport] = field(default_factory=list)  # each engine's: why it ended, what it skipped

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "metric": self.metric,
            "goal": self.goal,
            "run_id": self.submit_run_id,
            "interrupted": self.interrupted,
            "results": [
                {"source": o.source, "run_id": o.run_id, "value": o.value, "label": o.label, "params": o.params}
                for o in self.outcomes
            ],
            "winner": self.winner.source if self.winner else None,
            "winner_run_id": self.winner.run_id if self.winner else None,
            "selection": self.selection.to_dict() if self.selection else None,
            "model": self.model.to_dict() if self.model else None,
            "searches": {report.engine: report.to_dict() for report in self.searches},
        }


def submit_local(folder: JobFolder, resume: bool = False, progress=None, record: SubmitRecord | None = None) -> SubmitResult:
    """Run the jobs of a job folder (read with --only applied); returns what ran and what was registered. CapcError
    at once when another local run of the same spec version holds its lock. `record`: the run's seed and mode, its
    data and what its run records (capc.local.reproducible.prepare_submit)."""
    with locks.spec_lock(folder.name, folder.spec_sha256):
        return _submit_locked(folder, resume, progress, record)


def _submit_locked(folder: JobFolder, resume: bool, progress, record: SubmitRecord | None) -> SubmitResult:
    home = registry.capc_home()
    mlflow_client = tracking.client()
    exp_id = tracking.experiment_id(mlflow_client, folder.name)
    tracking.close_abandoned_runs(mlflow_client, exp_id, folder.spec_sha256)  # an earlier submit killed before it ended them
    goal, run = folder.goal, record.run if record else None
    submit_run = tracking.start_run(
        mlflow_client, exp_id, f"submit-{time.strftime('%Y%m%d-%H%M%S')}", "submit",
        tags={"capc.spec_sha256": folder.spec_sha256, "capc.job_dir": str(folder.path), "capc.metric": folder.metric, "capc.goal": goal,
              **(record.tags if record else {})},
    )
    work_dir = home / "runs" / submit_run
    work_dir.mkdir(parents=True, exist_ok=True)
    outcomes: list[Outcome] = []
    interrupted = False
    automl, sweep_on = folder.job("automl"), bool(folder.sweeps)
    sweeps = None
    try:
        if sweep_on and (automl is None or _automl_takes_threads(automl)):  # image AutoML runs before the sweeps
            sweeps = start_sweep_jobs(folder, folder.sweeps, mlflow_client, exp_id, submit_run, resume, progress, automl=automl is not None, run=run)
        if automl is not None:
            cores = sweeps.cores if sweeps else CoreBudget(automl=True)
            try:
                outcome = run_automl_job(folder, automl, mlflow_client, exp_id, submit_run, work_dir, progress,
                                         threads=cores.split().automl_threads, run=run)
            except BaseException:
                if sweeps is not None:
                    sweeps.worker.stop()
                raise
            finally:
                cores.automl_finished()  # the sweeps' next trials get its cores
            if outcome:
                outcomes.append(outcome)
        if sweep_on and sweeps is None:
            sweeps = start_sweep_jobs(folder, folder.sweeps, mlflow_client, exp_id, submit_run, resume, progress, automl=False, run=run)
        if sweeps is not None:
            outcome, interrupted = finish_sweep_jobs(sweeps, folder, mlflow_client, progress)
            if outcome:
                outcomes.append(outcome)
    except KeyboardInterrupt:
        interrupted = True
        if sweeps is not None:  # AutoML was interrupted: the sweeps end their running trials, the rest stays recorded
            outcome, _ = finish_sweep_jobs(sweeps, folder, mlflow_client, progress)
            if outcome:
                outcomes.append(outcome)
    except BaseException:
        if sweeps is not None:
            sweeps.abandon(mlflow_client)
        tracking.finish_run(mlflow_client, submit_run, FAILED)
        raise
    budget = budget_of(folder.deployment)
    if budget.max_latency_ms is not None:
        mlflow_client.set_tag(submit_run, tracking.MAX_LATENCY_TAG, str(budget.max_latency_ms))
    selection = None if interrupted else _selection(folder, outcomes, sweeps, budget, mlflow_client, submit_run, progress)
    winner = selection.winner if selection else _choose(outcomes, folder.deployment_model, goal)
    model = _register(folder, winner, mlflow_client, submit_run, selection, record) if winner and not interrupted else None
    if winner:
        mlflow_client.log_metric(submit_run, folder.metric, winner.value)
    tracking.finish_run(mlflow_client, submit_run, INTERRUPTED if interrupted else COMPLETED)
    searches = _search_reports(outcomes, sweeps)
    return SubmitResult(folder.name, folder.metric, goal, submit_run, outcomes, winner, model, interrupted, selection, searches)


def _selection(folder: JobFolder, outcomes: list[Outcome], sweeps, budget, mlflow_client, submit_run: str, progress) -> Selection:
    """The winner among every model that could be registered, within the serving budget. When none fits, the submit
    run fails, and why each search ended is still said (the result that would say it is not printed)."""
    try:
        return select(
            [c for o in outcomes for c in (o, *o.alternatives)], name=folder.name, deployment_model=folder.deployment_model,
            goal=folder.goal, budget=budget, job_dir=folder.path, task=folder.task, mlflow_client=mlflow_client, deployment=folder.deployment,
            on_measured=(lambda o, figure: progress.note(f"serving cost of {o.source} {o.label}: {_measured(figure)}")) if progress else None,
        )
    except BaseException:
        tracking.finish_run(mlflow_client, submit_run, FAILED)
        for line in _search_lines(outcomes, sweeps) if progress else []:
            progress.note(line)
        raise


def _search_reports(outcomes: list[Outcome], sweeps) -> list[SearchReport]:
    """Each engine's SearchReport: AutoML's rides on its outcome, the sweeps' on their RunningSweeps."""
    return [o.search for o in outcomes if o.search] + (sweeps.reports if sweeps else [])


def _search_lines(outcomes: list[Outcome], sweeps) -> list[str]:
    return [line for report in _search_reports(outcomes, sweeps) for line in report.lines()]


def _measured(figure) -> str:
    """A serving cost, or a figure under load with how it was taken (serving_load.LoadFigure.how)."""
    return f"{figure.summary()} ({figure.how()})" if hasattr(figure, "how") else figure.summary()


def _register(folder: JobFolder, winner: Outcome, mlflow_client, submit_run: str, selection: Selection | None = None,
              record: SubmitRecord | None = None):
    """The winner in capc's model registry, named on the submit run, with how it was chosen (`capc models show`), the
    data it was trained on and its run's seed."""
    model = registry.register(
        winner.model_dir,
        name=folder.name,
        task=folder.task,
        metric=folder.metric,
        value=winner.value,
        goal=folder.goal,
        source=winner.source,
        run_id=winner.run_id,
        spec_sha256=folder.spec_sha256,
        job_dir=str(folder.path.resolve()),
        metrics=winner.metrics,
        params=winner.params,
        description=folder.description,
        selection=selection.to_dict() if selection else {},
        data=record.data.to_dict() if record and record.data else {},
        seed=record.run.seed if record else None,
    )
    mlflow_client.set_tag(submit_run, "capc.registered_model", model.ref)
    return model


def _choose(outcomes: list[Outcome], deployment_model: str, goal: str) -> Outcome | None:
    """The best outcome deployment.model lets win, by the metric alone (an interrupted submit measures nothing)."""
    return Goal(goal).best([o for o in outcomes if may_serve(deployment_model, o.source)], lambda o: o.value)


def _automl_takes_threads(automl: JobFile) -> bool:
    """Tabular AutoML runs on the threads the core budget gives it; the image engine does not take a number."""
    return automl.data.get("task") != IMAGE_TASK


def run_automl_job(folder: JobFolder, job_file: JobFile, mlflow_client, exp_id, submit_run, work_dir, progress,
                   threads: int | None = None, alternatives: bool = True, run: RunSeed | None = None) -> Outcome | None:
    """automl_job.yml on the local AutoML engine, as a child run of `submit_run`; its best model lies in work_dir
    (with a serving budget and `alternatives`, its other kept models too, for the selection to weigh).
    `threads`: each trial's thread count (default: AutoML alone on this process's cores)."""
    from dataclasses import replace

    from capc.local.automl import AutoMLSettings

    job, job_dir = job_file.data, folder.path
    if job.get("task") == IMAGE_TASK:
        from capc.local.images import run_image_automl  # noqa: PLC0415 - keras stack only for images

        return run_image_automl(job_dir, job, mlflow_client, exp_id, submit_run, work_dir, progress)
    settings = AutoMLSettings.from_job_yaml(job)
    if threads is not None:
        settings = replace(settings, threads=threads)
    settings = reproducible.automl_settings(settings, run)  # the run's seed; reproducible: one thread, no clock
    data_file, fmt, drop = mltable_source(training_table(job_file))
    frame = read_frame(data_file, fmt, drop)
    check_target(frame, settings.target_column, folder.task, data_file)
    with automl_job_run(mlflow_client, exp_id, submit_run, progress, settings.timeout_minutes * 60) as automl_run:
        return _run_tabular_automl(folder, frame, settings, mlflow_client, exp_id, automl_run, work_dir, progress, alternatives)


def _run_tabular_automl(folder: JobFolder, frame, settings, mlflow_client, exp_id, automl_run, work_dir, progress, alternatives) -> Outcome:
    """The local AutoML engine on `frame`, recorded under `automl_run` (automl_job_run finishes it on an error)."""
    from capc.local.automl import run_automl

    candidate_runs: dict[int, str] = {}  # candidate index -> its child run

    def record(candidate) -> None:
        metrics = {folder.metric: candidate.value, **getattr(candidate, "metrics", {})}
        candidate_runs[candidate.index] = tracking.log_child(
            mlflow_client, exp_id, automl_run, f"{candidate.estimator}-{candidate.index}", "candidate",
            candidate.params, metrics, candidate.status, candidate.duration_s, tags={"capc.estimator": candidate.estimator},
        )
        if progress:
            progress.automl_candidate(candidate)

    result = run_automl(frame, settings, on_candidate=record, log_dir=work_dir / "automl")
    model_dir = work_dir / "automl" / "model"
    if model_dir.exists():
        shutil.rmtree(model_dir)
    result.save_mlflow_model(model_dir)
    best = result.best
    params = {"estimator": best.estimator, **best.params}
    mlflow_client.log_metric(automl_run, folder.metric, best.value)
    mlflow_client.set_tag(automl_run, "capc.best_estimator", best.estimator)
    search = result.search_report()
    for key, value in search.tags().items():
        mlflow_client.set_tag(automl_run, key, value)
    if result.held_out is not None:  # what `capc report` judges the registered model by
        held_out.log(mlflow_client, automl_run, result.held_out)
    tracking.finish_run(mlflow_client, automl_run, COMPLETED)
    if progress:
        progress.automl_finished(result)
    outcome = Outcome("automl", automl_run, best.value, model_dir, params, {folder.metric: best.value}, f"{best.estimator}-{best.index}",
                      candidate_run_id=candidate_runs.get(best.index, ""), search=search)
    if alternatives and (budget_of(folder.deployment).any or load_budget_of(folder.deployment).any):  # else only the best can win
        outcome.alternatives = _automl_alternatives(folder.metric, result, candidate_runs, work_dir / "automl" / "candidates")
    return outcome


def training_table(job_file: JobFile) -> Path:
    """The MLTable folder an AutoML job trains on (its training_data.path, relative to the job file)."""
    path = str((job_file.data.get("training_data") or {}).get("path") or "")
    if not path or is_remote(path):
        raise CapcError(
            f"{job_file.path}: the AutoML training data {path or '(none)'} is not a folder on this machine.",
            "build the spec with a local dataset.path to run AutoML here",
        )
    return (job_file.path.parent / path).resolve()


def _automl_alternatives(metric: str, result, candidate_runs: dict[int, str], folder: Path) -> list[Outcome]:
    """AutoML's other kept models (each learner's best, the ensembles), saved as MLflow models in `folder`."""
    from capc.local.automl.model import save_mlflow_model

    if folder.exists():
        shutil.rmtree(folder)
    by_index = {c.index: c for c in result.candidates}
    out = []
    for index, model in sorted(result.models.items()):
        candidate = by_index.get(index)
        if index == result.best.index or candidate is None or candidate.status != "completed" or index not in candidate_runs:
            continue
        model_dir = save_mlflow_model(model, folder / str(index), result.feature_sample)
        out.append(Outcome("automl", candidate_runs[index], candidate.value, model_dir, {"estimator": candidate.estimator, **candidate.params},
                           {metric: candidate.value}, f"{candidate.estimator}-{index}"))
    return out


def run_sweep_job(folder: JobFolder, sweeps: list[JobFile], mlflow_client, exp_id, submit_run, work_dir, resume, progress):
    """Sweep jobs of the folder on the local sweep engine, side by side, each a child run of `submit_run`; returns
    (the best trial across them as an Outcome, or None; interrupted).

    One family or a conditional grid compile to one sweep_job.yml; a random or bayesian conditional sweep to one
    sweep_<family>.yml per family, each run within its own share of the concurrency, as Azure runs them.
    """
    running = start_sweep_jobs(folder, sweeps, mlflow_client, exp_id, submit_run, resume, progress)
    return finish_sweep_jobs(running, folder, mlflow_client, progress)


@dataclass
class RunningSweeps:
    """Sweeps started in the background by start_sweep_jobs: their runs, their worker threads, their core budget."""

    runs: dict  # sweep name -> its MLflow run
    worker: object  # capc.local.sweep.SweepsInBackground
    cores: CoreBudget
    plans: dict = field(default_factory=dict)  # sweep name -> its SweepPlan (its limits)
    reports: list[SearchReport] = field(default_factory=list)  # filled by finish_sweep_jobs: why each ended

    def abandon(self, mlflow_client) -> None:
        """Another part of the submit failed: end the trials, record the sweeps as failed."""
        self.worker.stop()
        try:
            self.worker.wait()
        except BaseException:  # the submit's own error is the one to report
            pass
        for run in self.runs.values():
            tracking.finish_run(mlflow_client, run, FAILED)


def start_sweep_jobs(folder: JobFolder, sweep_files: list[JobFile], mlflow_client, exp_id, submit_run, resume, progress, *,
                     automl: bool = False, run: RunSeed | None = None) -> RunningSweeps:
    """Sweep jobs of the folder started in worker threads, each a child run of `submit_run`, under one core budget
    that AutoML, when `automl` runs beside them, shares."""
    from capc.local.sweep import SweepsInBackground
    from capc.local.sweep_plan import plan_sweep

    if not sweep_files:
        raise CapcError(f"{folder.path} holds no sweep job.", "run `capc build` again")
    job_dir = folder.path
    jobs = {sweep.kind: reproducible.sweep_job(sweep.data, run) for sweep in sweep_files}  # the run's seed (and mode)
    plans = {name: plan_sweep(job, job_dir) for name, job in jobs.items()}  # checks each job too
    limit = sum(plan.max_concurrent_trials for plan in plans.values())
    cores = CoreBudget(automl=automl, sweep_limit=limit)
    # One study folder per spec version (and per family), so --resume finds the trials of an interrupted submit.
    spec_dir = registry.capc_home() / "sweeps" / folder.name / folder.spec_sha256[:16]
    sweeps, runs = {}, {}
    for name, job in jobs.items():
        trials_dir = spec_dir if name == "sweep" else spec_dir / name
        if not resume and trials_dir.exists():
            shutil.rmtree(trials_dir)
        runs[name] = tracking.start_run(mlflow_client, exp_id, name, "sweep", parent=submit_run)
        if progress:
            progress.sweep_started(job, name)
        sweeps[name] = dict(
            job=job, job_dir=job_dir, trials_dir=trials_dir, tracking_uri=tracking.tracking_uri(), experiment_id=exp_id,
            parent_run_id=runs[name], resume=resume, cores=cores,
            on_event=(lambda event, trial, name=name: progress.sweep_event(event, trial, name)) if progress else None,
        )
    return RunningSweeps(runs, SweepsInBackground(sweeps), cores, plans)


def finish_sweep_jobs(sweeps: RunningSweeps, folder: JobFolder, mlflow_client, progress) -> tuple[Outcome | None, bool]:
    """Wait for started sweeps (Ctrl-C meanwhile stops them), record them; (the best trial as an Outcome or None, interrupted)."""
    runs = sweeps.runs
    try:
        results, interrupted = sweeps.worker.wait(
            on_interrupt=(lambda: progress.note("stopping: ending running trials (finished ones stay recorded)")) if progress else None,
        )
    except BaseException:
        for run in runs.values():
            tracking.finish_run(mlflow_client, run, FAILED)
        raise
    for name, result in results.items():
        report = _sweep_report(name, result, sweeps.plans.get(name))
        sweeps.reports.append(report)
        for key, value in report.tags().items():
            mlflow_client.set_tag(runs[name], key, value)
        tracking.finish_run(mlflow_client, runs[name], INTERRUPTED if interrupted else COMPLETED)
        if progress:
            result.end = report.end
            progress.sweep_finished(result, name)
        if result.best is not None:
            mlflow_client.log_metric(runs[name], folder.metric, result.best.value)
    best_name = Goal(folder.goal).best([n for n in results if results[n].best is not None], lambda n: results[n].best.value)
    if best_name is None:
        return None, interrupted
    outcomes = [_trial_outcome(folder.metric, mlflow_client, name, trial) for name, result in results.items() for trial in result.trials
                if trial.status == "completed" and trial.value is not None and math.isfinite(trial.value)
                and (Path(trial.output_dir) / "model" / "MLmodel").is_file()]
    best = results[best_name].best
    chosen = next((o for o in outcomes if o.run_id == best.run_id), None) or _trial_outcome(folder.metric, mlflow_client, best_name, best)
    chosen.alternatives = [o for o in outcomes if o is not chosen]  # weighed when the best exceeds a serving budget
    return chosen, interrupted


def _sweep_report(name: str, result, plan) -> SearchReport:
    """Why sweep `name` ended, from its result and the limits it ran under."""
    from capc.local import samplers

    if plan is None:
        return SearchReport(name)
    grid = samplers.grid_size(plan.search_space) if plan.algorithm == "grid" else None
    return SearchReport(name, sweep_end(result.stopped_because, plan.max_total_trials, plan.timeout_s, result.counts(), grid))


def _trial_outcome(metric: str, mlflow_client, name: str, trial) -> Outcome:
    """One completed trial of sweep job `name`, as the selection weighs it."""
    params = dict(trial.params)
    if name != "sweep" or COMBINATION_PARAMETER in params:
        # A conditional sweep's trial: what its run recorded, its family and that family's parameters only.
        params = {**params, **mlflow_client.get_run(trial.run_id).data.params}
    label = f"trial {trial.trial_id}" if name == "sweep" else f"{name.removeprefix('sweep_')} trial {trial.trial_id}"
    return Outcome("sweep", trial.run_id, trial.value, Path(trial.output_dir) / "model", params, {metric: trial.value}, label)
