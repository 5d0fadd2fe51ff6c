"""Backend, local: run a compiled sweep_job.yml on this machine, the way Azure ML runs a sweep job.

The sampler (Optuna ask/tell, its study kept in trials_dir so --resume goes on where it stopped) proposes
parameters; each trial is the job's own `trial.command` with ${{inputs.NAME}}, ${{outputs.NAME}} and
${{search_space.P}} bound as Azure binds them (capc.local.bindings), run as its own process with MLFLOW_TRACKING_URI / MLFLOW_EXPERIMENT_ID / MLFLOW_RUN_ID set to a run
created for it beforehand (a child of the sweep's parent run), exactly as Azure ML starts a trial, so the
script's `mlflow.start_run()` attaches to it. The runner polls each run's primary-metric history, applies the
early-termination policy and stops losing trials (SIGTERM to the trial's process group, SIGKILL after a grace
period).

Local choices, where Azure has nothing to copy:
- a trial's folder is trials_dir/trial_NNNN/: a copy of `trial.code` (hard links to one snapshot of it taken
  when the sweep starts; `outputs/` and `__pycache__/` left out), the command's working directory, so the
  script's outputs/ (the model in outputs/model) lands there; its stdout and stderr go to output.log there.
- the command runs as Azure runs it (capc.local.commands: `bash -c` for shell syntax), `python` being capc's
  interpreter or, for a hand-written job whose environment capc built, that environment's (capc.local.environments).
- a `python SCRIPT ...` command in capc's interpreter is forked from a server that imported mlflow once (capc.local.launch says
  what the child does to be the same as `python SCRIPT`): ~0.3 s instead of ~4 s of start-up per trial.
- trials at once and threads per trial follow the submit's core budget (capc.local.cores), shared by all its
  sweeps: never more than max_concurrent_trials, fewer while AutoML runs beside the sweeps; each trial's
  OMP/BLAS thread variables say its threads.
- statuses (capc.state.tracking's one vocabulary): completed, failed (non-zero exit, no primary metric logged, or
  trial_timeout passed), early_terminated (the policy), interrupted (Ctrl-C, SIGTERM or SIGHUP to capc, or the
  sweep's timeout, which cancels running trials as Azure does). The best trial is the best *completed* one (only
  those saved a model); the final metric of a trial is the last value it logged.
- --resume: finished trials are kept, not run again. A trial an earlier session left unfinished - stopped, or
  running when capc was killed - counts as completed when its result is whole on disk (its model saved in
  outputs/model and its primary metric logged); the others are run again with the same parameters. Sampling goes
  on with a seed moved past the trials already drawn; timeouts count from the resume.
- limits come in Azure's seconds (`timeout`, `trial_timeout`); `timeout_minutes` / `trial_timeout_minutes` are
  read too. Missing max_total_trials: the grid's size for grid sampling, else the spec schema's default.
"""

from __future__ import annotations

import logging
import os
import shlex
import shutil
import signal
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from capc import stopping
from capc.stopping import signal_name
from capc.errors import CapcError
from capc.goal import Goal, is_score
from capc.local import bindings, commands, samplers
from capc.state import tracking
from capc.state.tracking import COMPLETED, EARLY_TERMINATED, ENDED, FAILED, INTERRUPTED, RUNNING
from capc.local.cores import THREAD_VARIABLES, CoreBudget
from capc.local.launch import Launcher, output_tail
from capc.policies import policy_from_mapping
from capc.local.sweep_plan import plan_sweep, trial_process

TICK_S = 0.1  # how often process exits are checked
POLL_S = 0.5  # how often metric histories are read and the policy applied
KILL_GRACE_S = 5.0  # SIGTERM, then SIGKILL this much later
STUDY_NAME = "capc-sweep"
STUDY_FILE = "study.journal"
CODE_SNAPSHOT = "code"
SNAPSHOT_IGNORE = ("outputs", "named_outputs", "__pycache__", ".ipynb_checkpoints", "mlruns")
RUN_RECORD_ATTR = "capc_trial"  # Optuna user attribute holding a trial's record (written at launch and at its end)
RERUN_ATTR = "capc_rerun_of"

EVENT_OF_STATUS = {COMPLETED: "finished", FAILED: "failed", EARLY_TERMINATED: "stopped", INTERRUPTED: "interrupted"}


@dataclass
class SweepTrial:
    """One trial: what it was given, what it reported, how it ended."""

    trial_id: str  # the Optuna trial number, as text
    number: int
    params: dict
    status: str = RUNNING
    value: float | None = None  # the last value of the primary metric it logged
    history: list[float] = field(default_factory=list)
    duration_s: float | None = None
    run_id: str = ""
    trial_dir: str = ""
    output_dir: str = ""  # trial_dir/outputs: the model is in outputs/model
    log_path: str = ""
    command: list[str] = field(default_factory=list)
    exit_code: int | None = None
    error: str | None = None  # why it failed or was stopped
    output_tail: str = ""  # last lines of output.log, kept for failed trials

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, record: Mapping) -> SweepTrial:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in record.items() if k in names})


@dataclass
class SweepResult:
    metric: str
    goal: str
    trials: list[SweepTrial]
    best: SweepTrial | None
    stopped_because: str  # max_total_trials | timeout | interrupted
    study_path: str = ""
    end: object = None  # capc.local.search_end.SearchEnd: the limit that ended it, set by the submit that ran it

    @property
    def interrupted(self) -> bool:
        return self.stopped_because == "interrupted"

    def counts(self) -> dict[str, int]:
        out = {status: 0 for status in (COMPLETED, FAILED, EARLY_TERMINATED, INTERRUPTED)}
        for trial in self.trials:
            out[trial.status] = out.get(trial.status, 0) + 1
        return out


# ---------------------------------------------------------------- running it


@dataclass
class _Running:
    trial: SweepTrial
    optuna_trial: object
    process: object
    started: float
    deadline: float | None
    stop_status: str | None = None  # set when the runner ends it: early_terminated | interrupted | failed
    stop_reason: str | None = None
    kill_at: float | None = None
    killed: bool = False


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def best_trial(trials: list[SweepTrial], goal: str) -> SweepTrial | None:
    """The best completed trial by its final metric (ties: the earlier trial)."""
    completed = [t for t in sorted(trials, key=lambda t: t.number) if t.status == COMPLETED]
    return Goal(goal).best(completed, lambda t: t.value)


class _SweepRunner:
    def __init__(self, plan, job_dir, trials_dir, tracking_uri, experiment_id, parent_run_id, on_event, resume, stop_event, launch_mode, cores=None):
        self.plan = plan
        # Places for trials (and threads per trial), shared with the submit's other engines.
        self.cores = cores or CoreBudget(sweep_limit=plan.max_concurrent_trials)
        self.job_dir = Path(job_dir)
        self.trials_dir = Path(trials_dir)
        self.tracking_uri = tracking_uri
        self.experiment_id = experiment_id
        self.parent_run_id = parent_run_id
        self.on_event = on_event
        self.resume = resume
        self.stop_event = stop_event or threading.Event()
        self.launch_mode = launch_mode
        self.running: dict[str, _Running] = {}
        self.trials: dict[str, SweepTrial] = {}  # every trial of this sweep, earlier sessions' included
        self.histories: dict[str, list[float]] = {}
        self.policy = policy_from_mapping(plan.policy_mapping)
        self.finished_before = 0
        # Opened by run(), in this order: prepare(), the launcher, open_study(), open_tracking().
        self.snapshot: Path | None = None  # the trial code's snapshot every trial runs in
        self.launcher: Launcher | None = None
        self.study = None  # optuna.Study
        self.distributions: dict = {}
        self.client = None  # mlflow.MlflowClient

    # -- events
    def emit(self, kind: str, trial: SweepTrial) -> None:
        if self.on_event is None:
            return
        try:
            self.on_event(kind, trial)
        except Exception:  # a display problem must not end the sweep
            logging.getLogger(__name__).debug("on_event failed", exc_info=True)

    # -- set-up
    def prepare(self) -> None:
        self.trials_dir.mkdir(parents=True, exist_ok=True)
        if not self.resume:
            (self.trials_dir / STUDY_FILE).unlink(missing_ok=True)
            for old in self.trials_dir.glob("trial_*"):
                shutil.rmtree(old, ignore_errors=True)
        snapshot = self.trials_dir / CODE_SNAPSHOT
        shutil.rmtree(snapshot, ignore_errors=True)
        if self.plan.code_dir:
            shutil.copytree(self.plan.code_dir, snapshot, ignore=shutil.ignore_patterns(*SNAPSHOT_IGNORE))
        else:
            snapshot.mkdir()
        self.snapshot = snapshot

    def open_study(self) -> None:
        import optuna
        from optuna.storages import JournalStorage
        from optuna.storages.journal import JournalFileBackend

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        storage = JournalStorage(JournalFileBackend(str(self.trials_dir / STUDY_FILE)))
        self.study = optuna.create_study(
            storage=storage, study_name=STUDY_NAME, direction=self.plan.goal, load_if_exists=True,
            sampler=optuna.samplers.RandomSampler(),  # replaced below, once the trials in storage are counted
        )
        from optuna.trial import TrialState

        existing = self.study.get_trials(deepcopy=False)
        rerun_already = {t.user_attrs.get(RERUN_ATTR) for t in existing if t.state == TrialState.WAITING}
        for frozen in existing:
            record = frozen.user_attrs.get(RUN_RECORD_ATTR) or {}
            if frozen.state == TrialState.RUNNING:
                record = self.settle_unfinished(frozen, record, rerun_already)
            if record.get("status") in ENDED:
                trial = SweepTrial.from_dict(record)
                self.trials[trial.trial_id] = trial
                self.histories[trial.trial_id] = list(trial.history)
        self.finished_before = len(self.trials)
        with _quiet_experimental():
            self.study.sampler = samplers.make_sampler(
                self.plan.algorithm, self.plan.sampling_options, self.plan.search_space, trials_so_far=len(existing)
            )
        self.distributions = samplers.distributions(self.plan.search_space)

    def settle_unfinished(self, frozen, record: dict, rerun_already: set) -> dict:
        """A trial an earlier session left unfinished (stopped, its timeout, or capc killed): completed when its
        result is whole on disk, else interrupted and queued to run again with the same parameters."""
        import optuna
        from optuna.trial import TrialState

        handle = optuna.trial.Trial(self.study, frozen._trial_id)  # its attributes can change only while it runs
        history = self.result_on_disk(record)
        if history:
            record = {**record, "status": COMPLETED, "history": history, "value": history[-1], "error": None}
            handle.set_user_attr(RUN_RECORD_ATTR, record)
            self.study.tell(frozen.number, float(history[-1]))
            self._finish_run(record["run_id"], COMPLETED)
            return record
        if record.get("run_id") and record.get("status") != INTERRUPTED:  # capc ended before it could record the stop
            record = {**record, "status": INTERRUPTED, "error": "stopped: capc ended before the trial did"}
            handle.set_user_attr(RUN_RECORD_ATTR, record)
            self._finish_run(record["run_id"], INTERRUPTED)
        self.study.tell(frozen.number, state=TrialState.FAIL)
        if frozen.number not in rerun_already:
            self.study.enqueue_trial(frozen.params, user_attrs={RERUN_ATTR: frozen.number})
        return record

    def result_on_disk(self, record: dict) -> list[float] | None:
        """The primary metric's history of a trial whose result is whole: model saved, metric logged (else None)."""
        if not record.get("run_id") or not (Path(record.get("output_dir", "")) / "model" / "MLmodel").is_file():
            return None
        try:
            metrics = self.client.get_metric_history(record["run_id"], self.plan.metric)
        except Exception:  # its run is not in the store
            return None
        values = [m.value for m in sorted(metrics, key=lambda m: (m.timestamp, m.step))]
        return values if values and is_score(values[-1]) else None

    def _finish_run(self, run_id: str, status: str) -> None:
        try:
            tracking.finish_run(self.client, run_id, status)
        except Exception:  # the study's record is what the sweep relies on
            logging.getLogger(__name__).warning("could not record run %s in MLflow", run_id, exc_info=True)

    def open_tracking(self) -> None:
        self.client = tracking.client(self.tracking_uri)

    def trial_env(self, run_id: str | None, process: commands.PreparedCommand | None = None) -> dict:
        env = dict(os.environ)
        env.update(self.plan.environment_variables)
        env.update(process.env if process else {})
        env.update(MLFLOW_TRACKING_URI=self.tracking_uri, MLFLOW_EXPERIMENT_ID=str(self.experiment_id))
        if run_id:
            env["MLFLOW_RUN_ID"] = run_id
            threads = str(self.cores.split().sweep_trial_threads or 1)
            # A job that names its trials' threads (capc.local.reproducible pins them) keeps them.
            env.update({variable: threads for variable in THREAD_VARIABLES if variable not in self.plan.environment_variables})
        env.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")  # no network here; its exit hook costs ~2 s a trial
        return env

    # -- one trial
    def launch(self) -> SweepTrial:
        """Ask the sampler for parameters and start the trial (status failed when it cannot even start)."""
        from mlflow.entities import Param

        with _quiet_experimental(), stopping.deferred():  # a trial the study holds half-asked would resume without params
            optuna_trial = self.study.ask(fixed_distributions=self.distributions)
        number = optuna_trial.number
        values = samplers.values_from_raw(self.plan.search_space, optuna_trial.params)
        trial_dir = self.trials_dir / f"trial_{number:04d}"
        shutil.rmtree(trial_dir, ignore_errors=True)
        shutil.copytree(self.snapshot, trial_dir, copy_function=_link_or_copy)
        (trial_dir / "outputs").mkdir(exist_ok=True)
        log_path = trial_dir / "output.log"
        log_path.write_bytes(b"")
        prepared = trial_process(self.plan, values, bindings.output_folders(self.plan.outputs, trial_dir))
        command = prepared.argv
        run_id = tracking.start_run(
            self.client, self.experiment_id, f"trial_{number}", "trial", parent=self.parent_run_id,
            tags={"capc.trial": str(number), "capc.command": prepared.text[:5000]},
        )
        family = [Param("family", str(self.plan.family))] if self.plan.family else []
        self.client.log_batch(run_id, params=family + [Param(k, samplers.format_value(v)) for k, v in values.items()])
        trial = SweepTrial(
            trial_id=str(number), number=number, params=values, run_id=run_id, trial_dir=str(trial_dir),
            output_dir=str(trial_dir / "outputs"), log_path=str(log_path), command=command,
        )
        self.trials[trial.trial_id] = trial
        self.histories[trial.trial_id] = trial.history
        # Recorded now, not only at its end: should capc die, --resume finds the trial's run and folder from this.
        optuna_trial.set_user_attr(RUN_RECORD_ATTR, trial.to_dict())
        try:
            process = self.launcher.start(command, trial_dir, self.trial_env(run_id, prepared), log_path)
        except OSError as exc:  # e.g. the command's program does not exist
            trial.exit_code, trial.duration_s = None, 0.0
            trial.error = f"cannot start `{shlex.join(command)}`: {exc}"
            trial.output_tail = trial.error
            self.emit("started", trial)
            self.record(trial, optuna_trial, FAILED)
            self.cores.sweep_trial_ended()
            return trial
        started = time.monotonic()  # after start(): the first fork waits for the server's preload
        deadline = started + self.plan.trial_timeout_s if self.plan.trial_timeout_s else None
        self.running[trial.trial_id] = _Running(trial, optuna_trial, process, started, deadline)
        self.emit("started", trial)
        return trial

    def read_history(self, entry: _Running) -> None:
        try:
            metrics = self.client.get_metric_history(entry.trial.run_id, self.plan.metric)
        except Exception:  # the store is busy with the trials' writes: read again next poll
            return
        # Intervals are reports in the order they were made (steps may be missing or repeated).
        values = [m.value for m in sorted(metrics, key=lambda m: (m.timestamp, m.step))]
        history = entry.trial.history
        if len(values) <= len(history):
            return
        for k in range(len(history), len(values)):
            if is_score(values[k]):
                try:
                    entry.optuna_trial.report(float(values[k]), step=k + 1)
                except Exception:  # Optuna refuses some values (e.g. a step reported twice); the sampler can do without
                    pass
        history.extend(values[len(history):])
        entry.trial.value = history[-1]
        self.emit("reported", entry.trial)

    def request_stop(self, entry: _Running, status: str, reason: str) -> None:
        if entry.stop_status is not None:
            return
        entry.stop_status, entry.stop_reason = status, reason
        entry.kill_at = time.monotonic() + KILL_GRACE_S
        entry.process.send_signal(signal.SIGTERM)

    def finish(self, entry: _Running, exit_code: int) -> None:
        trial = entry.trial
        del self.running[trial.trial_id]
        self.cores.sweep_trial_ended()
        self.read_history(entry)
        trial.exit_code = exit_code
        trial.duration_s = round(time.monotonic() - entry.started, 3)
        if entry.stop_status == INTERRUPTED and exit_code == 0 and trial.history:
            status = COMPLETED  # it ended on its own before the signal landed: its outputs are whole, keep it
        elif entry.stop_status is not None:
            status, trial.error = entry.stop_status, entry.stop_reason
        elif exit_code != 0:
            status, trial.error = FAILED, f"exited with status {exit_code}"
        elif not trial.history:
            status, trial.error = FAILED, f"exited 0 but never logged the primary metric {self.plan.metric!r}"
        else:
            status = COMPLETED
        if status == FAILED:
            trial.output_tail = output_tail(Path(trial.log_path))
        self.record(trial, entry.optuna_trial, status)

    def record(self, trial: SweepTrial, optuna_trial, status: str) -> None:
        from optuna.trial import TrialState

        trial.status = status
        trial.value = trial.history[-1] if trial.history else None
        self._finish_run(trial.run_id, status)
        if trial.duration_s is not None:
            try:
                self.client.set_tag(trial.run_id, "capc.duration_s", f"{trial.duration_s:.3f}")
            except Exception:
                pass  # a missing duration costs only the column in `capc runs`
        with stopping.deferred():  # the study's record of a trial is written whole
            optuna_trial.set_user_attr(RUN_RECORD_ATTR, trial.to_dict())
            if status != INTERRUPTED:  # an interrupted trial stays RUNNING in the study: --resume settles it (settle_unfinished)
                if status == COMPLETED and is_score(trial.value):
                    self.study.tell(optuna_trial, float(trial.value))
                elif status == EARLY_TERMINATED:
                    self.study.tell(optuna_trial, state=TrialState.PRUNED)
                else:
                    self.study.tell(optuna_trial, state=TrialState.FAIL)
        self.emit(EVENT_OF_STATUS[status], trial)

    # -- the loop
    def run(self) -> SweepResult:
        self.prepare()
        self.launcher = Launcher(self.launch_mode, env=self.trial_env(None), server_log=self.trials_dir / "fork_server.log")
        try:
            self.open_tracking()
            self.open_study()
            stopped_because = self.loop()
        finally:
            for entry in list(self.running.values()):  # only on an error: never leave trials behind
                entry.process.send_signal(signal.SIGKILL)
            self.launcher.close()
        trials = sorted(self.trials.values(), key=lambda t: t.number)
        result = SweepResult(
            self.plan.metric, self.plan.goal, trials, best_trial(trials, self.plan.goal), stopped_because,
            str(self.trials_dir / STUDY_FILE),
        )
        ended = [t for t in trials if t.status in ENDED]
        if ended and all(t.status == FAILED for t in ended) and not result.interrupted:
            raise _all_failed(ended)
        return result

    def loop(self) -> str:
        sweep_deadline = time.monotonic() + self.plan.timeout_s if self.plan.timeout_s else None
        finished_count = self.finished_before
        stopped_because = "max_total_trials"
        stopping = False
        next_poll = 0.0
        while True:
            now = time.monotonic()
            if not stopping and self.stop_event.is_set():
                stopping, stopped_because = True, "interrupted"
            if not stopping and sweep_deadline is not None and now >= sweep_deadline:
                stopping, stopped_because = True, "timeout"
            if stopping:
                reason = f"capc was stopped ({signal_name()})" if stopped_because == "interrupted" else f"the sweep's timeout ({self.plan.timeout_s:g} s) passed"
                for entry in list(self.running.values()):
                    self.request_stop(entry, INTERRUPTED, f"stopped: {reason}")
            launched_or_done = finished_count + len(self.running)
            while (not stopping and len(self.running) < self.plan.max_concurrent_trials
                   and launched_or_done < self.plan.max_total_trials and self.cores.start_sweep_trial()):
                launched_or_done += 1
                try:
                    launched = self.launch()
                except BaseException:
                    self.cores.sweep_trial_ended()
                    raise
                if launched.status == FAILED:
                    finished_count += 1  # it could not even start
            if not self.running and (stopping or launched_or_done >= self.plan.max_total_trials):
                return stopped_because
            self.stop_event.wait(TICK_S)
            now = time.monotonic()
            poll = now >= next_poll
            if poll:
                next_poll = now + POLL_S
            for entry in list(self.running.values()):
                if poll:
                    self.read_history(entry)
                exit_code = entry.process.poll()
                if exit_code is not None:
                    self.finish(entry, exit_code)
                    if entry.trial.status != INTERRUPTED:
                        finished_count += 1
                    continue
                if entry.deadline is not None and now >= entry.deadline:
                    self.request_stop(entry, FAILED, f"ran longer than trial_timeout ({self.plan.trial_timeout_s:g} s)")
                if entry.kill_at is not None and now >= entry.kill_at and not entry.killed:
                    entry.process.send_signal(signal.SIGKILL)
                    entry.killed = True
            if poll and self.policy is not None and not stopping:
                candidates = [tid for tid, entry in self.running.items() if entry.stop_status is None]
                for trial_id in sorted(self.policy.trials_to_stop(self.histories, self.plan.goal, running=candidates)):
                    k = self.policy.evaluation_point(len(self.histories[trial_id]))
                    self.request_stop(self.running[trial_id], EARLY_TERMINATED, f"stopped by the {type(self.policy).__name__} at interval {k}")


class _quiet_experimental:
    """Optuna flags some samplers as experimental; capc pins Optuna, so the warning says nothing to a user."""

    def __enter__(self):
        import warnings

        self._catch = warnings.catch_warnings()
        self._catch.__enter__()
        try:
            from optuna.exceptions import ExperimentalWarning

            warnings.simplefilter("ignore", ExperimentalWarning)
        except ImportError:
            pass
        return self

    def __exit__(self, *exc):
        return self._catch.__exit__(*exc)


def _all_failed(failed: list[SweepTrial]) -> CapcError:
    first = failed[0]
    noun = "trial" if len(failed) == 1 else f"all {len(failed)} trials"
    tail = first.output_tail.strip() or "(no output)"
    return CapcError(
        f"{noun} of the sweep failed. Trial {first.trial_id} ({first.error}) ran `{shlex.join(first.command)}` in "
        f"{first.trial_dir}; the last lines of its output ({first.log_path}):\n{tail}",
        hint=f"run that command in {first.trial_dir} to see the problem" if first.command else None,
    )


def run_sweep(
    job: dict,
    job_dir: Path,
    trials_dir: Path,
    tracking_uri: str,
    experiment_id: str,
    parent_run_id: str,
    on_event: Callable | None = None,
    resume: bool = False,
    stop_event: threading.Event | None = None,
    launch_mode: str = "auto",
    cores: CoreBudget | None = None,
    python: str | None = None,
) -> SweepResult:
    """Run the sweep job `job` (a loaded sweep_job.yml; `job_dir` its folder) and return every trial and the best.

    on_event(kind, trial) is called with kind started | reported | finished | failed | stopped | interrupted.
    Setting `stop_event` ends running trials (status interrupted) and returns what finished. `cores`: the submit's
    core budget, which gives each trial its place and threads (default: this sweep alone on this process's cores).
    `python`: the interpreter of the job's environment (capc.local.environments; default capc's own).
    launch_mode:
    auto (fork `python ...` commands from a pre-warmed server, spawn others) | fork | spawn (always Popen).
    Raises CapcError for a job that cannot run and when every trial failed.
    """
    plan = plan_sweep(job, Path(job_dir), python)
    runner = _SweepRunner(plan, job_dir, trials_dir, tracking_uri, experiment_id, parent_run_id, on_event, resume, stop_event, launch_mode, cores)
    return runner.run()


def run_sweep_interruptibly(on_interrupt: Callable[[], None] | None = None, **sweep_args) -> tuple[SweepResult, bool]:
    """run_sweep in a worker thread so a stop in the main thread (Ctrl-C, or SIGTERM/SIGHUP as capc.stopping raises
    them) becomes a clean stop: running trials end, finished ones stay recorded. Returns (result, interrupted); an
    error of the sweep is raised here."""
    results, interrupted = run_sweeps_interruptibly({"sweep": sweep_args}, on_interrupt)
    return results["sweep"], interrupted


def run_sweeps_interruptibly(sweeps: Mapping[str, dict], on_interrupt: Callable[[], None] | None = None) -> tuple[dict, bool]:
    """Several sweeps side by side (a conditional sweep's one per family), each run_sweep in its own worker
    thread, each within its own concurrency; a stop (capc.stopping) ends them all cleanly. Returns ({name: result},
    interrupted); the first error of a sweep is raised here, once every sweep has ended."""
    return SweepsInBackground(sweeps).wait(on_interrupt)


class SweepsInBackground:
    """Sweeps started in worker threads (run_sweep's arguments per name), so the main thread can do other work
    meanwhile (AutoML) and Ctrl-C there still becomes a clean stop of every sweep."""

    def __init__(self, sweeps: Mapping[str, dict]):
        self.stop_event = threading.Event()
        self.interrupted = False
        self.outcomes: dict[str, dict] = {name: {} for name in sweeps}
        # Ended-flags rather than Thread.is_alive(): a Ctrl-C landing inside Thread.join can leave is_alive() False
        # for a thread that still runs.
        self.ended = {name: threading.Event() for name in sweeps}
        for name, arguments in sweeps.items():
            threading.Thread(target=self._work, args=(name, arguments), name=f"capc-{name}", daemon=True).start()

    def _work(self, name: str, arguments: dict) -> None:
        try:
            self.outcomes[name]["result"] = run_sweep(stop_event=self.stop_event, **arguments)
        except BaseException as exc:  # handed to the main thread, which reports it
            self.outcomes[name]["error"] = exc
        finally:
            self.ended[name].set()

    def stop(self) -> None:
        """End running trials (interrupted) and start no more; wait() returns what finished."""
        self.interrupted = True
        self.stop_event.set()

    def wait(self, on_interrupt: Callable[[], None] | None = None) -> tuple[dict, bool]:
        """({name: result}, interrupted) once every sweep ended; Ctrl-C meanwhile stops them. An error is raised here."""
        while not all(flag.is_set() for flag in self.ended.values()):
            try:
                next(flag for flag in self.ended.values() if not flag.is_set()).wait(0.2)
            except KeyboardInterrupt:
                if not self.interrupted and on_interrupt:
                    on_interrupt()
                self.stop()
        for outcome in self.outcomes.values():
            if "error" in outcome:
                raise outcome["error"]
        results = {name: outcome["result"] for name, outcome in self.outcomes.items()}
        return results, self.interrupted or any(r.interrupted for r in results.values())
