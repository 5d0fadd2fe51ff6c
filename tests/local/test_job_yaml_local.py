"""`capc submit JOB.yml` on the local engine: hand-written Azure ML sweep and command jobs (tests/local/jobs/,
written in the style of Azure's examples) run against real processes, a real MLflow store and a sample of the
digits data, with their inputs, outputs, objective, sampling, early termination and limits as Azure reads them.
"""

from __future__ import annotations

import os
import shutil
import signal
import threading
import time
from pathlib import Path

import pytest

from capc.errors import CapcError
from capc.jobfolder.job_yaml import load_job_yaml
from capc.local.handwritten import run_job_yaml
from repo import DATA, csv_head

JOBS = Path(__file__).parent / "jobs"
SAMPLE_ROWS = 300


@pytest.fixture
def jobs(workdir: Path) -> Path:
    """A copy of tests/local/jobs/ with data/digits.csv, a sample of the digits data, beside the job files."""
    folder = workdir / "jobs"
    shutil.copytree(JOBS, folder, ignore=shutil.ignore_patterns("__pycache__"))
    csv_head(DATA / "digits" / "digits_train.csv", folder / "data" / "digits.csv", SAMPLE_ROWS)
    return folder


def run(path: Path, *overrides: str, resume: bool = False, notes: list | None = None):
    return run_job_yaml(load_job_yaml(path, list(overrides)), resume=resume, say=(notes.append if notes is not None else None))


@pytest.mark.slow
def test_command_job_runs_once_with_its_inputs_outputs_and_mlflow_run(jobs):
    notes: list[str] = []
    result = run(jobs / "command_job.yml", notes=notes)
    assert result.status == "completed" and result.type == "command"
    assert set(result.metrics) >= {"validation_accuracy", "validation_log_loss"}
    assert result.metrics["validation_accuracy"] > 0.8
    files = result.files
    model = Path(files.named_outputs["model_output"]) / "model"
    assert (model / "MLmodel").is_file() and str(model) in files.models
    assert "named_outputs/model_output/model/MLmodel" in files.outputs
    import mlflow.pyfunc

    assert mlflow.pyfunc.load_model(str(model)) is not None
    assert any("is not built locally" in n and "AzureML-sklearn-1.5" in n for n in notes), notes


@pytest.mark.parametrize(
    ("policy", "metric", "goal"),
    [
        pytest.param("type=bandit", "validation_accuracy", "maximize", marks=pytest.mark.slow),
        pytest.param("type=median_stopping", "validation_log_loss", "minimize", marks=pytest.mark.slow),
        pytest.param("type=truncation_selection", "validation_accuracy", "maximize", marks=pytest.mark.slow),
    ],
)
def test_sweep_stops_the_losing_trial_by_its_policy(jobs, policy, metric, goal):
    """Two trials side by side, alpha 0.01 against an over-regularised 5.0: the policy stops the second."""
    kind = policy.partition("=")[2]
    sets = [f"objective.primary_metric={metric}", f"objective.goal={goal}", f"early_termination={{type: {kind}, evaluation_interval: 1, delay_evaluation: 2}}"]
    if kind == "bandit":
        sets.append("early_termination.slack_factor=0.2")
    if kind == "truncation_selection":
        sets.append("early_termination.truncation_percentage=50")
    result = run(jobs / "sweep_policy_job.yml", *sets)
    by_alpha = {t.params["alpha"]: t for t in result.trials}
    assert by_alpha[5.0].status == "early_terminated", [(t.params, t.status, t.history[:3]) for t in result.trials]
    assert by_alpha[0.01].status == "completed"
    assert result.metric == metric and result.goal == goal
    assert result.value == by_alpha[0.01].value and result.params == {"alpha": 0.01}
    best_model = Path(result.files.named_outputs["model_output"]) / "model"
    assert (best_model / "MLmodel").is_file() and str(best_model) in result.files.models
    assert Path(result.files.folder) == Path(by_alpha[0.01].trial_dir)


@pytest.mark.slow
def test_sweep_limits_and_random_sampling(jobs):
    result = run(jobs / "sweep_job.yml", "limits.max_total_trials=2", "limits.max_concurrent_trials=1")
    assert [t.status for t in result.trials] == ["completed", "completed"]
    assert result.stopped_because == "max_total_trials"
    assert all(1e-9 * 0.99 < t.params["alpha"] < 0.01 * 1.01 and t.params["epochs"] in (3, 4) for t in result.trials)
    assert result.value == max(t.value for t in result.trials)


REMOTE = "wasbs://datasets@azuremlexamples.blob.core.windows.net/digits.csv"


@pytest.mark.parametrize("remote", [REMOTE, "https://example.org/digits.csv", "azureml:digits:1"])
def test_remote_input_is_refused_naming_the_override(jobs, remote):
    with pytest.raises(CapcError) as caught:
        run(jobs / "command_job.yml", f"inputs.digits.path={remote}")
    assert "--set inputs.digits.path=LOCAL_FILE" in str(caught.value) and remote in str(caught.value)


@pytest.mark.slow
def test_remote_input_override_runs(jobs):
    remote = REMOTE
    local = (jobs / "data" / "digits.csv").relative_to(Path.cwd())  # relative to the working directory, as typed
    result = run(jobs / "command_job.yml", f"inputs.digits.path={remote}", f"inputs.digits.path={local}")
    assert result.status == "completed" and result.metrics["validation_accuracy"] > 0.8


def test_azureml_input_is_refused_before_any_run(jobs, capc_home):
    with pytest.raises(CapcError, match=r"--set inputs\.digits\.path=LOCAL_FILE"):
        run(jobs / "sweep_job.yml", "inputs.digits.path=azureml:digits:1")
    assert not (capc_home / "sweeps").exists()


@pytest.mark.parametrize(
    ("job_type", "says"),
    [("spark", r"is a Spark job; it runs on a Spark cluster.*az ml job create -f"),
     ("parallel", r"is a parallel job; it runs on Azure's parallel-run agents.*az ml job create -f")],
)
def test_job_types_that_do_not_run_locally_are_refused(jobs, job_type, says):
    path = jobs / f"{job_type}.yml"
    path.write_text(f"type: {job_type}\nexperiment_name: x\n")
    with pytest.raises(CapcError, match=says):
        run(path)


def test_undeclared_binding_is_refused(jobs):
    with pytest.raises(CapcError, match=r"\$\{\{outputs.model_output\}\}"):
        run(jobs / "command_job.yml", "outputs={}")


@pytest.mark.slow
def test_resume_keeps_finished_trials_and_runs_the_interrupted_one_again(jobs):
    """Ctrl-C once the second trial started: the first stays, the second runs again with its parameters."""
    path = jobs / "sweep_policy_job.yml"
    # 30 epochs x 0.5 s: the second trial is still running when the signal lands, even on a loaded machine
    # (with 0.1 s it had ended before it in CI-like runs).
    sets = ["limits.max_concurrent_trials=1", "early_termination=null", "inputs.epoch_pause=0.5"]
    home = Path(os.environ["CAPC_HOME"])

    def interrupt_when_second_trial_starts():
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and not list(home.glob("sweeps/*/*/trial_0001/output.log")):
            time.sleep(0.2)
        time.sleep(0.3)  # the trial is running; a short one may end soon after
        os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=interrupt_when_second_trial_starts, daemon=True).start()
    first = run(path, *sets)
    assert first.interrupted
    assert [t.status for t in first.trials] == ["completed", "interrupted"]
    second = run(path, *sets, resume=True)
    assert second.status == "completed"
    assert [t.status for t in second.trials] == ["completed", "completed"]
    assert second.trials[0].run_id == first.trials[0].run_id  # kept, not run again
    assert {t.params["alpha"] for t in second.trials} == {0.01, 5.0}


@pytest.mark.slow
def test_lightgbm_autolog_sweep_minimises_the_logged_validation_loss(jobs):
    """The trial script only calls mlflow.autolog(); capc reads the primary metric from what autologging logged
    (one value per boosting round) and lists the model it logged."""
    result = run(jobs / "sweep_lightgbm_job.yml")
    assert result.goal == "minimize" and result.metric == "validation-multi_logloss"
    completed = [t for t in result.trials if t.status == "completed"]
    assert len(completed) == 2 and all(len(t.history) == 15 for t in completed)
    assert result.value == min(t.value for t in completed)
    assert any(m.startswith("models:/") for m in result.files.models), result.files
