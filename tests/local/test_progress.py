"""The submit's live display: what it prints when no terminal is attached (CI logs, `capc submit ... 2> log`)."""

import io
import json
import os
import re
import subprocess
import sys
from types import SimpleNamespace

import pytest
from click.testing import CliRunner
from rich.console import Console

from capc.cli import cli
from capc.local import progress_lines
from capc.local.progress import PipelineProgress, SubmitProgress
from capc.local.progress_lines import ProgressLines
from capc.local.search_end import SearchEnd
from repo import digits_spec


def test_a_note_is_printed_verbatim_on_one_line():
    # Notes carry candidate names and parameter values; brackets in them are text, and a log line stays whole.
    out = io.StringIO()
    progress = SubmitProgress("accuracy", "maximize", console=Console(file=out, width=40))
    text = "serving cost of automl [bold]Vote-4 weights=[0.5, 0.4]: p99 1.0 ms, 88,796 rows/s in a 1,000-row request"
    progress.note(text)
    assert out.getvalue() == text + "\n"


# ---------------------------------------------------------------- plain lines off a terminal (CI logs, nohup, pipes)

LINE = re.compile(r"^\[\d\d:\d\d\] \S+ \S+( \S+=(\"[^\"]*\"|\S+))*$")


def candidate(index, estimator, value, status="completed"):
    return SimpleNamespace(index=index, estimator=estimator, value=value, status=status)


def plain_progress(**options):
    out = io.StringIO()
    return out, SubmitProgress("AUC_weighted", "maximize", console=Console(file=out, width=60), **options)


def test_off_a_terminal_automl_prints_a_line_per_trial_with_the_best_so_far_named_by_the_best():
    out, progress = plain_progress()
    with progress:
        progress.automl_started(120)
        progress.automl_candidate(candidate(0, "GradientBoosting", 0.9759))
        progress.automl_candidate(candidate(1, "LightGBM", 0.9927))
        progress.automl_candidate(candidate(2, "GradientBoosting", 0.9801))
        progress.automl_candidate(candidate(3, "SGD", float("nan"), status="failed"))
        result = SimpleNamespace(candidates=[1, 2, 3, 4], best=candidate(1, "LightGBM", 0.9927), end=SearchEnd("trials", "max_trials 4 reached"))
        progress.automl_finished(result)
    lines = out.getvalue().splitlines()
    assert all(LINE.match(line) for line in lines), lines
    assert [line[8:] for line in lines] == [
        "automl started budget_s=120 metric=AUC_weighted",
        "automl trial index=0 algorithm=GradientBoosting status=completed AUC_weighted=0.9759 best=0.9759 best_trial=GradientBoosting-0",
        "automl trial index=1 algorithm=LightGBM status=completed AUC_weighted=0.9927 best=0.9927 best_trial=LightGBM-1",
        # The best keeps its own name while other trials finish.
        "automl trial index=2 algorithm=GradientBoosting status=completed AUC_weighted=0.9801 best=0.9927 best_trial=LightGBM-1",
        "automl trial index=3 algorithm=SGD status=failed AUC_weighted=- best=0.9927 best_trial=LightGBM-1",
        "automl finished trials=4 best=0.9927 best_trial=LightGBM-1 ended_by=trials",
    ]


def test_the_live_label_keeps_the_best_candidates_name_and_counts_one_candidate():
    _, progress = plain_progress(quiet=True)
    progress.automl_started(60)
    progress.automl_candidate(candidate(0, "LightGBM", 0.9927))
    assert progress._automl_text() == "1 candidate, best AUC_weighted 0.9927 (LightGBM-0)"
    progress.automl_candidate(candidate(1, "GradientBoosting", 0.9759))
    assert progress._automl_text() == "2 candidates, best AUC_weighted 0.9927 (LightGBM-0)"


def test_off_a_terminal_a_sweep_prints_its_start_each_finished_trial_and_why_it_ended():
    out, progress = plain_progress()
    with progress:
        progress.sweep_started({"limits": {"max_total_trials": 2, "max_concurrent_trials": 1}})
        trial = SimpleNamespace(trial_id="0", status="completed", value=0.91)
        progress.sweep_event("started", trial)
        progress.sweep_event("finished", trial)
        stopped = SimpleNamespace(trial_id="1", status="early_terminated", value=0.5)
        progress.sweep_event("started", stopped)
        progress.sweep_event("stopped", stopped)
        progress.sweep_finished(SimpleNamespace(trials=[trial, stopped], best=trial, end=SearchEnd("trials", "max_total_trials 2 reached")), "sweep")
    assert [line[8:] for line in out.getvalue().splitlines()] == [
        "sweep started trials=2 concurrent=1 metric=AUC_weighted",
        "sweep trial id=0 status=completed AUC_weighted=0.91 best=0.91 best_trial=0 done=1/2",
        "sweep trial id=1 status=early_terminated AUC_weighted=0.5 best=0.91 best_trial=0 done=2/2",
        "sweep finished trials=2 best=0.91 best_trial=0 ended_by=trials",
    ]


def test_quiet_prints_no_progress():
    out, progress = plain_progress(quiet=True)
    with progress:
        progress.automl_started(120)
        progress.automl_candidate(candidate(0, "LightGBM", 0.9))
        progress.sweep_started({"limits": {"max_total_trials": 2}})
    assert out.getvalue() == ""


def test_a_heartbeat_every_period_sums_up_each_running_phase():
    now = [0.0]
    out = io.StringIO()
    lines = ProgressLines(lambda: ["automl trials=3 best=0.9", "sweep done=1"], out, heartbeat_s=30, clock=lambda: now[0])
    lines.beat_if_due()
    now[0] = 29.9
    lines.beat_if_due()
    assert out.getvalue() == ""
    now[0] = 30.0
    lines.line("automl", "trial", index=4)
    lines.beat_if_due()
    now[0] = 45.0
    lines.beat_if_due()  # not again before another period
    now[0] = 61.0
    lines.beat_if_due()
    assert out.getvalue().splitlines() == [
        "[00:30] automl trial index=4",
        "[00:30] heartbeat automl trials=3 best=0.9",
        "[00:30] heartbeat sweep done=1",
        "[01:01] heartbeat automl trials=3 best=0.9",
        "[01:01] heartbeat sweep done=1",
    ]


def test_a_heartbeat_before_and_after_the_engines_says_where_the_submit_is():
    _, progress = plain_progress()
    assert progress._status() == ["submit status=starting"]  # building, reading the data
    progress.automl_started(60)
    assert progress._status()[0].startswith("automl trials=0 best=- best_trial=- left_s=")
    progress.automl_finished(SimpleNamespace(candidates=[1], best=candidate(0, "LightGBM", 0.9), end=None))
    assert progress._status() == ["submit status=selecting"]  # measuring the winner, registering it


def test_a_value_with_spaces_is_quoted_so_the_line_still_splits():
    out = io.StringIO()
    ProgressLines(list, out, clock=lambda: 0.0).line("step", "select", status="failed", detail='exit code 1: "x"')
    assert out.getvalue() == '[00:00] step select status=failed detail="exit code 1: \\"x\\""\n'


def test_off_a_terminal_each_pipeline_step_prints_a_line_when_its_state_changes():
    out = io.StringIO()
    display = PipelineProgress(console=Console(file=out, width=60))
    step = SimpleNamespace(name="automl", status="waiting", detail="", duration_s=None, value=None, log=None)
    with display:
        display.step(step)
        step.status = "running"
        display.step(step)
        display.step(step)  # no change, no line
        step.status, step.duration_s, step.value = "completed", 61.25, 0.912
        display.step(step)
    assert [line[8:] for line in out.getvalue().splitlines()] == [
        "step automl status=running",
        "step automl status=completed duration_s=61.2 best=0.912",
    ]


def test_a_cli_submit_off_a_terminal_prints_progress_lines_and_quiet_silences_them(workdir, monkeypatch):
    monkeypatch.setattr(progress_lines, "HEARTBEAT_S", 0.5)
    spec = digits_spec(workdir, automl="{timeout_minutes: 1, max_trials: 3}")
    result = CliRunner().invoke(cli, ["submit", str(spec), "--json", "--out", str(workdir / "generated")])
    assert result.exit_code == 0, result.output
    log = result.stderr.splitlines()
    assert any(line.endswith("automl started budget_s=60 metric=accuracy") for line in log), log
    trials = [line for line in log if " automl trial index=" in line]
    assert len(trials) >= 3 and all(LINE.match(line) and " best=" in line for line in trials)
    assert any(" sweep started trials=2 " in line for line in log)
    assert sum(" sweep trial id=" in line for line in log) == 2
    assert any(" heartbeat " in line for line in log)
    payload = json.loads(result.stdout)
    assert payload["searches"]["automl"]["stop_reason"]["limit"] in ("trials", "early_termination")
    assert payload["searches"]["sweep"]["stop_reason"] == {"limit": "trials", "detail": "all 2 grid combinations ran"}
    quiet = CliRunner().invoke(cli, ["submit", str(spec), "--quiet", "--out", str(workdir / "generated")])
    assert quiet.exit_code == 0, quiet.output
    assert "automl trial" not in quiet.stderr and "heartbeat" not in quiet.stderr
    assert "automl: ended by " in quiet.stdout and "sweep: ended by trials: all 2 grid combinations ran" in quiet.stdout


@pytest.mark.slow
def test_a_piped_submit_prints_trial_lines_and_a_heartbeat(workdir):
    """A real process with its output in a pipe, as in CI: the lines come while it runs, a heartbeat among them."""
    spec = digits_spec(workdir, automl="{timeout_minutes: 1, max_trials: 1000, enable_early_termination: false}")
    process = subprocess.run([sys.executable, "-m", "capc", "submit", str(spec), "--out", str(workdir / "generated")],
                             cwd=workdir, env=dict(os.environ), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=600)
    assert process.returncode == 0, process.stdout
    log = process.stdout.splitlines()
    assert any(" automl started budget_s=60 " in line for line in log)
    assert sum(" automl trial index=" in line for line in log) >= 3
    assert any(line.startswith("[00:3") and " heartbeat automl trials=" in line for line in log), log
    assert any(" sweep trial id=" in line for line in log)
    assert "automl: ended by time: timeout_minutes 1" in process.stdout
