"""Reproducible mode and the run's seed (capc.local.reproducible), against the real sweep engine and MLflow store.

The trial script draws its value from numpy's global generator after seeding it with CAPC_SEED (as capc's own
trial scripts do with --seed), so a trial's value depends on the seed and its parameter only; how long it sleeps
depends on ORDER, which the two runs set opposite ways, so the same two concurrent trials finish in a different
order each time.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from capc.errors import CapcError
from capc.local.reproducible import RunSeed, run_seed, sweep_job
from capc.local.sweep import run_sweep

TRIAL_SCRIPT = textwrap.dedent(
    """
    import argparse, os, time
    import mlflow
    import numpy as np

    parser = argparse.ArgumentParser()
    parser.add_argument("--data", required=True)
    parser.add_argument("--x", type=float, required=True)
    args = parser.parse_args()
    np.random.seed(int(os.environ["CAPC_SEED"]))
    value = float(np.random.uniform()) * args.x
    time.sleep(0.2 + (args.x if os.environ["ORDER"] == "slow_large" else 1.0 - args.x) * 1.5)
    with mlflow.start_run():
        mlflow.log_metric("accuracy", value, step=1)
        os.makedirs("outputs/model", exist_ok=True)
        open("outputs/model/MLmodel", "w").write("flavors: {}\\n")
    with open(os.environ["FINISHED_LOG"], "a") as handle:
        handle.write(f"{args.x!r}\\n")
    """
)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    from mlflow import MlflowClient

    root = tmp_path_factory.mktemp("store")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    return {"uri": uri, "client": client, "experiment_id": client.create_experiment("reproducible-tests")}


def _job(order: str, finished_log: Path, algorithm="random") -> dict:
    return {
        "type": "sweep",
        "inputs": {"training_data": {"type": "uri_file", "path": "data.csv"}},
        "trial": {
            "code": "./src",
            "command": "python train.py --data ${{inputs.training_data}} --x ${{search_space.x}}",
            "environment_variables": {"ORDER": order, "FINISHED_LOG": str(finished_log)},
        },
        "sampling_algorithm": algorithm,
        "search_space": {"x": {"type": "uniform", "min_value": 0.0, "max_value": 1.0}},
        "objective": {"goal": "maximize", "primary_metric": "accuracy"},
        "early_termination": {"type": "bandit", "slack_factor": 0.1, "evaluation_interval": 1, "delay_evaluation": 0},
        "limits": {"max_total_trials": 4, "max_concurrent_trials": 2, "timeout": 600, "trial_timeout": 120},
    }


def _run(store, tmp_path: Path, order: str) -> tuple:
    job_dir = tmp_path / order
    (job_dir / "src").mkdir(parents=True)
    (job_dir / "src" / "train.py").write_text(TRIAL_SCRIPT)
    (job_dir / "data.csv").write_text("a,b\n1,2\n")
    finished = job_dir / "finished.txt"
    notes: list[str] = []
    job = sweep_job(_job(order, finished), RunSeed(7, reproducible=True), notes)
    parent = store["client"].create_run(store["experiment_id"]).info.run_id
    result = run_sweep(job, job_dir, job_dir / "trials", store["uri"], store["experiment_id"], parent, launch_mode="spawn")
    return result, [float(line) for line in finished.read_text().split()], notes


def test_two_concurrent_trials_finishing_in_another_order_give_the_same_sweep(store, tmp_path):
    first, finished_first, notes = _run(store, tmp_path, "slow_large")
    second, finished_second, _ = _run(store, tmp_path, "slow_small")
    # The same trials: trial k got the same parameter and the same value, to the last digit.
    assert [(t.number, t.params, t.value, t.status) for t in first.trials] == [(t.number, t.params, t.value, t.status) for t in second.trials]
    assert len(first.trials) == 4 and all(t.status == "completed" for t in first.trials)
    assert first.best.number == second.best.number and first.best.value == second.best.value
    # ...although the trials finished in another order (the first pair of concurrent trials swapped).
    assert finished_first != finished_second
    assert sorted(finished_first[:2]) == sorted(finished_second[:2]) and finished_first[:2] == finished_second[:2][::-1]
    assert any("early-termination policy is off" in note for note in notes)


def test_sweep_job_under_a_seed_seeds_the_sampler_and_every_trial():
    job = sweep_job(_job("slow_large", Path("x")), RunSeed(11))
    assert job["sampling_algorithm"] == {"type": "random", "seed": 11}
    assert job["trial"]["environment_variables"]["CAPC_SEED"] == "11"
    assert job["early_termination"]  # only reproducible mode turns the policy off
    assert "OMP_NUM_THREADS" not in job["trial"]["environment_variables"]
    seeded = _job("slow_large", Path("x"))
    seeded["sampling_algorithm"] = {"type": "random", "seed": 3}
    assert sweep_job(seeded, RunSeed(11))["sampling_algorithm"]["seed"] == 3  # the job's own seed wins


def test_reproducible_bayesian_runs_one_trial_at_a_time_and_pins_threads():
    notes: list[str] = []
    job = sweep_job(_job("slow_large", Path("x"), algorithm="bayesian"), RunSeed(5, reproducible=True), notes)
    assert job["limits"]["max_concurrent_trials"] == 1
    assert job["trial"]["environment_variables"]["OMP_NUM_THREADS"] == "1"
    assert "early_termination" not in job
    assert any("one trial at a time" in note for note in notes)


def test_reproducible_without_a_seed_is_refused_and_an_unseeded_run_draws_one():
    with pytest.raises(CapcError) as refused:
        run_seed(None, reproducible=True)
    assert refused.value.message == "--reproducible needs a seed: two runs give the same results only from the same seed."
    assert "--set seed=N" in refused.value.hint
    drawn = run_seed(None, reproducible=False)
    assert drawn.drawn and 0 <= drawn.seed < 2**31 and "drawn for this run" in drawn.notes()[0]
    assert run_seed(7, reproducible=True) == RunSeed(7, drawn=False, reproducible=True)


def test_reproducible_automl_gives_the_same_candidates_and_model_twice():
    """The local AutoML search with a seed and no clock: the same candidates (learner, parameters, every metric to
    the last digit), the same best, and a model whose predictions are equal, on two runs with other thread counts
    asked for (reproducible mode pins one)."""
    import numpy as np
    import pandas as pd

    from capc.local.automl import AutoMLSettings, run_automl
    from capc.local.reproducible import automl_settings
    from repo import DATA

    frame = pd.read_csv(DATA / "bankmarketing/bankmarketing_train.csv").sample(600, random_state=0).reset_index(drop=True)
    results = []
    for threads in (1, 2):
        job = AutoMLSettings(task="classification", primary_metric="accuracy", target_column="y", n_cross_validations=3,
                             timeout_minutes=1, max_trials=5, allowed_algorithms=("LightGBM", "ExtremeRandomTrees", "LogisticRegression"),
                             threads=threads)
        job = automl_settings(job, RunSeed(7, reproducible=True))
        assert job.threads == 1 and job.seed == 7
        results.append(run_automl(frame, job))
    first, second = results
    assert [(c.estimator, c.params, c.value, c.metrics) for c in first.candidates] == [(c.estimator, c.params, c.value, c.metrics) for c in second.candidates]
    assert first.best.index == second.best.index
    rows = frame.drop(columns=["y"])
    assert np.array_equal(first.model.predict_proba(rows), second.model.predict_proba(rows))
    assert any("starts cold" in note for note in first.notes) and any("no time budget" in note for note in first.notes)
