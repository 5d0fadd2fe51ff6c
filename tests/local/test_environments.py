"""The job's environment built here (capc.local.environments, capc.local.env_install): a conda file's requirements
installed into a cached virtual environment from a local folder of wheels (never the network), reused by the next
job naming the same one, a pin this Python cannot take moved to the nearest release with a note, and a failed
install refused before any run."""

from __future__ import annotations

import json
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

from capc.errors import CapcError
from capc.jobfolder.job_yaml import load_job_yaml
from capc.local import env_install
from capc.local.environments import CURRENT, conda_request, find_python, job_environment
from capc.local.handwritten import run_job_yaml

THIS_PYTHON = f"{sys.version_info.major}.{sys.version_info.minor}"


def write_wheel(folder: Path, name: str, version: str, requires_python: str | None = None) -> Path:
    """A pure-Python wheel of one module that knows its version (the wheel format written directly: a zip with
    METADATA, WHEEL and RECORD)."""
    dist = f"{name}-{version}.dist-info"
    metadata = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n" + (f"Requires-Python: {requires_python}\n" if requires_python else "")
    files = {f"{name}/__init__.py": f"VERSION = {version!r}\n", f"{dist}/METADATA": metadata,
             f"{dist}/WHEEL": "Wheel-Version: 1.0\nGenerator: capc-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"}
    files[f"{dist}/RECORD"] = "".join(f"{path},,\n" for path in files) + f"{dist}/RECORD,,\n"
    folder.mkdir(parents=True, exist_ok=True)
    wheel = folder / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for path, text in files.items():
            archive.writestr(path, text)
    return wheel


@pytest.fixture
def wheels(workdir: Path, monkeypatch) -> Path:
    """A local package index: capctiny 1.0 (for Python 2 only), 2.0 and 3.0; pip reads only it."""
    folder = workdir / "wheels"
    write_wheel(folder, "capctiny", "1.0", requires_python="<3")
    write_wheel(folder, "capctiny", "2.0")
    write_wheel(folder, "capctiny", "3.0")
    monkeypatch.setenv("CAPC_PIP_FIND_LINKS", str(folder))
    monkeypatch.setenv("CAPC_INSTALLER", "pip")
    monkeypatch.setenv("PIP_CONFIG_FILE", "/dev/null")  # no site index or find-links of this machine
    for variable in ("PIP_FIND_LINKS", "PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_CONSTRAINT"):
        monkeypatch.delenv(variable, raising=False)
    return folder


# ---------------------------------------------------------------- what a conda file asks (no processes)


def test_conda_file_is_read_into_pip_requirements(tmp_path):
    conda = tmp_path / "conda.yml"
    conda.write_text(textwrap.dedent("""\
        name: train-env
        channels: [conda-forge]
        dependencies:
          - python=3.8
          - pip=21.2.4
          - scikit-learn=0.24.2
          - conda-forge::numpy>=1.20
          - pytorch=1.13=py3.8_cuda11.6
          - r-base=4.1
          - cudatoolkit=11.6
          - pip:
              - mlflow==2.9.2
              - pandas<1.2
        """))
    request = conda_request("conda.yml", tmp_path)
    assert request.python_version == "3.8"
    assert request.pip == ("mlflow==2.9.2", "pandas<1.2")
    assert request.conda == ("scikit-learn==0.24.2.*", "numpy>=1.20", "torch==1.13.*")
    assert request.not_python == ("r-base=4.1", "cudatoolkit=11.6")
    assert request.source == str(conda)


def test_a_python_this_machine_lacks_is_named_in_a_note():
    python, note = find_python("2.5")
    assert python == sys.executable and "Python 2.5" in note and THIS_PYTHON in note
    assert find_python(THIS_PYTHON) == (sys.executable, None)


@pytest.mark.parametrize(
    ("requirement", "versions", "nearest"),
    [
        ("pandas<1.2", ["1.0.5", "1.1.5", "1.2.0", "1.2.1", "2.2.3"], "1.2.0"),
        ("pandas==1.1.5", ["1.1.4", "1.1.5", "1.1.6", "1.3.0"], "1.1.6"),  # a tie goes to the newer
        ("numpy>=3", ["1.26.4", "2.0.0", "2.4.6"], "2.4.6"),
        ("capctiny<2", ["1.0", "2.0", "3.0"], "2.0"),
        ("capctiny", ["1.0", "2.0"], None),  # no pin to move
    ],
)
def test_the_nearest_release_outside_a_pin(requirement, versions, nearest):
    assert env_install._nearest(requirement, versions, set()) == nearest


@pytest.mark.parametrize(
    ("environment", "says"),
    [
        ("azureml:AzureML-sklearn-1.5@latest", "(azureml:AzureML-sklearn-1.5@latest) is not built locally"),
        ({"image": "mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu20.04"}, "no conda file) is not built locally"),
        (None, "(none given) is not built locally"),
    ],
)
def test_environments_without_a_conda_file_run_in_capcs_interpreter(environment, says, tmp_path):
    built = job_environment(environment, tmp_path)
    assert built.python is None and built.interpreter == sys.executable
    assert says in built.notes[0] and sys.executable in built.notes[0]


def test_env_current_forces_capcs_interpreter(tmp_path):
    built = job_environment({"image": "x", "conda_file": {"dependencies": [{"pip": ["anything==1"]}]}}, tmp_path, mode=CURRENT)
    assert built.python is None and "--env current" in built.notes[0]


# ---------------------------------------------------------------- built, reused, refused


def _job(folder: Path, pip: list[str], conda: tuple = (), python: str = THIS_PYTHON) -> Path:
    """A command job with an image and a conda file beside it, as Azure's examples write them."""
    (folder / "src").mkdir(exist_ok=True)
    (folder / "src" / "which.py").write_text(
        "import json, sys, capctiny\nopen('outputs/which.json', 'w').write(json.dumps({'python': sys.executable, 'capctiny': capctiny.VERSION, "
        "'version': '%d.%d' % sys.version_info[:2]}))\n"
    )
    (folder / "conda.yml").write_text(yaml_dump({"name": "tiny", "dependencies": [f"python={python}", "pip", "r-base", *conda, {"pip": pip}]}))
    job = folder / "job.yml"
    job.write_text(textwrap.dedent("""\
        $schema: https://azuremlschemas.azureedge.net/latest/commandJob.schema.json
        type: command
        code: ./src
        command: python which.py
        environment:
          image: mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu20.04:latest
          conda_file: ./conda.yml
        """))
    return job


def yaml_dump(data) -> str:
    import yaml

    return yaml.safe_dump(data, sort_keys=False)


@pytest.mark.slow
def test_environment_is_built_from_the_conda_file_then_reused(workdir, wheels, capc_home):
    job = _job(workdir, ["capctiny<2"], conda=("numpy=1.0",))  # the local index has no numpy: capc's is imported
    notes: list[str] = []
    result = run_job_yaml(load_job_yaml(job), say=notes.append)
    which = json.loads((Path(result.files.folder) / "outputs" / "which.json").read_text())
    env_folder = Path(which["python"]).parents[1]
    assert env_folder.parent == capc_home / "envs" and (env_folder / env_install.MARKER).is_file()
    assert which["capctiny"] == "2.0"  # capctiny<2 has only a Python 2 release: the nearest that installs
    assert any("capctiny<2 cannot be installed" in n and "installed capctiny 2.0, the nearest release" in n for n in notes), notes
    assert any("r-base" in n and "not installed" in n for n in notes), notes
    assert any("conda package numpy==1.0.*: pip has no release of numpy" in n and "capc's numpy" in n for n in notes), notes
    assert any(n.startswith("building the job's environment") for n in notes)

    again: list[str] = []
    second = run_job_yaml(load_job_yaml(job), say=again.append)  # another run naming the same environment
    assert json.loads((Path(second.files.folder) / "outputs" / "which.json").read_text()) == which
    assert any("reused the environment built before" in n for n in again), again
    assert not any(n.startswith("building") for n in again)
    assert any("capctiny<2 cannot be installed" in n for n in again)  # the change is said again on reuse
    assert sorted(p.name for p in (capc_home / "envs").iterdir() if p.is_dir()) == [env_folder.name]


@pytest.mark.slow
def test_a_failed_install_names_the_package_and_nothing_runs(workdir, wheels, capc_home):
    job = _job(workdir, ["capctiny==2.0", "capc-no-such-package==1.0"])
    with pytest.raises(CapcError) as caught:
        run_job_yaml(load_job_yaml(job))
    message = str(caught.value)
    assert "could not install capc-no-such-package==1.0" in message and "so no step ran" in message
    assert "No matching distribution found for capc-no-such-package" in message  # the installer's own last lines
    assert "--env current" in message
    assert not [p for p in (capc_home / "envs").iterdir() if p.is_dir()]  # no half-built environment left
    assert not (capc_home / "runs").exists()  # no run started


OTHER_PYTHON = next((v for v in ("3.10", "3.12", "3.9", "3.8") if v != THIS_PYTHON and find_python(v)[1] is None), None)


@pytest.mark.slow
@pytest.mark.skipif(OTHER_PYTHON is None, reason="no second Python version on this machine")
def test_the_conda_files_python_version_is_used_when_this_machine_has_it(workdir, wheels, capc_home):
    job = _job(workdir, ["capctiny==3.0"], python=OTHER_PYTHON)
    notes: list[str] = []
    result = run_job_yaml(load_job_yaml(job), say=notes.append)
    which = json.loads((Path(result.files.folder) / "outputs" / "which.json").read_text())
    assert which["version"] == OTHER_PYTHON and which["capctiny"] == "3.0"
    assert not any("does not have" in n for n in notes) and not any("packages of capc's interpreter" in n for n in notes)


@pytest.mark.slow
def test_every_sweep_trial_runs_in_the_built_environment(workdir, wheels, capc_home):
    (workdir / "src").mkdir()
    (workdir / "src" / "trial.py").write_text(textwrap.dedent("""\
        import sys, mlflow, capctiny
        x = float(sys.argv[sys.argv.index("--x") + 1])
        mlflow.log_metric("score", x + float(capctiny.VERSION))
        open("outputs/python.txt", "w").write(sys.executable)
        """))
    job = workdir / "sweep.yml"
    job.write_text(textwrap.dedent(f"""\
        $schema: https://azuremlschemas.azureedge.net/latest/sweepJob.schema.json
        type: sweep
        sampling_algorithm: grid
        search_space:
          x:
            type: choice
            values: [1, 2]
        objective:
          primary_metric: score
          goal: maximize
        limits:
          max_total_trials: 2
          max_concurrent_trials: 2
        trial:
          code: ./src
          command: python trial.py --x ${{{{search_space.x}}}}
          environment:
            image: mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu20.04:latest
            conda_file:
              dependencies:
                - python={THIS_PYTHON}
                - pip:
                    - capctiny==2.0
        """))
    result = run_job_yaml(load_job_yaml(job))
    assert [t.status for t in result.trials] == ["completed", "completed"]
    assert result.value == 4.0  # x=2 plus capctiny 2.0: the package only the built environment has
    pythons = {(Path(t.trial_dir) / "outputs" / "python.txt").read_text() for t in result.trials}
    assert len(pythons) == 1 and Path(pythons.pop()).parents[2] == capc_home / "envs"


# ---------------------------------------------------------------- a pipeline's steps


def _pipeline(folder: Path, pip: list[str]) -> Path:
    """A pipeline whose two command steps take one component (its conda file beside it, in a folder of its own) and a
    sweep node whose trial names the same conda file: one environment for all three; a last step names a curated
    environment."""
    components = folder / "components"
    (components / "src").mkdir(parents=True, exist_ok=True)
    (components / "src" / "which.py").write_text(textwrap.dedent("""\
        import json, os, sys, capctiny
        out = sys.argv[sys.argv.index("--out") + 1]
        x = float(sys.argv[sys.argv.index("--x") + 1]) if "--x" in sys.argv else 0.0
        if "MLFLOW_RUN_ID" in os.environ and "--x" in sys.argv:
            import mlflow
            mlflow.log_metric("score", x)
        os.makedirs(out, exist_ok=True)
        open(os.path.join(out, "which.json"), "w").write(json.dumps({"python": sys.executable, "capctiny": capctiny.VERSION}))
        """))
    (components / "conda.yml").write_text(yaml_dump({"name": "tiny", "dependencies": [f"python={THIS_PYTHON}", "pip", {"pip": pip}]}))
    environment = {"image": "mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu20.04:latest", "conda_file": "./conda.yml"}
    (components / "which.yml").write_text(yaml_dump({
        "$schema": "https://azuremlschemas.azureedge.net/latest/commandComponent.schema.json", "type": "command", "name": "which",
        "code": "./src", "command": "python which.py --out ${{outputs.out}} $[[--x ${{inputs.x}}]]",
        "inputs": {"x": {"type": "number", "optional": True}}, "outputs": {"out": {"type": "uri_folder"}}, "environment": environment,
    }))
    (folder / "curated.py").write_text("import json, os, sys\nos.makedirs(sys.argv[1], exist_ok=True)\n"
                                       "open(os.path.join(sys.argv[1], 'which.json'), 'w').write(json.dumps({'python': sys.executable}))\n")
    job = folder / "pipeline.yml"
    job.write_text(yaml_dump({
        "$schema": "https://azuremlschemas.azureedge.net/latest/pipelineJob.schema.json", "type": "pipeline", "experiment_name": "envs",
        "jobs": {
            "first": {"component": "./components/which.yml"},
            "second": {"component": "./components/which.yml", "inputs": {"x": 1}},
            "search": {"type": "sweep", "trial": "./components/which.yml", "sampling_algorithm": "grid",
                       "search_space": {"x": {"type": "choice", "values": [2.0]}},
                       "objective": {"primary_metric": "score", "goal": "maximize"}, "limits": {"max_total_trials": 1}},
            "curated": {"type": "command", "code": ".", "command": "python curated.py ${{outputs.out}}",
                        "environment": "azureml:AzureML-sklearn-1.5@latest", "outputs": {"out": {"type": "uri_folder"}}},
        },
    }))
    return job


def _which(step) -> dict:
    return json.loads((Path(step.outputs["out"]) / "which.json").read_text())


@pytest.mark.slow
def test_pipeline_steps_share_the_environment_their_component_names(workdir, wheels, capc_home):
    from capc.local.pipeline import run_pipeline_yaml

    job = _pipeline(workdir, ["capctiny==2.0"])
    result = run_pipeline_yaml(load_job_yaml(job), poll_s=0.05)
    steps = {s.name: s for s in result.steps}
    assert all(s.status == "completed" for s in steps.values()), {n: (s.detail, s.output_tail) for n, s in steps.items()}
    first, second = _which(steps["first"]), _which(steps["second"])
    assert first == second and first["capctiny"] == "2.0"  # only the built environment has capctiny
    env_folder = Path(first["python"]).parents[1]
    assert env_folder.parent == capc_home / "envs"
    assert [p.name for p in (capc_home / "envs").iterdir() if p.is_dir()] == [env_folder.name]  # built once for all three
    assert steps["search"].value == 2.0  # the sweep's one trial ran in it too (it imports capctiny)
    assert _which(steps["curated"])["python"] == sys.executable  # a curated environment: capc's interpreter
    assert any(n.startswith("steps first, second, search: built the environment in") for n in result.notes), result.notes
    assert any(n.startswith("step curated: ") and "azureml:AzureML-sklearn-1.5@latest" in n for n in result.notes), result.notes

    again = run_pipeline_yaml(load_job_yaml(job), poll_s=0.05)
    assert any(n.startswith("steps first, second, search: reused the environment built before") for n in again.notes), again.notes
    assert _which({s.name: s for s in again.steps}["first"]) == first


@pytest.mark.slow
def test_a_pipeline_whose_environment_cannot_be_built_runs_no_step(workdir, wheels, capc_home):
    from capc.local.pipeline import run_pipeline_yaml

    job = _pipeline(workdir, ["capctiny==2.0", "capc-no-such-package==1.0"])
    with pytest.raises(CapcError) as caught:
        run_pipeline_yaml(load_job_yaml(job), poll_s=0.05)
    message = str(caught.value)
    assert "could not install capc-no-such-package==1.0" in message and "so no step ran" in message
    assert "No matching distribution found for capc-no-such-package" in message
    assert not [p for p in (capc_home / "envs").iterdir() if p.is_dir()]
    assert not (capc_home / "runs").exists()  # no step started, no run recorded


def test_env_current_runs_every_pipeline_step_in_capcs_interpreter(workdir):
    from capc.jobfolder.pipeline_graph import read_pipeline
    from capc.local.pipeline_envs import build_step_environments

    job = load_job_yaml(_pipeline(workdir, ["capctiny==2.0"]))
    graph = read_pipeline(job.data, job.job_dir)
    built, notes = build_step_environments(graph.steps, CURRENT)
    assert set(built) == {"first", "second", "search", "curated"} and all(e.python is None for e in built.values())
    assert len(notes) == 1 and notes[0].startswith("steps first, second, search, curated: --env current: it runs in capc's interpreter")
    assert graph.step("first").node["environment"]["conda_file"] == str(workdir / "components" / "conda.yml")  # read from the component's folder
    assert graph.step("search").node["trial"]["environment"]["conda_file"] == str(workdir / "components" / "conda.yml")
