"""The local sweep engine (capc.local.sweep, capc.local.launch) against real processes and a real MLflow store.

The trial script below is written to a tmp folder; its `--mode` decides how it behaves: good and fine finish
with 0.9 and 0.8, bad reports 0.1 slowly (40 reports, 0.25 s apart: it only ends early if it is stopped),
crash reports 0.85 once and raises, hang sleeps without reporting. With a bandit policy of slack_factor 0.2
(keep >= 0.9 / 1.2 = 0.75) only bad is ever below the slack.
"""

import os
import signal
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from capc.errors import CapcError
from capc.local.launch import Launcher
from capc.local.sweep import run_sweep
from capc.local.sweep_plan import plan_sweep, trial_argv

TRIAL_SCRIPT = textwrap.dedent(
    """
    import argparse, os, time
    import mlflow

    parser = argparse.ArgumentParser()
    parser.add_argument("--data", required=True)
    parser.add_argument("--mode", default="good")
    parser.add_argument("--value", type=float, default=None)
    parser.add_argument("--calls", default=None)
    args = parser.parse_args()
    value, reports, pause = {
        "good": (0.9, 5, 0.02), "fine": (0.8, 5, 0.02), "bad": (0.1, 40, 0.25), "crash": (0.85, 5, 0.02),
        "steady": (0.5, 4, 0.3), "hang": (0.5, 0, 0),
    }[args.mode]
    if args.value is not None:
        value = args.value
    os.makedirs("outputs", exist_ok=True)
    with open("outputs/pid", "w") as handle:
        handle.write(str(os.getpid()))
    assert open(args.data).read().startswith("a,b"), "the input must be readable from the trial"
    if args.mode == "hang":
        time.sleep(120)
    with mlflow.start_run():
        for step in range(1, reports + 1):
            mlflow.log_metric("accuracy", value, step=step)
            if args.mode == "crash":
                raise RuntimeError("trial crashed on purpose")
            time.sleep(pause)
        os.makedirs("outputs/model", exist_ok=True)
        with open("outputs/model/MLmodel", "w") as handle:
            handle.write("flavors: {}\\n")
    if args.calls:
        with open(args.calls, "a") as handle:
            handle.write(f"{args.mode} {args.value}\\n")
    print("done", flush=True)
    """
)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """One MLflow sqlite store for the module (creating its tables takes seconds)."""
    from mlflow import MlflowClient

    root = tmp_path_factory.mktemp("store")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    return {"uri": uri, "client": client, "experiment_id": client.create_experiment("sweep-tests")}


@pytest.fixture(scope="module")
def job_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("job with space")
    (root / "src").mkdir()
    (root / "src" / "train.py").write_text(TRIAL_SCRIPT)
    (root / "data").mkdir()
    (root / "data" / "train.csv").write_text("a,b\n1,2\n")
    (root / "calls.txt").write_text("")
    return root


def make_job(search_space, *, algorithm="grid", extra_args="", policy=None, **limits):
    job = {
        "$schema": "https://azuremlschemas.azureedge.net/latest/sweepJob.schema.json",
        "type": "sweep",
        "inputs": {"training_data": {"type": "uri_file", "path": "data/train.csv"}, "calls": {"type": "uri_file", "path": "calls.txt"}},
        "trial": {
            "code": "./src",
            "command": "python train.py --data ${{inputs.training_data}} "
            + " ".join(f"--{p} ${{{{search_space.{p}}}}}" for p in search_space) + (" " + extra_args if extra_args else ""),
            "environment": "azureml:unused@latest",
        },
        "sampling_algorithm": algorithm,
        "search_space": search_space,
        "objective": {"goal": "maximize", "primary_metric": "accuracy"},
        "limits": {"max_total_trials": 10, "max_concurrent_trials": 2, "timeout": 600, "trial_timeout": 300, **limits},
    }
    if policy:
        job["early_termination"] = policy
    return job


def sweep(store, job, job_dir, trials_dir, **kwargs):
    parent = store["client"].create_run(store["experiment_id"]).info.run_id
    events = []
    result = run_sweep(
        job, job_dir, trials_dir, store["uri"], store["experiment_id"], parent,
        on_event=lambda kind, trial: events.append((kind, trial.trial_id)), **kwargs,
    )
    return result, events, parent


# ---------------------------------------------------------------- one sweep, looked at from every side


@pytest.fixture(scope="module")
def main_sweep(store, job_dir, tmp_path_factory):
    job = make_job(
        {"mode": {"type": "choice", "values": ["good", "bad", "crash", "fine"]}},
        policy={"type": "bandit", "slack_factor": 0.2, "evaluation_interval": 1, "delay_evaluation": 0},
    )
    result, events, parent = sweep(store, job, job_dir, tmp_path_factory.mktemp("trials"))
    return {"result": result, "events": events, "parent": parent, "by_mode": {t.params["mode"]: t for t in result.trials}}


def test_grid_runs_every_choice_once(main_sweep):
    result = main_sweep["result"]
    assert sorted(t.params["mode"] for t in result.trials) == ["bad", "crash", "fine", "good"]  # 4 of max 10: grid covered
    assert result.stopped_because == "max_total_trials"


def test_concurrency_limit_is_kept(main_sweep):
    running = peak = 0
    for kind, _ in main_sweep["events"]:
        if kind == "started":
            running += 1
            peak = max(peak, running)
        elif kind in ("finished", "failed", "stopped", "interrupted"):
            running -= 1
    assert 1 <= peak <= 2 and running == 0


def test_completed_trials_and_best(main_sweep):
    by_mode = main_sweep["by_mode"]
    assert by_mode["good"].status == "completed" and by_mode["good"].value == pytest.approx(0.9)
    assert by_mode["good"].history == pytest.approx([0.9] * 5)
    assert by_mode["fine"].status == "completed"
    best = main_sweep["result"].best
    assert best is by_mode["good"]
    assert (Path(best.output_dir) / "model" / "MLmodel").is_file()


def test_policy_stops_the_bad_trial_and_its_process_dies(main_sweep):
    bad = main_sweep["by_mode"]["bad"]
    assert bad.status == "early_terminated"
    assert "BanditPolicy" in bad.error
    assert 1 <= len(bad.history) < 40  # it would have reported 40 times
    assert bad.exit_code == -signal.SIGTERM
    pid = int((Path(bad.output_dir) / "pid").read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert ("stopped", bad.trial_id) in main_sweep["events"]


def test_crash_is_recorded_and_the_sweep_goes_on(main_sweep):
    crash = main_sweep["by_mode"]["crash"]
    assert crash.status == "failed" and crash.exit_code == 1
    assert "RuntimeError: trial crashed on purpose" in crash.output_tail
    assert len(crash.output_tail.splitlines()) <= 20
    assert "trial crashed on purpose" in Path(crash.log_path).read_text()
    assert main_sweep["by_mode"]["fine"].status == "completed"


def test_mlflow_records_each_trial_as_a_child_run(main_sweep, store):
    client = store["client"]
    expected = {"good": ("FINISHED", "completed"), "fine": ("FINISHED", "completed"), "bad": ("KILLED", "early_terminated"), "crash": ("FAILED", "failed")}
    for mode, (mlflow_status, capc_status) in expected.items():
        trial = main_sweep["by_mode"][mode]
        run = client.get_run(trial.run_id)
        assert run.data.tags["mlflow.parentRunId"] == main_sweep["parent"]
        assert run.data.params["mode"] == mode
        assert (run.info.status, run.data.tags["capc.status"]) == (mlflow_status, capc_status)
    history = client.get_metric_history(main_sweep["by_mode"]["good"].run_id, "accuracy")
    assert [m.step for m in history] == [1, 2, 3, 4, 5]


# ---------------------------------------------------------------- failures


def test_every_trial_failing_is_an_error_naming_the_trial(store, job_dir, tmp_path):
    job = make_job({"mode": {"type": "choice", "values": ["crash"]}})
    with pytest.raises(CapcError) as caught:
        sweep(store, job, job_dir, tmp_path / "trials")
    message = caught.value.message
    assert "trial of the sweep failed" in message and "Trial 0 (exited with status 1)" in message
    assert "RuntimeError: trial crashed on purpose" in message


@pytest.mark.slow
def test_trial_timeout_fails_the_trial(store, job_dir, tmp_path):
    job = make_job({"mode": {"type": "choice", "values": ["hang", "good"]}}, trial_timeout=3)
    result, _, _ = sweep(store, job, job_dir, tmp_path / "trials")
    hang = next(t for t in result.trials if t.params["mode"] == "hang")
    assert hang.status == "failed" and "trial_timeout (3 s)" in hang.error
    assert result.best.params["mode"] == "good"


# ---------------------------------------------------------------- Ctrl-C and --resume


@pytest.mark.slow
def test_interrupt_then_resume_does_not_repeat_finished_trials(store, job_dir, tmp_path):
    values = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6]
    job = make_job(
        {"value": {"type": "choice", "values": values}}, extra_args="--mode steady --calls ${{inputs.calls}}",
        max_total_trials=6, max_concurrent_trials=2,
    )
    calls = job_dir / "calls.txt"
    calls.write_text("")
    trials_dir = tmp_path / "trials"
    stop = threading.Event()
    parent = store["client"].create_run(store["experiment_id"]).info.run_id

    def on_event(kind, trial):
        if kind == "finished":
            stop.set()  # Ctrl-C as soon as one trial has finished

    first = run_sweep(job, job_dir, trials_dir, store["uri"], store["experiment_id"], parent, on_event=on_event, stop_event=stop)
    assert first.interrupted
    done_first = {t.trial_id: t for t in first.trials if t.status == "completed"}
    assert done_first and len(done_first) < 6
    assert all(t.status in ("completed", "interrupted") for t in first.trials)
    for trial in first.trials:
        if trial.status == "interrupted":
            run = store["client"].get_run(trial.run_id)
            assert (run.info.status, run.data.tags["capc.status"]) == ("KILLED", "interrupted")

    second, _, _ = sweep(store, job, job_dir, trials_dir, resume=True)
    completed = [t for t in second.trials if t.status == "completed"]
    assert sorted(t.params["value"] for t in completed) == values  # every grid point once
    for trial_id, trial in done_first.items():  # kept as they were, not run again
        kept = next(t for t in second.trials if t.trial_id == trial_id)
        assert (kept.run_id, kept.value) == (trial.run_id, trial.value)
    lines = calls.read_text().split()
    assert len(calls.read_text().splitlines()) == 6, lines  # each trial script ran to its end exactly once
    assert second.best.params["value"] == 0.6


@pytest.mark.slow
def test_random_sampling_with_spawned_processes(store, job_dir, tmp_path):
    job = make_job(
        {"value": {"type": "uniform", "min_value": 0.0, "max_value": 1.0}}, algorithm="random", extra_args="--mode good",
        max_total_trials=3, max_concurrent_trials=2,
    )
    result, _, _ = sweep(store, job, job_dir, tmp_path / "trials", launch_mode="spawn")
    assert len(result.trials) == 3 and all(t.status == "completed" for t in result.trials)
    assert result.best.value == max(t.params["value"] for t in result.trials)


# ---------------------------------------------------------------- reading the job (no processes)


def test_command_is_filled_word_by_word(job_dir):
    job = make_job({"C": {"type": "uniform", "min_value": 0.1, "max_value": 10}}, algorithm="random")
    plan = plan_sweep(job, job_dir)
    words = trial_argv(plan, {"C": 0.5})
    assert words[0] == sys.executable
    assert words[1:3] == ["train.py", "--data"]
    assert words[3] == str((job_dir / "data" / "train.csv").resolve())  # one word, though the path has a space
    assert words[4:] == ["--C", "0.5"]
    assert (plan.timeout_s, plan.trial_timeout_s) == (600.0, 300.0)


def test_limits_in_minutes_are_read_too(job_dir):
    job = make_job({"C": {"type": "uniform", "min_value": 0.1, "max_value": 10}}, algorithm="random")
    job["limits"] = {"max_total_trials": 3, "timeout_minutes": 2, "trial_timeout_minutes": 1}
    plan = plan_sweep(job, job_dir)
    assert (plan.max_total_trials, plan.max_concurrent_trials, plan.timeout_s, plan.trial_timeout_s) == (3, 1, 120.0, 60.0)


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda job: job["trial"].update(command="python train.py --x ${{search_space.nope}}"), r"\$\{\{search_space.nope\}\}"),
        (lambda job: job["inputs"]["training_data"].update(path="azureml:digits:1"), "lives on Azure"),
        (lambda job: job["inputs"]["training_data"].update(path="data/missing.csv"), "does not exist"),
        (lambda job: job["trial"].update(code="./nowhere"), "is not a folder"),
        (lambda job: job["objective"].update(goal="up"), "objective.goal"),
        (lambda job: job.update(sampling_algorithm="bayesian", search_space={"C": {"type": "normal", "mu": 0, "sigma": 1}}), "bayesian sampling does not take normal"),
        (lambda job: job.update(early_termination={"type": "bandit"}), "exactly one of slack_factor"),
    ],
)
def test_job_problems_are_capc_errors(job_dir, change, message):
    job = make_job({"C": {"type": "uniform", "min_value": 0.1, "max_value": 10}}, algorithm="random")
    change(job)
    with pytest.raises(CapcError, match=message):
        plan_sweep(job, job_dir)


# ---------------------------------------------------------------- how a trial's process starts


@pytest.fixture(scope="module", params=["fork", "spawn"])
def launcher(request, tmp_path_factory):
    launcher = Launcher(request.param, server_log=tmp_path_factory.mktemp("launch") / "server.log", preload=())
    yield launcher
    launcher.close()


PROBE = textwrap.dedent(
    """
    import os, subprocess, sys, time
    print("argv", sys.argv, "cwd", os.getcwd(), "env", os.environ.get("PROBE"), "path0", sys.path[0], flush=True)
    mode = sys.argv[1]
    if mode == "exit":
        sys.exit(int(sys.argv[2]))
    if mode == "raise":
        raise ValueError("probe failed")
    if mode == "pool":  # a thread pool left idle, not shut down (MLflow's model logging leaves one)
        from concurrent.futures import ThreadPoolExecutor
        os.probe_pool = ThreadPoolExecutor(2)  # held by a module, as a library holds it, so never collected
        print("pool says", os.probe_pool.submit(lambda: 41 + 1).result(), flush=True)
        sys.exit(0)
    if mode == "tree":  # a trial with a child of its own: stopping the trial must end both
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        open("child.pid", "w").write(str(child.pid))
        time.sleep(60)
    """
)


def wait(process, timeout=30.0):
    deadline = time.monotonic() + timeout
    while process.poll() is None:
        assert time.monotonic() < deadline, "the process did not end"
        time.sleep(0.02)
    return process.poll()


def start(launcher, tmp_path, *args):
    (tmp_path / "probe.py").write_text(PROBE)
    log = tmp_path / "out.log"
    env = dict(os.environ, PROBE="hello")
    process = launcher.start([sys.executable, "probe.py", *args], tmp_path, env, log)
    assert process.forked == (launcher.mode == "fork")
    return process, log


def test_trial_process_argv_cwd_env_and_exit_status(launcher, tmp_path):
    process, log = start(launcher, tmp_path, "exit", "3")
    assert wait(process) == 3
    text = log.read_text()
    assert f"argv ['probe.py', 'exit', '3'] cwd {tmp_path} env hello path0 {tmp_path}" in text


def test_trial_process_uncaught_exception(launcher, tmp_path):
    process, log = start(launcher, tmp_path, "raise")
    assert wait(process) == 1
    assert "ValueError: probe failed" in log.read_text()


def test_a_trial_that_leaves_an_idle_thread_pool_still_ends(launcher, tmp_path):
    # A forked trial that joined its threads before threading's exit hooks waited forever on the pool's worker.
    process, log = start(launcher, tmp_path, "pool")
    assert wait(process) == 0
    assert "pool says 42" in log.read_text()


def test_stopping_a_trial_ends_its_whole_process_group(launcher, tmp_path):
    process, _ = start(launcher, tmp_path, "tree")
    pid_file = tmp_path / "child.pid"
    deadline = time.monotonic() + 30
    while not pid_file.exists() or not pid_file.read_text():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    child = int(pid_file.read_text())
    process.send_signal(signal.SIGTERM)
    assert wait(process) == -signal.SIGTERM
    deadline = time.monotonic() + 10
    while True:  # the grandchild was in the group: it got SIGTERM too (its parent may not have reaped it yet)
        try:
            os.kill(child, 0)
            state = Path(f"/proc/{child}/stat").read_text().split()[2]
        except (ProcessLookupError, FileNotFoundError):
            break
        if state == "Z":
            break
        assert time.monotonic() < deadline, "the trial's child survived"
        time.sleep(0.05)


# ---------------------------------------------------------------- the core budget


def test_sweeps_sharing_a_core_budget_never_run_more_trials_than_it_allows(store, job_dir, tmp_path):
    """Two sweeps of up to 2 trials each under a 2-core budget with AutoML beside them: one trial at a time in
    all, two once AutoML is done."""
    from capc.local.cores import CoreBudget
    from capc.local.sweep import run_sweeps_interruptibly

    budget = CoreBudget(2, automl=True, sweep_limit=4)
    running, most, lock = set(), [0], threading.Lock()
    running_at_start = []

    def on_event(kind, trial):
        with lock:
            if kind == "started":
                running.add(trial.run_id)
                running_at_start.append(len(running))
            elif kind in ("finished", "failed", "stopped", "interrupted"):
                running.discard(trial.run_id)
            most[0] = max(most[0], len(running))
            if kind == "finished" and len(running_at_start) == 2:
                budget.automl_finished()  # AutoML ends after the second trial started

    sweeps = {}
    for name in ("a", "b"):
        job = make_job({"value": {"type": "choice", "values": [0.1, 0.2, 0.3]}}, extra_args="--mode steady", max_total_trials=3)
        parent = store["client"].create_run(store["experiment_id"]).info.run_id
        sweeps[name] = dict(job=job, job_dir=job_dir, trials_dir=tmp_path / name, tracking_uri=store["uri"],
                            experiment_id=store["experiment_id"], parent_run_id=parent, on_event=on_event, cores=budget)
    results, interrupted = run_sweeps_interruptibly(sweeps)
    assert not interrupted
    assert all(t.status == "completed" for r in results.values() for t in r.trials) and sum(len(r.trials) for r in results.values()) == 6
    assert running_at_start[:2] == [1, 1]  # one place beside AutoML
    assert most[0] == 2  # two once it was done, never more
