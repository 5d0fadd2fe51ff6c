"""`capc submit --like RUN_ID` and the record a submit run carries (capc.state.run_record), with the real MLflow
store and the real CLI; the backend's submit is replaced by a recorder (what would run is the test's subject)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from capc import backends
from capc.cli import cli
from capc.local.reproducible import RunSeed
from capc.state import run_record, tracking
from repo import SPECS, use_private_capc_home


@pytest.fixture
def home(tmp_path, monkeypatch):
    use_private_capc_home(monkeypatch, tmp_path)
    return tmp_path


@pytest.fixture
def submitted(monkeypatch) -> list[dict]:
    """What `capc submit` hands the local backend, instead of running it."""
    calls = []

    def record(self, folder, source, overrides, **options):
        calls.append({"folder": folder, "source": Path(source), "overrides": list(overrides), **options})

    monkeypatch.setattr(backends.LocalBackend, "submit", record)
    return calls


def _submit_run(source: Path, overrides: list[str], run: RunSeed, job_dir: Path) -> str:
    client = tracking.client()
    experiment = tracking.experiment_id(client, "bankmarketing")
    tags = run_record.submit_tags(job_dir, run, source, overrides, None, run.notes())
    return tracking.start_run(client, experiment, "submit-1", "submit", tags={"capc.spec_sha256": "abc", **tags})


def test_like_repeats_the_spec_the_overrides_the_drawn_seed_and_reproducible(home, submitted):
    spec = home / "bank.yaml"
    shutil.copytree(SPECS / "data", home / "data")
    shutil.copy(SPECS / "bankmarketing.yaml", spec)
    run_id = _submit_run(spec, ["sweep.limits.max_total_trials=2"], RunSeed(1234, drawn=True, reproducible=False), home)
    result = CliRunner().invoke(cli, ["submit", "--like", run_id[:8], "--out", str(home / "generated")])
    assert result.exit_code == 0, result.output
    [call] = submitted
    assert call["source"] == spec.resolve()
    assert call["overrides"] == ["sweep.limits.max_total_trials=2", "seed=1234"]
    assert call["reproducible"] is False and call["seed"] is None
    assert call["folder"].seed == 1234  # the build took the seed: capc.json carries it
    assert f"like run {run_id}" in result.output


def test_like_of_a_reproducible_run_from_the_spec_keeps_the_mode_and_adds_nothing(home, submitted):
    spec = home / "bank.yaml"
    shutil.copytree(SPECS / "data", home / "data")
    shutil.copy(SPECS / "bankmarketing.yaml", spec)
    run_id = _submit_run(spec, ["seed=7", "automl.max_trials=6"], RunSeed(7, reproducible=True), home)
    result = CliRunner().invoke(cli, ["submit", "--like", run_id, "--set", "sweep.limits.max_total_trials=4", "--out", str(home / "generated")])
    assert result.exit_code == 0, result.output
    [call] = submitted
    assert call["overrides"] == ["seed=7", "automl.max_trials=6", "sweep.limits.max_total_trials=4"]  # --set on top
    assert call["reproducible"] is True


def test_runs_json_shows_the_record(home):
    run_id = _submit_run(SPECS / "bankmarketing.yaml", ["seed=7"], RunSeed(7, reproducible=True), SPECS.parent / "generated" / "bankmarketing")
    result = CliRunner().invoke(cli, ["runs", "bankmarketing", "--json"])
    assert result.exit_code == 0, result.output
    [row] = json.loads(result.output)
    record = row["record"]
    assert row["run_id"] == run_id
    assert record["seed"] == 7 and record["reproducible"] is True and record["seed_drawn"] is False
    assert record["spec_sha256"] == "abc" and len(record["manifest_sha256"]) == 64
    assert {"capc", "flaml", "lightgbm", "scikit-learn", "optuna"} <= set(record["versions"])
    assert record["overrides"] == ["seed=7"]


def test_like_of_an_unknown_run_is_a_clear_error(home):
    tracking.client()
    result = CliRunner().invoke(cli, ["submit", "--like", "feedbeef"])
    assert result.exit_code == 1
    assert "no submit run has an id starting with `feedbeef`" in result.output
