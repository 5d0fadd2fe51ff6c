"""`capc submit` on the local engine, end to end through the CLI, on small samples of the real data."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from capc.cli import cli
from repo import REPO, csv_head, digits_spec


def _digits_spec(workdir: Path, extra: str = "") -> Path:
    return digits_spec(workdir, extra=extra)


def _invoke(*args):
    result = CliRunner().invoke(cli, [str(a) for a in args])
    return result


def test_sweep_only_registers_the_best_trial(workdir):
    spec = _digits_spec(workdir)
    result = _invoke("submit", spec, "--only", "sweep", "--json", "--out", workdir / "generated")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout[result.stdout.index("{"):])
    assert payload["winner"] == "sweep"
    assert payload["model"]["name"] == "digits-small" and payload["model"]["version"] == 1
    assert 0.5 < payload["model"]["value"] <= 1.0

    models = json.loads(_invoke("models", "list", "--json").stdout)
    assert [(m["name"], m["version"], m["source"]) for m in models] == [("digits-small", 1, "sweep")]
    assert Path(models[0]["model_dir"], "MLmodel").is_file()

    board = json.loads(_invoke("leaderboard", "digits-small", "--json").stdout)
    values = [r["metrics"]["accuracy"] for r in board["runs"]]
    assert len(values) == 2 and values == sorted(values, reverse=True)

    runs = json.loads(_invoke("runs", "digits-small", "--json").stdout)
    assert {r["kind"] for r in runs} == {"submit", "sweep", "trial"}

    # No serving budget: the winner is chosen as before and measured through score.py; only it, since no other
    # candidate could win. Its figures are in the result, the registry, the leaderboard and `capc runs`.
    serving = payload["selection"]["serving"]
    assert serving["serving_p99_ms"] > 0 and serving["serving_rows_per_s"] > 0 and payload["selection"]["passed_over"] == []
    assert payload["model"]["metrics"]["serving_p99_ms"] == serving["serving_p99_ms"]
    measured = [r for r in board["runs"] if "serving_p99_ms" in r["metrics"]]
    assert [r["run_id"] for r in measured] == [payload["winner_run_id"]] == [board["runs"][0]["run_id"]]
    table = _invoke("leaderboard", "digits-small").output
    assert "p99 ms" in table and "rows/s" in table
    assert "serving_p99_ms" in _invoke("runs", "digits-small").output


@pytest.mark.slow
def test_no_candidate_within_the_serving_budget_is_exit_1_naming_the_fastest(workdir):
    spec = _digits_spec(workdir, extra="deployment: {max_latency_ms: 0.0001}\n")
    result = _invoke("submit", spec, "--only", "sweep", "--out", workdir / "generated")
    assert result.exit_code == 1, result.output
    assert "no candidate fits the serving budget (p99 latency <= 0.0001 ms) among 2; the fastest is trial" in result.output
    assert "sweep: ended by trials: all 2 grid combinations ran" in result.output  # said though no result is printed
    assert "Traceback" not in result.output
    assert json.loads(_invoke("models", "list", "--json").stdout) == []
    board = json.loads(_invoke("leaderboard", "digits-small", "--json").stdout)["runs"]
    assert all("serving_p99_ms" in r["metrics"] for r in board)  # both measured, both recorded


@pytest.mark.slow
def test_automl_under_a_size_budget_registers_an_in_budget_learner_and_names_what_it_passed_over(workdir):
    """Ensembles of several FLAML models weigh megabytes, a single learner a fraction of one (a size budget is
    deterministic where latency on a shared machine is not): the registered model is each learner's best that
    fits, and every better candidate is named with its size."""
    spec = _digits_spec(workdir, extra="deployment: {max_model_mb: 1}\n")
    spec.write_text(spec.read_text().replace("max_trials: 4", "max_trials: 6"))
    result = _invoke("submit", spec, "--only", "automl", "--json", "--out", workdir / "generated")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout[result.stdout.index("{"):])
    selection = payload["selection"]
    assert selection["budget"] == "model <= 1 MB" and selection["serving"]["serving_size_mb"] <= 1
    passed = selection["passed_over"]
    assert passed and all("Ensemble" in p["label"] and p["reasons"][0].endswith("MB > 1 MB") for p in passed)
    assert all(p["value"] > payload["model"]["value"] for p in passed)
    board = json.loads(_invoke("leaderboard", "digits-small", "--json").stdout)["runs"]
    winner = next(r for r in board if r["run_id"] == payload["winner_run_id"])
    assert winner["kind"] == "candidate" and "Ensemble" not in winner["name"] and "serving_p99_ms" in winner["metrics"]


def test_second_submit_gets_the_next_version(workdir):
    spec = _digits_spec(workdir)
    for _ in range(2):
        assert _invoke("submit", spec, "--only", "sweep", "--out", workdir / "generated").exit_code == 0
    versions = [m["version"] for m in json.loads(_invoke("models", "list", "--json").stdout)]
    assert versions == [1, 2]


def test_set_override_is_validated_and_leaves_generated_alone(workdir):
    spec = _digits_spec(workdir)
    bad = _invoke("submit", spec, "--set", "sweep.limits.max_total_trials=many", "--out", workdir / "generated")
    assert bad.exit_code == 1
    assert "--set:1:1: sweep.limits.max_total_trials: expected a whole number" in bad.stderr
    assert "Traceback" not in bad.output
    ok = _invoke("submit", spec, "--only", "sweep", "--set", "sweep.limits.max_total_trials=1", "--json", "--out", workdir / "generated")
    assert ok.exit_code == 0, ok.output
    assert not (workdir / "generated").exists(), "an overridden run must not rewrite the committed build"
    board = json.loads(_invoke("leaderboard", "digits-small", "--json").stdout)
    assert len(board["runs"]) == 1


def test_one_class_target_is_a_clear_error(workdir):
    data = workdir / "data/one.csv"
    data.parent.mkdir(parents=True)
    data.write_text("a,b,y\n" + "".join(f"{i},{i * 2},yes\n" for i in range(50)))
    spec = workdir / "one.yaml"
    spec.write_text(
        "name: one-class\ndataset: {path: data/one.csv, format: csv, target: y}\n"
        "task: classification\nmetric: accuracy\nautoml: {timeout_minutes: 1}\n"
    )
    result = _invoke("submit", spec, "--out", workdir / "generated")
    assert result.exit_code == 1
    assert "holds one class only" in result.stderr
    assert "Traceback" not in result.output
    assert _invoke("models", "list", "--json").stdout.strip() == "[]"


def test_missing_data_file_is_reported_before_anything_runs(workdir):
    spec = _digits_spec(workdir)
    os.remove(workdir / "data/digits.csv")
    result = _invoke("submit", spec, "--out", workdir / "generated")
    assert result.exit_code == 1
    assert "dataset.path: data file `data/digits.csv` not found" in result.stderr


@pytest.mark.slow
@pytest.mark.parametrize(
    "name,source,target,task,metric,rows",
    [
        ("bank-small", "bankmarketing/bankmarketing_train.csv", "y", "classification", "AUC_weighted", 1500),
        ("housing-small", "housing/housing.csv", "median_house_value", "regression", "normalized_mean_absolute_error", 1500),
    ],
)
def test_automl_and_sweep_end_to_end(workdir, name, source, target, task, metric, rows):
    csv_head(REPO / "specs/data" / source, workdir / "data/train.csv", rows)
    spec = workdir / f"{name}.yaml"
    spec.write_text(
        f"name: {name}\ndataset: {{path: data/train.csv, format: csv, target: {target}, validation_fraction: 0.2}}\n"
        f"task: {task}\nmetric: {metric}\nautoml: {{timeout_minutes: 1, max_trials: 6}}\n"
        "sweep:\n  model: lightgbm\n  sampling: random\n"
        "  search_space: {n_estimators: 'choice(50, 100)', learning_rate: 'uniform(0.05, 0.2)'}\n"
        "  early_termination: {type: bandit, slack_factor: 0.2}\n"
        "  limits: {max_total_trials: 2, max_concurrent_trials: 1}\n"
    )
    result = _invoke("submit", spec, "--json", "--out", workdir / "generated")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout[result.stdout.index("{"):])
    assert {r["source"] for r in payload["results"]} == {"automl", "sweep"}
    values = {r["source"]: r["value"] for r in payload["results"]}
    best = max(values.values()) if metric == "AUC_weighted" else min(values.values())
    assert payload["model"]["value"] == best


# ---------------------------------------------------------------- AutoML and the sweep side by side


def _runs(name: str) -> list[dict]:
    return json.loads(_invoke("runs", name, "--json").stdout)


def _interval(run: dict) -> tuple[float, float]:
    return run["start"], run["start"] + run["duration_s"]


@pytest.mark.slow
def test_automl_and_sweep_overlap_in_time_and_both_are_recorded(workdir):
    from capc.local.cores import side_by_side, usable_cores

    spec = _digits_spec(workdir)
    result = _invoke("submit", spec, "--json", "--out", workdir / "generated")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout[result.stdout.index("{"):])
    assert {r["source"] for r in payload["results"]} == {"automl", "sweep"}
    assert payload["model"]["value"] == max(r["value"] for r in payload["results"])

    runs = _runs("digits-small")
    by_kind = {kind: [r for r in runs if r["kind"] == kind] for kind in ("submit", "automl", "sweep", "trial", "candidate")}
    assert [r["status"] for r in by_kind["submit"] + by_kind["automl"] + by_kind["sweep"]] == ["completed"] * 3
    assert len(by_kind["trial"]) == 2 and len(by_kind["candidate"]) >= 4
    automl_start, automl_end = _interval(by_kind["automl"][0])
    sweep_start, sweep_end = _interval(by_kind["sweep"][0])
    assert automl_start < sweep_end and sweep_start < automl_end  # the two runs overlap in time
    if side_by_side(usable_cores()):  # and a sweep trial ran while AutoML searched
        assert min(t["start"] for t in by_kind["trial"]) < automl_end


@pytest.mark.slow
def test_interrupt_while_both_run_then_resume(workdir):
    """Ctrl-C while AutoML searches and the sweep has finished a trial; --resume keeps that trial and finishes."""
    import signal
    import subprocess
    import sys
    import time

    spec = _digits_spec(workdir, extra="")
    text = spec.read_text().replace("automl: {timeout_minutes: 1, max_trials: 4}", "automl: {timeout_minutes: 1, max_trials: 1000}")
    text = text.replace("search_space: {C: 'choice(0.5, 2.0)', max_iter: 'choice(50)'}", "search_space: {C: 'choice(0.5, 1.0, 2.0, 4.0)', max_iter: 'choice(50)'}")
    spec.write_text(text.replace("max_total_trials: 2,", "max_total_trials: 4,"))
    argv = [sys.executable, "-m", "capc", "submit", str(spec), "--json", "--out", str(workdir / "generated")]
    sweeps = workdir / "home" / "sweeps" / "digits-small"
    process = subprocess.Popen(argv, cwd=workdir, env=dict(os.environ), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 50  # within AutoML's minute
        while not list(sweeps.glob("*/trial_0001")) and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.2)  # trial_0001 exists once trial 0 finished (one sweep trial at a time beside AutoML)
        assert list(sweeps.glob("*/trial_0001")), "the sweep finished no trial while AutoML ran"
        assert process.poll() is None
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 130, stderr
    assert "--resume" in stderr and "Traceback" not in stderr

    runs = _runs("digits-small")
    status = {kind: [r["status"] for r in runs if r["kind"] == kind] for kind in ("submit", "automl", "sweep")}
    assert status == {"submit": ["interrupted"], "automl": ["interrupted"], "sweep": ["interrupted"]}
    first_trials = {r["name"]: r for r in runs if r["kind"] == "trial" and r["status"] == "completed"}
    assert "trial_0" in first_trials
    assert json.loads(_invoke("models", "list", "--json").stdout) == []
    automl_start, automl_end = _interval(next(r for r in runs if r["kind"] == "automl"))
    assert first_trials["trial_0"]["start"] < automl_end  # the finished trial ran beside AutoML

    resumed = _invoke("submit", spec, "--resume", "--json", "--out", workdir / "generated")
    assert resumed.exit_code == 0, resumed.output
    payload = json.loads(resumed.stdout[resumed.stdout.index("{"):])
    assert {r["source"] for r in payload["results"]} == {"automl", "sweep"} and payload["model"]["version"] == 1
    trials = [r for r in _runs("digits-small") if r["kind"] == "trial" and r["status"] == "completed"]
    assert len(trials) == 4  # every grid point once: the finished ones were not run again
    for name, run in first_trials.items():
        assert [r["run_id"] for r in trials if r["name"] == name] == [run["run_id"]]
