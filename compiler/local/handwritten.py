"""Backend, local: `capc submit JOB.yml` - an Azure ML sweep or command job written by hand, run on this machine.

A sweep runs on the local sweep engine (capc.local.sweep: its sampling, objective, early termination and limits,
each trial the job's own command with ${{search_space.X}}, ${{inputs.X}} and ${{outputs.X}} bound as Azure
binds them, MLFLOW_RUN_ID set so the script's MLflow calls and `mlflow.autolog()` land in the trial's run, the
primary metric read from what the trial logged). A command job is one such run (capc.local.command_job). Every
command runs as Azure runs it (capc.local.commands: `bash -c` for shell syntax; `python SCRIPT` and `python -m
MODULE` in capc's interpreter are forked from the preloaded server). The job's `environment` is built here when its
conda file says what it needs (capc.local.environments), else the command runs in capc's interpreter, with a note.

What is recorded: an MLflow experiment named after the job (experiment_name, else the file name) with a submit
run, the sweep's run and one run per trial, under $CAPC_HOME. What is shown: the best trial (or the run), its
files in outputs/ and named outputs, and the MLflow models it saved or logged. Nothing is registered: a job
written by hand has no scoring script or task for capc's registry and endpoints (`mlflow models serve` serves
a model it logged).
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from capc.errors import CapcError
from capc.jobfolder.job_yaml import JobYaml, check_runs_locally
from capc.local import bindings
from capc.state import registry, tracking

MLMODEL = "MLmodel"


@dataclass
class RunFiles:
    """What one run left: files under outputs/ and each named output, and the MLflow models among them or logged."""

    run_id: str
    folder: str
    outputs: list[str] = field(default_factory=list)  # relative to folder
    named_outputs: dict[str, str] = field(default_factory=dict)  # name -> folder
    models: list[str] = field(default_factory=list)  # MLflow model folders (saved) or models:/ URIs (logged)

    def to_dict(self) -> dict:
        return {"run_id": self.run_id, "folder": self.folder, "outputs": self.outputs, "named_outputs": self.named_outputs, "models": self.models}


@dataclass
class JobRunResult:
    name: str
    type: str
    submit_run_id: str
    metric: str | None
    goal: str | None
    status: str  # completed | failed | interrupted
    value: float | None = None  # the best trial's (or the run's) primary metric
    params: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)  # command job: the last value of each metric it logged
    trials: list = field(default_factory=list)  # sweep: SweepTrial records
    counts: dict = field(default_factory=dict)
    stopped_because: str = ""
    files: RunFiles | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def interrupted(self) -> bool:
        return self.status == "interrupted"

    def to_dict(self) -> dict:
        return {
            "name": self.name, "type": self.type, "run_id": self.submit_run_id, "metric": self.metric, "goal": self.goal,
            "status": self.status, "value": self.value, "params": self.params, "metrics": self.metrics,
            "counts": self.counts, "stopped_because": self.stopped_because,
            "trials": [{"trial": t.trial_id, "status": t.status, "value": t.value, "params": t.params, "run_id": t.run_id} for t in self.trials],
            "best": self.files.to_dict() if self.files else None, "notes": self.notes,
        }


def run_job_yaml(job: JobYaml, resume: bool = False, progress=None, say=None, env_mode: str = "job") -> JobRunResult:
    """Run a hand-written sweep or command job here (an AutoML job: capc.local.automl_job, its own result); CapcError
    for what cannot run (see capc.jobfolder.job_yaml).
    The job's environment is built (or reused) first, so a failed install stops it before any run is recorded;
    env_mode "current" runs it in capc's interpreter (capc.local.environments)."""
    from capc.local.command_job import run_command_job
    from capc.local.environments import job_environment

    check_runs_locally(job)
    if job.type == "automl":  # its own engine and result (capc.local.automl_job)
        from capc.local.automl_job import run_automl_job_yaml

        return run_automl_job_yaml(job, resume=resume, progress=progress, say=say)
    notes: list[str] = []  # every note said, kept with the result (--json)

    def tell(text: str) -> None:
        if text.startswith("note: "):
            notes.append(text.removeprefix("note: "))
        (say or (lambda _: None))(text)

    for binding in job.mapped:
        tell(f"note: --data-map binds {binding.key_path} to {binding.local} ({binding.uri})")
    environment, base_dir = job_environment_of(job)
    built = job_environment(environment, base_dir, mode=env_mode, say=tell)
    for note in built.notes:
        tell(f"note: {note}")
    mlflow_client = tracking.client()
    exp_id = tracking.experiment_id(mlflow_client, job.name)
    if job.type == "sweep":
        result = _run_sweep(job, mlflow_client, exp_id, resume, progress, built.python)
    else:
        result = run_command_job(job, mlflow_client, exp_id, tell, built.python, resume)
    result.notes = notes + result.notes
    return result


def job_environment_of(job: JobYaml) -> tuple[object, Path]:
    """The job's `environment:` value and the folder its relative paths are read from (a sweep's trial component
    file's own folder when the trial is a file)."""
    trial = job.data.get("trial") if job.type == "sweep" else job.data
    if isinstance(trial, str):
        import yaml

        path = (job.job_dir / trial.removeprefix("file:")).resolve()
        try:
            component = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise CapcError(f"cannot read the trial component {trial}: {exc}") from None
        return (component.get("environment") if isinstance(component, dict) else None), path.parent
    return (trial.get("environment") if isinstance(trial, dict) else None), job.job_dir


def start_submit(mlflow_client, exp_id, job: JobYaml, metric: str | None, goal: str | None) -> str:
    tags = {"capc.job_file": str(job.path.resolve()), "capc.job_sha256": job.sha256, "capc.job_type": job.type}
    if metric and goal:
        tags.update({"capc.metric": metric, "capc.goal": goal})
    return tracking.start_run(mlflow_client, exp_id, f"submit-{time.strftime('%Y%m%d-%H%M%S')}", "submit", tags=tags)


def _run_sweep(job: JobYaml, mlflow_client, exp_id: str, resume: bool, progress, python: str | None) -> JobRunResult:
    from capc.local.sweep import run_sweep_interruptibly
    from capc.local.sweep_plan import plan_sweep

    plan = plan_sweep(job.data, job.job_dir, python)  # every problem before any run is recorded
    submit_run = start_submit(mlflow_client, exp_id, job, plan.metric, plan.goal)
    sweep_run = tracking.start_run(mlflow_client, exp_id, "sweep", "sweep", parent=submit_run)
    # One study per version of the file (and its --set overrides), so --resume finds an interrupted sweep's trials.
    trials_dir = registry.capc_home() / "sweeps" / job.name / job.sha256[:16]
    if not resume and trials_dir.exists():
        shutil.rmtree(trials_dir)
    if progress:
        progress.sweep_started(job.data)
    try:
        result, interrupted = run_sweep_interruptibly(
            on_interrupt=(lambda: progress.note("stopping: ending running trials (finished ones stay recorded)")) if progress else None,
            job=job.data, job_dir=job.job_dir, trials_dir=trials_dir, tracking_uri=tracking.tracking_uri(), experiment_id=exp_id,
            parent_run_id=sweep_run, on_event=progress.sweep_event if progress else None, resume=resume,
            launch_mode="auto", python=python,
        )
    except BaseException:
        tracking.finish_run(mlflow_client, sweep_run, "failed")
        tracking.finish_run(mlflow_client, submit_run, "failed")
        raise
    if progress:
        progress.sweep_finished(result)
    status = "interrupted" if interrupted else "completed"
    best = result.best
    out = JobRunResult(
        job.name, "sweep", submit_run, plan.metric, plan.goal, status, trials=result.trials, counts=result.counts(),
        stopped_because=result.stopped_because,
    )
    if best is not None:
        out.value, out.params = best.value, dict(best.params)
        out.files = run_files(mlflow_client, exp_id, best.run_id, Path(best.trial_dir))
        for run_id in (sweep_run, submit_run):
            mlflow_client.log_metric(run_id, plan.metric, best.value)
        mlflow_client.set_tag(submit_run, "capc.best_run", best.run_id)
    tracking.finish_run(mlflow_client, sweep_run, status)
    tracking.finish_run(mlflow_client, submit_run, status)
    return out


def run_files(mlflow_client, exp_id: str, run_id: str, folder: Path) -> RunFiles:
    """The files a run left in outputs/ and its named outputs, and its MLflow models: MLmodel folders among those
    files, then the models the run logged (mlflow.autolog, log_model) as models:/ URIs."""
    folder = Path(folder)
    files = RunFiles(run_id, str(folder))
    for root in (folder / "outputs", folder / bindings.NAMED_OUTPUTS):
        if root.is_dir():
            files.outputs += sorted(p.relative_to(folder).as_posix() for p in root.rglob("*") if p.is_file())
            files.models += sorted(str(p.parent) for p in root.rglob(MLMODEL))
    named = folder / bindings.NAMED_OUTPUTS
    if named.is_dir():
        files.named_outputs = {p.name: str(p) for p in sorted(named.iterdir()) if p.is_dir()}
    try:
        logged = mlflow_client.search_logged_models(experiment_ids=[str(exp_id)], filter_string=f"source_run_id = '{run_id}'")
    except Exception:  # an MLflow without logged models (before 3.0) or a busy store: the files above still say it
        logged = []
    files.models += [f"models:/{m.model_id}" for m in logged]
    return files
