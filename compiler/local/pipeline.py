"""Backend, local: a pipeline job's graph, run on this machine - the one pipeline runner, for a hand-written
`type: pipeline` job (`capc submit JOB.yml`) and for the pipeline_job.yml capc compiles (`capc submit SPEC --only
pipeline`).

The graph comes from capc.jobfolder.pipeline_graph (pipeline components expanded, bindings resolved): a step starts
once the steps whose outputs it reads have completed, steps whose inputs are ready run side by side, each as its own
process (capc.local.pipeline_nodes says what each kind runs). Outputs without a path are folders under
$CAPC_HOME/runs/<run>/<step>/outputs/, as Azure ML gives each a datastore folder; each step's output goes to
<step>/step.log. A failed step: with `settings.continue_on_step_failure` true, only the steps that need its outputs
are skipped; with Azure's default (false) the running steps are stopped and nothing else starts. capc's compiled
pipeline keeps going as with true: the engines' steps are independent, and the table shows every one.

AutoML and sweep steps side by side keep to one core budget, as `capc submit` does: each step's process is pinned to
its share of the CPUs (capc.local.cores.pin_steps). Each step runs in a session of its own with a parent-death
signal (capc.local.launch), so a stop reaches the steps only through the runner - the same way whether Ctrl-C
signalled the whole group or SIGTERM capc alone - and no step outlives capc. On a stop the runner sends each
running step SIGINT, which ends its work cleanly (a sweep step records its trials as interrupted), waits, then
SIGTERM and SIGKILL. `--resume` keeps the steps an interrupted run completed (their outputs are read where they
are) and a sweep step's finished trials; the other steps run again.

A hand-written pipeline's steps run in the environments their YAML names, built (or reused) before any step starts
(capc.local.pipeline_envs): a failed install ends the submit before anything runs. capc's compiled pipeline runs its
own scripts in capc's interpreter.

capc's compiled pipeline adds its own rules (capc.local.pipeline_winner): the select step's winner is registered
before any later step starts, and the step tagged `capc_step: deploy` deploys it to the local endpoint.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from capc.errors import CapcError
from capc.jobfolder import JobFolder
from capc.jobfolder.pipeline_graph import GraphStep, PipelineGraph, read_pipeline
from capc.local import pipeline_nodes as nodes
from capc.local.cores import pin_steps, usable_cpus
from capc.local.launch import Launcher, output_tail, parent_death_hook
from capc.local.pipeline_winner import DEPLOY_TAG, STEP_SUMMARY, WinnerRules
from capc.state import locks, registry, tracking
from capc.state.tracking import COMPLETED, FAILED, INTERRUPTED, RUNNING

STEP_LOG = "step.log"
STATE_FILE = "pipeline_state.json"  # in the run folder: what --resume keeps
ENGINE_STEPS = ("automl", "sweep")  # node types the local engine runs itself
WAITING, SKIPPED = "waiting", "skipped"  # a step's statuses beyond tracking's vocabulary
POLL_S = 0.05  # how often step exits are checked: between two dependent steps the runner adds about this much
DISPLAY_S = 0.25  # how often the live display reads the running steps' last lines
STOP_GRACE_S = 30.0  # a stopped step's time to record what it finished, after SIGINT
# A step's exit status when it was stopped: 130/143 as capc exits, or killed by SIGINT/SIGTERM/SIGHUP.
STOPPED_EXITS = (130, 143, -signal.SIGINT, -signal.SIGTERM, -signal.SIGHUP)


@dataclass
class Step:
    name: str
    type: str
    needs: list[str]
    node: dict
    graph: GraphStep | None = None
    status: str = WAITING  # waiting | running | completed | failed | skipped | interrupted
    started: float | None = None
    ended: float | None = None
    log: Path | None = None
    detail: str = ""
    output_tail: str = ""  # a failed step's last output lines
    value: float | None = None  # the primary metric the step reached or selected
    run_id: str | None = None  # the MLflow run its mlflow calls land in
    started_at: float | None = None  # wall clock, for reports and for seeing which steps ran side by side
    cpus: list[int] | None = None  # engine steps side by side: the CPUs its process is pinned to (cores.pin_steps)
    outputs: dict[str, str] = field(default_factory=dict)  # output name -> its folder
    kept_from: str | None = None  # --resume: the earlier run whose completed step this is
    deadline: float | None = None  # a command step's limits.timeout, on the monotonic clock
    timed_out: bool = False
    stopped: bool = False  # the runner signalled it to stop: however it then exits, it was interrupted
    python: str | None = None  # its built environment's interpreter (capc.local.pipeline_envs); None: capc's own

    @property
    def duration_s(self) -> float | None:
        return None if self.started is None else (self.ended or time.monotonic()) - self.started

    def to_dict(self) -> dict:
        return {
            "step": self.name, "type": self.type, "needs": self.needs, "status": self.status,
            "started_at": self.started_at, "duration_s": self.duration_s, "log": str(self.log) if self.log else None, "detail": self.detail,
            "cpus": self.cpus, "outputs": self.outputs, "value": self.value, "kept_from": self.kept_from,
        }


@dataclass
class PipelineResult:
    name: str
    metric: str  # capc's compiled pipeline: the spec's primary metric; a hand-written one has none ("")
    goal: str
    run_id: str
    steps: list[Step]
    winner: dict | None = None
    model: registry.ModelVersion | None = None
    interrupted: bool = False
    summaries: dict = field(default_factory=dict)  # engine step -> its metrics.json
    notes: list[str] = field(default_factory=list)
    searches: list = field(default_factory=list)  # the engine steps' AutoML and sweep runs (tracking.RunRow)

    @property
    def failed(self) -> list[Step]:
        return [s for s in self.steps if s.status == FAILED]

    def to_dict(self) -> dict:
        return {
            "name": self.name, "metric": self.metric, "goal": self.goal, "run_id": self.run_id,
            "interrupted": self.interrupted, "steps": [s.to_dict() for s in self.steps],
            "results": [{"source": k, **v} for k, v in sorted(self.summaries.items())],
            "winner": self.winner, "model": self.model.to_dict() if self.model else None, "notes": self.notes,
            "searches": {run.name: run.search for run in self.searches},
        }

    def search_lines(self) -> list[str]:
        """Why each engine's search ended and what it skipped (its run's tags, set by the step's process)."""
        return [line for run in self.searches for line in run.search_lines()]


@dataclass(frozen=True)
class PipelineSource:
    """What one run needs to know of where the pipeline came from."""

    name: str  # the experiment its runs are recorded under
    sha256: str  # this version of the file (and its --set): the lock, the sweeps' studies, what --resume continues
    job_dir: Path
    graph: PipelineGraph
    tags: dict
    folder: JobFolder | None = None  # capc's compiled pipeline: engine steps run its jobs, its winner is registered
    continue_on_step_failure: bool = False
    env_mode: str | None = None  # a hand-written pipeline's --env (capc.local.pipeline_envs); None: capc's interpreter


def plan_steps(job: dict, job_dir: Path = Path(".")) -> list[Step]:
    """The pipeline's steps in a dependency order; raises CapcError on an unknown reference or a cycle."""
    return [_step(s) for s in read_pipeline(job, Path(job_dir)).steps]


def _step(graph_step: GraphStep) -> Step:
    return Step(graph_step.name, graph_step.type, list(graph_step.needs), graph_step.node, graph_step)


def run_pipeline(folder: JobFolder, resume: bool = False, display=None, poll_s: float = POLL_S) -> PipelineResult:
    """Run the graph of the folder's pipeline_job.yml (read with --only pipeline) here. CapcError at once when
    another local run of the same spec version holds its lock."""
    job_dir = folder.path.resolve()  # steps run in other working directories
    graph = read_pipeline(folder.job("pipeline").data, job_dir, str(folder.job("pipeline").path))
    settings = graph.settings.get("continue_on_step_failure")
    source = PipelineSource(
        folder.name, folder.spec_sha256, job_dir, graph, folder=folder,
        tags={"capc.job_dir": str(job_dir), "capc.metric": folder.metric, "capc.goal": folder.goal},
        continue_on_step_failure=True if settings is None else bool(settings),
    )
    return run_graph(source, resume, display, poll_s)


def run_pipeline_yaml(job, resume: bool = False, display=None, poll_s: float = POLL_S, env_mode: str = "job") -> PipelineResult:
    """Run a hand-written pipeline job (a capc.jobfolder.job_yaml.JobYaml) here; its steps' environments are built
    (or reused) first, `env_mode` as --env (capc.local.environments)."""
    graph = read_pipeline(job.data, job.job_dir, str(job.path))
    source = PipelineSource(
        job.name, job.sha256, job.job_dir, graph,
        tags={"capc.job_file": str(job.path.resolve()), "capc.job_sha256": job.sha256, "capc.job_type": "pipeline"},
        continue_on_step_failure=bool(graph.settings.get("continue_on_step_failure", False)), env_mode=env_mode,
    )
    return run_graph(source, resume, display, poll_s)


def run_graph(source: PipelineSource, resume: bool, display=None, poll_s: float = POLL_S) -> PipelineResult:
    steps = [_step(s) for s in source.graph.steps]
    for step in steps:
        nodes.check_data(step.graph, source.name)  # every problem before anything runs
    notes = _build_environments(source, steps, display)  # a failed install: before any step or run
    with locks.spec_lock(source.name, source.sha256):
        return _run_locked(source, steps, resume, display, poll_s, notes)


def _build_environments(source: PipelineSource, steps: list[Step], display) -> list[str]:
    """Each step's environment (capc.local.pipeline_envs), its interpreter set on the step; the notes that say so."""
    if source.env_mode is None:
        return []
    from capc.local.pipeline_envs import build_step_environments

    say = getattr(display, "note", None)
    built, notes = build_step_environments((s.graph for s in steps), source.env_mode, say)
    for step in steps:
        step.python = built[step.name].python if step.name in built else None
    return notes


def _run_locked(source: PipelineSource, steps: list[Step], resume: bool, display, poll_s: float, notes: list[str]) -> PipelineResult:
    mlflow_client = tracking.client()
    exp_id = tracking.experiment_id(mlflow_client, source.name)
    tracking.close_abandoned_runs(mlflow_client, exp_id, source.sha256)  # an earlier run killed before it ended them
    run_id = tracking.start_run(
        mlflow_client, exp_id, f"pipeline-{time.strftime('%Y%m%d-%H%M%S')}", "submit",
        tags={"capc.spec_sha256": source.sha256, "capc.pipeline": "true", **source.tags},
    )
    work_dir = registry.capc_home() / "runs" / run_id
    folder = source.folder
    result = PipelineResult(source.name, folder.metric if folder else "", folder.goal if folder else "", run_id, steps,
                            notes=list(source.graph.notes) + notes)
    runner = _GraphRunner(source, work_dir, steps, resume, mlflow_client, exp_id, run_id, display)
    try:
        runner.run(poll_s)
    except KeyboardInterrupt:
        result.interrupted = True
        runner.stop_all()
    except BaseException:
        runner.stop_all()
        tracking.finish_run(mlflow_client, run_id, FAILED)
        raise
    finally:
        runner.close()
    result.notes += list(dict.fromkeys(runner.notes))
    if runner.winner_rules:
        result.summaries, result.winner, result.model = runner.summaries, runner.winner_rules.winner, runner.winner_rules.model
    else:
        result.summaries = runner.summaries
    result.searches = sorted((r for r in tracking.list_runs(source.name) if r.parent == run_id and r.kind in ("automl", "sweep")),
                             key=lambda r: r.start)
    status = INTERRUPTED if result.interrupted else (FAILED if result.failed else COMPLETED)
    tracking.finish_run(mlflow_client, run_id, status)
    return result


class _GraphRunner:
    """Starts each step once its inputs exist, side by side; a failed step skips what depends on it."""

    def __init__(self, source: PipelineSource, work_dir: Path, steps: list[Step], resume, mlflow_client, exp_id, run_id, display):
        self.source, self.work_dir = source, work_dir
        self.steps = {s.name: s for s in steps}
        self.resume = resume
        self.mlflow_client, self.exp_id, self.run_id = mlflow_client, exp_id, run_id
        self.display = display
        self.processes: dict[str, object] = {}  # step -> its process (Popen, or the launcher's trial)
        self.summaries: dict[str, dict] = {}  # engine step -> what it reached (metrics.json)
        self.notes: list[str] = []  # what a hand-written engine step's node could not honour as on Azure (its summary's notes)
        self.launcher: Launcher | None = None  # started with the first command the fork server can run
        self.winner_rules = WinnerRules(source.folder, mlflow_client, run_id, self.summaries) if source.folder else None
        self.state_file = registry.capc_home() / "pipelines" / source.name / f"{source.sha256[:16]}.json"
        for step in steps:  # a uri_file output is a file in its run folder, as Azure hands the command a file's path
            step.outputs = {o: folder or str(Path(work_dir, step.name, "outputs", o, step.graph.files.get(o, "")))
                            for o, folder in step.graph.outputs.items()}
        # One core budget, as `capc submit` keeps: AutoML and the sweeps side by side on their shares of the CPUs.
        sweeps = {s.name: _concurrency(s.node) for s in steps if s.type == "sweep"}
        pins = pin_steps(usable_cpus(), [s.name for s in steps if s.type == "automl"], sweeps)
        for name, cpus in pins.items():
            self.steps[name].cpus = cpus
        work_dir.mkdir(parents=True, exist_ok=True)
        if any(s.type == "command" and s.python is None for s in steps):  # the fork server preloads while the first steps run
            self.launcher = Launcher("auto", env=dict(os.environ), server_log=work_dir / "fork_server.log")
        if resume:
            self._keep_completed()
        else:
            self._save_state()

    def output_dir(self, step_name: str, output: str | None = None) -> Path:
        step = self.steps[step_name]
        return Path(step.outputs[output] if output else next(iter(step.outputs.values()), str(self.work_dir / step.name / "outputs" / "output")))

    # ------------------------------------------------------------ --resume

    def _keep_completed(self) -> None:
        """--resume: the steps the interrupted run completed stay completed, their outputs where they are."""
        try:
            state = json.loads(self.state_file.read_text())
        except (OSError, ValueError):
            state = {}
        for name, record in (state.get("steps") or {}).items():
            step = self.steps.get(name)
            if step is None or record.get("status") != COMPLETED or not all(Path(p).exists() for p in record.get("outputs", {}).values()):
                continue
            step.status, step.outputs, step.value = COMPLETED, dict(record["outputs"]), record.get("value")
            step.kept_from = record.get("run_id") or state.get("run_id")
            step.detail = f"kept from run {str(step.kept_from)[:8]}"
            if record.get("summary"):
                self.summaries[name] = record["summary"]
        if self.winner_rules and state.get("model"):
            self.winner_rules.restore(state.get("winner"), state["model"])
        self._save_state()

    def _save_state(self) -> None:
        record = {"run_id": self.run_id, "steps": {
            s.name: {"status": s.status, "outputs": s.outputs, "value": s.value, "summary": self.summaries.get(s.name),
                     "run_id": s.kept_from or self.run_id}
            for s in self.steps.values() if s.status == COMPLETED}}
        if self.winner_rules and self.winner_rules.model:
            record.update(winner=self.winner_rules.winner, model=self.winner_rules.model.ref)
        self.state_file.parent.mkdir(parents=True, exist_ok=True)
        temp = self.state_file.with_suffix(".tmp")
        temp.write_text(json.dumps(record, indent=2, sort_keys=True, default=str) + "\n")
        temp.replace(self.state_file)

    # ------------------------------------------------------------ the loop

    def run(self, poll_s: float) -> None:
        for step in self.steps.values():
            if step.status == COMPLETED:
                self._show(step)
        shown = 0.0
        while True:
            self._start_ready()
            self._end_overdue()
            for name, process in list(self.processes.items()):
                code = process.poll() if name in self.processes else None  # a failure may have stopped the others
                if code is not None:
                    del self.processes[name]
                    self._finished(self.steps[name], code)
            if not self.processes and not any(s.status == WAITING for s in self.steps.values()):
                return
            if self.display and time.monotonic() >= shown + DISPLAY_S:
                self.display.poll(self.steps.values())
                shown = time.monotonic()
            time.sleep(poll_s)

    def _start_ready(self) -> None:
        for step in self.steps.values():
            if step.status != WAITING:
                continue
            blocked = [n for n in step.needs if self.steps[n].status in (FAILED, SKIPPED, INTERRUPTED)]
            if blocked:
                step.status, step.detail = SKIPPED, f"not run: {', '.join(blocked)} did not complete"
                self._show(step)
            elif all(self.steps[n].status == COMPLETED for n in step.needs):
                try:
                    self._start(step)
                except CapcError as exc:  # the step cannot start (a binding, its code folder): it fails, the rest goes on
                    step.status, step.detail, step.ended = FAILED, str(exc), time.monotonic()
                    self._after_failure(step)
                    self._show(step)

    def _end_overdue(self) -> None:
        """A command step past its limits.timeout is ended (SIGTERM to its group) and fails, as on Azure."""
        now = time.monotonic()
        for name, process in self.processes.items():
            step = self.steps[name]
            if step.deadline is not None and now > step.deadline and not step.timed_out:
                step.timed_out = True
                process.send_signal(signal.SIGTERM)

    def _start(self, step: Step) -> None:
        folder = self.work_dir / step.name
        folder.mkdir(parents=True, exist_ok=True)
        for name, output in step.outputs.items():
            (Path(output).parent if name in step.graph.files else Path(output)).mkdir(parents=True, exist_ok=True)
        step.log = folder / STEP_LOG
        step.log.write_bytes(b"")
        step.status, step.started, step.started_at = RUNNING, time.monotonic(), time.time()
        timeout = (step.node.get("limits") or {}).get("timeout") if step.type == "command" else None
        step.deadline = step.started + float(timeout) if timeout else None
        env = {**os.environ, "MLFLOW_TRACKING_URI": tracking.tracking_uri(), "MLFLOW_EXPERIMENT_ID": str(self.exp_id),
               "PYTHONUNBUFFERED": "1"}
        env.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
        if step.type in ENGINE_STEPS:
            argv = self._engine_argv(step, folder)
            self.processes[step.name] = _spawn(argv, self.source.job_dir, env, step.log, step.cpus)
        elif self.winner_rules and (step.node.get("tags") or {}).get(DEPLOY_TAG[0]) == DEPLOY_TAG[1]:
            argv = self.winner_rules.deploy_argv(step)  # Azure's step deploys to the workspace's endpoint; here, the local one
            self.processes[step.name] = _spawn(argv, self.source.job_dir, env, step.log, None)
        else:
            self._start_command(step, folder, env)
        self._show(step)

    def _start_command(self, step: Step, folder: Path, env: dict) -> None:
        inputs = {name: nodes.input_text(step.graph, name, self.output_dir) for name in step.graph.inputs}
        prepared = nodes.prepared_command(step.graph, inputs, step.outputs, python=step.python)
        argv = prepared.argv
        cwd = nodes.code_snapshot(step.graph, folder)
        # Azure ML gives each step a run of its own and MLFLOW_RUN_ID; the step's mlflow calls land in it.
        step.run_id = tracking.start_run(self.mlflow_client, self.exp_id, step.name, "step", parent=self.run_id)
        env = {**env, **prepared.env, "MLFLOW_RUN_ID": step.run_id}
        step.detail = "; ".join(prepared.notes)
        # Forked from the preloaded server once it is ready (a step's `import mlflow` then costs nothing); spawned
        # until then, so no step waits for the preload. A step in a built environment is always spawned.
        server = self.launcher.server if self.launcher and step.python is None else None
        ready = server is not None and server.ready.is_set() and server.alive
        self.processes[step.name] = (self.launcher.start if ready else _launch_spawned)(argv, cwd, env, step.log)

    def _engine_argv(self, step: Step, folder: Path) -> list[str]:
        if self.source.folder is not None:  # capc's compiled pipeline: the job folder's automl_job.yml / sweep jobs
            return nodes.engine_argv(step.type, self.source.job_dir, self.output_dir(step.name), self.run_id, step.name, self.resume)
        step.run_id = tracking.start_run(self.mlflow_client, self.exp_id, step.name, step.type, parent=self.run_id)
        trials_dir = registry.capc_home() / "sweeps" / self.source.name / self.source.sha256[:16] / step.name
        request = nodes.write_node_request(step.graph, folder, self.output_dir, {
            "experiment": self.source.name, "experiment_id": str(self.exp_id), "run_id": step.run_id, "outputs": step.outputs,
            "trials_dir": str(trials_dir), "resume": self.resume, "work_dir": str(folder), "python": step.python,
        })
        return nodes.node_request_argv(request)

    def _finished(self, step: Step, code: int) -> None:
        step.ended = time.monotonic()
        if code == 0:
            step.status = COMPLETED
            self._read_summary(step)
            if self.winner_rules and step.type == "command" and self.winner_rules.model is None:
                self.winner_rules.register_from(step)
        else:
            step.status = FAILED if step.timed_out else INTERRUPTED if step.stopped or code in STOPPED_EXITS else FAILED
            step.output_tail = output_tail(step.log, 15) if step.log else ""
            last = next((line.strip() for line in reversed(step.output_tail.splitlines()) if line.strip()), "")
            step.detail = f"ran longer than limits.timeout ({step.node['limits']['timeout']} s)" if step.timed_out else \
                f"exit status {code}" + (f": {last}" if last else "")
        if step.run_id:
            tracking.finish_run(self.mlflow_client, step.run_id, step.status)
        self._save_state()
        if step.status == FAILED:
            self._after_failure(step)
        self._show(step)

    def _read_summary(self, step: Step) -> None:
        """An engine step's best: metrics.json in its output (compiled) or beside its log (a hand-written node)."""
        if step.type not in ENGINE_STEPS:
            return
        path = self.output_dir(step.name) / STEP_SUMMARY if self.source.folder else self.work_dir / step.name / STEP_SUMMARY
        try:
            self.summaries[step.name] = json.loads(path.read_text())
        except (OSError, ValueError):
            return
        step.value = self.summaries[step.name].get("value")
        if not self.source.folder and self.summaries[step.name].get("label"):
            step.detail = f"best: {self.summaries[step.name]['label']}"
        self.notes += [f"step {step.name}: {note}" for note in self.summaries[step.name].get("notes") or []]

    def _after_failure(self, step: Step) -> None:
        """Azure's continue_on_step_failure false: a failed step stops the running steps and starts nothing else."""
        if self.source.continue_on_step_failure:
            return
        self.stop_all(cause=f"{step.name} failed (continue_on_step_failure is false)")

    def _show(self, step: Step) -> None:
        if self.display:
            self.display.step(step)

    def stop_all(self, grace_s: float = STOP_GRACE_S, cause: str | None = None) -> None:
        """End the running steps the way a stop ends capc (SIGINT: they record what finished), SIGTERM after
        `grace_s`, SIGKILL if even that is not heard; steps not started yet are skipped. `cause`: why, when it
        is not a stop signal (a failed step)."""
        for step in self.steps.values():
            if step.status == WAITING:
                step.status, step.detail = SKIPPED, f"not run: {cause or 'interrupted'}"
        running = dict(self.processes)
        self.processes.clear()
        for name, process in running.items():
            self.steps[name].stopped = True  # a SIGINT in its interpreter's start-up can end it with status 1
            process.send_signal(signal.SIGINT)
        deadline = time.monotonic() + grace_s
        for name, process in running.items():
            code = _wait_stopped(process, deadline)
            self._finished(self.steps[name], code)
            if cause and self.steps[name].status == INTERRUPTED:
                self.steps[name].detail = f"stopped: {cause}"
        for step in self.steps.values():
            if step.status == SKIPPED:
                self._show(step)

    def close(self) -> None:
        if self.launcher is not None:
            self.launcher.close()


def _wait_stopped(process, deadline: float) -> int:
    """Wait for a signalled step until `deadline`, then SIGTERM and 10 s more, then SIGKILL."""
    for sig, wait_s in ((None, max(0.1, deadline - time.monotonic())), (signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
        if sig is not None:
            process.send_signal(sig)
        until = time.monotonic() + wait_s
        while time.monotonic() < until:
            code = process.poll()
            if code is not None:
                return code
            time.sleep(0.05)
    return -signal.SIGKILL


class _StepProcess:
    """A step's Popen in its own session: poll() and send_signal() to its whole group, as the launcher's trials."""

    def __init__(self, popen: subprocess.Popen):
        self.popen = popen

    def poll(self) -> int | None:
        return self.popen.poll()

    def send_signal(self, sig: int) -> None:
        try:
            os.killpg(self.popen.pid, sig)
        except OSError:
            pass  # already gone


def _spawn(argv: list[str], cwd: Path, env: dict, log: Path, cpus: list[int] | None) -> _StepProcess:
    with log.open("ab") as out:
        return _StepProcess(subprocess.Popen(argv, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                             start_new_session=True, preexec_fn=_step_preexec(cpus)))


def _launch_spawned(argv: list[str], cwd: Path, env: dict, log: Path):
    from capc.local.launch import SpawnedTrial

    try:
        return SpawnedTrial(argv, cwd, env, log)
    except OSError as exc:
        raise CapcError(f"cannot start `{' '.join(argv)}`: {exc}") from None


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
