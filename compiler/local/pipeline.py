"""Backend, local: `capc submit SPEC --only pipeline` runs the generated pipeline_job.yml's graph on this machine.

The graph comes from pipeline_job.yml itself: a step waits for the steps whose outputs its inputs name
(`${{parent.jobs.STEP.outputs.NAME}}`), steps whose inputs are ready start side by side, each as its own process,
and a failed step stops only what depends on it. The AutoML and sweep nodes run the local engine on the same
settings as automl_job.yml and sweep_job.yml (all rendered from one plan); command nodes run their generated
command as written, with `${{inputs.*}}` / `${{outputs.*}}` bound to folders under $CAPC_HOME/runs/<run>/ and
MLflow pointed at capc's store, as Azure ML binds them to datastore paths and the workspace's tracking server.
When the selecting step leaves a winner.json, its model is registered in capc's registry before any later step
starts; the node tagged `capc_step: deploy` (spec deployment.auto_deploy), which deploys the winner to the
workspace's endpoint on Azure, deploys it to the local endpoint here.

AutoML and sweep steps running side by side keep to one core budget, as `capc submit` does: each step's process
is pinned to its share of the CPUs (capc.local.cores.pin_steps). Each step process runs in a session of its own with a parent-death signal (capc.local.launch), so a stop reaches
the steps only through the runner - the same way whether Ctrl-C signalled the whole group or SIGTERM capc alone -
and no step outlives capc even when capc is killed. On a stop the runner sends each running step SIGINT, which
ends its work cleanly (a sweep step records its trials as interrupted), waits, then SIGTERM and SIGKILL.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path


from capc.data_location import is_remote
from capc.errors import CapcError
from capc.jobfolder import JobFolder
from capc.jobfolder.serving import named_endpoint
from capc.local.cores import pin_steps, usable_cpus
from capc.local import commands
from capc.local.launch import output_tail, parent_death_hook
from capc.state import locks, registry, tracking
from capc.state.tracking import COMPLETED, FAILED, INTERRUPTED, RUNNING
from capc.winner_explanation import selection_record

STEP_LOG = "step.log"
WINNER_FILE = "winner.json"
STEP_SUMMARY = "metrics.json"  # what an engine step leaves beside its model; select_best.py reads it
_PARENT_OUTPUT = re.compile(r"^\$\{\{\s*parent\.jobs\.([A-Za-z0-9_-]+)\.outputs\.([A-Za-z0-9_-]+)\s*\}\}$")
_PARENT_INPUT = re.compile(r"^\$\{\{\s*parent\.inputs\.([A-Za-z0-9_-]+)\s*\}\}$")
ENGINE_STEPS = ("automl", "sweep")  # node types the local engine runs itself
DEPLOY_TAG = ("capc_step", "deploy")  # the node that deploys the winner: locally, to the local endpoint
WAITING, SKIPPED = "waiting", "skipped"  # a step's statuses beyond tracking's vocabulary
STOP_GRACE_S = 30.0  # a stopped step's time to record what it finished, after SIGINT
# A step's exit status when it was stopped: 130/143 as capc exits, or killed by SIGINT/SIGTERM/SIGHUP.
STOPPED_EXITS = (130, 143, -signal.SIGINT, -signal.SIGTERM, -signal.SIGHUP)


@dataclass
class Step:
    name: str
    type: str
    needs: list[str]
    node: dict
    status: str = WAITING  # waiting | running | completed | failed | skipped | interrupted
    started: float | None = None
    ended: float | None = None
    log: Path | None = None
    detail: str = ""
    output_tail: str = ""  # a failed step's last output lines
    value: float | None = None  # the primary metric the step reached or selected
    run_id: str | None = None  # command steps: the MLflow run their mlflow calls land in
    started_at: float | None = None  # wall clock, for reports and for seeing which steps ran side by side
    cpus: list[int] | None = None  # engine steps side by side: the CPUs its process is pinned to (cores.pin_steps)

    @property
    def duration_s(self) -> float | None:
        return None if self.started is None else (self.ended or time.monotonic()) - self.started

    def to_dict(self) -> dict:
        return {
            "step": self.name, "type": self.type, "needs": self.needs, "status": self.status,
            "started_at": self.started_at, "duration_s": self.duration_s, "log": str(self.log) if self.log else None, "detail": self.detail,
            "cpus": self.cpus,
        }


@dataclass
class PipelineResult:
    name: str
    metric: str
    goal: str
    run_id: str
    steps: list[Step]
    winner: dict | None = None
    model: registry.ModelVersion | None = None
    interrupted: bool = False
    summaries: dict = field(default_factory=dict)  # engine step -> its metrics.json
    searches: list = field(default_factory=list)  # the engine steps' AutoML and sweep runs (tracking.RunRow)

    @property
    def failed(self) -> list[Step]:
        return [s for s in self.steps if s.status == FAILED]

    def to_dict(self) -> dict:
        return {
            "name": self.name, "metric": self.metric, "goal": self.goal, "run_id": self.run_id,
            "interrupted": self.interrupted, "steps": [s.to_dict() for s in self.steps],
            "results": [{"source": k, **v} for k, v in sorted(self.summaries.items())],
            "winner": self.winner, "model": self.model.to_dict() if self.model else None,
            "searches": {run.name: run.search for run in self.searches},
        }

    def search_lines(self) -> list[str]:
        """Why each engine's search ended and what it skipped (its run's tags, set by the step's process)."""
        return [line for run in self.searches for line in run.search_lines()]


def plan_steps(job: dict) -> list[Step]:
    """The pipeline's steps in a dependency order; raises CapcError on an unknown reference or a cycle."""
    nodes = job.get("jobs") or {}
    steps = {}
    for name, node in nodes.items():
        needs = []
        for value in (node.get("inputs") or {}).values():
            match = _PARENT_OUTPUT.match(str(value.get("path", "") if isinstance(value, dict) else value))
            if match:
                if match.group(1) not in nodes:
                    raise CapcError(f"pipeline step `{name}` reads the outputs of `{match.group(1)}`, which is not a step of the pipeline.")
                if match.group(1) not in needs:
                    needs.append(match.group(1))
        steps[name] = Step(name, str(node.get("type", "command")), needs, node)
    ordered: list[Step] = []
    placed: set[str] = set()
    while len(ordered) < len(steps):
        ready = [s for s in steps.values() if s.name not in placed and set(s.needs) <= placed]
        if not ready:
            stuck = sorted(set(steps) - placed)
            raise CapcError(f"the pipeline's steps depend on each other in a cycle: {', '.join(stuck)}.")
        for step in ready:
            ordered.append(step)
            placed.add(step.name)
    return ordered


def run_pipeline(folder: JobFolder, resume: bool = False, display=None, poll_s: float = 0.2) -> PipelineResult:
    """Run the graph of the folder's pipeline_job.yml (read with --only pipeline) here. CapcError at once when
    another local run of the same spec version holds its lock."""
    job_dir = folder.path.resolve()  # steps run in other working directories
    job = folder.job("pipeline").data
    steps = plan_steps(job)
    with locks.spec_lock(folder.name, folder.spec_sha256):
        return _run_locked(folder, job, job_dir, steps, resume, display, poll_s)


def _run_locked(folder, job, job_dir, steps, resume, display, poll_s) -> PipelineResult:
    mlflow_client = tracking.client()
    exp_id = tracking.experiment_id(mlflow_client, folder.name)
    tracking.close_abandoned_runs(mlflow_client, exp_id, folder.spec_sha256)  # an earlier run killed before it ended them
    run_id = tracking.start_run(
        mlflow_client, exp_id, f"pipeline-{time.strftime('%Y%m%d-%H%M%S')}", "submit",
        tags={"capc.spec_sha256": folder.spec_sha256, "capc.job_dir": str(job_dir), "capc.metric": folder.metric,
              "capc.goal": folder.goal, "capc.pipeline": "true"},
    )
    work_dir = registry.capc_home() / "runs" / run_id
    result = PipelineResult(folder.name, folder.metric, folder.goal, run_id, steps)
    runner = _GraphRunner(folder, job, job_dir, work_dir, steps, resume, mlflow_client, exp_id, run_id, display)
    try:
        runner.run(poll_s)
    except KeyboardInterrupt:
        result.interrupted = True
        runner.stop_all()
    except BaseException:
        runner.stop_all()
        tracking.finish_run(mlflow_client, run_id, FAILED)
        raise
    result.summaries, result.winner, result.model = runner.summaries, runner.winner, runner.model
    result.searches = sorted((r for r in tracking.list_runs(folder.name) if r.parent == run_id and r.kind in ("automl", "sweep")),
                             key=lambda r: r.start)
    status = INTERRUPTED if result.interrupted else (FAILED if result.failed else COMPLETED)
    tracking.finish_run(mlflow_client, run_id, status)
    return result


def _register(folder: JobFolder, job_dir: Path, winner_dir: Path, winner: dict, summary: dict, pipeline_run: str) -> registry.ModelVersion:
    return registry.register(
        winner_dir / "model",
        name=folder.name, task=folder.task, metric=folder.metric, value=float(winner["value"]), goal=folder.goal,
        source=winner["source"], run_id=summary.get("run_id", pipeline_run), spec_sha256=folder.spec_sha256,
        job_dir=str(job_dir.resolve()), metrics={folder.metric: float(winner["value"]), **(winner.get("serving") or {})},
        params=summary.get("params", {}),
        description=folder.description,
        selection=selection_record(winner),
    )


class _GraphRunner:
    """Starts each step once its inputs exist, side by side; a failed step skips what depends on it."""

    def __init__(self, folder, job, job_dir, work_dir, steps, resume, mlflow_client, exp_id, run_id, display):
        self.folder, self.job, self.job_dir, self.work_dir = folder, job, job_dir, work_dir
        self.steps = {s.name: s for s in steps}
        self.resume = resume
        self.mlflow_client, self.exp_id, self.run_id = mlflow_client, exp_id, run_id
        self.display = display
        self.processes: dict[str, subprocess.Popen] = {}
        self.summaries: dict[str, dict] = {}  # engine step -> the metrics.json it left
        self.winner: dict | None = None
        self.model: registry.ModelVersion | None = None
        # One core budget, as `capc submit` keeps: AutoML and the sweeps side by side on their shares of the CPUs.
        sweeps = {s.name: _concurrency(s.node) for s in steps if s.type == "sweep"}
        pins = pin_steps(usable_cpus(), [s.name for s in steps if s.type == "automl"], sweeps)
        for name, cpus in pins.items():
            self.steps[name].cpus = cpus

    def output_dir(self, step: Step, output: str | None = None) -> Path:
        outputs = list((step.node.get("outputs") or {}).keys()) or ["output"]
        return self.work_dir / step.name / "outputs" / (output or outputs[0])

    def _register_winner(self, step: Step) -> None:
        """A step that left winner.json and its model selected the pipeline's model: register it before what follows."""
        for output in step.node.get("outputs") or {}:
            folder = self.output_dir(step, output)
            if (folder / WINNER_FILE).is_file() and (folder / "model" / "MLmodel").is_file():
                self.winner = json.loads((folder / WINNER_FILE).read_text())
                candidate = self.winner.get("candidate", self.winner.get("source"))
                summary = self.summaries.get(candidate) or next((v for k, v in self.summaries.items() if self.steps[k].type == self.winner.get("source")), {})
                self.model = _register(self.folder, self.job_dir, folder, self.winner, summary, self.run_id)
                self._log_serving_costs(self.winner.get("measured") or {})
                if self.winner.get("max_latency_ms") is not None:
                    self.mlflow_client.set_tag(self.run_id, tracking.MAX_LATENCY_TAG, str(self.winner["max_latency_ms"]))
                self.mlflow_client.set_tag(self.run_id, "capc.registered_model", self.model.ref)
                self.mlflow_client.log_metric(self.run_id, self.folder.metric, float(self.winner["value"]))
                step.detail = f"winner: {self.winner.get('source')}, registered {self.model.ref}"
                step.value = float(self.winner["value"])
                return

    def _log_serving_costs(self, measured: dict) -> None:
        """The select step measured each engine's model: its figures become metrics of that engine's best run."""
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        for candidate, metrics in measured.items():  # candidates are named after their steps
            summary = self.summaries.get(candidate, {})
            run_id = summary.get("candidate_run_id") or summary.get("run_id")  # the leaf run the leaderboard shows
            if run_id:
                self.mlflow_client.log_batch(run_id, metrics=[Metric(k, float(v), now, 0) for k, v in sorted(metrics.items())])

    def run(self, poll_s: float) -> None:
        while True:
            for step in self.steps.values():
                if step.status != WAITING:
                    continue
                blocked = [n for n in step.needs if self.steps[n].status in (FAILED, SKIPPED, INTERRUPTED)]
                if blocked:
                    step.status, step.detail = SKIPPED, f"not run: {', '.join(blocked)} did not complete"
                    self._show(step)
                elif all(self.steps[n].status == COMPLETED for n in step.needs):
                    self._start(step)
            for name, process in list(self.processes.items()):
                code = process.poll()
                if code is not None:
                    del self.processes[name]
                    self._finished(self.steps[name], code)
            if not self.processes and not any(s.status == WAITING for s in self.steps.values()):
                return
            if self.display:
                self.display.poll(self.steps.values())
            time.sleep(poll_s)

    def _start(self, step: Step) -> None:
        folder = self.work_dir / step.name
        folder.mkdir(parents=True, exist_ok=True)
        step.log = folder / STEP_LOG
        argv, cwd, env = self._command(step)
        with step.log.open("wb") as log:
            self.processes[step.name] = subprocess.Popen(
                argv, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True, preexec_fn=_step_preexec(step.cpus),
            )
        step.status, step.started, step.started_at = RUNNING, time.monotonic(), time.time()
        self._show(step)

    def _command(self, step: Step) -> tuple[list[str], Path, dict]:
        env = {**os.environ, "MLFLOW_TRACKING_URI": tracking.tracking_uri(), "PYTHONUNBUFFERED": "1"}
        if step.type in ENGINE_STEPS:
            argv = [sys.executable, "-m", "capc.local.pipeline_step", step.type, "--job-dir", str(self.job_dir),
                    "--output", str(self.output_dir(step)), "--parent-run", self.run_id]
            if step.type == "sweep":
                argv += ["--node", step.name] + (["--resume"] if self.resume else [])
            return argv, self.job_dir, env
        if (step.node.get("tags") or {}).get(DEPLOY_TAG[0]) == DEPLOY_TAG[1]:
            # Azure's step deploys to the workspace's endpoint; here the winner goes to the local endpoint.
            if self.model is None:
                raise CapcError(f"pipeline step `{step.name}` deploys the registered winner, but no step before it registered one.")
            step.detail = f"{self.model.ref} to the local endpoint `{named_endpoint(self.job_dir) or self.folder.name}`"
            return [sys.executable, "-m", "capc", "deploy", self.folder.name, "--model", self.model.ref], self.job_dir, env
        if step.type != "command":
            raise CapcError(f"pipeline step `{step.name}` has type `{step.type}`, which the local engine does not run.", "submit the pipeline with --target azure")
        bound = {"inputs": {k: self._input_path(v) for k, v in (step.node.get("inputs") or {}).items()},
                 "outputs": {k: str(self.output_dir(step, k)) for k in step.node.get("outputs") or {}}}
        for folder in bound["outputs"].values():
            Path(folder).mkdir(parents=True, exist_ok=True)

        command = str(step.node.get("command", ""))
        for kind, key in commands.references(command):
            if key not in bound.get(kind, {}):
                raise CapcError(f"pipeline step `{step.name}`'s command uses ${{{{{kind}.{key}}}}}, which the step does not declare.")
        prepared = commands.prepare_command(command, bound, environment_variables=step.node.get("environment_variables"),
                                            distribution=step.node.get("distribution"))  # as Azure runs it
        env.update(prepared.env)
        argv = prepared.argv
        # Azure ML gives each step a run of its own and MLFLOW_RUN_ID; the step's mlflow calls land in it.
        step.run_id = tracking.start_run(self.mlflow_client, self.exp_id, step.name, "step", parent=self.run_id)
        env["MLFLOW_RUN_ID"] = step.run_id
        code = (self.job_dir / str(step.node.get("code", "."))).resolve()
        return argv, code, env

    def _input_path(self, value) -> str:
        text = str(value.get("path", "") if isinstance(value, dict) else value)
        match = _PARENT_OUTPUT.match(text)
        if match:
            return str(self.output_dir(self.steps[match.group(1)], match.group(2)))
        match = _PARENT_INPUT.match(text)
        if match:
            declared = (self.job.get("inputs") or {}).get(match.group(1)) or {}
            path = declared.get("path", "") if isinstance(declared, dict) else str(declared)
            return str((self.job_dir / path).resolve()) if path and not is_remote(path) else str(path)
        return text

    def _finished(self, step: Step, code: int) -> None:
        step.ended = time.monotonic()
        if code == 0:
            step.status = COMPLETED
            if step.type in ENGINE_STEPS:
                self.summaries[step.name] = json.loads((self.output_dir(step) / STEP_SUMMARY).read_text())
                step.value = float(self.summaries[step.name]["value"])
            elif step.type == "command" and self.model is None:
                self._register_winner(step)
        else:
            step.status = INTERRUPTED if code in STOPPED_EXITS else FAILED
            step.output_tail = output_tail(step.log, 15) if step.log else ""
            last = next((line.strip() for line in reversed(step.output_tail.splitlines()) if line.strip()), "")
            step.detail = f"exit status {code}" + (f": {last}" if last else "")
        if step.run_id:
            tracking.finish_run(self.mlflow_client, step.run_id, step.status)
        self._show(step)

    def _show(self, step: Step) -> None:
        if self.display:
            self.display.step(step)

    def stop_all(self, grace_s: float = STOP_GRACE_S) -> None:
        """End the running steps the way a stop ends capc (SIGINT: they record what finished), SIGTERM after
        `grace_s`, SIGKILL if even that is not heard; steps not started yet are skipped."""
        for process in self.processes.values():
            _signal_session(process, signal.SIGINT)
        deadline = time.monotonic() + grace_s
        for name, process in list(self.processes.items()):
            for sig, wait_s in ((None, max(0.1, deadline - time.monotonic())), (signal.SIGTERM, 10.0), (signal.SIGKILL, None)):
                if sig is not None:
                    _signal_session(process, sig)
                try:
                    process.wait(timeout=wait_s)
                    break
                except subprocess.TimeoutExpired:
                    continue
            self._finished(self.steps[name], process.returncode)
        self.processes.clear()
        for step in self.steps.values():
            if step.status == WAITING:
                step.status, step.detail = SKIPPED, "not run: interrupted"


def _concurrency(node: dict) -> int:
    """A sweep node's max_concurrent_trials (Azure's default: as many as the compute allows; here 1)."""
    try:
        return max(1, int((node.get("limits") or {}).get("max_concurrent_trials") or 1))
    except (TypeError, ValueError):
        return 1


def _step_preexec(cpus: list[int] | None):
    """In the step's process before it runs: the parent-death signal, and its CPUs when it is pinned."""
    death = parent_death_hook()

    def preexec() -> None:
        if death is not None:
            death()
        if cpus:
            os.sched_setaffinity(0, cpus)

    return preexec


def _signal_session(process: subprocess.Popen, sig: int) -> None:
    """The step and what it started (its session's group)."""
    try:
        os.killpg(process.pid, sig)
    except OSError:
        pass  # already gone
