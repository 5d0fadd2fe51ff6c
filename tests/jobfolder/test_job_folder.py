"""The job folder is the contract: `capc build` writes everything a backend needs into generated/<name>/, and
`capc submit generated/<name>/` runs it with no spec file present, on both targets, as `capc submit SPEC` does."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from capc.cli import cli
from capc.errors import CapcError
from capc.jobfolder import read_job_folder
from repo import REFERENCE_NAMES, REPO, SPECS, digits_spec


def _invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def _json(output: str):
    return json.loads(output[output.index("{"):])


# ---------------------------------------------------------------- what the build writes


@pytest.mark.parametrize("name", REFERENCE_NAMES)
def test_folder_holds_what_the_spec_said(name):
    from capc.spec import load_spec

    spec = load_spec(SPECS / f"{name}.yaml")
    folder = read_job_folder(REPO / "generated" / name)
    assert (folder.name, folder.task, folder.metric, folder.goal) == (spec.name, spec.task, spec.metric, spec.goal)
    assert folder.spec_sha256 == spec.sha256 and folder.description == spec.data["description"]
    assert folder.deployment_model == spec.data["deployment"]["model"]
    assert folder.automl_enabled == spec.data["automl"]["enabled"]
    compute = spec.data["compute"]
    cluster = folder.cluster
    assert (cluster.name, cluster.size, cluster.min_instances, cluster.max_instances, cluster.idle_time_before_scale_down) == (
        compute["name"], compute["size"], compute["min_instances"], compute["max_instances"], compute["idle_time_before_scale_down"])
    from capc.artifacts import sweep_job_files

    assert [j.kind for j in folder.jobs] == ["automl", *sweep_job_files(folder.path)]  # mnist: a sweep job per family
    assert [j.kind for j in folder.sweeps] == list(sweep_job_files(folder.path)) and folder.sweeps


@pytest.mark.parametrize("name", REFERENCE_NAMES)
def test_compute_yml_loads_with_azure_ai_ml_and_the_manifest_covers_both_files(name):
    from azure.ai.ml import load_compute

    job_dir = REPO / "generated" / name
    compute = load_compute(job_dir / "compute.yml")
    assert type(compute).__name__ == "AmlCompute" and compute.name == read_job_folder(job_dir).cluster.name
    assert {"compute.yml", "capc.json"} <= set(json.loads((job_dir / "manifest.json").read_text())["artifacts"])


def test_disabled_parts_are_not_run_and_only_picks_one(workdir):
    spec = _digits_spec(workdir)
    spec.write_text(spec.read_text().replace("automl: {timeout_minutes: 1, max_trials: 4}", "automl: {enabled: false}"))
    assert _invoke("build", spec, "--out", workdir / "generated").exit_code == 0
    folder = read_job_folder(workdir / "generated" / "digits-small")
    assert [j.kind for j in folder.jobs] == ["sweep"]
    with pytest.raises(CapcError, match="the automl job is disabled"):
        read_job_folder(folder.path, only="automl")
    with pytest.raises(CapcError, match="no pipeline_job.yml"):
        read_job_folder(folder.path, only="pipeline")


def test_a_folder_from_an_older_build_says_to_rebuild(tmp_path):
    shutil.copytree(REPO / "generated" / "mnist", tmp_path / "mnist")
    (tmp_path / "mnist" / "capc.json").unlink()
    with pytest.raises(CapcError, match="built by an older capc") as caught:
        read_job_folder(tmp_path / "mnist")
    assert "capc build" in caught.value.hint


def test_set_on_a_job_folder_is_refused():
    result = _invoke("submit", REPO / "generated" / "mnist", "--set", "sweep.limits.max_total_trials=2")
    assert result.exit_code == 1 and "compiled job folder: --set changes a spec" in result.output


# ---------------------------------------------------------------- the spec-less run, both targets


def _digits_spec(workdir: Path, extra: str = "") -> Path:
    return digits_spec(workdir, rows=300, extra="compute: {name: small-cluster, size: Standard_DS2_v2, max_instances: 2}\n" + extra)


def test_job_folder_runs_without_its_spec_with_the_same_result_on_both_targets(workdir, no_outbound):
    spec = _digits_spec(workdir)
    generated = workdir / "generated"
    with_spec = _invoke("submit", spec, "--only", "sweep", "--json", "--out", generated)
    assert with_spec.exit_code == 0, with_spec.output
    azure_with_spec = _invoke("submit", spec, "--target", "azure", "--dry-run", "--out", generated)
    assert azure_with_spec.exit_code == 0, azure_with_spec.output

    spec.unlink()  # from here on only the job folder (and the data it reads in place) exists
    job_dir = generated / "digits-small"
    without_spec = _invoke("submit", job_dir, "--only", "sweep", "--json")
    assert without_spec.exit_code == 0, without_spec.output
    azure_without_spec = _invoke("submit", job_dir, "--target", "azure", "--dry-run")
    assert azure_without_spec.exit_code == 0, azure_without_spec.output

    first, second = _json(with_spec.output), _json(without_spec.output)
    assert first["model"]["version"] == 1 and second["model"]["version"] == 2
    assert first["model"]["value"] == second["model"]["value"] and first["model"]["metric"] == second["model"]["metric"] == "accuracy"
    assert first["model"]["spec_sha256"] == second["model"]["spec_sha256"]
    runs = json.loads(_invoke("runs", "digits-small", "--json").output)
    trials = [r for r in runs if r["kind"] == "trial"]
    parents = {r["run_id"]: r["parent"] for r in runs}  # trial -> sweep -> submit
    by_submit: dict[str, list] = {}
    for trial in trials:
        by_submit.setdefault(parents[trial["parent"]], []).append((trial["params"]["C"], trial["metrics"]["accuracy"]))
    assert sorted(by_submit[first["run_id"]]) == sorted(by_submit[second["run_id"]]) and len(by_submit[first["run_id"]]) == 2

    assert azure_with_spec.stdout == azure_without_spec.stdout  # the same assets and REST bodies (the spec's warnings go to stderr)
    assert "AmlCompute Standard_DS2_v2, 0-2 nodes" in azure_without_spec.output
