"""`--data-map FILE` (capc.local.data_map): remote URIs bound to local paths wherever a job names them, at any
depth of a pipeline; what stays remote is refused naming --data-map."""

from __future__ import annotations

import copy
import json
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from capc.cli import cli
from capc.errors import CapcError
from capc.jobfolder.job_yaml import load_job_yaml
from capc.local.data_map import apply_data_map, bind_job_data, read_data_map
from capc.local.handwritten import run_job_yaml

IRIS = "wasbs://datasets@azuremlexamples.blob.core.windows.net/iris.csv"
BANK = "azureml://datastores/workspaceblobstore/paths/bank/"
ASSET = "azureml:bank-test:1"


@pytest.fixture
def data_map(tmp_path: Path) -> dict:
    (tmp_path / "data" / "bank").mkdir(parents=True)
    (tmp_path / "data" / "bank" / "train").mkdir()
    (tmp_path / "data" / "iris.csv").write_text("a,b\n1,2\n")
    (tmp_path / "data" / "test").mkdir()
    (tmp_path / "maps").mkdir()
    path = tmp_path / "maps" / "data_map.yml"
    path.write_text(f"{IRIS}: ../data/iris.csv\n{BANK}: ../data/bank/\n'{ASSET}': {tmp_path / 'data' / 'test'}\n")
    return read_data_map(path)


def test_map_paths_are_read_from_the_map_files_folder(data_map, tmp_path):
    assert data_map[IRIS] == str(tmp_path / "data" / "iris.csv")
    assert data_map[BANK] == str(tmp_path / "data" / "bank")


@pytest.mark.parametrize(
    ("text", "says"),
    [("- a\n- b\n", "a YAML mapping of remote URI to local path"), ("./local.csv: ./x.csv\n", "is not a remote URI")],
)
def test_a_bad_map_file_is_a_clear_error(tmp_path, text, says):
    path = tmp_path / "map.yml"
    path.write_text(text)
    with pytest.raises(CapcError, match=says):
        read_data_map(path)


def test_every_path_at_any_depth_that_names_a_mapped_uri_is_bound(data_map, tmp_path):
    """A pipeline with a nested pipeline component inline, an AutoML node and a command step, as loaded."""
    job = {
        "type": "pipeline",
        "inputs": {"iris": {"type": "uri_file", "path": IRIS}, "lr": 0.1},
        "jobs": {
            "prep": {"type": "command", "inputs": {"raw": "${{parent.inputs.iris}}"}},
            "inner": {"type": "pipeline", "component": {"type": "pipeline", "jobs": {"train": {
                "type": "command", "inputs": {"train": {"type": "uri_folder", "path": BANK + "train"},
                                             "other": {"type": "uri_file", "path": "https://example.org/unmapped.csv"}}}}}},
            "automl": {"type": "automl", "training_data": {"type": "mltable", "path": BANK}, "test_data": {"type": "mltable", "path": ASSET}},
        },
    }
    before = copy.deepcopy(job)
    mapped = apply_data_map(job, data_map)
    assert [(m.key_path, m.uri) for m in mapped] == [
        ("inputs.iris.path", IRIS),
        ("jobs.inner.component.jobs.train.inputs.train.path", BANK + "train"),
        ("jobs.automl.training_data.path", BANK),
        ("jobs.automl.test_data.path", ASSET),
    ]
    assert job["inputs"]["iris"]["path"] == str(tmp_path / "data" / "iris.csv")
    assert job["jobs"]["inner"]["component"]["jobs"]["train"]["inputs"]["train"]["path"] == str(tmp_path / "data" / "bank" / "train")
    assert job["jobs"]["automl"]["test_data"]["path"] == str(tmp_path / "data" / "test")
    assert job["jobs"]["inner"]["component"]["jobs"]["train"]["inputs"]["other"]["path"] == "https://example.org/unmapped.csv"
    assert job["jobs"]["prep"] == before["jobs"]["prep"] and job["inputs"]["lr"] == 0.1


def test_a_mapped_path_that_does_not_exist_is_refused(data_map):
    with pytest.raises(CapcError, match=r"inputs.x.path .*does not exist"):
        apply_data_map({"inputs": {"x": {"path": BANK + "missing.csv"}}}, data_map)


JOB = """\
$schema: https://azuremlschemas.azureedge.net/latest/commandJob.schema.json
type: command
command: cut -d, -f1 ${{inputs.iris}} > outputs/first_column.txt
inputs:
  iris:
    type: uri_file
    path: %s
environment: azureml:AzureML-sklearn-1.5@latest
"""


def test_an_unmapped_remote_input_is_refused_naming_the_data_map(tmp_path, data_map):
    job = tmp_path / "job.yml"
    job.write_text(JOB % "https://example.org/iris.csv")
    with pytest.raises(CapcError) as caught:
        run_job_yaml(bind_job_data(load_job_yaml(job), data_map))
    assert "--set inputs.iris.path=LOCAL_FILE" in str(caught.value) and "--data-map FILE" in str(caught.value)


@pytest.mark.slow
def test_submit_with_a_data_map_runs_on_the_local_copy(workdir, data_map):
    job = workdir / "job.yml"
    job.write_text(textwrap.dedent(JOB % IRIS))
    result = CliRunner().invoke(cli, ["submit", str(job), "--data-map", str(workdir / "maps" / "data_map.yml"), "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout[result.stdout.index("{"):])
    assert (Path(payload["best"]["folder"]) / "outputs" / "first_column.txt").read_text().split() == ["a", "1"]
    assert f"--data-map binds inputs.iris.path to {workdir / 'data' / 'iris.csv'}" in result.output


def test_bound_job_is_another_version_of_the_file(tmp_path, data_map):
    job = tmp_path / "job.yml"
    job.write_text(JOB % IRIS)
    loaded = load_job_yaml(job)
    bound = bind_job_data(loaded, data_map)
    assert bound.data["inputs"]["iris"]["path"] == data_map[IRIS]
    assert [m.uri for m in bound.mapped] == [IRIS] and bound.sha256 != loaded.sha256  # --resume tells them apart
    assert bind_job_data(load_job_yaml(job), {}).sha256 == loaded.sha256
