"""Local engine, conditional sweeps: the per-family sweeps of sweep.families run side by side, each trial gets and
logs only its own family's parameters, --resume repeats no finished trial, and the grid runs every combination.
"""

from __future__ import annotations

import json
import os
import signal
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from capc.artifacts import write_tree
from capc.build import compile_spec
from capc.cli import cli
from capc.families import FAMILIES
from capc.jobfolder import read_job_folder
from capc.local.submit import run_sweep_job
from capc.spec import load_spec
from capc.state import tracking
from repo import REPO, csv_head

# A quick trial of a user's own: takes --x or --y (never both), logs the metric, saves a (tiny) MLflow model and,
# once it got to its end, appends what it was given to calls.jsonl.
TRIAL = textwrap.dedent("""\
    import argparse, json, os, time
    import mlflow

    parser = argparse.ArgumentParser()
    for name in ("--data", "--target", "--metric"):
        parser.add_argument(name)
    parser.add_argument("--x", type=float)
    parser.add_argument("--y", type=float)
    args = parser.parse_args()
    time.sleep(float(os.environ.get("TRIAL_SLEEP", "0")))
    with mlflow.start_run():
        mlflow.log_metric(args.metric, (args.x or 0) + (args.y or 0))
    os.makedirs("outputs/model", exist_ok=True)
    open("outputs/model/MLmodel", "w").write("flavors: {}\\n")
    with open(os.environ["CALLS_FILE"], "a") as f:
        f.write(json.dumps({"x": args.x, "y": args.y}) + "\\n")
""")

USER_FAMILIES = """\
alpha:
  script: trial.py
  search_space: {x: "choice(1, 2, 3)"}
beta:
  script: trial.py
  search_space: {y: "uniform(0, 0.5)"}
"""


def _spec(workdir: Path, sampling: str, families: str, limits: str):
    csv_head(REPO / "specs/data/digits/digits_train.csv", workdir / "data/digits.csv", 150)
    (workdir / "trial.py").write_text(TRIAL)
    path = workdir / "cond.yaml"
    path.write_text(
        "name: cond-local\n"
        "dataset: {path: data/digits.csv, format: csv, target: label, cross_validations: 3}\n"
        "task: classification\nmetric: accuracy\nautoml: {enabled: false}\n"
        f"sweep:\n  sampling: {sampling}\n  families:\n{textwrap.indent(families, '    ')}  limits: {limits}\n"
    )
    spec = load_spec(path)
    write_tree(workdir / "generated" / spec.name, compile_spec(spec, workdir / "generated"))
    return spec, workdir / "generated" / spec.name


def _run(spec, job_dir: Path, resume: bool = False, progress=None):
    client = tracking.client()
    exp_id = tracking.experiment_id(client, spec.name)
    submit = tracking.start_run(client, exp_id, "submit", "submit")
    work = Path(os.environ["CAPC_HOME"]) / "runs" / submit
    work.mkdir(parents=True, exist_ok=True)
    folder = read_job_folder(job_dir)
    outcome, interrupted = run_sweep_job(folder, folder.sweeps, client, exp_id, submit, work, resume, progress)
    return client, submit, outcome, interrupted


def _trials_by_sweep(client, submit: str) -> dict[str, list]:
    """sweep run name -> its trial runs (the MLflow store, as `capc runs` reads it)."""
    from mlflow.entities import ViewType

    runs = client.search_runs([client.get_run(submit).info.experiment_id], run_view_type=ViewType.ALL)
    sweeps = {r.info.run_id: r.info.run_name for r in runs if r.data.tags.get("mlflow.parentRunId") == submit}
    out: dict[str, list] = {name: [] for name in sweeps.values()}
    for r in runs:
        parent = r.data.tags.get("mlflow.parentRunId")
        if parent in sweeps:
            out[sweeps[parent]].append(r)
    return out


def test_per_family_sweeps_log_only_their_own_parameters(workdir, monkeypatch):
    monkeypatch.setenv("CALLS_FILE", str(workdir / "calls.jsonl"))
    spec, job_dir = _spec(workdir, "random", USER_FAMILIES, "{max_total_trials: 5, max_concurrent_trials: 2}")
    client, submit, outcome, interrupted = _run(spec, job_dir)
    assert not interrupted
    trials = _trials_by_sweep(client, submit)
    assert {name: len(runs) for name, runs in trials.items()} == {"sweep_alpha": 3, "sweep_beta": 2}  # 5 split evenly
    for sweep, own in (("sweep_alpha", "x"), ("sweep_beta", "y")):
        for run in trials[sweep]:
            assert set(run.data.params) == {"family", own}, run.data.params
            assert run.data.params["family"] == sweep.removeprefix("sweep_")
    calls = [json.loads(line) for line in (workdir / "calls.jsonl").read_text().splitlines()]
    assert sorted((c["x"] is None, c["y"] is None) for c in calls) == [(False, True)] * 3 + [(True, False)] * 2
    best = max(r.data.metrics["accuracy"] for runs in trials.values() for r in runs)
    assert outcome.value == best and outcome.params["family"] in ("alpha", "beta")
    assert outcome.label.startswith(outcome.params["family"] + " trial ")


class _InterruptAfterFirstTrial:
    """A progress display that presses Ctrl-C (SIGINT to this process) as soon as one trial has finished."""

    def __init__(self):
        self.sent = False

    def sweep_started(self, job, name):
        pass

    def sweep_event(self, kind, trial, name):
        if kind == "finished" and not self.sent:
            self.sent = True
            os.kill(os.getpid(), signal.SIGINT)

    def sweep_finished(self, result, name):
        pass

    def note(self, text):
        pass


def test_resume_of_an_interrupted_multi_family_sweep_repeats_no_finished_trial(workdir, monkeypatch):
    # Python's own Ctrl-C handler, whatever an earlier test of the session left installed: the sweep's wait turns the
    # KeyboardInterrupt into a clean stop (the whole suite once ran this with a handler that raised nothing).
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        _interrupt_then_resume(workdir, monkeypatch)
    finally:
        signal.signal(signal.SIGINT, previous)


def _interrupt_then_resume(workdir, monkeypatch):
    monkeypatch.setenv("CALLS_FILE", str(workdir / "calls.jsonl"))
    monkeypatch.setenv("TRIAL_SLEEP", "3")  # long enough that a loaded machine still sees the stop before the last trials end
    spec, job_dir = _spec(workdir, "random", USER_FAMILIES, "{max_total_trials: 6, max_concurrent_trials: 2}")
    client, submit, _, interrupted = _run(spec, job_dir, progress=_InterruptAfterFirstTrial())
    assert interrupted
    first = {r.info.run_id: r.data.metrics.get("accuracy") for runs in _trials_by_sweep(client, submit).values()
             for r in runs if r.data.tags.get("capc.status") == "completed"}
    finished_first = len((workdir / "calls.jsonl").read_text().splitlines())
    assert 1 <= len(first) == finished_first < 6

    monkeypatch.setenv("TRIAL_SLEEP", "0")
    client, submit, outcome, interrupted = _run(spec, job_dir, resume=True)
    assert not interrupted and outcome is not None
    # Every trial script ran to its end exactly once over both sessions: none repeated, none lost.
    assert len((workdir / "calls.jsonl").read_text().splitlines()) == 6
    studies = Path(os.environ["CAPC_HOME"]) / "sweeps" / spec.name / spec.sha256[:16]
    assert sorted(p.name for p in studies.iterdir()) == ["sweep_alpha", "sweep_beta"]  # one study per family


@pytest.mark.slow
@pytest.mark.parametrize("sampling, families, trials", [
    ("grid", 'logistic_regression:\n  search_space: {C: "choice(0.5, 2)", max_iter: "choice(50)"}\n'
             'svc:\n  search_space: {C: "choice(1, 10)", scaling: "choice(\'global\')"}\n', 4),
    ("random", 'logistic_regression:\n  search_space: {C: "uniform(0.5, 2)", max_iter: "choice(50)"}\n'
               'svc:\n  search_space: {C: "loguniform(0, 2)", gamma: "loguniform(-5, -3)"}\n', 4),
])
def test_built_in_families_end_to_end(workdir, sampling, families, trials):
    """logistic regression and svc on a digits sample, through `capc submit`: each trial logs its family and only
    that family's hyperparameters, the best across both is registered, the leaderboard names each trial's family."""
    _spec(workdir, sampling, families, "{max_total_trials: 4, max_concurrent_trials: 2}")
    result = CliRunner().invoke(cli, ["submit", str(workdir / "cond.yaml"), "--only", "sweep", "--json", "--out", str(workdir / "generated")])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout[result.stdout.index("{"):])
    assert payload["winner"] == "sweep" and payload["model"]["version"] == 1
    board = json.loads(CliRunner().invoke(cli, ["leaderboard", "cond-local", "--json"]).stdout)["runs"]
    assert len(board) == trials
    assert {r["params"]["family"] for r in board} == {"logistic_regression", "svc"}
    for row in board:
        own = set(FAMILIES[row["params"]["family"]].parameter_names)
        assert set(row["params"]) - {"family", "combination"} <= own, row["params"]
