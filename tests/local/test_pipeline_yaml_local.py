"""`capc submit PIPELINE.yml`: Azure ML pipeline jobs written by hand (tests/local/pipelines/, written in the shapes of
Azure's pipeline job and component reference pages) run on the local pipeline runner, the one that runs capc's
compiled pipeline_job.yml too."""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from capc.cli import cli
from capc.errors import CapcError
from capc.jobfolder.job_yaml import load_job_yaml
from capc.jobfolder.pipeline_graph import Data, Upstream, Value, read_pipeline
from capc.local.pipeline import run_pipeline_yaml
from capc.local.pipeline_nodes import prepared_command
from repo import DATA, csv_head

PIPELINES = Path(__file__).parent / "pipelines"


@pytest.fixture
def pipelines(workdir: Path) -> Path:
    """A copy of tests/local/pipelines/ (its outputs with a path land in the copy), with an empty marks/ folder."""
    folder = workdir / "pipelines"
    shutil.copytree(PIPELINES, folder, ignore=shutil.ignore_patterns("__pycache__"))
    (folder / "marks").mkdir()
    return folder


def _run(path: Path, *overrides: str, resume: bool = False):
    return run_pipeline_yaml(load_job_yaml(path, list(overrides)), resume=resume, poll_s=0.05)


def _steps(result) -> dict:
    return {s.name: s for s in result.steps}


@pytest.mark.parametrize("name", sorted(p.name for p in PIPELINES.glob("*.yml")))
def test_every_test_pipeline_loads_with_azure_ai_ml(name):
    from azure.ai.ml import load_job

    logging.getLogger("azure.ai.ml").setLevel(logging.ERROR)
    job = load_job(PIPELINES / name)
    assert job.type == "pipeline" and job.jobs


def test_the_graph_binds_literals_data_and_upstream_outputs_through_components():
    job = load_job_yaml(PIPELINES / "two_components.yml")
    graph = read_pipeline(job.data, job.job_dir)
    prep, train, report = graph.steps
    assert [s.name for s in graph.steps] == ["prep", "train", "report"] and train.needs == ["prep"] and report.needs == ["train"]
    assert prep.inputs["raw"] == Data("uri_file", str(PIPELINES / "data" / "raw.csv"))
    assert prep.inputs["table"] == Data("mltable", str(PIPELINES / "data" / "table"))
    assert (prep.inputs["rows"], prep.inputs["label"], prep.inputs["shuffle"]) == (Value(4), Value("target"), Value(True))
    assert train.inputs == {"data": Upstream("prep", "clean"), "lr": Value(0.25)}  # the optional `note` is left out
    assert train.outputs == {"model": str(PIPELINES / "out" / "final_model")}  # a pipeline output with a local path
    assert report.outputs == {"summary": None}  # a datastore path: a run folder here
    assert train.node["code"] == "src" and "$[[--note" in train.node["command"]  # the component's code, read from its folder
    assert any("default_compute" in n for n in graph.notes) and any("archive" in n for n in graph.notes)


def test_optional_parts_stay_only_with_their_inputs():
    job = load_job_yaml(PIPELINES / "two_components.yml")
    train = read_pipeline(job.data, job.job_dir).step("train")
    without = prepared_command(train, {"data": "/d", "lr": "0.1"}, {"model": "/m"})
    with_note = prepared_command(train, {"data": "/d", "lr": "0.1", "note": "x y"}, {"model": "/m"})
    assert "--note" not in without.text and with_note.argv[-2:] == ["--note", "x y"]
    with pytest.raises(CapcError, match=r"step `train`'s command uses \$\{\{inputs.lr\}\}"):
        prepared_command(train, {"data": "/d"}, {"model": "/m"})


@pytest.mark.usefixtures("capc_home")
def test_two_file_components_and_an_inline_step_run_in_order_with_their_bindings(pipelines):
    result = _run(pipelines / "two_components.yml", "jobs.train.inputs.lr=0.1", "jobs.train.inputs.note=tuned")
    steps = _steps(result)
    assert {n: s.status for n, s in steps.items()} == {"prep": "completed", "train": "completed", "report": "completed"}
    clean = Path(steps["prep"].outputs["clean"])
    assert json.loads((clean / "args.json").read_text()) == {"rows": 4, "label": "target", "shuffle": "True"}
    assert len((clean / "rows.csv").read_text().splitlines()) == 5
    # train's output is the pipeline output with a path; --set reached a step's input, and the optional one.
    model = json.loads((pipelines / "out" / "final_model" / "model.json").read_text())
    assert model == {"mean": 2.5, "lr": 0.1, "note": "tuned"}
    summary = Path(steps["report"].outputs["summary"])
    assert summary.is_relative_to(Path(os.environ["CAPC_HOME"]) / "runs" / result.run_id)  # Azure's default path: a run folder
    report = json.loads((summary / "report.json").read_text())
    assert report == {"models": {str(pipelines / "out" / "final_model"): ["model.json"]}, "greeting": "hello"}
    assert (Path(steps["train"].log).read_text().strip().splitlines()[-1]) == "trained"
    assert Path(steps["report"].log).read_text().split() == ["reported", "greeting:", "hello"]  # the shell ran `&&` and $GREETING
    # The step's mlflow calls landed in its own run, a child of the pipeline's.
    from capc.state import tracking

    run = tracking.client().get_run(steps["train"].run_id)
    assert run.data.metrics == {"mean": 2.5} and run.data.tags[tracking.PARENT_TAG] == result.run_id
    assert not list(pipelines.glob("src/outputs")) and not list(pipelines.glob("components/outputs"))  # steps ran in snapshots


@pytest.mark.usefixtures("capc_home")
def test_a_nested_pipeline_component_runs_its_steps_and_hands_out_its_output(pipelines):
    result = _run(pipelines / "nested.yml")
    steps = _steps(result)
    assert list(steps) == ["inner.prep", "inner.train", "report"]
    assert all(s.status == "completed" for s in steps.values())
    assert steps["inner.train"].needs == ["inner.prep"] and steps["report"].needs == ["inner.train"]
    trained = Path(steps["inner.train"].outputs["model"])
    assert json.loads((trained / "model.json").read_text()) == {"mean": 2.0, "lr": 0.75, "note": "nested"}  # 3 rows, lr from outside
    report = json.loads((Path(steps["report"].outputs["summary"]) / "report.json").read_text())
    assert report["models"] == {str(trained): ["model.json"]}


@pytest.mark.usefixtures("capc_home")
def test_continue_on_step_failure_true_lets_independent_steps_finish(pipelines):
    result = _run(pipelines / "failing.yml")
    steps = _steps(result)
    assert {n: s.status for n, s in steps.items()} == {"broken": "failed", "after_broken": "skipped", "independent": "completed"}
    assert "boom: the data is not there" in steps["broken"].detail and "broken did not complete" in steps["after_broken"].detail


@pytest.mark.usefixtures("capc_home")
def test_continue_on_step_failure_false_stops_the_running_steps(pipelines):
    # the independent step would outlive any start-up under load: only the failure can end it
    longer = "jobs.independent.command=python wait.py --marks ${{inputs.marks}} --name independent --seconds 120 --out ${{outputs.out}}"
    result = _run(pipelines / "failing.yml", "settings.continue_on_step_failure=false", longer)
    steps = _steps(result)
    assert steps["broken"].status == "failed" and steps["after_broken"].status == "skipped"
    assert steps["independent"].status == "interrupted" and "broken failed" in steps["independent"].detail
    assert not (Path(steps["independent"].outputs["out"]) / "done.txt").exists()


@pytest.mark.usefixtures("capc_home")
def test_a_failed_pipeline_exits_1_naming_the_step_and_its_last_lines(pipelines):
    result = CliRunner().invoke(cli, ["submit", str(pipelines / "failing.yml")])
    assert result.exit_code == 1, result.output
    assert "pipeline step `broken` of failing failed" in result.output and "boom: the data is not there" in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("override", "named"),
    [((), "azureml:train_mean:3"),
     (("jobs.train.component=azureml://registries/azureml/components/train_mean/versions/3",),
      "azureml://registries/azureml/components/train_mean/versions/3")],
)
@pytest.mark.usefixtures("capc_home")
def test_a_registered_component_is_refused_naming_it(pipelines, override, named):
    with pytest.raises(CapcError, match=f"registered component `{named}`") as error:
        _run(pipelines / "registered.yml", *override)
    assert "component: ./FILE.yml" in error.value.hint
    result = CliRunner().invoke(cli, ["submit", str(pipelines / "registered.yml"), *(f"--set={o}" for o in override)])
    assert result.exit_code == 1 and named in result.output and "Traceback" not in result.output


@pytest.mark.usefixtures("capc_home")
def test_remote_data_is_refused_before_any_step_runs(pipelines):
    with pytest.raises(CapcError, match="input raw points at azureml:bank:1") as error:
        _run(pipelines / "two_components.yml", "inputs.raw.path=azureml:bank:1")
    assert "--set" in error.value.hint
    assert not (pipelines / "out").exists()


def _capc(pipelines: Path, *args: str, job: str = "stoppable.yml") -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    return subprocess.Popen([sys.executable, "-m", "capc", "submit", job, *args], cwd=pipelines, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)


def _started(pipelines: Path) -> list[str]:
    marks = pipelines / "marks" / "started.txt"
    return marks.read_text().split() if marks.exists() else []


def _survivors(pipelines: Path) -> list[str]:
    """Processes still running one of the test's step scripts."""
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            command = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if "wait.py" in command and str(pipelines / "marks") in command:
            found.append(command)
    return found


@pytest.mark.slow
@pytest.mark.usefixtures("capc_home")
def test_ctrl_c_stops_a_hand_written_pipeline_and_resume_keeps_the_completed_step(pipelines):
    capc = _capc(pipelines, "--json")
    deadline = time.monotonic() + 120
    while "second" not in _started(pipelines):
        assert capc.poll() is None and time.monotonic() < deadline, capc.communicate()
        time.sleep(0.1)
    os.killpg(capc.pid, signal.SIGINT)  # Ctrl-C: the whole process group
    out, err = capc.communicate(timeout=120)
    assert capc.returncode == 130, err
    assert "Traceback" not in out + err
    assert "To continue: capc submit stoppable.yml --resume" in err and "completed steps are kept" in err
    steps = {s["step"]: s for s in json.loads(out[out.index("{"):])["steps"]}
    assert (steps["first"]["status"], steps["second"]["status"]) == ("completed", "interrupted")
    assert not _survivors(pipelines)

    (pipelines / "marks" / "release").write_text("")
    resumed = _capc(pipelines, "--resume", "--json")
    out, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err
    steps = {s["step"]: s for s in json.loads(out[out.index("{"):])["steps"]}
    assert steps["first"]["status"] == "completed" and steps["first"]["kept_from"]
    assert steps["second"]["status"] == "completed"
    assert Path(steps["second"]["outputs"]["out"], "done.txt").read_text() == "second"
    assert _started(pipelines) == ["first", "second", "second"]  # the completed step did not run again


@pytest.mark.slow
@pytest.mark.usefixtures("capc_home")
def test_an_automl_node_and_a_sweep_node_feed_a_step_their_best_models(pipelines):
    csv_head(DATA / "digits" / "digits_train.csv", pipelines / "data" / "digits" / "digits.csv", 300)
    result = _run(pipelines / "engines.yml")
    steps = _steps(result)
    assert {n: s.status for n, s in steps.items()} == {"automl": "completed", "sweep": "completed", "compare": "completed"}, \
        {n: s.detail for n, s in steps.items()}
    assert steps["compare"].needs == ["automl", "sweep"]
    assert steps["sweep"].started_at < steps["automl"].started_at + steps["automl"].duration_s  # side by side
    automl_model, sweep_model = Path(steps["automl"].outputs["best_model"]), Path(steps["sweep"].outputs["model_output"])
    assert (automl_model / "MLmodel").is_file()  # best_model is the MLflow model, where Azure writes it
    assert (sweep_model / "model" / "MLmodel").is_file()  # the sweep's output is its best trial's
    report = json.loads((Path(steps["compare"].outputs["summary"]) / "report.json").read_text())
    assert set(report["models"]) == {str(automl_model), str(sweep_model)}
    for name in ("automl", "sweep"):
        assert 0.5 < steps[name].value <= 1.0 and result.summaries[name]["metric"] == "accuracy"
    # The AutoML node runs as a hand-written AutoML job does: its test run on test_data_size, and a note per key not honoured.
    assert 0.5 < result.summaries["automl"]["test_metrics"]["accuracy"] <= 1.0
    assert any(n.startswith("step automl: limits.max_cores_per_trial is not honoured") for n in result.notes), result.notes
    import mlflow.pyfunc

    assert mlflow.pyfunc.load_model(str(automl_model)) is not None


@pytest.mark.usefixtures("capc_home")
def test_a_command_step_past_its_timeout_fails_and_unknown_settings_are_noted(pipelines):
    result = _run(pipelines / "stoppable.yml", "jobs.second.limits.timeout=1", "settings.force_rerun=true")
    steps = _steps(result)
    assert steps["first"].status == "completed"
    assert steps["second"].status == "failed" and "limits.timeout (1 s)" in steps["second"].detail
    assert steps["second"].duration_s < 30
    assert any("settings.force_rerun" in n for n in result.notes)


def test_a_spark_step_and_a_cycle_are_refused_before_anything_runs(tmp_path):
    spark = {"jobs": {"etl": {"type": "spark", "entry": {"file": "a.py"}}}}
    with pytest.raises(CapcError, match="step `etl` is a `spark` job") as error:
        read_pipeline(spark, tmp_path)
    assert "az ml job create -f" in error.value.hint
    cycle = {"jobs": {"a": {"command": "x", "inputs": {"i": "${{parent.jobs.b.outputs.o}}"}, "outputs": {"o": None}},
                      "b": {"command": "x", "inputs": {"i": "${{parent.jobs.a.outputs.o}}"}, "outputs": {"o": None}}}}
    with pytest.raises(CapcError, match="cycle: a, b"):
        read_pipeline(cycle, tmp_path)
    with pytest.raises(CapcError, match="reads output `nope` of `a`"):
        read_pipeline({"jobs": {"a": {"command": "x", "outputs": {"o": None}}, "b": {"command": "x", "inputs": {"i": "${{parent.jobs.a.outputs.nope}}"}}}}, tmp_path)


def test_an_undeclared_parent_input_is_named(tmp_path):
    job = {"inputs": {"rows": 3}, "jobs": {"a": {"command": "echo ${{inputs.n}}", "inputs": {"n": "${{parent.inputs.rowz}}"}}}}
    with pytest.raises(CapcError, match=r"step `a`: input n binds \$\{\{parent.inputs.rowz\}\}, which its pipeline does not declare") as error:
        read_pipeline(job, tmp_path)
    assert "rows" in error.value.hint


@pytest.mark.slow
@pytest.mark.usefixtures("capc_home")
def test_sigterm_in_a_sweep_step_and_resume_keeps_its_finished_trial(pipelines):
    capc = _capc(pipelines, "--json", job="sweep_stoppable.yml")
    trials = pipelines / "marks" / "trials.txt"
    deadline = time.monotonic() + 180
    while not (trials.exists() and len(trials.read_text().split()) == 2):
        assert capc.poll() is None and time.monotonic() < deadline, capc.communicate()
        time.sleep(0.1)
    os.kill(capc.pid, signal.SIGTERM)  # capc alone, as a supervisor stops it
    out, err = capc.communicate(timeout=120)
    assert capc.returncode == 143, err
    assert "Traceback" not in out + err and "--resume" in err
    steps = {s["step"]: s for s in json.loads(out[out.index("{"):])["steps"]}
    assert (steps["sweep"]["status"], steps["report"]["status"]) == ("interrupted", "skipped")
    first, second = trials.read_text().split()

    (pipelines / "marks" / "release").write_text("")
    resumed = _capc(pipelines, "--resume", "--json", job="sweep_stoppable.yml")
    out, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err
    payload = json.loads(out[out.index("{"):])
    steps = {s["step"]: s for s in payload["steps"]}
    assert steps["sweep"]["status"] == steps["report"]["status"] == "completed"
    started = trials.read_text().split()
    assert started.count(first) == 1 and started.count(second) == 2 and sorted(set(started)) == ["1", "2", "3"], started
    assert steps["sweep"]["value"] == 3.0  # the best trial's score, and its output is the step's
    assert Path(steps["sweep"]["outputs"]["model_output"], "model.txt").read_text() == "3"


@pytest.mark.usefixtures("capc_home")
def test_a_uri_file_output_is_a_file_its_readers_get(pipelines):
    result = _run(pipelines / "file_outputs.yml")
    steps = _steps(result)
    assert {n: s.status for n, s in steps.items()} == {"write": "completed", "read": "completed"}, {n: s.output_tail for n, s in steps.items()}
    greeting, count = Path(steps["write"].outputs["greeting"]), Path(steps["write"].outputs["count"])
    assert greeting.name == "greeting.txt" and greeting.read_text() == "hello\n"  # the pipeline output's file name
    assert count.name == "count" and count.read_text() == "3\n"  # no path: the output's name
    assert (Path(steps["read"].outputs["both"]) / "both.txt").read_text() == "hello\n3\n"


def test_a_components_preview_code_mapping_is_refused_before_any_step(workdir):
    (workdir / "component.yml").write_text(
        "$schema: https://azuremlschemas.azureedge.net/latest/commandComponent.schema.json\ntype: command\nname: hello\n"
        "code:\n  local_path: ./src\ncommand: python hello.py\nenvironment:\n  image: python\n")
    job = {"type": "pipeline", "jobs": {"hello": {"type": "command", "component": "./component.yml"}}}
    with pytest.raises(CapcError, match=r"step `hello`'s component: `code` is a mapping \(\{\"local_path\": \"./src\"\}\)"):
        read_pipeline(job, workdir)
