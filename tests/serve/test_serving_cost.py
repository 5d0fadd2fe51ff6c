"""Serving cost (capc.serving_cost): candidates measured through the generated score.py, and the budget rule."""

from __future__ import annotations

import json
import sys
from types import SimpleNamespace

import pytest

from capc import serving_cost
from capc.serving_cost import Budget, Contender, NoCandidateFits, ServingCost
from bank_models import save_sleeping_model
from serve_fixtures import bank_frame, generated_job_dir, save_model

SLEEP_S = 0.03
# The select step runs in a process of its own on a shared machine, where p99 swings by tens of ms: a wide margin.
SLOWER_SLEEP_S, SELECT_BUDGET_MS = 0.3, 150


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """The generated bankmarketing score.py, a fast model and the same model wrapped in a sleep."""
    root = tmp_path_factory.mktemp("serving_cost")
    job = generated_job_dir(root / "generated")
    fast = save_model(root / "fast", pip_requirements=[])
    slow = save_sleeping_model(root / "slow", fast, SLEEP_S)
    slower = save_sleeping_model(root / "slower", fast, SLOWER_SLEEP_S)
    records = serving_cost.request_records(bank_frame(50).drop(columns="y"))
    return SimpleNamespace(job=job, fast=fast, slow=slow, slower=slower, records=records)


def test_a_sleeping_model_is_measured_slow(served):
    job, fast, slow, records = served.job, served.fast, served.slow, served.records
    fast_cost = serving_cost.measure(str(job / "score.py"), str(fast), records)
    slow_cost = serving_cost.measure(str(job / "score.py"), str(slow), records)
    assert slow_cost.p50_ms >= SLEEP_S * 1000 and slow_cost.p99_ms >= SLEEP_S * 1000
    assert fast_cost.p99_ms < slow_cost.p50_ms
    assert slow_cost.calls >= serving_cost.MIN_SINGLE_ROW_CALLS
    # the 1,000-row request is one call: one sleep, not a thousand
    assert slow_cost.rows_per_s > 1000 / (SLEEP_S * 1000) * 10
    assert fast_cost.size_mb > 0 and fast_cost.load_s > 0
    assert set(fast_cost.metrics()) == {f"serving_{k}" for k in ("load_s", "size_mb", "memory_mb", "p50_ms", "p99_ms", "rows_per_s", "calls")}
    assert ServingCost.from_metrics(fast_cost.metrics()) == fast_cost


def test_a_model_score_py_cannot_answer_is_a_measure_error(served, tmp_path):
    job, fast = served.job, served.fast
    with pytest.raises(serving_cost.MeasureError, match=r"HTTP 400.*expected a number"):
        serving_cost.measure(str(job / "score.py"), str(fast), [{**bank_frame(1).drop(columns="y").iloc[0].to_dict(), "age": "old"}])


def _cost(p99_ms: float, size_mb: float = 1.0) -> ServingCost:
    return ServingCost(load_s=0.1, size_mb=size_mb, memory_mb=5.0, p50_ms=p99_ms / 2, p99_ms=p99_ms, rows_per_s=1e4, calls=50)


def _contenders(tmp_path, p99s: dict[str, float], values: dict[str, float]) -> list[Contender]:
    out = []
    for name, value in values.items():
        folder = tmp_path / name
        folder.mkdir()
        (folder / "MLmodel").write_text("flavors: {}\n")
        out.append(Contender(name, value, str(folder)))
    return out


def test_selection_under_a_budget_picks_the_best_in_budget_and_says_what_it_passed_over(tmp_path):
    p99 = {"ensemble": 80.0, "lightgbm": 6.0, "forest": 12.0, "logistic": 1.0}
    contenders = _contenders(tmp_path, p99, {"ensemble": 0.92, "lightgbm": 0.915, "forest": 0.917, "logistic": 0.90})
    measured = []

    def measure_one(c):
        measured.append(c.name)
        return _cost(p99[c.name])

    choice = serving_cost.choose(contenders, "maximize", Budget(max_latency_ms=10), measure_one)
    assert choice.chosen.name == "lightgbm"
    assert [c.name for c in choice.passed_over] == ["ensemble", "forest"]
    assert measured == ["ensemble", "forest", "lightgbm"]  # logistic cannot win any more: not measured
    assert "passed over ensemble (0.92): p99 latency 80.0 ms > 10 ms" in choice.explanation()
    assert choice.chosen.cost.p99_ms == 6.0


def test_without_a_budget_the_best_wins_and_only_it_is_measured(tmp_path):
    contenders = _contenders(tmp_path, {}, {"a": 0.3, "b": 0.2})
    choice = serving_cost.choose(contenders, "minimize", Budget(), lambda c: _cost(50.0))
    assert choice.chosen.name == "b" and choice.passed_over == [] and [c.name for c in choice.measured] == ["b"]


def test_a_tie_on_the_metric_goes_to_the_faster_candidate(tmp_path):
    # The two engines average their folds differently: the same rows right can differ in the fifth decimal.
    p99 = {"knn": 95.0, "svc": 5.0, "logistic": 1.0}
    contenders = _contenders(tmp_path, p99, {"knn": 0.98609, "svc": 0.98608, "logistic": 0.96})
    measured = []

    def measure_one(c):
        measured.append(c.name)
        return _cost(p99[c.name])

    choice = serving_cost.choose(contenders, "maximize", Budget(), measure_one)
    assert choice.chosen.name == "svc" and [c.name for c in choice.ties] == ["knn"] and choice.passed_over == []
    assert measured == ["knn", "svc"]  # the tie is measured, the worse model is not
    assert "tied with knn (0.98609), which serves slower (p99 95.0 ms): the faster one wins" in choice.explanation()


def test_a_difference_of_one_row_is_no_tie(tmp_path):
    p99 = {"knn": 95.0, "svc": 5.0}
    contenders = _contenders(tmp_path, p99, {"knn": 1418 / 1437, "svc": 1417 / 1437})
    choice = serving_cost.choose(contenders, "maximize", Budget(), lambda c: _cost(p99[c.name]))
    assert choice.chosen.name == "knn" and choice.ties == []


def test_a_tie_over_budget_stays_passed_over(tmp_path):
    p99 = {"a": 5.0, "b": 50.0}
    contenders = _contenders(tmp_path, p99, {"a": 0.5, "b": 0.5})
    choice = serving_cost.choose(contenders, "minimize", Budget(max_latency_ms=10), lambda c: _cost(p99[c.name]))
    assert choice.chosen.name == "a" and choice.ties == []


def test_a_model_over_the_size_budget_is_passed_over_without_timing(tmp_path):
    contenders = _contenders(tmp_path, {}, {"big": 0.9, "small": 0.8})
    (tmp_path / "big" / "model.pkl").write_bytes(b"\0" * 2 * 2**20)
    choice = serving_cost.choose(contenders, "maximize", Budget(max_model_mb=1), lambda c: _cost(1.0, serving_cost.folder_mb(c.model_dir)))
    assert choice.chosen.name == "small"
    assert choice.passed_over[0].passed_over == ["model 2.0 MB > 1 MB"] and choice.passed_over[0].cost is None


def test_no_candidate_fits_names_the_fastest(tmp_path):
    p99 = {"a": 40.0, "b": 30.0, "c": 35.0}
    contenders = _contenders(tmp_path, p99, {"a": 0.9, "b": 0.8, "c": 0.7})
    with pytest.raises(NoCandidateFits, match=r"no candidate fits the serving budget \(p99 latency <= 5 ms\) among 3; the fastest is b \(0\.8\) with p99 30\.0 ms"):
        serving_cost.choose(contenders, "maximize", Budget(max_latency_ms=5), lambda c: _cost(p99[c.name]))


def _candidate_output(root, model, value: float):
    """An engine step's output as the pipeline binds it: the model folder and its metrics.json."""
    import shutil

    shutil.copytree(model, root / "model")
    (root / "metrics.json").write_text(f'{{"metric": "accuracy", "value": {value}}}')
    return root


def _select(job, tmp_path, automl, sweep, *budget: str):
    import subprocess

    from serve_fixtures import DATA

    command = [
        sys.executable, "select/select_best.py", "--candidate", f"automl={automl}", "--candidate", f"sweep={sweep}",
        "--metric", "accuracy", "--goal", "maximize", "--model_name", "bank", "--score", "score.py",
        "--training_data", str(DATA), "--target", "y", *budget, "--output", str(tmp_path / "winner"), "--no_register",
    ]
    return subprocess.run(command, cwd=job, capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_the_pipelines_select_step_applies_the_budget(served, tmp_path):
    """The generated select/select_best.py, run as the pipeline runs it (in the job folder): the better AutoML model
    sleeps, so under the budget the sweep's wins and the AutoML one is named as passed over; under 0.001 ms
    nothing fits and the step fails naming the fastest."""
    job = served.job
    automl = _candidate_output(tmp_path / "automl", served.slower, 0.95)
    sweep = _candidate_output(tmp_path / "sweep", served.fast, 0.90)
    done = _select(job, tmp_path, automl, sweep, "--max_latency_ms", str(SELECT_BUDGET_MS))
    assert done.returncode == 0, done.stderr
    winner = json.loads((tmp_path / "winner" / "winner.json").read_text())
    assert winner["source"] == winner["candidate"] == "sweep" and winner["serving"]["serving_p99_ms"] <= SELECT_BUDGET_MS
    assert winner["passed_over"][0]["source"] == "automl" and "p99 latency" in winner["passed_over"][0]["reasons"][0]
    assert "passed over automl (0.95): p99 latency" in done.stdout
    assert (tmp_path / "winner" / "model" / "MLmodel").is_file()

    failed = _select(job, tmp_path, automl, sweep, "--max_latency_ms", "0.001")
    assert failed.returncode == 1
    assert "error: no candidate fits the serving budget (p99 latency <= 0.001 ms) among 2; the fastest is sweep (0.9)" in failed.stderr
    assert "Traceback" not in failed.stderr
