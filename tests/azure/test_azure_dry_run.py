"""Azure target: `capc submit SPEC --target azure --dry-run` - golden output for the five reference specs.

The dry run prints the assets it would create and, per job, the REST request azure-ai-ml would send; it contacts
nothing (the `no_network` guard fails these tests on any connect or lookup). The goldens live in
tests/azure/golden/azure_dry_run/; after a reviewed change of the generated jobs, rewrite them with
`CAPC_UPDATE_GOLDENS=1 pytest tests/azure/test_azure_dry_run.py`.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import pytest
from rich.console import Console

from capc.azure import backend
from capc.jobfolder import read_job_folder
from fake_azure import DRY_RUN_CASES
from repo import REPO

GOLDEN = Path(__file__).parent / "golden" / "azure_dry_run"


def _dry_run(job_dir: Path, name: str, workspace=None, only=None):
    console = Console(file=io.StringIO(), width=120)
    result = backend.submit(read_job_folder(job_dir, only), workspace, dry_run=True, console=console)
    return result, console.file.getvalue()


@pytest.mark.parametrize("name, only", DRY_RUN_CASES)
def test_dry_run_golden(name, only, job_dirs, no_network, capc_home):
    result, text = _dry_run(job_dirs(name), name, only=only)
    golden = GOLDEN / (f"{name}-{only}.txt" if only else f"{name}.txt")
    if os.environ.get("CAPC_UPDATE_GOLDENS") == "1":
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(text, encoding="utf-8")
    assert text == golden.read_text(encoding="utf-8")
    assert result.dry_run and not result.jobs and not result.assets
    assert not capc_home.exists(), "a dry run records no submission"
    # the JSON printed for each job is the request body, exactly
    for request in result.requests:
        assert json.dumps(request["body"], indent=2, sort_keys=True) in text


@pytest.mark.parametrize("name", ["housing", "mri"])
def test_dry_run_golden_does_not_depend_on_where_the_build_lies(name, job_dirs, tmp_path):
    """Versions hash content, not paths: a build elsewhere prints the same assets and bodies."""
    from capc.artifacts import write_tree
    from capc.build import compile_spec
    from capc.spec import load_spec

    elsewhere = tmp_path / "deep" / "er" / "out"
    spec = load_spec(REPO / "specs" / f"{name}.yaml")
    write_tree(elsewhere / name, compile_spec(spec, elsewhere))
    assert _dry_run(elsewhere / name, name)[1] == _dry_run(job_dirs(name), name)[1]


def test_dry_run_with_a_workspace_names_it(job_dirs):
    from capc.azure.workspace import WorkspaceRef

    ws = WorkspaceRef("sub-1", "rg-1", "ws-1", "config.json")
    result, text = _dry_run(job_dirs("mnist"), "mnist", ws)
    assert "# workspace: /subscriptions/sub-1/resourceGroups/rg-1/providers/Microsoft.MachineLearningServices/workspaces/ws-1 (config.json)" in text
    automl = next(r for r in result.requests if r["job"] == "automl")
    assert automl["body"]["properties"]["computeId"] == f"{ws.arm_id}/computes/cpu-cluster"
    assert automl["body"]["properties"]["taskDetails"]["trainingData"]["uri"].startswith(f"{ws.arm_id}/data/mnist-training/versions/")


def test_dry_run_body_carries_the_forecasting_settings(job_dirs):
    """macro.yaml's `forecasting:` block reaches the REST body of its AutoML job as Azure's ForecastingSettings."""
    result, _ = _dry_run(job_dirs("macro"), "macro")
    details = next(r for r in result.requests if r["job"] == "automl")["body"]["properties"]["taskDetails"]
    assert (details["taskType"], details["primaryMetric"]) == ("Forecasting", "NormalizedMeanAbsoluteError")
    assert details["nCrossValidations"] == {"mode": "Custom", "value": 3}
    assert details["forecastingSettings"] == {
        "timeColumnName": "quarter", "timeSeriesIdColumnNames": ["series"], "forecastHorizon": {"mode": "Custom", "value": 4},
        "frequency": "QS", "targetLags": {"mode": "Auto"}, "targetRollingWindowSize": {"mode": "Auto"}, "seasonality": {"mode": "Auto"},
    }  # cv_step_size: auto is left to Azure (its schema takes a number only)
    assert "LightGBM" in details["trainingSettings"]["allowedTrainingAlgorithms"]


def test_dry_run_of_one_job(job_dirs):
    console = Console(file=io.StringIO(), width=120)
    result = backend.submit(read_job_folder(job_dirs("mnist"), "sweep"), None, dry_run=True, console=console)
    # --only sweep: every per-family sweep job of mnist's conditional sweep, nothing else.
    assert [r["job"] for r in result.requests] == ["sweep_logistic_regression", "sweep_svc"]
    assert "mnist-training:" not in console.file.getvalue(), "the AutoML table is not needed by the sweep"


def test_image_table_is_staged_with_its_images(job_dirs):
    """mri: the images go up as a folder asset; the MLTable asset is versioned with them."""
    from capc.azure.assets import plan_assets
    plan = plan_assets(read_job_folder(job_dirs("mri")))
    images, table = plan.data
    assert (images.name, images.type, table.name, table.type) == ("mri-images", "uri_folder", "mri-training", "mltable")
    assert table.images is images
    assert sorted(table.files) == ["MLTable", "images.jsonl"]
    assert len(images.files) == sum(len(rows) for rows in table.image_lines.values())
    assert {rel.split("/")[0] for rel in images.files} == {"yes", "no"}
    assert plan.inputs["sweep"]["training_data"] is images, "the sweep reads the same folder: one upload"


def test_the_git_line_says_what_the_sdk_will_do_in_this_working_directory(job_dirs, tmp_path, monkeypatch):
    import shutil
    import subprocess

    for part in ("REPOSITORY_URI", "BRANCH", "COMMIT"):
        monkeypatch.delenv(f"AZUREML_GIT_{part}", raising=False)
    monkeypatch.chdir(tmp_path)
    text = _dry_run(job_dirs("housing"), "housing")[1]
    assert "# no git repository in the working directory: the jobs carry no git properties." in text
    assert "are added at submission" not in text
    if shutil.which("git") is None:
        pytest.skip("no git on this machine")
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    assert backend.in_git_work_tree(tmp_path)
    assert "# git properties of the working copy (azureml.git.*, mlflow.source.git.*) are added at submission." in _dry_run(job_dirs("housing"), "housing")[1]


def test_a_pipeline_dry_run_logs_no_experimental_class_notice(job_dirs):
    """azure-ai-ml logs one "This is an experimental class" per schema class a pipeline YAML touches (six for the
    bank pipeline) to its own stderr handler; its cache prints each once a process, so it is emptied first."""
    import logging

    from azure.ai.ml._utils import _experimental

    class Kept(logging.Handler):
        def __init__(self):
            super().__init__(logging.DEBUG)
            self.messages = []

        def emit(self, record):
            self.messages.append(record.getMessage())

    kept = Kept()
    logger = logging.getLogger(_experimental.__name__)
    _experimental._warning_cache.clear()
    logger.addHandler(kept)
    try:
        text = _dry_run(job_dirs("bankmarketing"), "bankmarketing", only="pipeline")[1]
    finally:
        logger.removeHandler(kept)
    assert "# pipeline job" in text
    assert kept.messages == []
