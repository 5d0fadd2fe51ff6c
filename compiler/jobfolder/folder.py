"""Job folder stage: what one generated/<name>/ folder holds, read once - the contract between build and backends.

The build writes everything a backend needs into the folder: Azure ML's own files (the job YAMLs, compute.yml as
`az ml compute create` takes it) and capc.json for what Azure has no file for (task, primary metric and goal,
which jobs are enabled, which winner to register); manifest.json carries the spec's hash and a sha256 per file.
The local engine, the local pipeline, the Azure backend and the report read the folder through `read_job_folder`,
never the spec: `capc submit generated/<name>/` runs with no spec file present.

The job YAMLs are read with PyYAML for the few facts capc needs before azure-ai-ml loads them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from capc.errors import CapcError
from capc.serving_cost import DEPLOYMENT_MODELS

MANIFEST = "manifest.json"
RUN_SETTINGS = "capc.json"
COMPUTE_FILE = "compute.yml"
AUTOML_FILE = "automl_job.yml"
PIPELINE_FILE = "pipeline_job.yml"
ENTRY_SCRIPT = "score.py"  # the scoring script, beside the deployment YAMLs that name it
# What a sweep job's missing limit means (a hand-written job may leave them out; capc's build writes both): the
# local engine runs, counts and checks a job by these.
SWEEP_LIMIT_DEFAULTS = {"max_total_trials": 20, "max_concurrent_trials": 1}
ONLY_CHOICES = ("automl", "sweep", "pipeline")


def is_sweep(kind: str) -> bool:
    """`sweep`, or `sweep_<family>`: one of a conditional sweep's per-family sweep jobs."""
    return kind == "sweep" or kind.startswith("sweep_")


@dataclass(frozen=True)
class JobFile:
    kind: str  # "automl" | "sweep" | "sweep_<family>" (capc.artifacts.sweep_job_files) | "pipeline"
    path: Path
    data: dict = field(repr=False, compare=False)

    @property
    def computes(self) -> list[str]:
        """The compute names this job runs on: its own, a pipeline's default and its steps'."""
        values = [self.data.get("compute"), (self.data.get("settings") or {}).get("default_compute")]
        values += [step.get("compute") for step in (self.data.get("jobs") or {}).values() if isinstance(step, dict)]
        names: list[str] = []
        for value in values:
            if isinstance(value, str) and compute_name(value) not in names:
                names.append(compute_name(value))
        return names


@dataclass(frozen=True)
class ComputeCluster:
    """compute.yml: the cluster the build describes (created or updated on Azure; ignored locally)."""

    name: str
    size: str
    min_instances: int
    max_instances: int
    idle_time_before_scale_down: int


@dataclass(frozen=True)
class JobFolder:
    path: Path
    name: str
    spec_sha256: str
    description: str
    task: str
    metric: str
    goal: str
    automl_enabled: bool
    sweep_enabled: bool
    deployment: dict  # capc.json's deployment: model (which winner: best | automl | sweep), the serving budget
    jobs: tuple[JobFile, ...]  # the jobs a submit runs (after --only and the enabled flags)
    cluster: ComputeCluster | None

    @property
    def deployment_model(self) -> str:
        """deployment.model: which side's winner may be served (capc.serving_cost.may_serve)."""
        return self.deployment["model"]

    def job(self, kind: str) -> JobFile | None:
        return next((j for j in self.jobs if j.kind == kind), None)

    @property
    def sweeps(self) -> list[JobFile]:
        return [j for j in self.jobs if is_sweep(j.kind)]

    def file(self, relative: str) -> Path:
        return self.path / relative

    def yaml(self, relative: str) -> dict:
        return load_yaml_mapping(self.path / relative)

    @property
    def computes(self) -> list[str]:
        """Compute names the jobs run on, in job order, without repeats."""
        names: list[str] = []
        for job in self.jobs:
            names += [name for name in job.computes if name not in names]
        return names


def is_job_folder(path: Path) -> bool:
    return Path(path).is_dir() and (Path(path) / MANIFEST).is_file()


def manifest_file(job_dir: Path) -> Path:
    return Path(job_dir) / MANIFEST


def read_manifest(job_dir: Path) -> dict:
    """manifest.json as written (the report reads what a model was built from); OSError or ValueError as they come."""
    return json.loads(manifest_file(job_dir).read_text(encoding="utf-8"))


def read_job_folder(job_dir: Path, only: str | None = None) -> JobFolder:
    """The compiled jobs of one folder; `only` keeps one of automl | sweep | pipeline (default: AutoML and the
    sweeps, those the spec enabled)."""
    job_dir = Path(job_dir)
    rebuild = f"run `capc build specs/{job_dir.name}.yaml` (or the spec it came from)"
    if not (job_dir / MANIFEST).is_file():
        raise CapcError(f"{job_dir} holds no compiled jobs (no {MANIFEST}).", rebuild + " first")
    if only is not None and only not in ONLY_CHOICES:
        raise CapcError(f"--only must be one of {', '.join(ONLY_CHOICES)}, not '{only}'.")
    manifest = _load_json(job_dir / MANIFEST, rebuild)
    if not (job_dir / RUN_SETTINGS).is_file():
        raise CapcError(f"{job_dir} has no {RUN_SETTINGS}: it was built by an older capc.", rebuild + " again")
    run = _load_json(job_dir / RUN_SETTINGS, rebuild)
    try:
        name, task, metric, goal = (str(run[k]) for k in ("name", "task", "metric", "goal"))
        automl_enabled, sweep_enabled = bool(run["automl"]["enabled"]), bool(run["sweep"]["enabled"])
        deployment = dict(run["deployment"])
        deployment_model = str(deployment["model"])
    except (KeyError, TypeError):
        raise CapcError(f"{job_dir / RUN_SETTINGS} lacks one of name, task, metric, goal, automl, sweep, deployment.", rebuild + " again") from None
    if deployment_model not in DEPLOYMENT_MODELS:
        raise CapcError(f"{job_dir / RUN_SETTINGS}: deployment.model must be one of {', '.join(DEPLOYMENT_MODELS)}, not {deployment_model!r}.", rebuild + " again")
    automl = [JobFile("automl", job_dir / AUTOML_FILE, load_yaml_mapping(job_dir / AUTOML_FILE))] if (job_dir / AUTOML_FILE).is_file() else []
    sweeps = sweep_jobs(job_dir)
    pipeline = [JobFile("pipeline", job_dir / PIPELINE_FILE, load_yaml_mapping(job_dir / PIPELINE_FILE))] if (job_dir / PIPELINE_FILE).is_file() else []
    if only == "pipeline":
        jobs = pipeline
        if not jobs:
            raise CapcError(
                f"{job_dir} has no {PIPELINE_FILE}: a spec has a pipeline when both AutoML and the sweep are enabled.",
                "enable both in the spec, or run one job with --only automl / --only sweep",
            )
    else:
        jobs = (automl if automl_enabled and only in (None, "automl") else []) + (sweeps if sweep_enabled and only in (None, "sweep") else [])
    if not jobs:
        what = f"the {only} job" if only else "AutoML and the sweep"
        raise CapcError(f"nothing to run in {job_dir}: {what} {'is' if only else 'are'} disabled or not compiled.", "enable it in the spec and `capc build` again")
    return JobFolder(
        path=job_dir, name=name, spec_sha256=str(manifest.get("spec_sha256", "")), description=str(run.get("description", "")),
        task=task, metric=metric, goal=goal, automl_enabled=automl_enabled, sweep_enabled=sweep_enabled, deployment=deployment,
        jobs=tuple(jobs), cluster=_cluster(job_dir / COMPUTE_FILE),
    )


def sweep_jobs(job_dir: Path) -> list[JobFile]:
    """Every sweep job of a folder (capc.artifacts.sweep_job_files says which files those are)."""
    from capc.artifacts import sweep_job_files

    return [JobFile(kind, path, load_yaml_mapping(path)) for kind, path in sweep_job_files(job_dir).items()]


def sweep_limit(limits: dict | None, key: str) -> int:
    """A sweep job's `limits.KEY` (max_total_trials or max_concurrent_trials), or what its absence means."""
    value = (limits or {}).get(key)
    return int(value) if value else SWEEP_LIMIT_DEFAULTS[key]


def _cluster(path: Path) -> ComputeCluster | None:
    if not path.is_file():
        return None
    data = load_yaml_mapping(path)
    try:
        return ComputeCluster(
            name=str(data["name"]), size=str(data["size"]), min_instances=int(data["min_instances"]),
            max_instances=int(data["max_instances"]), idle_time_before_scale_down=int(data["idle_time_before_scale_down"]),
        )
    except (KeyError, TypeError, ValueError):
        raise CapcError(f"{path} does not describe a compute cluster (name, size, min/max_instances, idle_time_before_scale_down).", "run `capc build` again") from None


def compute_name(value: str) -> str:
    return value[len("azureml:"):] if value.startswith("azureml:") else value


def load_yaml_mapping(path: Path) -> dict:
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise CapcError(f"cannot read {path}: {exc}", "run `capc build` again") from None
    return data if isinstance(data, dict) else {}


def _load_json(path: Path, hint: str) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CapcError(f"cannot read {path}: {exc}", hint) from None
    if not isinstance(data, dict):
        raise CapcError(f"{path} is not a JSON object.", hint)
    return data
