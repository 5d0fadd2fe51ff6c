"""`capc validate JOB.yml` and `capc submit JOB.yml` through the CLI, on the hand-written jobs of tests/local/jobs/."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from capc.cli import cli
from repo import DATA, csv_head

JOBS = Path(__file__).parents[1] / "local" / "jobs"


def _invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


@pytest.fixture
def jobs(workdir: Path) -> Path:
    folder = workdir / "jobs"
    shutil.copytree(JOBS, folder, ignore=shutil.ignore_patterns("__pycache__"))
    csv_head(DATA / "digits" / "digits_train.csv", folder / "data" / "digits.csv", 300)
    return folder


def test_validate_accepts_the_example_jobs(jobs):
    result = _invoke("validate", *sorted(jobs.glob("*.yml")))
    assert result.exit_code == 0, result.output
    assert f"{jobs / 'sweep_job.yml'}: ok (Azure ML sweep job)" in result.output
    assert f"{jobs / 'command_job.yml'}: ok (Azure ML command job)" in result.output


def test_validate_puts_the_loader_messages_at_their_lines(jobs):
    bad = jobs / "bad_sweep.yml"
    text = (jobs / "sweep_job.yml").read_text()
    text = text.replace("goal: maximize", "goal: maximise").replace("    max_value: -2", "    maxvalue: -2").replace("max_total_trials: 3", "max_total_trials: three")
    bad.write_text(text)
    lines = text.splitlines()
    line_of = lambda needle: next(i for i, line in enumerate(lines, 1) if needle in line)  # noqa: E731
    result = _invoke("validate", bad)
    assert result.exit_code == 1
    assert f"{bad}:{line_of('goal: maximise')}:3: objective.goal: Value 'maximise' passed is not in set" in result.output
    assert f"{bad}:{line_of('maxvalue')}:5: search_space.alpha.maxvalue: Unknown field." in result.output
    assert f"{bad}:{line_of('max_total_trials')}:3: limits.max_total_trials: Not a valid integer." in result.output
    assert "Traceback" not in result.output


def test_validate_applies_the_rules_azure_enforces_at_submission(jobs):
    bayes = jobs / "bayes.yml"
    bayes.write_text((jobs / "sweep_policy_job.yml").read_text().replace("sampling_algorithm: grid", "sampling_algorithm: bayesian"))
    result = _invoke("validate", bayes)
    assert result.exit_code == 1
    line = next(i for i, text in enumerate(bayes.read_text().splitlines(), 1) if text.startswith("early_termination:"))
    assert f"{bayes}:{line}:1: early_termination: Azure ML refuses an early-termination policy with bayesian sampling" in result.output


def test_submit_a_command_job_yaml(jobs):
    result = _invoke("submit", jobs / "command_job.yml", "--json")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout[result.stdout.index("{"):])
    assert payload["type"] == "command" and payload["status"] == "completed"
    assert payload["metrics"]["validation_accuracy"] > 0.8
    assert any(m.endswith("named_outputs/model_output/model") for m in payload["best"]["models"])
    assert "is not built locally" in result.stderr


@pytest.mark.parametrize(("args", "says"), [
    (("--target", "azure"), "az ml job create -f"),
    (("--only", "sweep"), "apply to a spec or a job folder, not to a job YAML"),
])
def test_submit_job_yaml_options_that_do_not_apply(jobs, args, says):
    result = _invoke("submit", jobs / "sweep_job.yml", *args)
    assert result.exit_code == 1 and says in result.output


def test_submit_a_spark_job_yaml_is_refused_with_the_way_out(jobs):
    spark = jobs / "spark.yml"
    spark.write_text("$schema: https://azuremlschemas.azureedge.net/latest/sparkJob.schema.json\ntype: spark\nentry: {file: a.py}\n")
    result = _invoke("submit", spark)
    assert result.exit_code == 1
    assert "is a Spark job; it runs on a Spark cluster" in result.output and "az ml job create -f" in result.output


def test_submit_a_pipeline_job_yaml_without_steps_is_a_clear_error(jobs):
    pipeline = jobs / "pipeline.yml"
    pipeline.write_text("$schema: https://azuremlschemas.azureedge.net/latest/pipelineJob.schema.json\ntype: pipeline\njobs: {}\n")
    result = _invoke("submit", pipeline)
    assert result.exit_code == 1 and "has no `jobs`" in result.output and "Traceback" not in result.output
