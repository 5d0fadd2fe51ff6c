"""Render stage, conditional sweeps: what `capc build` writes for sweep.families, and that Azure's SDK loads it.

grid: one sweep_job.yml over the indices of combinations.json, whose train.py hands each row to its family's
script; random/bayesian: one sweep_<family>.yml per family with the budget split, a pipeline node per family.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from capc.build import compile_spec
from capc.artifacts import sweep_job_files, write_tree
from capc.spec import load_spec
from capc.spec.conditional import branches, grid_combinations
from repo import REPO



# A user's trial script: writes the arguments it was given to argv.json (no MLflow: it only shows what it got).
ECHO_SCRIPT = textwrap.dedent("""\
    import json, sys
    with open("argv.json", "w") as f:
        json.dump(sys.argv[1:], f)
""")


def build(tmp_path: Path, sampling: str, families: str, limits: str = "{max_total_trials: 10, max_concurrent_trials: 3}") -> tuple[object, Path]:
    (tmp_path / "data").mkdir(parents=True, exist_ok=True)
    lines = (REPO / "specs/data/digits/digits_train.csv").read_text().splitlines(keepends=True)
    (tmp_path / "data" / "digits.csv").write_text("".join(lines[:60]))
    (tmp_path / "echo.py").write_text(ECHO_SCRIPT)
    spec_path = tmp_path / "spec.yaml"
    spec_path.write_text(
        "name: cond\n"
        "dataset: {path: data/digits.csv, format: csv, target: label, cross_validations: 3}\n"
        "task: classification\nmetric: accuracy\n"
        f"sweep:\n  sampling: {sampling}\n  families:\n{textwrap.indent(textwrap.dedent(families), '    ')}"
        f"  early_termination: {{type: median_stopping, delay_evaluation: 2}}\n  limits: {limits}\n"
    )
    spec = load_spec(spec_path)
    out = tmp_path / "generated"
    write_tree(out / spec.name, compile_spec(spec, out))
    return spec, out / spec.name


GRID = """\
logistic_regression:
  search_space: {C: "choice(0.1, 1, 10)", max_iter: "choice(50, 100)"}
svc:
  search_space: {C: "choice(1, 10)", kernel: "choice('rbf', 'poly')"}
mine:
  script: echo.py
  search_space: {depth: "choice(2, 4)", note: "choice('two words')"}
"""

RANDOM = """\
logistic_regression:
  search_space: {C: "uniform(0.1, 10)", max_iter: "choice(50, 100)"}
svc:
  weight: 2
  search_space: {C: "loguniform(0, 3)", gamma: "loguniform(-6, -2)"}
"""


def load_with_sdk(path: Path):
    """azure-ai-ml's own loaders, then the REST form `az ml job create` would send (jobs)."""
    from azure.ai.ml import load_component, load_job

    if path.name.startswith("sweep_trial"):
        return load_component(source=path)
    job = load_job(source=path)
    job._to_rest_object()
    return job


def test_grid_sweeps_the_indices_of_the_valid_combinations(tmp_path):
    spec, job_dir = build(tmp_path, "grid", GRID)
    table = json.loads((job_dir / "src" / "combinations.json").read_text())
    expected = [c.to_dict() for c in grid_combinations(branches(spec.data["sweep"]))]
    assert table["combinations"] == expected and len(expected) == 3 * 2 + 2 * 2 + 2 * 1
    assert table["scripts"] == {"logistic_regression": "train_logistic_regression.py", "svc": "train_svc.py", "mine": "train_mine.py"}
    assert list(sweep_job_files(job_dir)) == ["sweep"]
    job = yaml.safe_load((job_dir / "sweep_job.yml").read_text())
    assert job["search_space"] == {"combination": {"type": "choice", "values": list(range(len(expected)))}}
    assert job["trial"]["command"].startswith("python train.py ") and "--combination ${{search_space.combination}}" in job["trial"]["command"]
    assert (job_dir / "src" / "train_mine.py").read_text() == ECHO_SCRIPT  # the user's branch, copied
    for rel in ("sweep_job.yml", "pipeline_job.yml", "sweep_trial.yml"):
        load_with_sdk(job_dir / rel)


def test_the_grid_trial_gives_a_row_to_its_family_with_only_its_parameters(tmp_path):
    spec, job_dir = build(tmp_path, "grid", GRID)
    rows = json.loads((job_dir / "src" / "combinations.json").read_text())["combinations"]
    mine = next(r for r in rows if r["family"] == "mine")
    run = subprocess.run(
        [sys.executable, "train.py", "--data", "x.csv", "--combination", str(mine["index"]), "--target", "label", "--metric", "accuracy"],
        cwd=job_dir / "src", capture_output=True, text=True, timeout=60,
    )
    assert run.returncode == 0, run.stderr
    assert json.loads((job_dir / "src" / "argv.json").read_text()) == [
        "--data", "x.csv", "--target", "label", "--metric", "accuracy", "--depth", str(mine["params"]["depth"]), "--note", "two words",
    ]
    wrong = subprocess.run([sys.executable, "train.py", "--combination", "99"], cwd=job_dir / "src", capture_output=True, text=True, timeout=60)
    assert wrong.returncode != 0 and "--combination 99 is not a row" in wrong.stderr


def test_random_gives_one_sweep_per_family_with_the_budget_split(tmp_path):
    spec, job_dir = build(tmp_path, "random", RANDOM)
    jobs = {kind: yaml.safe_load(path.read_text()) for kind, path in sweep_job_files(job_dir).items()}
    assert list(jobs) == ["sweep_logistic_regression", "sweep_svc"]
    assert not (job_dir / "sweep_job.yml").exists() and not (job_dir / "src" / "train.py").exists()
    lr, svc = jobs["sweep_logistic_regression"], jobs["sweep_svc"]
    assert (lr["limits"]["max_total_trials"], svc["limits"]["max_total_trials"]) == (3, 7)  # weights 1:2 of 10
    assert (lr["limits"]["max_concurrent_trials"], svc["limits"]["max_concurrent_trials"]) == (1, 2)  # of 3
    for family, job in (("logistic_regression", lr), ("svc", svc)):
        words = shlex.split(job["trial"]["command"])
        assert words[:2] == ["python", f"train_{family}.py"]
        assert {w[2:] for w in words if w.startswith("--")} - {"data", "target", "metric"} == set(job["search_space"])
        assert job["tags"]["capc_family"] == family
        assert job["early_termination"]["type"] == "median_stopping"  # each sweep applies the policy to its own trials
        assert (job_dir / "src" / f"train_{family}.py").is_file()
    assert set(svc["search_space"]) == {"C", "gamma"}
    pipeline = yaml.safe_load((job_dir / "pipeline_job.yml").read_text())["jobs"]
    assert {k for k, v in pipeline.items() if v["type"] == "sweep"} == set(jobs)
    select = pipeline["select_best"]
    # Each node's best model, and the training file the step measures them with (serving budget).
    assert set(select["inputs"]) == {"automl_model", "sweep_logistic_regression_model", "sweep_svc_model", "training_data"}
    assert select["command"].count("--candidate ") == 3
    for kind, job in jobs.items():
        assert pipeline[kind]["search_space"] == job["search_space"] and pipeline[kind]["limits"] == job["limits"]
        load_with_sdk(sweep_job_files(job_dir)[kind])
        component = load_with_sdk(job_dir / pipeline[kind]["trial"])
        assert set(component.inputs) == {"training_data", *job["search_space"]}
    load_with_sdk(job_dir / "pipeline_job.yml")


def test_environment_carries_every_familys_packages(tmp_path):
    spec, job_dir = build(tmp_path, "random", RANDOM.replace("svc:\n  weight: 2\n  search_space: {C: \"loguniform(0, 3)\", gamma: \"loguniform(-6, -2)\"}",
                                                             "lightgbm:\n  search_space: {num_leaves: \"choice(8, 16)\"}"))
    assert "lightgbm==4.7.0" in (job_dir / "conda.yml").read_text()


@pytest.mark.parametrize("sampling, families", [("grid", GRID), ("random", RANDOM)])
def test_builds_are_deterministic(tmp_path, sampling, families):
    spec, _ = build(tmp_path / "a", sampling, families)
    first = compile_spec(spec, tmp_path / "out")
    assert compile_spec(load_spec(spec.path), tmp_path / "out") == first
