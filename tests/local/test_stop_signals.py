"""Fault injection: a real `capc submit` process is sent SIGINT, SIGTERM, SIGHUP or SIGKILL (to its PID alone) while
sweep trials run, then `capc submit --resume` finishes the budget.

The trials are a user `script` that sleeps, so no model is trained. Trials 0 and 1 finish at once; after them, an
even-numbered trial saves its model and logs its metric *before* it sleeps (its result is whole on disk when the
signal comes, so --resume must count it as completed), an odd one sleeps first (--resume must run it again). Each
trial notes start / saved / done in a log the tests read (CAPC_TEST_MARKS). Every process capc
starts inherits a marker in its environment (CAPC_TEST_RUN), which is how the tests find survivors: a walk over
/proc, no psutil.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from capc import stopping
from capc.errors import CapcError
from capc.state import locks, tracking
from repo import DATA
VOCABULARY = {"running", "completed", "failed", "early_terminated", "interrupted"}
TRIAL_SCRIPT = '''\
import argparse, os, time
import mlflow

parser = argparse.ArgumentParser()
parser.add_argument("--x", type=float)
args, _ = parser.parse_known_args()
marks = os.environ["CAPC_TEST_MARKS"]
trial = os.path.basename(os.getcwd())
number = int(trial.rsplit("_", 1)[1])
with open(marks, "a") as handle:
    handle.write(f"start {trial}\\n")
long_s = float(os.environ.get("CAPC_TEST_SLEEP_S", "120"))


def save():
    mlflow.log_metric("r2_score", args.x)
    os.makedirs("outputs/model", exist_ok=True)
    with open("outputs/model/MLmodel", "w") as handle:
        handle.write("flavors: {}\\n")
    with open(marks, "a") as handle:
        handle.write(f"saved {trial}\\n")


with mlflow.start_run():
    if number < 2:
        save()
    elif number % 2 == 0:
        save()
        time.sleep(long_s)
    else:
        time.sleep(long_s)
        save()
with open(marks, "a") as handle:
    handle.write(f"done {trial}\\n")
'''
SPEC = """\
name: stop-test
dataset: {path: data.csv, format: csv, target: median_house_value}
task: regression
metric: r2_score
automl: {enabled: false}
sweep:
  script: trial.py
  search_space: {x: 'uniform(0, 1)'}
  limits: {max_total_trials: 4, max_concurrent_trials: 2}
"""
BUDGET = 4


# ---------------------------------------------------------------- the parts, in this process


def test_each_stop_signal_raises_stopped_once_with_its_exit_status():
    before = signal.getsignal(signal.SIGTERM)
    for signum, status in ((signal.SIGINT, 130), (signal.SIGTERM, 143), (signal.SIGHUP, 143)):
        with pytest.raises(stopping.Stopped) as stopped:
            with stopping.stopping_on_signals():
                os.kill(os.getpid(), signum)
                time.sleep(5)  # the handler runs at the next bytecode; never reached
        assert stopped.value.exit_status == status and stopping.exit_status() == status
        assert isinstance(stopped.value, KeyboardInterrupt)  # so every engine's Ctrl-C path handles it
    with stopping.stopping_on_signals():  # while stopping, a second signal does not cut the clean stop short
        with pytest.raises(stopping.Stopped):
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.05)
    assert stopping.signal_name() == "SIGTERM" and stopping.exit_status() == 143
    assert signal.getsignal(signal.SIGTERM) is before


def test_a_stop_inside_a_store_call_is_raised_when_the_call_returns(tmp_path, monkeypatch):
    # A Stopped raised inside SQLAlchemy left a cursor half-closed and a logged traceback (seen in CI).
    with pytest.raises(stopping.Stopped):
        with stopping.stopping_on_signals():
            with stopping.deferred():
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(0.05)
                finished = True  # the block runs to its end
            raise AssertionError("not reached: the stop is raised as the block ends")
    assert finished and stopping.exit_status() == 143
    # Every call on the store's client is such a block.
    monkeypatch.setenv("CAPC_HOME", str(tmp_path))
    store = tracking.client()
    exp_id = tracking.experiment_id(store, "deferred")
    with pytest.raises(stopping.Stopped):
        with stopping.stopping_on_signals():
            original = type(store).__mro__[1].create_run

            def create_run_cut_by_a_signal(self, *args, **kwargs):
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(0.05)
                return original(self, *args, **kwargs)

            monkeypatch.setattr(type(store).__mro__[1], "create_run", create_run_cut_by_a_signal)
            tracking.start_run(store, exp_id, "cut", "trial")
    monkeypatch.undo()
    assert [r.info.run_name for r in tracking.client(tracking.tracking_uri(tmp_path)).search_runs([exp_id])] == ["cut"]


def test_the_first_client_on_a_new_store_says_nothing(tmp_path):
    # MLflow logs its schema migrations at INFO; a newcomer's first `capc submit` printed two such lines.
    made = subprocess.run(
        [sys.executable, "-c", "from capc.state import tracking; tracking.experiment_id(tracking.client(), 'x')"],
        env={**os.environ, "CAPC_HOME": str(tmp_path / "home")}, capture_output=True, text=True, timeout=120,
    )
    assert made.returncode == 0 and (tmp_path / "home" / "mlflow.db").exists(), made.stderr
    assert made.stdout + made.stderr == ""


def test_a_second_holder_of_a_spec_lock_is_refused_with_the_first_named(tmp_path, monkeypatch):
    monkeypatch.setenv("CAPC_HOME", str(tmp_path))
    with locks.spec_lock("bank", "a" * 64):
        with pytest.raises(CapcError) as refused:
            with locks.spec_lock("bank", "a" * 64):
                pass
        message = str(refused.value)
        assert f"another local run of `bank` with this same spec is in progress (pid {os.getpid()}, since " in message
        assert "two runs would write the same sweep trial folders" in message and "--resume" in refused.value.hint
        with locks.spec_lock("bank", "b" * 64):  # another version of the spec is another lock
            pass
    with locks.spec_lock("bank", "a" * 64):  # released with its holder
        pass


@pytest.mark.parametrize(
    "mlflow_status, tag, status",
    [("FINISHED", None, "completed"), ("FAILED", None, "failed"), ("KILLED", None, "interrupted"), ("RUNNING", None, "running"),
     ("KILLED", "early_terminated", "early_terminated"), ("FINISHED", "completed", "completed")],
)
def test_one_status_vocabulary_whatever_ended_the_run(mlflow_status, tag, status):
    from types import SimpleNamespace

    run = SimpleNamespace(info=SimpleNamespace(status=mlflow_status), data=SimpleNamespace(tags={tracking.STATUS_TAG: tag} if tag else {}))
    assert tracking.status_of(run) == status
    assert status in tracking.STATUSES


LAUNCHING_RUNNER = """\
import os, sys, time
from pathlib import Path
from capc.local.launch import Launcher

folder = Path(sys.argv[1])
launcher = Launcher("auto", server_log=folder / "server.log", preload=())
spawned = launcher.start(["/bin/sh", "-c", "sleep 300 & sleep 300"], folder, dict(os.environ), folder / "spawned.log")
forked = launcher.start([sys.executable, "trial.py"], folder, dict(os.environ), folder / "forked.log")
print(spawned.forked, forked.forked, flush=True)
time.sleep(300)
"""
FORKED_TRIAL = "import subprocess, time\nsubprocess.Popen(['sleep', '300'])\ntime.sleep(300)\n"


def test_no_trial_nor_what_it_started_outlives_a_killed_runner(tmp_path):
    """Launcher on its own: a spawned and a forked trial, each with a child of its own; SIGKILL to the runner."""
    (tmp_path / "runner.py").write_text(LAUNCHING_RUNNER)
    (tmp_path / "trial.py").write_text(FORKED_TRIAL)
    work = Workdir.__new__(Workdir)
    work.marker = uuid.uuid4().hex
    runner = subprocess.Popen(
        [sys.executable, "runner.py", str(tmp_path)], cwd=tmp_path, stdout=subprocess.PIPE, text=True,
        env={**os.environ, "CAPC_TEST_RUN": work.marker}, start_new_session=True,
    )
    try:
        assert runner.stdout.readline().split() == ["False", "True"]  # one trial spawned, one forked
        # runner, fork server, sh with its sleep, the forked trial with its sleep (the shell may exec its last sleep)
        _wait_for("every process to start", lambda: len(work.survivors(but=runner.pid)) >= 5, timeout_s=30)
        os.kill(runner.pid, signal.SIGKILL)
        runner.wait(timeout=10)
        _wait_for("every process the runner started to end", lambda: not work.survivors(), timeout_s=10)
    finally:
        for line in work.survivors():
            os.kill(int(line.split(":")[0]), signal.SIGKILL)


# ---------------------------------------------------------------- a real submit, stopped


class Workdir:
    """A spec, its data and trial script, a private $CAPC_HOME, and a marker for the processes of this test."""

    def __init__(self, root: Path, spec: str = SPEC):
        self.root = root
        self.marker = uuid.uuid4().hex
        self.marks = root / "marks.log"
        self.marks.write_text("")
        rows = (DATA / "housing/housing.csv").read_text().splitlines()[:101]
        (root / "data.csv").write_text("\n".join(rows) + "\n")
        (root / "trial.py").write_text(TRIAL_SCRIPT)
        (root / "spec.yaml").write_text(spec)
        self.env = {
            **os.environ, "CAPC_HOME": str(root / "home"), "MLFLOW_DISABLE_TELEMETRY": "true",
            "CAPC_TEST_RUN": self.marker, "CAPC_TEST_MARKS": str(self.marks), "COLUMNS": "200",
        }

    def start(self, *extra: str, sleep_s: float = 120) -> subprocess.Popen:
        # Its own session: the signal reaches capc alone, never this test's process group.
        return subprocess.Popen(
            [sys.executable, "-m", "capc", "submit", "spec.yaml", "--out", "generated", *extra],
            cwd=self.root, env={**self.env, "CAPC_TEST_SLEEP_S": str(sleep_s)},
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
        )

    def capc(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "capc", *args], cwd=self.root, env=self.env, capture_output=True, text=True, timeout=timeout
        )

    def lines(self, kind: str) -> list[str]:
        return [line.split()[1] for line in self.marks.read_text().splitlines() if line.startswith(kind + " ")]

    def survivors(self, but: int | None = None) -> list[str]:
        """Command lines of the processes that carry this test's marker (capc's own pid left out when given)."""
        needle = f"CAPC_TEST_RUN={self.marker}".encode()
        found = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit() or int(entry) == but:
                continue
            try:
                environ = Path(f"/proc/{entry}/environ").read_bytes()
                if needle in environ.split(b"\0"):
                    found.append(f"{entry}: " + Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode())
            except OSError:
                continue  # ended meanwhile, or not ours
        return found

    def group_members(self, pgid: int, but: int) -> list[str]:
        return [p for p in self.survivors(but) if _pgid(int(p.split(":")[0])) == pgid]

    def runs(self) -> list[dict]:
        """What `capc runs stop-test --json` lists (read in this process: a capc process costs seconds here)."""
        from capc.state.tracking import list_runs

        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("CAPC_HOME", self.env["CAPC_HOME"])
            runs = [row.to_dict() for row in list_runs("stop-test")]
        assert {r["status"] for r in runs} <= VOCABULARY, runs
        return runs

    def trial_runs(self, runs: list[dict] | None = None) -> dict[str, list[str]]:
        """trial folder name -> statuses of its MLflow runs (a trial run again has a new folder)."""
        out: dict[str, list[str]] = {}
        runs = runs or self.runs()
        for run in runs:
            if run["kind"] == "trial":
                out.setdefault(f"trial_{int(run['name'].split('_')[1]):04d}", []).append(run["status"])
        return out


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except OSError:
        return None


def _wait_for(what: str, predicate, timeout_s: float = 120.0, process: subprocess.Popen | None = None):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if process is not None and process.poll() is not None:
            raise AssertionError(f"capc ended ({process.returncode}) before {what}:\n{process.communicate()[1]}")
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def work(tmp_path):
    workdir = Workdir(tmp_path)
    yield workdir
    for line in workdir.survivors():  # never leave a process behind, whatever failed
        os.kill(int(line.split(":")[0]), signal.SIGKILL)


def _start_and_wait_for_two_running(work: Workdir) -> subprocess.Popen:
    capc = work.start()
    # Trials 0 and 1 finished; trials 2 and 3 have started and sleep, trial 2 with its result saved.
    _wait_for(
        "two finished and two running trials",
        lambda: len(work.lines("done")) == 2 and len(work.lines("start")) == 4 and "trial_0002" in work.lines("saved"),
        process=capc,
    )
    return capc


def _resume_and_check(work: Workdir, interrupted_trial: str, recovered_trial: str) -> None:
    resumed = work.start("--resume", "--json", sleep_s=0.2)
    out, err = resumed.communicate(timeout=180)
    assert resumed.returncode == 0, err
    assert "Traceback" not in err
    # Only the trial whose result was not on disk ran again, in a new folder; no finished trial was repeated.
    starts = work.lines("start")
    assert len(starts) == BUDGET + 1 and starts[-1] == "trial_0004", starts
    assert len(set(work.lines("done"))) == len(work.lines("done"))
    all_runs = work.runs()
    assert "running" not in {r["status"] for r in all_runs}  # the stopped submit's runs are ended too
    runs = work.trial_runs(all_runs)
    assert runs == {
        "trial_0000": ["completed"], "trial_0001": ["completed"], recovered_trial: ["completed"],
        interrupted_trial: ["interrupted"], "trial_0004": ["completed"],
    }, runs
    assert json.loads(out)["model"]["version"] == 1  # the resumed submit registered its winner
    assert not work.survivors()


@pytest.mark.parametrize(
    "signum, status",
    [
        (signal.SIGTERM, 143),
        pytest.param(signal.SIGINT, 130, marks=pytest.mark.slow),
        pytest.param(signal.SIGHUP, 143, marks=pytest.mark.slow),
    ],
)
def test_a_stop_signal_to_capc_alone_ends_trials_cleanly_and_resume_completes_the_budget(work, signum, status):
    capc = _start_and_wait_for_two_running(work)
    # Capc's process group is capc alone (trials and the fork server have sessions of their own), so a signal to
    # the group - Ctrl-C in a terminal - and one to the PID alone are the same case.
    assert work.group_members(os.getpgid(capc.pid), but=capc.pid) == []
    if signum == signal.SIGTERM:
        # A second submit of the same spec, while this one runs, is refused with a clear message.
        second = work.capc("submit", "spec.yaml", "--out", "generated")
        assert second.returncode == 1 and "Traceback" not in second.stderr
        assert f"another local run of `stop-test` with this same spec is in progress (pid {capc.pid}" in second.stderr
    os.kill(capc.pid, signum)
    out, err = capc.communicate(timeout=60)
    assert capc.returncode == status, err
    assert "Traceback" not in err and "Traceback" not in out
    assert "interrupted" in err and "To continue: capc submit spec.yaml --resume" in err
    assert not work.survivors(), "a process outlived capc"
    # trial_0002 saved its result before sleeping; trial_0003 was stopped mid-way. Both end recorded as interrupted.
    assert work.trial_runs() == {
        "trial_0000": ["completed"], "trial_0001": ["completed"], "trial_0002": ["interrupted"], "trial_0003": ["interrupted"],
    }
    _resume_and_check(work, interrupted_trial="trial_0003", recovered_trial="trial_0002")


def test_sigkill_leaves_no_process_and_resume_keeps_every_result_on_disk(work):
    capc = _start_and_wait_for_two_running(work)
    os.kill(capc.pid, signal.SIGKILL)
    capc.communicate(timeout=30)
    # The fork server sees its watchdog pipe close and kills the trials' groups; nothing is left.
    _wait_for("every process capc started to end", lambda: not work.survivors(), timeout_s=10)
    # The kernel released capc's lock with it, so the resume may start.
    _resume_and_check(work, interrupted_trial="trial_0003", recovered_trial="trial_0002")


# ---------------------------------------------------------------- AutoML and the local pipeline (real models: slow)

BOTH = SPEC.replace("automl: {enabled: false}", "automl: {timeout_minutes: 1, max_trials: 200, enable_ensembles: false}")


def _check_stopped(work: Workdir, capc: subprocess.Popen, status: int = 143) -> str:
    out, err = capc.communicate(timeout=120)
    assert capc.returncode == status, err
    assert "Traceback" not in err + out
    _wait_for("every process capc started to end", lambda: not work.survivors(), timeout_s=10)
    return err


@pytest.mark.slow
def test_sigterm_during_automl_ends_it_as_interrupted(tmp_path):
    work = Workdir(tmp_path, BOTH)
    capc = work.start("--only", "automl")
    # runs/<submit run>/ exists once capc has created its store; reading it earlier would race its migrations.
    _wait_for("the submit's run folder", lambda: list(work.root.glob("home/runs/*")), process=capc)
    _wait_for("an AutoML candidate", lambda: any(r["kind"] == "candidate" for r in work.runs()), process=capc)
    os.kill(capc.pid, signal.SIGTERM)
    err = _check_stopped(work, capc)
    assert "To continue: capc submit spec.yaml --only automl --resume" in err and "AutoML starts over" in err
    statuses = {r["kind"]: r["status"] for r in work.runs() if r["kind"] in ("submit", "automl")}
    assert statuses == {"submit": "interrupted", "automl": "interrupted"}


@pytest.mark.slow
def test_sigterm_during_the_local_pipeline_stops_every_step_and_resume_keeps_finished_trials(tmp_path):
    work = Workdir(tmp_path, BOTH)
    capc = work.start("--only", "pipeline")
    # The sweep step runs on its share of the cores beside AutoML (one trial at a time on two cores, two on four).
    _wait_for("two finished sweep trials and a third running", lambda: len(work.lines("done")) == 2
              and "trial_0002" in work.lines("saved"), timeout_s=300, process=capc)
    assert work.group_members(os.getpgid(capc.pid), but=capc.pid) == []  # steps too run in sessions of their own
    os.kill(capc.pid, signal.SIGTERM)
    err = _check_stopped(work, capc)
    assert "To continue: capc submit spec.yaml --only pipeline --resume" in err
    runs = work.runs()
    trials = work.trial_runs(runs)
    assert {k: trials[k] for k in ("trial_0000", "trial_0001", "trial_0002")} == {
        "trial_0000": ["completed"], "trial_0001": ["completed"], "trial_0002": ["interrupted"],
    }
    assert set(trials) <= {"trial_0000", "trial_0001", "trial_0002", "trial_0003"}
    assert trials.get("trial_0003", ["interrupted"]) == ["interrupted"]
    pipeline = next(r for r in runs if r["kind"] == "submit")
    assert pipeline["status"] == "interrupted"
    steps = {r["name"]: r["status"] for r in runs if r["kind"] in ("automl", "sweep")}
    assert steps["sweep"] == "interrupted" and steps["automl"] in ("completed", "interrupted")

    resumed = work.start("--only", "pipeline", "--resume", "--json", sleep_s=0.2)
    out, err = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, err
    assert {s["step"]: s["status"] for s in json.loads(out)["steps"]}["sweep"] == "completed"
    starts = work.lines("start")
    # No finished trial ran again (trial 2 saved its result before the stop: it counts as finished); only a trial
    # stopped before its result was on disk runs again, in a new folder.
    assert [starts.count(t) for t in ("trial_0000", "trial_0001", "trial_0002")] == [1, 1, 1], starts
    assert len(starts) == BUDGET + (1 if "trial_0003" in trials else 0) and len(set(starts)) == len(starts), starts
    assert len(set(work.lines("done"))) == len(work.lines("done"))
    assert not work.survivors()
