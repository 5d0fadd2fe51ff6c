"""The spec's seed in the compiled jobs and trial scripts, the environment's content version, and Azure's refusal
of a seeded sampler in a pipeline's sweep node (capc.spec.service_rules)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from capc.families import FAMILIES
from capc.render import pins as render_pins
from capc.render.environment_version import environment_version
from capc.spec.service_rules import is_floating_image
from render_specs import base_spec, load, place_data, render_to

SPEC_OF_FAMILY = {"logistic_regression": "digits", "svc": "digits", "random_forest": "bank", "lightgbm": "bank",
                  "keras_mlp": "housing", "keras_cnn": "mri"}
SPACE_OF_FAMILY = {
    "logistic_regression": {"C": "uniform(0.1, 10)"}, "svc": {"C": "uniform(0.1, 10)"}, "random_forest": {"n_estimators": "choice(10, 20)"},
    "lightgbm": {"n_estimators": "choice(20, 40)"}, "keras_mlp": {"epochs": "choice(2, 3)"}, "keras_cnn": {"epochs": "choice(2, 3)"},
}


def _render(tmp_path: Path, which: str, **changes) -> tuple[dict[str, bytes], object]:
    place_data(tmp_path, which)
    spec = load(tmp_path, base_spec(which, **changes))
    return render_to(spec, tmp_path / "out"), spec


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_the_seed_reaches_every_trial_familys_script(tmp_path, family):
    assert set(SPEC_OF_FAMILY) == set(FAMILIES)  # a new family needs a case here
    which = SPEC_OF_FAMILY[family]
    files, _ = _render(tmp_path, which, seed=7, sweep__model=family, sweep__search_space=SPACE_OF_FAMILY[family])
    job = yaml.safe_load(files["sweep_job.yml"])
    assert job["trial"]["command"].split()[-2:] == ["--seed", "7"]
    assert job["sampling_algorithm"] == {"type": "random", "seed": 7} or job["sampling_algorithm"] == "bayesian"
    script = files["src/train.py"].decode()
    assert '"--seed", type=int, default=SEED' in script and "seed_everything(args.seed)" in script
    assert 'SEED = int(os.environ.get("CAPC_SEED") or 42)' in script
    if "sweep_trial.yml" in files:  # the pipeline's trial component passes it too
        assert "--seed 7" in yaml.safe_load(files["sweep_trial.yml"])["command"]


def test_a_seeded_trial_script_repeats_itself_and_records_its_seed(tmp_path):
    """The generated logistic-regression trial, run twice with --seed 7 and once with --seed 8: the same value
    twice, and the seed it ran with in its held-out predictions."""
    files, _ = _render(tmp_path, "digits", seed=7)
    src = tmp_path / "out" / "digits" / "src"
    data = tmp_path / "data" / "digits.csv"
    values = []
    for seed in (7, 7, 8):
        env = {**os.environ, "MLFLOW_TRACKING_URI": f"file:{tmp_path / 'mlruns'}", "MLFLOW_DISABLE_TELEMETRY": "true", "MLFLOW_ALLOW_FILE_STORE": "true"}
        out = tmp_path / f"out-{len(values)}"
        done = subprocess.run([sys.executable, str(src / "train.py"), "--data", str(data), "--target", "label", "--metric", "accuracy",
                               "--C", "0.5", "--max_iter", "50", "--seed", str(seed), "--output_dir", str(out)],
                              env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
        values.append(json.loads(done.stdout.strip().splitlines()[-1])["value"])
    assert values[0] == values[1]
    runs = sorted((tmp_path / "mlruns").rglob("held_out/predictions.json"), key=lambda p: p.stat().st_mtime)
    assert [json.loads(p.read_text())["seed"] for p in runs] == [7, 7, 8]


def test_a_seed_in_a_pipeline_warns_and_the_pipeline_samples_unseeded(tmp_path):
    files, spec = _render(tmp_path, "bank", seed=7)
    assert yaml.safe_load(files["sweep_job.yml"])["sampling_algorithm"] == {"type": "random", "seed": 7}
    pipeline = yaml.safe_load(files["pipeline_job.yml"])
    assert pipeline["jobs"]["sweep"]["sampling_algorithm"] == "random"
    [warning] = [w for w in spec.warnings if w.key_path == "seed"]
    assert "Azure ML refuses a seeded sampling algorithm in a pipeline's sweep node" in warning.message
    assert "Algorithm  is not supported by Sweep Component." in warning.message
    assert json.loads(files["capc.json"])["seed"] == 7
    # azure-ai-ml's own loader takes the seeded sweep job.
    from azure.ai.ml import load_job

    job = load_job(source=tmp_path / "out" / "bank" / "sweep_job.yml")
    assert job.sampling_algorithm.seed == 7


def test_a_hand_written_pipeline_with_a_seeded_sweep_node_is_refused(tmp_path):
    from capc.jobfolder.job_yaml import load_job_yaml
    from capc.jobfolder.validate import service_rule_problems

    files, _ = _render(tmp_path, "bank", seed=7)
    folder = tmp_path / "out" / "bank"
    pipeline = yaml.safe_load(files["pipeline_job.yml"])
    pipeline["jobs"]["sweep"]["sampling_algorithm"] = {"type": "random", "seed": 7}
    (folder / "seeded_pipeline.yml").write_text(yaml.safe_dump(pipeline, sort_keys=False))
    [problem] = service_rule_problems(load_job_yaml(folder / "seeded_pipeline.yml", []))
    assert problem.key_path == "jobs.sweep.sampling_algorithm"
    assert problem.message == ("Azure ML refuses a seeded sampling algorithm in a pipeline's sweep node: "
                               "'Error occurred when loading YAML file rootNode, details: Algorithm  is not supported by Sweep Component.'")
    assert "sampling_algorithm: random" in problem.hint and "azure-sdk-for-python/issues/33703" in problem.hint
    assert service_rule_problems(load_job_yaml(folder / "pipeline_job.yml", [])) == []  # capc's own compiles around it


def test_environment_version_is_stable_and_changes_with_one_byte_of_a_pin(tmp_path, monkeypatch):
    first, _ = _render(tmp_path / "a", "bank")
    again, _ = _render(tmp_path / "b", "bank")
    env = yaml.safe_load(first["environment.yml"])
    assert env["version"] == yaml.safe_load(again["environment.yml"])["version"]  # same content, same version
    assert env["version"] == environment_version(first["conda.yml"], env["image"])
    assert not is_floating_image(env["image"]) and ":latest" not in env["image"]
    ref = f"azureml:bank-env:{env['version']}"
    assert yaml.safe_load(first["sweep_job.yml"])["trial"]["environment"] == ref
    assert yaml.safe_load(first["deployment.yml"])["environment"] == ref
    assert yaml.safe_load(first["sweep_trial.yml"])["environment"] == ref
    # One byte of one pin: flaml 2.7.0 -> 2.7.1.
    monkeypatch.setitem(render_pins.RUNTIME_PINS, "flaml", "2.7.1")
    changed, _ = _render(tmp_path / "c", "bank")
    assert sum(a != b for a, b in zip(first["conda.yml"], changed["conda.yml"])) == 1
    version = yaml.safe_load(changed["environment.yml"])["version"]
    assert version != env["version"]
    assert yaml.safe_load(changed["sweep_job.yml"])["trial"]["environment"] == f"azureml:bank-env:{version}"


def test_the_azure_backend_refuses_a_conda_file_changed_after_the_build(tmp_path):
    from capc.azure.assets import environment_asset
    from capc.errors import CapcError

    _render(tmp_path, "bank")
    folder = tmp_path / "out" / "bank"
    version = yaml.safe_load((folder / "environment.yml").read_text())["version"]
    assert environment_asset(folder, "bank").version == version  # the version the jobs name
    conda = folder / "conda.yml"
    conda.write_text(conda.read_text().replace("flaml==2.7.0", "flaml==2.7.1"))
    with pytest.raises(CapcError) as changed:
        environment_asset(folder, "bank")
    assert "conda.yml or the image changed after the build" in changed.value.message


def test_floating_images():
    assert is_floating_image("mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu22.04:latest")
    assert is_floating_image("mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu22.04")
    assert not is_floating_image("mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu22.04:20241202.v1")
    assert not is_floating_image("localhost:5000/img@sha256:" + "0" * 64)


def test_an_image_by_latest_is_a_warning(tmp_path):
    place_data(tmp_path, "bank")
    spec = load(tmp_path, base_spec("bank", environment__image="mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu22.04:latest"))
    [warning] = [w for w in spec.warnings if w.key_path == "environment.image"]
    assert warning.message == ("`mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu22.04:latest` names no fixed image: "
                               "the environment's version cannot tell its builds apart")
    assert not [w for w in load(tmp_path, base_spec("bank")).warnings if w.key_path == "environment.image"]
