"""Limits that can never bind: warnings on Spec.warnings, located, and errors under `--strict`."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from capc.cli import cli
from capc.spec import load_spec

from repo import REFERENCE_SPECS
from repo import write_spec as write

BASE = """\
name: bank-demo
dataset:
  path: data/bank.csv
  format: csv
  target: y
task: classification
metric: accuracy
"""


def warnings(path: Path, overrides: list[str] | None = None) -> list[str]:
    return [str(w) for w in load_spec(path, overrides).warnings]


@pytest.mark.parametrize("path", REFERENCE_SPECS, ids=lambda p: p.stem)
def test_reference_specs_have_no_idle_limit(path):
    assert warnings(path) == []


def test_trial_timeouts_at_or_above_the_whole_budget(workdir):
    path = write(workdir, BASE + "automl:\n  timeout_minutes: 1\nsweep:\n  model: lightgbm\n  search_space: {n_estimators: \"choice(10, 20)\"}\n  limits: {timeout_minutes: 20}\n")
    assert warnings(path) == [
        f"{path}:9:3: automl.trial_timeout_minutes: trial_timeout_minutes 20 can never bind: the whole AutoML job stops at "
        "timeout_minutes 1 (set trial_timeout_minutes below timeout_minutes, so one slow candidate cannot take the whole budget)",
        f"{path}:13:11: sweep.limits.trial_timeout_minutes: trial_timeout_minutes 20 can never bind: the whole sweep stops at "
        "timeout_minutes 20 (set trial_timeout_minutes below timeout_minutes, so one slow trial cannot take the whole budget)",
    ]


def test_a_disabled_job_has_no_limits_to_bind(workdir):
    path = write(workdir, BASE + "automl:\n  enabled: false\n  timeout_minutes: 1\n")
    assert warnings(path) == []


def test_more_trials_at_once_than_trials_in_all(workdir):
    path = write(workdir, BASE + "automl:\n  max_trials: 2\n  max_concurrent_trials: 3\n  enable_early_termination: false\n"
                 "sweep:\n  model: lightgbm\n  search_space: {n_estimators: \"choice(10, 20)\"}\n"
                 "  limits: {max_total_trials: 1, max_concurrent_trials: 2}\n")
    assert warnings(path) == [
        f"{path}:10:26: automl.max_concurrent_trials: max_concurrent_trials 3 can never bind: AutoML tries at most max_trials 2 "
        "candidates (lower it to 2 or fewer)",
        f"{path}:15:56: sweep.limits.max_concurrent_trials: max_concurrent_trials 2 can never bind: the sweep runs at most "
        "max_total_trials 1 trials (lower it to 1 or fewer)",
    ]


def test_automl_early_termination_within_azures_window(workdir):
    path = write(workdir, BASE + "automl:\n  max_trials: 20\n")
    assert warnings(path) == [
        f"{path}:9:3: automl.enable_early_termination: enable_early_termination can never bind on Azure: it stops a job "
        "after 20 trials without improvement, and max_trials is 20 (raise max_trials above 20, or set enable_early_termination: false)"
    ]
    assert warnings(write(workdir, BASE + "automl:\n  max_trials: 21\n")) == []


def test_a_grid_smaller_than_max_total_trials(workdir):
    path = write(workdir, BASE + "sweep:\n  model: lightgbm\n  sampling: grid\n  search_space: {n_estimators: \"choice(10, 20)\", num_leaves: \"choice(7, 15)\"}\n"
                 "  limits: {max_total_trials: 5, max_concurrent_trials: 2}\n")
    assert warnings(path) == [
        f"{path}:12:30: sweep.limits.max_total_trials: max_total_trials 5 can never bind: the grid has 4 combination(s), "
        "and grid sampling runs each once (lower it to 4, or add choices)"
    ]


def test_a_policy_on_a_family_that_reports_once(workdir):
    path = write(workdir, BASE + "sweep:\n  model: svc\n  search_space: {C: \"uniform(0.5, 2)\"}\n  early_termination: {type: bandit, slack_factor: 0.1}\n")
    assert warnings(path) == [
        f"{path}:11:22: sweep.early_termination: the bandit policy can never stop a trial early: svc reports the metric once "
        "per trial (one fit) (remove early_termination, or sweep a family that reports as it trains (`capc families`))"
    ]


def test_a_policy_that_applies_only_after_the_last_report(workdir):
    path = write(workdir, BASE + "sweep:\n  model: lightgbm\n  search_space: {n_estimators: \"choice(10, 20)\"}\n"
                 "  early_termination: {type: median_stopping, delay_evaluation: 10}\n")
    assert warnings(path) == [
        f"{path}:11:22: sweep.early_termination: the median_stopping policy can never stop a trial early: it first applies at "
        "report 10 (delay_evaluation, evaluation_interval), and trials report lightgbm at most 10 times "
        "(lower delay_evaluation or evaluation_interval)"
    ]


def test_a_conditional_sweep_with_one_family_that_reports_as_it_trains_is_fine(workdir):
    path = write(workdir, BASE + """\
sweep:
  families:
    svc: {search_space: {C: "uniform(0.5, 2)"}}
    logistic_regression: {search_space: {C: "uniform(0.5, 2)"}}
  early_termination: {type: median_stopping, delay_evaluation: 5}
""")
    assert warnings(path) == []


def test_strict_turns_them_into_errors(workdir):
    path = write(workdir, BASE + "automl:\n  timeout_minutes: 1\n")
    loose = CliRunner().invoke(cli, ["validate", str(path)])
    assert loose.exit_code == 0 and "warning: " in loose.output and "trial_timeout_minutes 20 can never bind" in loose.output
    strict = CliRunner().invoke(cli, ["validate", "--strict", str(path)])
    assert strict.exit_code == 1
    assert f"{path}:9:3: automl.trial_timeout_minutes: trial_timeout_minutes 20 can never bind" in strict.output
