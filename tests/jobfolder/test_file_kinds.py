"""What a YAML file is, from its content (capc.jobfolder.kinds), and `capc validate` / `capc submit` acting on it:
components loaded with azure-ai-ml's component loaders, Spark and parallel refused naming `az ml job create -f`."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from capc.cli import cli
from capc.jobfolder.kinds import FileKind, file_kind, kind_of_mapping

SCHEMA = "https://azuremlschemas.azureedge.net/latest/"


def _invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


@pytest.mark.parametrize(
    ("data", "kind"),
    [
        ({"command": "python train.py", "environment": "azureml:env@latest"}, FileKind.COMMAND_JOB),  # no type: Azure's default
        ({"type": "command", "command": "python t.py", "compute": "azureml:cpu"}, FileKind.COMMAND_JOB),
        ({"type": "command", "name": "train", "version": "1", "command": "python t.py"}, FileKind.COMMAND_COMPONENT),
        ({"$schema": SCHEMA + "commandComponent.schema.json", "type": "command", "command": "x"}, FileKind.COMMAND_COMPONENT),
        ({"$schema": SCHEMA + "CommandJob.schema.json", "command": "x"}, FileKind.COMMAND_JOB),
        ({"$schema": SCHEMA + "sweepJob.schema.json", "type": "sweep"}, FileKind.SWEEP_JOB),
        ({"$schema": SCHEMA + "autoMLJob.schema.json", "type": "automl"}, FileKind.AUTOML_JOB),
        ({"type": "pipeline", "jobs": {}}, FileKind.PIPELINE_JOB),
        ({"$schema": SCHEMA + "pipelineComponent.schema.json", "type": "pipeline"}, FileKind.PIPELINE_COMPONENT),
        ({"type": "pipeline", "name": "p", "version": "2", "jobs": {}}, FileKind.PIPELINE_COMPONENT),
        ({"$schema": SCHEMA + "parallelComponent.schema.json", "type": "parallel"}, FileKind.PARALLEL_COMPONENT),
        ({"type": "parallel"}, FileKind.PARALLEL_JOB),
        ({"$schema": SCHEMA + "sparkJob.schema.json", "type": "spark"}, FileKind.SPARK_JOB),
        ({"$schema": SCHEMA + "sparkComponent.schema.json", "type": "spark"}, FileKind.SPARK_COMPONENT),
        ({"$schema": SCHEMA + "autoMLImageClassificationJob.schema.json", "type": "automl"}, FileKind.AUTOML_JOB),
        ({"$schema": SCHEMA + "environment.schema.json", "image": "x"}, FileKind.OTHER_AZURE),
        ({"name": "env", "channels": ["conda-forge"], "dependencies": ["python=3.10", {"pip": ["mlflow"]}]}, FileKind.CONDA_FILE),
        ({"name": "bank", "task": "classification", "dataset": {}}, FileKind.SPEC),
        (["not", "a", "mapping"], FileKind.UNREADABLE),
    ],
)
def test_kind_comes_from_the_content(data, kind):
    assert kind_of_mapping(data) is kind


def test_suffix_does_not_decide(tmp_path):
    for name in ("job.yaml", "job.yml", "job.txt"):
        (tmp_path / name).write_text("command: echo hi\nenvironment: azureml:env@latest\n")
        assert file_kind(tmp_path / name) is FileKind.COMMAND_JOB
    assert file_kind(tmp_path / "missing.yml") is FileKind.UNREADABLE


# ---------------------------------------------------------------- components, in Azure's documented shapes


@pytest.fixture
def components(tmp_path: Path) -> Path:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "train.py").write_text("print('train')\n")
    (tmp_path / "src" / "score.py").write_text("def init():\n    pass\n\ndef run(batch):\n    return batch\n")
    files = {
        "train_component.yml": f"""\
            $schema: {SCHEMA}commandComponent.schema.json
            type: command
            name: train_model
            display_name: Train a model
            version: 1
            inputs:
              training_data:
                type: uri_folder
              max_epochs:
                type: integer
                default: 3
              learning_rate:
                type: number
                optional: true
            outputs:
              model_output:
                type: uri_folder
            code: ./src
            environment: azureml:AzureML-sklearn-1.5@latest
            command: >-
              python train.py --data ${{{{inputs.training_data}}}} --epochs ${{{{inputs.max_epochs}}}}
              $[[--lr ${{{{inputs.learning_rate}}}}]] --out ${{{{outputs.model_output}}}}
            """,
        "pipeline_component.yml": f"""\
            $schema: {SCHEMA}pipelineComponent.schema.json
            type: pipeline
            name: train_pipeline
            inputs:
              training_data:
                type: uri_folder
            outputs:
              trained_model:
                type: uri_folder
            jobs:
              train:
                type: command
                component: ./train_component.yml
                inputs:
                  training_data: ${{{{parent.inputs.training_data}}}}
                outputs:
                  model_output: ${{{{parent.outputs.trained_model}}}}
            """,
        "parallel_component.yml": f"""\
            $schema: {SCHEMA}parallelComponent.schema.json
            type: parallel
            name: batch_score
            version: 1
            inputs:
              data:
                type: mltable
            outputs:
              scored:
                type: uri_folder
            input_data: ${{{{inputs.data}}}}
            mini_batch_size: "10"
            task:
              type: run_function
              code: ./src
              entry_script: score.py
              environment: azureml:AzureML-sklearn-1.5@latest
              append_row_to: ${{{{outputs.scored}}}}
            """,
        "spark_component.yml": f"""\
            $schema: {SCHEMA}sparkComponent.schema.json
            type: spark
            name: wrangle
            version: 1
            code: ./src
            entry:
              file: train.py
            inputs:
              raw:
                type: uri_file
                mode: direct
            outputs:
              wrangled:
                type: uri_folder
                mode: direct
            args: --raw ${{{{inputs.raw}}}} --out ${{{{outputs.wrangled}}}}
            conf:
              spark.driver.cores: 1
              spark.driver.memory: 2g
              spark.executor.cores: 2
              spark.executor.memory: 2g
              spark.executor.instances: 2
            """,
    }
    for name, text in files.items():
        (tmp_path / name).write_text(textwrap.dedent(text))
    return tmp_path


def test_components_validate_with_the_component_loaders(components):
    paths = sorted(components.glob("*_component.yml"))
    result = _invoke("validate", *paths)
    assert result.exit_code == 0, result.output
    for name, kind in [("train", "command component"), ("pipeline", "pipeline component"), ("parallel", "parallel component"), ("spark", "Spark component")]:
        assert f"{components / f'{name}_component.yml'}: ok (Azure ML {kind})" in result.output
    assert "CommandJobSchema" not in result.output


def test_a_broken_component_is_reported_by_the_component_loader(components):
    path = components / "train_component.yml"
    path.write_text(path.read_text().replace("type: integer", "type: integr"))
    result = _invoke("validate", path)
    assert result.exit_code == 1
    assert f"{path}:" in result.output and "inputs.max_epochs" in result.output and "CommandJobSchema" not in result.output


@pytest.mark.parametrize(
    ("name", "says"),
    [
        ("spark_component.yml", "is a Spark component; it runs on a Spark cluster"),
        ("parallel_component.yml", "is a parallel component; it runs on Azure's parallel-run agents"),
        ("train_component.yml", "is a command component: a step that a pipeline job runs"),
    ],
)
def test_submit_refuses_components_with_the_way_out(components, name, says):
    result = _invoke("submit", components / name)
    assert result.exit_code == 1 and says in result.output, result.output
    assert "Traceback" not in result.output
    if "spark" in name or "parallel" in name:
        assert "az ml job create -f" in result.output


def test_submit_refuses_a_spark_job_naming_az_ml_job_create(tmp_path):
    job = tmp_path / "spark_job.yml"
    job.write_text(f"$schema: {SCHEMA}sparkJob.schema.json\ntype: spark\ncode: ./src\nentry:\n  file: wrangle.py\n")
    result = _invoke("submit", job)
    assert result.exit_code == 1
    assert "is a Spark job" in result.output and f"az ml job create -f {job}" in result.output


def test_build_says_a_job_yaml_is_not_a_spec(tmp_path):
    job = tmp_path / "job.yaml"
    job.write_text("command: python train.py\nenvironment: azureml:AzureML-sklearn-1.5@latest\n")
    result = _invoke("build", job, "--out", tmp_path / "out")
    assert result.exit_code == 1
    assert f"{job}:1:1: an Azure ML command job, not a capc spec" in result.output
    assert "missing" not in result.output  # not read as a spec with 12 problems


def test_an_untyped_command_job_gets_the_command_schemas_own_message(tmp_path):
    """azure-ai-ml tries its command schemas in turn and wraps their errors: the one that applies is shown."""
    job = tmp_path / "job.yaml"
    job.write_text("command: python train.py\n")
    result = _invoke("validate", job)
    assert result.exit_code == 1
    assert f"{job}:1:1: environment: Missing data for required field." in result.output
    assert "1 problem found." in result.output


def test_every_file_capc_build_writes_validates_with_its_loader():
    """Jobs, components, compute, endpoints, deployments, environment, schedule and conda files of a job folder."""
    folder = Path(__file__).parents[2] / "generated" / "bankmarketing"
    paths = sorted(folder.glob("*.yml"))
    result = _invoke("validate", *paths)
    assert result.exit_code == 0, result.output
    assert result.output.count(": ok (") == len(paths) >= 10
    assert f"{folder / 'compute.yml'}: ok (Azure ML amlcompute file)" in result.output
    assert f"{folder / 'conda.yml'}: ok (conda file)" in result.output
