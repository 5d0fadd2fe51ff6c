"""`capc submit SPEC --only pipeline` on the local engine: the graph of pipeline_job.yml, run here."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from capc.artifacts import sweep_job_files
from capc.cli import cli
from capc.errors import CapcError
from capc.jobfolder import JobFile, JobFolder
from capc.local.pipeline import plan_steps, run_pipeline

from repo import REPO, digits_spec
SPECS = ["mnist", "housing", "bankmarketing", "mri"]


def _generated(name: str, file: str) -> dict:
    return yaml.safe_load((REPO / "generated" / name / file).read_text())


@pytest.mark.parametrize("name", SPECS)
def test_engines_and_selection_step_in_dependency_order(name):
    steps = plan_steps(_generated(name, "pipeline_job.yml"), REPO / "generated" / name)  # its trial components are read
    sweeps = list(sweep_job_files(REPO / "generated" / name))  # mnist: a sweep node per family
    expected = [("automl", "automl", []), *((s, "sweep", []) for s in sweeps), ("select_best", "command", ["automl", *sweeps])]
    if name == "bankmarketing":  # deployment.auto_deploy
        expected.append(("deploy", "command", ["select_best"]))
    assert [(s.name, s.type, s.needs) for s in steps] == expected


@pytest.mark.parametrize("name", SPECS)
def test_pipeline_nodes_carry_the_standalone_jobs_settings(name):
    """Locally the engine nodes run automl_job.yml / sweep_job.yml: they must say what the pipeline's nodes say."""
    pipeline = _generated(name, "pipeline_job.yml")["jobs"]
    automl = _generated(name, "automl_job.yml")
    shared = set(pipeline["automl"]) & set(automl) - {"training_data", "validation_data", "compute", "outputs", "type", "$schema"}
    assert {"task", "primary_metric", "limits"} <= shared
    for key in shared:
        assert pipeline["automl"][key] == automl[key], key
    for node, path in sweep_job_files(REPO / "generated" / name).items():  # the sweep node of the same name
        sweep = yaml.safe_load(path.read_text())
        for key in ("sampling_algorithm", "search_space", "objective", "early_termination", "limits"):
            assert pipeline[node].get(key) == sweep.get(key), (node, key)
        trial = _generated(name, pipeline[node]["trial"])["command"]
        assert trial.split(" --output_dir ")[0].replace("${{inputs.", "${{search_space.").replace(
            "${{search_space.training_data}}", "${{inputs.training_data}}") == sweep["trial"]["command"]


def test_a_cycle_or_an_unknown_step_is_a_clear_error():
    cycle = {"jobs": {"a": {"inputs": {"x": "${{parent.jobs.b.outputs.o}}"}}, "b": {"inputs": {"x": "${{parent.jobs.a.outputs.o}}"}}}}
    with pytest.raises(CapcError, match="cycle: a, b"):
        plan_steps(cycle)
    with pytest.raises(CapcError, match="`ghost`, which is not a step"):
        plan_steps({"jobs": {"a": {"inputs": {"x": "${{parent.jobs.ghost.outputs.o}}"}}}})


def _folder(path: Path, job: dict) -> JobFolder:
    """A job folder holding only this pipeline (what read_job_folder gives for --only pipeline)."""
    return JobFolder(
        path=path, name="graph", spec_sha256="0" * 64, description="", task="classification", metric="accuracy", goal="maximize",
        automl_enabled=True, sweep_enabled=True, deployment={"model": "best"}, jobs=(JobFile("pipeline", path / "pipeline_job.yml", job),), cluster=None,
    )


def _command(code: str, outputs: tuple = ("out",), **inputs) -> dict:
    node = {"type": "command", "code": ".", "command": f"python -c {json.dumps(code)} " + " ".join(f"${{{{inputs.{k}}}}}" for k in inputs) + " " + " ".join(f"${{{{outputs.{o}}}}}" for o in outputs)}
    node["inputs"] = {k: v for k, v in inputs.items()}
    node["outputs"] = {o: {"type": "uri_folder"} for o in outputs}
    return node


@pytest.mark.usefixtures("capc_home")
def test_a_failed_step_skips_what_needs_it_and_the_rest_runs(tmp_path):
    write = "import pathlib, sys, time; time.sleep(0.5); pathlib.Path(sys.argv[-1], 'done').write_text(str(time.time()))"
    job = {"jobs": {
        "good": _command(write),
        "bad": _command("import sys; print('disk full'); sys.exit(3)"),
        "after_good": _command("import pathlib, sys; assert pathlib.Path(sys.argv[1], 'done').is_file(); pathlib.Path(sys.argv[-1], 'ok').write_text('')",
                               data="${{parent.jobs.good.outputs.out}}"),
        "after_bad": _command("pass", data="${{parent.jobs.bad.outputs.out}}"),
    }}
    (tmp_path / "pipeline_job.yml").write_text(yaml.safe_dump(job))
    result = run_pipeline(_folder(tmp_path, job), poll_s=0.05)
    status = {s.name: s.status for s in result.steps}
    assert status == {"good": "completed", "bad": "failed", "after_good": "completed", "after_bad": "skipped"}
    bad = next(s for s in result.steps if s.name == "bad")
    assert "exit status 3" in bad.detail and "disk full" in bad.detail
    assert "bad did not complete" in next(s for s in result.steps if s.name == "after_bad").detail
    assert result.model is None
    good, failed = (next(s for s in result.steps if s.name == n) for n in ("good", "bad"))
    assert failed.started_at < good.started_at + 0.5  # independent steps started side by side, not one after the other


def _digits_spec(workdir: Path, sweep_model: str = "logistic_regression", extra: str = "") -> Path:
    return digits_spec(
        workdir, name="digits-pipe", sweep_model=sweep_model, extra=extra,
        automl="{timeout_minutes: 1, max_trials: 3, allowed_models: [LogisticRegression, RandomForest]}",
    )


@pytest.mark.slow
@pytest.mark.usefixtures("workdir")
def test_local_pipeline_runs_both_engines_then_registers_the_selected_winner(tmp_path):
    spec = _digits_spec(tmp_path, extra="deployment: {auto_deploy: true}\n")
    try:
        result = CliRunner().invoke(cli, ["submit", str(spec), "--only", "pipeline", "--json", "--out", str(tmp_path / "generated")])
        assert result.exit_code == 0, result.output
        # The deploy step put the registered winner behind the local endpoint.
        shown = CliRunner().invoke(cli, ["endpoints", "show", "digits-pipe", "--json"])
        assert shown.exit_code == 0, shown.output
        endpoint = json.loads(shown.stdout)
        assert endpoint["model"] == "digits-pipe:1" and endpoint["state"] in ("running", "healthy", "ready"), endpoint
        assert endpoint["name"] == "digits-pipe-endpoint"  # as Azure names it; the model's name is an alias
    finally:
        CliRunner().invoke(cli, ["endpoints", "delete", "digits-pipe"])
    payload = json.loads(result.stdout[result.stdout.index("{"):])
    steps = {s["step"]: s for s in payload["steps"]}
    assert {n: s["status"] for n, s in steps.items()} == {"automl": "completed", "sweep": "completed", "select_best": "completed", "deploy": "completed"}
    assert steps["sweep"]["started_at"] < steps["automl"]["started_at"] + steps["automl"]["duration_s"]  # side by side
    if len(os.sched_getaffinity(0)) >= 2:  # one core budget: each engine step on its own share of the CPUs
        assert steps["automl"]["cpus"] and steps["sweep"]["cpus"] and not set(steps["automl"]["cpus"]) & set(steps["sweep"]["cpus"])
        assert steps["select_best"]["cpus"] is None
    results = {r["source"]: r["value"] for r in payload["results"]}
    winner = payload["winner"]
    assert winner["value"] == max(results.values()) and results[winner["source"]] == winner["value"]
    assert payload["model"]["version"] == 1 and payload["model"]["source"] == winner["source"]
    # Why each engine step's search ended, read back from the runs its process tagged; also in the printed table.
    assert payload["searches"]["automl"]["stop_limit"] in ("trials", "early_termination", "time")
    assert payload["searches"]["sweep"] == {"stop_limit": "trials", "stop_reason": "all 2 grid combinations ran"}

    runs = json.loads(CliRunner().invoke(cli, ["runs", "digits-pipe", "--json"]).stdout)
    kinds = {r["kind"] for r in runs}
    assert {"submit", "automl", "candidate", "sweep", "trial", "step"} <= kinds
    select_run = next(r for r in runs if r["kind"] == "step")
    assert select_run["status"] == "completed" and select_run["metrics"]["accuracy"] == pytest.approx(winner["value"])
    assert steps["deploy"]["started_at"] >= steps["select_best"]["started_at"] + steps["select_best"]["duration_s"]

    # The report follows the registered run up to the pipeline run and highlights it among both engines' runs.
    report = CliRunner().invoke(cli, ["report", "digits-pipe", "--out", str(tmp_path / "report.html")])
    assert report.exit_code == 0, report.output
    page = (tmp_path / "report.html").read_text()
    assert "digits-pipe:1" in page and "<svg" in page
    assert "is not in the store" not in page and "none is highlighted" not in page


@pytest.mark.slow
@pytest.mark.usefixtures("workdir")
def test_local_pipeline_with_a_failing_sweep_reports_it_and_registers_nothing(tmp_path):
    spec = _digits_spec(tmp_path)
    (tmp_path / "crash.py").write_text("import sys\nprint('loading data')\nsys.exit('boom: the trial cannot read its data')\n")
    spec.write_text(spec.read_text().replace("model: logistic_regression", "script: crash.py"))
    result = CliRunner().invoke(cli, ["submit", str(spec), "--only", "pipeline", "--out", str(tmp_path / "generated")])
    assert result.exit_code == 1, result.output
    assert "pipeline step `sweep` of digits-pipe failed" in result.output and "boom: the trial cannot read" in result.output
    assert "Traceback" not in result.output
    assert "skipped" in result.output and "completed" in result.output  # the table: automl ran, select_best skipped
    assert CliRunner().invoke(cli, ["models", "list", "--json"]).stdout.strip() == "[]"


@pytest.mark.slow
@pytest.mark.usefixtures("workdir")
def test_local_pipelines_select_step_applies_the_serving_budget(tmp_path):
    """select_best.py measures both engines' models through score.py in the pipeline run; under a size budget
    that nothing meets the step fails naming the fastest, and nothing is registered; under a generous one the
    winner's figures reach the registry and the engines' runs."""
    spec = _digits_spec(tmp_path, extra="deployment: {max_model_mb: 0.0001}\n")
    result = CliRunner().invoke(cli, ["submit", str(spec), "--only", "pipeline", "--out", str(tmp_path / "generated")])
    assert result.exit_code == 1, result.output
    assert "pipeline step `select_best` of digits-pipe failed" in result.output
    assert "no candidate fits the serving budget (model <= 0.0001 MB) among 2" in result.output
    assert CliRunner().invoke(cli, ["models", "list", "--json"]).stdout.strip() == "[]"

    spec.write_text(spec.read_text().replace("max_model_mb: 0.0001", "max_latency_ms: 60000"))
    result = CliRunner().invoke(cli, ["submit", str(spec), "--only", "pipeline", "--json", "--out", str(tmp_path / "generated")])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout[result.stdout.index("{"):])
    assert payload["winner"]["budget"] == "p99 latency <= 60000 ms" and payload["winner"]["passed_over"] == []
    assert set(payload["winner"]["measured"]) == {payload["winner"]["source"]}  # the best fits: nothing else measured
    assert payload["model"]["metrics"]["serving_p99_ms"] == payload["winner"]["serving"]["serving_p99_ms"]
    board = json.loads(CliRunner().invoke(cli, ["leaderboard", "digits-pipe", "--json"]).stdout)["runs"]
    assert any("serving_p99_ms" in r["metrics"] for r in board)


@pytest.mark.slow
@pytest.mark.usefixtures("workdir")
def test_local_pipelines_select_step_applies_the_load_budget(tmp_path):
    """With a load budget, select_best.py serves the winner through azmlinfsrv under 4 clients in the pipeline run;
    its figure, how it was taken and the estimate on the instance reach the result, the registry, `capc models show`
    and the report."""
    spec = _digits_spec(tmp_path, extra="deployment: {min_requests_per_s: 1, load: {concurrency: 4, max_p99_ms: 4000}}\n")
    result = CliRunner().invoke(cli, ["submit", str(spec), "--only", "pipeline", "--json", "--out", str(tmp_path / "generated")])
    assert result.exit_code == 0, result.output
    winner = json.loads(result.stdout[result.stdout.index("{"):])["winner"]
    assert winner["load_budget"] == ">= 1 requests/s and p99 <= 4000 ms at concurrency 4"
    load = winner["load"]
    assert load["concurrency"] == 4 and load["requests"] > 0 and load["errors"] == 0 and load["requests_per_s"] >= 1
    assert load["cores"] == len(os.sched_getaffinity(0)) and load["workers"] >= load["cores"]
    assert winner["instance_estimate"]["instance_type"] == "Standard_DS3_v2" and winner["instance_estimate"]["vcpus"] == 4

    model = json.loads(CliRunner().invoke(cli, ["models", "show", "digits-pipe", "--json"]).stdout)
    assert model["selection"]["load"] == load
    shown = CliRunner().invoke(cli, ["models", "show", "digits-pipe"]).output
    assert "under load (>= 1 requests/s and p99 <= 4000 ms at concurrency 4)" in shown and "expected on Standard_DS3_v2" in shown
    report = CliRunner().invoke(cli, ["report", "digits-pipe", "--out", str(tmp_path / "report.html")])
    assert report.exit_code == 0, report.output
    assert "<dt>serving under load</dt>" in (tmp_path / "report.html").read_text()
