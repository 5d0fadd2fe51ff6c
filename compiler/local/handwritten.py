"""Backend, local: `capc submit JOB.yml` - an Azure ML sweep or command job written by hand, run on this machine.

A sweep runs on the local sweep engine (capc.local.sweep: its sampling, objective, early termination and limits,
each trial the job's own command with ${{search_space.X}}, ${{inputs.X}} and ${{outputs.X}} bound as Azure
binds them, MLFLOW_RUN_ID set so the script's MLflow calls and `mlflow.autolog()` land in the trial's run, the
primary metric read from what the trial logged). A command job is one such run. Trials start as capc's own do:
`python SCRIPT` and `python -m MODULE` commands are forked from the preloaded server, anything else is spawned.
The job's `environment` is Azure's to build: here the command runs in the current interpreter, and capc says so once.

What is recorded: an MLflow experiment named after the job (experiment_name, else the file name) with a submit
run, the sweep's run and one run per trial, under $CAPC_HOME. What is shown: the best trial (or the run), its
files in outputs/ and named outputs, and the MLflow models it saved or logged. Nothing is registered: a job
written by hand has no scoring script or task for capc's registry and endpoints (`mlflow models serve` serves
a model it logged).
"""

from __future__ import annotations

import shlex
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from capc.errors import CapcError
from capc.jobfolder.job_yaml import JobYaml, check_runs_locally
from capc.local import bindings
from capc.local.launch import output_tail, under_this_python
from capc.state import registry, tracking

KILL_GRACE_S = 5.0
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


def environment_note(job: JobYaml) -> str:
    environment = job.environment
    what = environment if isinstance(environment, str) else "its image and conda file" if environment else "none given"
    return (
        f"the job's environment ({what}) is not built locally: the command runs in this interpreter "
        f"({sys.executable}, Python {sys.version_info.major}.{sys.version_info.minor})"
    )


def run_job_yaml(job: JobYaml, resume: bool = False, progress=None, say=None) -> JobRunResult:
    """Run a hand-written sweep or command job here; CapcError for what cannot run (see capc.jobfolder.job_yaml)."""
    check_runs_locally(job)
    say = say or (lambda text: None)
    say(f"note: {environment_note(job)}")
    mlflow_client = tracking.client()
    exp_id = tracking.experiment_id(mlflow_client, job.name)
    if job.type == "sweep":
        return _run_sweep(job, mlflow_client, exp_id, resume, progress)
    if resume:
        raise CapcError("--resume continues an interrupted sweep; a command job is one run.", "drop --resume")
    return _run_command(job, mlflow_client, exp_id, say)


def _start_submit(mlflow_client, exp_id, job: JobYaml, metric: str | None, goal: str | None) -> str:
    tags = {"capc.job_file": str(job.path.resolve()), "capc.job_sha256": job.sha256, "capc.job_type": job.type}
    if metric and goal:
        tags.update({"capc.metric": metric, "capc.goal": goal})
    return tracking.start_run(mlflow_client, exp_id, f"submit-{time.strftime('%Y%m%d-%H%M%S')}", "submit", tags=tags)


def _run_sweep(job: JobYaml, mlflow_client, exp_id: str, resume: bool, progress) -> JobRunResult:
    from capc.local.sweep import run_sweep_interruptibly
    from capc.local.sweep_plan import plan_sweep

    plan = plan_sweep(job.data, job.job_dir)  # every problem before any run is recorded
    submit_run = _start_submit(mlflow_client, exp_id, job, plan.metric, plan.goal)
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
            launch_mode="auto",
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


def _run_command(job: JobYaml, mlflow_client, exp_id: str, say) -> JobRunResult:
    """One run of the job's command, as Azure runs a command job: code copied to a folder of its own, inputs and
    outputs bound, MLflow attached to the run capc created, limits.timeout honoured."""
    data = job.data
    if not data.get("command"):
        raise CapcError(f"{job.path}: the command job has no `command`.")
    try:
        words = shlex.split(str(data["command"]))
    except ValueError as exc:
        raise CapcError(f"{job.path}: `command` cannot be split into words: {exc}.") from None
    declared_inputs, declared_outputs = data.get("inputs") or {}, data.get("outputs") or {}
    unknown = [f"{s}.{n}" for s, n in bindings.command_references(words)
               if not (s == "inputs" and n in declared_inputs or s == "outputs" and n in declared_outputs)]
    if unknown:
        raise CapcError(
            f"{job.path}: the command refers to {', '.join('${{' + u + '}}' for u in unknown)}, which the job does not define.",
            "declare it under inputs: or outputs:",
        )
    inputs = {n: bindings.input_text(n, declared_inputs[n], job.job_dir) for s, n in bindings.command_references(words) if s == "inputs"}
    code_dir = (job.job_dir / str(data["code"])).resolve() if data.get("code") else None
    if code_dir is not None and not code_dir.is_dir():
        raise CapcError(f"{job.path}: code {data['code']} (resolved to {code_dir}) is not a folder.")
    timeout_s = (data.get("limits") or {}).get("timeout")

    submit_run = _start_submit(mlflow_client, exp_id, job, None, None)
    run_id = tracking.start_run(mlflow_client, exp_id, "command", "trial", parent=submit_run)
    run_dir = registry.capc_home() / "runs" / submit_run / "command"
    if code_dir is not None:
        shutil.copytree(code_dir, run_dir, ignore=shutil.ignore_patterns("outputs", bindings.NAMED_OUTPUTS, "__pycache__"))
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "outputs").mkdir(exist_ok=True)
    argv = under_this_python(bindings.bind(words, {"inputs": inputs, "outputs": bindings.output_folders(declared_outputs, run_dir)}))
    env = {**_environ(), **{str(k): str(v) for k, v in (data.get("environment_variables") or {}).items()},
           "MLFLOW_TRACKING_URI": tracking.tracking_uri(), "MLFLOW_EXPERIMENT_ID": str(exp_id), "MLFLOW_RUN_ID": run_id}
    mlflow_client.set_tag(run_id, "capc.command", shlex.join(argv)[:5000])
    log_path = run_dir / "output.log"
    say(f"running `{shlex.join(argv)}` in {run_dir} (log: {log_path})")
    status, exit_code = _wait(argv, run_dir, env, log_path, float(timeout_s) if timeout_s else None)
    tracking.finish_run(mlflow_client, run_id, status)
    tracking.finish_run(mlflow_client, submit_run, status)
    metrics = dict(mlflow_client.get_run(run_id).data.metrics)
    out = JobRunResult(job.name, "command", submit_run, None, None, status, metrics=metrics)
    out.files = run_files(mlflow_client, exp_id, run_id, run_dir)
    if status == "failed":
        reason = "ran longer than limits.timeout" if exit_code is None else f"exited with status {exit_code}"
        raise CapcError(
            f"the command job {job.name} {reason}; it ran `{shlex.join(argv)}` in {run_dir}. The last lines of its output:\n"
            f"{output_tail(log_path).strip() or '(no output)'}",
            f"the whole log: {log_path}",
        )
    return out


def _environ() -> dict:
    import os

    env = dict(os.environ)
    env.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    return env


def _wait(argv: list[str], cwd: Path, env: dict, log_path: Path, timeout_s: float | None) -> tuple[str, int | None]:
    """Run the command in its own process group; Ctrl-C or the timeout ends the group. (status, exit code)."""
    with open(log_path, "ab") as log:
        try:
            process = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        except OSError as exc:
            raise CapcError(f"cannot start `{shlex.join(argv)}`: {exc}") from None
    deadline = time.monotonic() + timeout_s if timeout_s else None
    try:
        while process.poll() is None:
            if deadline is not None and time.monotonic() > deadline:
                _stop(process)
                return "failed", None
            time.sleep(0.1)
    except KeyboardInterrupt:
        _stop(process)
        return "interrupted", process.returncode
    return ("completed" if process.returncode == 0 else "failed"), process.returncode


def _stop(process: subprocess.Popen) -> None:
    import os

    for sig, wait_s in ((signal.SIGTERM, KILL_GRACE_S), (signal.SIGKILL, KILL_GRACE_S)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=wait_s)
            return
        except subprocess.TimeoutExpired:
            continue


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
