"""Why a search ended and which allowed algorithms got no trial: each limit of AutoML and the sweep, said in the
result, its MLflow tags and the printed lines."""

from __future__ import annotations

from dataclasses import replace
from types import SimpleNamespace

import pandas as pd
import pytest

from capc.local.automl import AutoMLSettings, run_automl
from capc.local.automl.search import TrialListener, _search_end
from capc.local.search_end import SearchEnd, SearchReport, sweep_end
from capc.state import tracking
from repo import DATA


def digits(rows: int = 150) -> pd.DataFrame:
    return pd.read_csv(DATA / "digits/digits_train.csv").sample(rows, random_state=0).reset_index(drop=True)


def job(**fields) -> AutoMLSettings:
    base = dict(task="classification", primary_metric="accuracy", target_column="label", timeout_minutes=2,
                trial_timeout_minutes=1, max_trials=3, n_cross_validations=3, enable_vote_ensemble=False,
                enable_stack_ensemble=False, allowed_algorithms=("LogisticRegression",))
    return AutoMLSettings(**{**base, **fields})


def listener(settings: AutoMLSettings, trials: int = 7) -> TrialListener:
    found = TrialListener(settings, scorer=None, folds=3, on_candidate=None)
    found.records = [object()] * trials
    return found


def test_automl_ended_by_its_time_budget_names_timeout_minutes():
    settings = job(timeout_minutes=1, enable_early_termination=False, enable_vote_ensemble=True)
    end = _search_end(settings, listener(settings), elapsed_s=48.2, search_budget=48.0)
    assert end == SearchEnd("time", "timeout_minutes 1: the search used its 48 s after 7 trials "
                                    "(the rest of timeout_minutes builds the ensembles)")


def test_automl_that_converged_early_names_early_termination():
    settings = job(timeout_minutes=1)
    end = _search_end(settings, listener(settings), elapsed_s=5.0, search_budget=60.0)
    assert end.limit == "early_termination"
    assert end.detail == "FLAML judged the search converged after 7 trials and 5 s of its 60 s (enable_early_termination)"
    # Near the end of its budget, the budget ended it, whatever FLAML's convergence test said.
    assert _search_end(settings, listener(settings), elapsed_s=59.0, search_budget=60.0).limit == "time"


def test_a_real_automl_search_ends_by_trials_then_by_exit_score_then_by_time():
    frame = digits()
    capped = run_automl(frame, job())
    assert capped.end == SearchEnd("trials", "max_trials 3 reached")
    scored = run_automl(frame, job(exit_score=0.0))
    assert scored.end.limit == "exit_score" and len(scored.candidates) == 1
    timed = run_automl(frame, job(timeout_minutes=0.05, max_trials=10_000, enable_early_termination=False))
    assert timed.end.limit == "time" and timed.end.detail.startswith("timeout_minutes 0.05: the search used its 3 s after ")


def test_allowed_algorithms_without_a_trial_are_named_with_why():
    # DecisionTree and BernoulliNaiveBayes have no local learner; KNN is allowed but max_trials 1 ends the search first.
    result = run_automl(digits(), job(max_trials=1, allowed_algorithms=("DecisionTree", "BernoulliNaiveBayes", "LightGBM", "KNN")))
    assert {c.estimator for c in result.candidates} == {"LightGBM"}
    assert result.skipped == {
        "DecisionTree": "the local engine has no learner for it (Azure would train it)",
        "BernoulliNaiveBayes": "the local engine has no learner for it (Azure would train it)",
        "KNN": "no trial: the search ended (trials: max_trials 1 reached) before FLAML tried it",
    }
    report = result.search_report()
    assert report.lines() == [
        "automl: ended by trials: max_trials 1 reached",
        "automl: skipped DecisionTree: the local engine has no learner for it (Azure would train it)",
        "automl: skipped BernoulliNaiveBayes: the local engine has no learner for it (Azure would train it)",
        "automl: skipped KNN: no trial: the search ended (trials: max_trials 1 reached) before FLAML tried it",
    ]
    assert report.to_dict()["skipped_algorithms"][0] == {"algorithm": "DecisionTree", "reason": "the local engine has no learner for it (Azure would train it)"}
    tags = report.tags()
    assert tags[tracking.STOP_LIMIT_TAG] == "trials" and tags[tracking.STOP_REASON_TAG] == "max_trials 1 reached"
    assert tags[tracking.SKIPPED_TAG].startswith("DecisionTree: the local engine has no learner")
    assert tags[tracking.NOTE_TAG].splitlines()[:2] == report.lines()[:2]


def test_a_search_that_tried_every_allowed_algorithm_skips_nothing():
    result = run_automl(digits(), job(max_trials=2))
    assert result.skipped == {} and not any(line.startswith("automl: skipped") for line in result.search_report().lines())


@pytest.mark.parametrize("stopped_because, grid, counts, expected", [
    ("max_total_trials", None, {}, SearchEnd("trials", "max_total_trials 6 reached")),
    ("max_total_trials", None, {"early_terminated": 2}, SearchEnd(
        "trials", "max_total_trials 6 reached, 2 of them stopped early by the early-termination policy")),
    ("max_total_trials", 4, {}, SearchEnd("trials", "all 4 grid combinations ran")),
    ("timeout", None, {}, SearchEnd("time", "limits.timeout passed (90 s); running trials were cancelled")),
    ("interrupted", None, {}, SearchEnd("interrupted", "capc was stopped; finished trials are kept")),
])
def test_each_sweep_limit_is_named(stopped_because, grid, counts, expected):
    assert sweep_end(stopped_because, 6 if grid is None else grid, 90.0, counts, grid) == expected


def test_automl_for_images_names_its_own_settings():
    settings = ("max_trials", "timeout_minutes")
    assert sweep_end("max_total_trials", 4, 600.0, {}, settings=settings) == SearchEnd("trials", "max_trials 4 reached")
    assert sweep_end("timeout", 4, 600.0, {}, settings=settings).detail == "timeout_minutes passed (600 s); running trials were cancelled"


def test_an_unknown_limit_is_refused():
    with pytest.raises(ValueError):
        SearchEnd("patience", "")


def test_sweep_report_of_a_real_result(tmp_path):
    from capc.local.submit import _sweep_report

    plan = SimpleNamespace(algorithm="random", search_space={}, max_total_trials=2, timeout_s=None)
    result = SimpleNamespace(stopped_because="max_total_trials", counts=lambda: {"completed": 2})
    report = _sweep_report("sweep", result, plan)
    assert report == SearchReport("sweep", SearchEnd("trials", "max_total_trials 2 reached"))
    assert report.lines() == ["sweep: ended by trials: max_total_trials 2 reached"]
    assert replace(report, engine="sweep_svc").lines()[0].startswith("sweep_svc: ")


def test_skipped_algorithms_reach_the_result_runs_mlflow_and_the_report(workdir):
    """The issue's case: DecisionTree, BernoulliNaiveBayes and LightGBM allowed; only LightGBM runs here."""
    import json

    from click.testing import CliRunner

    from capc.cli import cli
    from repo import digits_spec

    spec = digits_spec(workdir, automl="{timeout_minutes: 1, max_trials: 2, allowed_models: [DecisionTree, BernoulliNaiveBayes, LightGBM]}")
    runner = CliRunner()
    result = runner.invoke(cli, ["submit", str(spec), "--only", "automl", "--json", "--out", str(workdir / "generated")])
    assert result.exit_code == 0, result.output
    automl = json.loads(result.stdout)["searches"]["automl"]
    assert automl["stop_reason"] == {"limit": "trials", "detail": "max_trials 2 reached"}
    no_learner = "the local engine has no learner for it (Azure would train it)"
    assert automl["skipped_algorithms"] == [{"algorithm": "DecisionTree", "reason": no_learner},
                                            {"algorithm": "BernoulliNaiveBayes", "reason": no_learner}]
    runs = json.loads(runner.invoke(cli, ["runs", "digits-small", "--json"]).stdout)
    automl_run = next(r for r in runs if r["kind"] == "automl")
    assert automl_run["search"] == {"stop_limit": "trials", "stop_reason": "max_trials 2 reached",
                                    "skipped_algorithms": f"DecisionTree: {no_learner}; BernoulliNaiveBayes: {no_learner}"}
    table = runner.invoke(cli, ["runs", "digits-small"]).stdout
    assert f"{automl_run['run_id'][:8]} automl: skipped DecisionTree: {no_learner}; BernoulliNaiveBayes" in table
    tags = tracking.client().get_run(automl_run["run_id"]).data.tags
    assert tags[tracking.NOTE_TAG].startswith("automl: ended by trials: max_trials 2 reached\nautoml: skipped DecisionTree: ")
    report = runner.invoke(cli, ["report", "digits-small", "--out", str(workdir / "report.html")])
    assert report.exit_code == 0, report.output
    html = (workdir / "report.html").read_text()
    assert "How the searches ended" in html and "automl: ended by trials: max_trials 2 reached" in html
    assert f"automl: skipped DecisionTree: {no_learner}; BernoulliNaiveBayes: {no_learner}" in html
    assert "no spec file" not in report.output + html  # the spec section says it once, plainly
