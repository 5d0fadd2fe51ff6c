"""Backend, Azure: what one generated/<name>/ folder holds, read once (never the raw spec).

The job YAMLs are Azure ML's own files; only the few facts capc needs before azure-ai-ml loads them (name, spec
hash, primary metric and goal, which jobs exist, their computes and local inputs) are read here, with PyYAML.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from capc import azure_names
from capc.artifacts import sweep_job_files
from capc.errors import CapcError

JOB_FILES = {"automl": "automl_job.yml", "sweep": "sweep_job.yml", "pipeline": "pipeline_job.yml"}
ONLY_CHOICES = tuple(JOB_FILES)


def is_sweep(kind: str) -> bool:
    """`sweep`, or `sweep_<family>`: one of a conditional sweep's per-family sweep jobs."""
    return kind == "sweep" or kind.startswith("sweep_")


@dataclass(frozen=True)
class JobFile:
    kind: str  # "automl" | "sweep" | "pipeline"
    path: Path
    data: dict = field(repr=False, compare=False)

    @property
    def computes(self) -> list[str]:
        """The compute names this job runs on: its own, a pipeline's default and its steps'."""
        values = [self.data.get("compute"), (self.data.get("settings") or {}).get("default_compute")]
        values += [step.get("compute") for step in (self.data.get("jobs") or {}).values() if isinstance(step, dict)]
        names: list[str] = []
        for value in values:
            if isinstance(value, str) and _compute_name(value) not in names:
                names.append(_compute_name(value))
        return names


@dataclass(frozen=True)
class JobFolder:
    path: Path
    name: str
    spec_sha256: str
    metric: str
    goal: str
    task: str
    jobs: tuple[JobFile, ...]

    def job(self, kind: str) -> JobFile | None:
        return next((j for j in self.jobs if j.kind == kind), None)

    def file(self, relative: str) -> Path:
        return self.path / relative

    def yaml(self, relative: str) -> dict:
        return _load_yaml(self.path / relative)

    @property
    def computes(self) -> list[str]:
        """Compute names the jobs run on, in job order, without repeats."""
        names: list[str] = []
        for job in self.jobs:
            names += [name for name in job.computes if name not in names]
        return names


def read_job_folder(job_dir: Path, spec_name: str | None = None, only: str | None = None) -> JobFolder:
    """The compiled jobs of one spec; `only` keeps one of automl | sweep | pipeline."""
    job_dir = Path(job_dir)
    manifest_path = job_dir / "manifest.json"
    if not manifest_path.is_file():
        raise CapcError(f"{job_dir} holds no compiled jobs (no manifest.json).", f"run `capc build specs/{spec_name or job_dir.name}.yaml` first")
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    name = manifest.get("name") or spec_name or job_dir.name
    if only is not None and only not in ONLY_CHOICES:
        raise CapcError(f"--only must be one of {', '.join(ONLY_CHOICES)}, not '{only}'.")
    # A conditional sweep compiles to one sweep job per family (sweep_<family>.yml): `--only sweep` submits them all.
    files = {"automl": job_dir / JOB_FILES["automl"], **sweep_job_files(job_dir), "pipeline": job_dir / JOB_FILES["pipeline"]}
    jobs = []
    for kind, path in files.items():
        group = "sweep" if is_sweep(kind) else kind
        if path.is_file() and (only is None and group != "pipeline" or only == group):
            jobs.append(JobFile(kind, path, _load_yaml(path)))
    if only is not None and not jobs:
        raise CapcError(
            f"{job_dir} has no {JOB_FILES[only]}: the spec does not compile a {only} job.",
            "drop --only, or enable that part of the spec and `capc build` again" if only != "pipeline" else "the pipeline is compiled when both automl and sweep are enabled; enable both and `capc build` again",
        )
    if not jobs:
        raise CapcError(f"{job_dir} holds no Azure ML job files.", f"run `capc build` for {name}")
    metric, goal, task = _objective(job_dir, jobs)
    return JobFolder(job_dir, name, manifest.get("spec_sha256", ""), metric, goal, task, tuple(jobs))


def _objective(job_dir: Path, jobs: list[JobFile]) -> tuple[str, str, str]:
    """Primary metric (Azure name), its goal and the task, from whichever job files there are."""
    automl = _load_yaml(job_dir / JOB_FILES["automl"]) if (job_dir / JOB_FILES["automl"]).is_file() else {}
    sweeps = list(sweep_job_files(job_dir).values())
    sweep = _load_yaml(sweeps[0]) if sweeps else {}
    task = str(automl.get("task") or "")
    objective = sweep.get("objective") or {}
    metric = str(objective.get("primary_metric") or automl.get("primary_metric") or "")
    goal = str(objective.get("goal") or "").lower()
    if not goal:
        goal = azure_names.AUTOML_METRICS.get(task, {}).get(metric, azure_names.MAXIMIZE)
    if not metric:
        raise CapcError(f"{job_dir}: neither the AutoML nor the sweep job names a primary metric.", "run `capc build` again")
    return metric, goal, task


def _compute_name(value: str) -> str:
    return value[len("azureml:"):] if value.startswith("azureml:") else value


def _load_yaml(path: Path) -> dict:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise CapcError(f"cannot read {path}: {exc}", "run `capc build` again") from None
    return data if isinstance(data, dict) else {}
