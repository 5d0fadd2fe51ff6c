"""Backend, Azure: the generated job YAMLs as azure-ai-ml jobs, their REST requests, submission and status.

`load_jobs` loads automl_job.yml / sweep_job.yml with azure-ai-ml's own loader and points their local inputs and
environment at the assets capc created (content-hash versions). `rest_request` is the dry run: the PUT that
azure-ai-ml would send for a job, built offline with the SDK's own serialiser; the contract tests compare it with
what a real submission sends.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from capc.azure.assets import AssetPlan
from capc.errors import CapcError
from capc.goal import Goal
from capc.jobfolder import JobFolder
from capc.jobfolder.serving import read_trial_conda

# The API version azure-ai-ml 1.35.2 uses to PUT each job type (JobOperations._create_or_update_with_different_version_api).
API_VERSIONS = {"automl": "2024-01-01-preview", "sweep": "2024-01-01-preview", "pipeline": "2024-01-01-preview"}
CODE_PLACEHOLDER = "<code asset: {folder}/ uploaded by azure-ai-ml at submission>"
COMPONENT_PLACEHOLDER = "<anonymous component of step {step}, registered by azure-ai-ml at submission>"
TERMINAL = frozenset({"Completed", "Failed", "Canceled", "NotResponding", "Paused"})


@dataclass
class SubmittedJob:
    """One job in the workspace and what capc knows of it."""

    kind: str
    name: str
    studio_url: str | None
    status: str
    best_run_id: str | None = None
    best_value: float | None = None
    children: int = 0
    error: str | None = None

    @property
    def finished(self) -> bool:
        return self.status in TERMINAL

    def to_dict(self) -> dict:
        return {
            "kind": self.kind,
            "name": self.name,
            "studio_url": self.studio_url,
            "status": self.status,
            "best_run_id": self.best_run_id,
            "best_value": self.best_value,
            "children": self.children,
            "error": self.error,
        }


def load_jobs(folder: JobFolder, plan: AssetPlan) -> dict[str, object]:
    """kind -> azure.ai.ml Job, loaded from the generated YAML, inputs and environment pointing at capc's assets."""
    from azure.ai.ml import Input, load_job

    from capc.azure.failures import azure_errors
    from capc.jobfolder.job_yaml import quiet_sdk_experimental_notices

    quiet_sdk_experimental_notices()
    jobs = {}
    for job_file in folder.jobs:
        with azure_errors(f"load {job_file.path}"):
            job = load_job(source=job_file.path)
        # Studio lists jobs by display name: "<spec>-<kind>" says what a job is better than a random pair of words.
        job.display_name = f"{folder.name}-{job_file.kind}"
        inputs = plan.inputs.get(job_file.kind, {})
        if job_file.kind == "automl":
            if "training_data" in inputs:
                asset = inputs["training_data"]
                job.training_data = Input(type=asset.type, path=asset.ref)
        elif job_file.kind == "pipeline":
            for input_name, asset in inputs.items():
                setattr(job.inputs, input_name, Input(type=asset.type, path=asset.ref))  # pipeline inputs wrap Input
            if plan.environment is not None:
                trial_conda = read_trial_conda(folder.path)
                for node in job.jobs.values():
                    # Steps with an environment of their own (select/conda.yml: azureml-mlflow, azure-ai-ml) keep it.
                    if _node_conda(node) in (None, trial_conda):
                        _use_environment(node, plan.environment.ref)
        else:
            for input_name, asset in inputs.items():
                mode = getattr(job.inputs.get(input_name), "mode", None)
                job.inputs[input_name] = Input(type=asset.type, path=asset.ref, mode=mode)
            if plan.environment is not None:
                _use_environment(job, plan.environment.ref)
        jobs[job_file.kind] = job
    return jobs


def _node_conda(node) -> dict | None:
    """The conda file (as loaded) of a pipeline command step's inline environment; None for other nodes."""
    component = getattr(node, "component", None) if type(node).__name__ == "Command" else None
    environment = getattr(component, "environment", None)
    return getattr(environment, "conda_file", None)


def _use_environment(job, ref: str) -> None:
    """Run a sweep trial or a command step in the registered environment instead of an inline (anonymous) one."""
    if type(job).__name__ == "Command":  # a pipeline's command step: its environment lives in its component
        if not isinstance(job.component, str):
            job.component.environment = ref
    elif type(job).__name__ in ("SweepJob", "Sweep") and getattr(job, "trial", None) is not None:
        job.trial.environment = ref


# ---------------------------------------------------------------- dry run: the request azure-ai-ml would send


def rest_request(kind: str, job, workspace, plan: AssetPlan) -> tuple[str, str, dict]:
    """(method, path with api-version, body) of the PUT that submits `job`, built without contacting anything.

    `job` is consumed: its references are rewritten in place.

    Mirrors what JobOperations.create_or_update does before sending: names of computes, data and environments
    become ARM ids; the code folder becomes the code asset azure-ai-ml uploads (shown as a placeholder, its name is
    only known after the upload); git properties of the working copy, which the SDK adds, are left out.
    """
    from azure.ai.ml._restclient.arm_ml_service._utils.model_base import SdkJSONEncoder
    from azure.ai.ml.entities._job.to_rest_functions import to_rest_job_object

    resolved = _resolved_offline(kind, job, workspace, plan)
    rest = to_rest_job_object(resolved)
    body = json.loads(json.dumps(rest, cls=SdkJSONEncoder, exclude_readonly=True))
    path = f"{workspace.arm_id}/jobs/<job name, given at submission>?api-version={API_VERSIONS.get(kind, '2024-01-01-preview')}"
    return "PUT", path, body


def _resolved_offline(kind: str, job, workspace, plan: AssetPlan):
    """Resolves `job` in place (pipeline entities cannot be deep-copied): a dry run loads its jobs for itself."""
    job.compute = _arm_id(workspace, "computes", _strip(job.compute)) if job.compute else job.compute
    if kind == "automl":
        data = job.training_data
        if data is not None and isinstance(data.path, str):
            data.path = _data_arm_id(workspace, data.path)
        return job
    if kind == "pipeline":
        return _pipeline_offline(job, workspace)
    for item in job.inputs.values():
        if hasattr(item, "path") and isinstance(item.path, str):
            item.path = _data_arm_id(workspace, item.path)
    trial = getattr(job, "trial", None)
    if trial is not None:
        if isinstance(trial.environment, str):
            trial.environment = _versioned_arm_id(workspace, "environments", trial.environment)
        if kind in plan.code:
            trial.code = CODE_PLACEHOLDER.format(folder=plan.code[kind].name)
    return job


def _pipeline_offline(job, workspace):
    """A pipeline as azure-ai-ml sends it: computes as ARM ids, steps pointing at the anonymous components it
    registers at submission (placeholders here: their names are content hashes the service assigns)."""
    from azure.ai.ml import Input

    if job.settings is not None and isinstance(job.settings.default_compute, str):
        job.settings.default_compute = _arm_id(workspace, "computes", _strip(job.settings.default_compute))
    for name in list(job.inputs):
        data = job.inputs[name]._data
        if isinstance(data, Input) and isinstance(data.path, str) and data.path.startswith("azureml:"):
            setattr(job.inputs, name, Input(type=data.type, path=_data_arm_id(workspace, data.path), mode=data.mode))
    for name, node in job.jobs.items():
        if isinstance(getattr(node, "compute", None), str):
            node.compute = _arm_id(workspace, "computes", _strip(node.compute))
        if type(node).__name__ in ("Command", "Sweep"):
            node._component = COMPONENT_PLACEHOLDER.format(step=name)  # the SDK swaps in the registered id likewise
    return job


def _strip(ref: str) -> str:
    return ref[len("azureml:"):] if ref.startswith("azureml:") else ref


def _arm_id(workspace, kind: str, name: str) -> str:
    return f"{workspace.arm_id}/{kind}/{name}"


def _versioned_arm_id(workspace, kind: str, ref: str) -> str:
    """azureml:name:version -> the ARM id azure-ai-ml sends; anything else as it is."""
    body = _strip(ref)
    if body.startswith("/") or ":" not in body:
        return ref
    name, version = body.rsplit(":", 1)
    return f"{workspace.arm_id}/{kind}/{name}/versions/{version}"


def _data_arm_id(workspace, ref: str) -> str:
    return _versioned_arm_id(workspace, "data", ref) if ref.startswith("azureml:") else ref


# ---------------------------------------------------------------- submission and status


def submit_job(ml_client, kind: str, job, workspace) -> SubmittedJob:
    from capc.azure.failures import azure_errors
    from capc.azure.workspace import quiet_sdk_output

    with azure_errors(f"submit the {kind} job", workspace), quiet_sdk_output():
        created = ml_client.jobs.create_or_update(job)
    return SubmittedJob(kind, created.name, getattr(created, "studio_url", None), status_text(created.status) or "NotStarted")


def job_kind(job) -> str:
    kind = str(getattr(job, "type", "") or "").lower()
    return {"automl": "automl", "sweep": "sweep", "pipeline": "pipeline"}.get(kind, kind or "job")


def refresh(ml_client, submitted: SubmittedJob, goal: str, workspace) -> SubmittedJob:
    """Read the job and its child runs: status, how many children, the best primary metric so far."""
    from capc.azure.failures import azure_errors

    with azure_errors(f"read job {submitted.name}", workspace):
        job = ml_client.jobs.get(submitted.name)
        children = list(ml_client.jobs.list(parent_job_name=submitted.name))
    submitted.status = status_text(job.status)
    submitted.studio_url = getattr(job, "studio_url", None) or submitted.studio_url
    submitted.children = len(children)
    best_id, best = best_child(job, children, goal)
    submitted.best_run_id, submitted.best_value = best_id, best
    return submitted


def best_child(job, children, goal: str) -> tuple[str | None, float | None]:
    """The best child run so far and its primary-metric value.

    Azure ML records the winner on the parent: a sweep's properties carry best_child_run_id and score; an AutoML
    parent's tags carry automl_best_child_run_id and each AutoML child's properties its score.
    """
    properties = dict(getattr(job, "properties", None) or {})
    tags = dict(getattr(job, "tags", None) or {})
    scores = {}
    for child in children:
        value = _number((getattr(child, "properties", None) or {}).get("score"))
        if value is not None:
            scores[child.name] = value
    best_id = properties.get("best_child_run_id") or tags.get("automl_best_child_run_id") or properties.get("automl_best_child_run_id")
    value = _number(properties.get("score"))
    if best_id and value is None:
        value = scores.get(best_id)
    if best_id and value is not None:
        return best_id, value
    best_scored = Goal(goal).best(scores, scores.get)
    if best_scored is not None:
        return best_scored, scores[best_scored]
    return best_id, None


def failure_reason(ml_client, name: str) -> str | None:
    """Azure's error message for a failed job, best effort (run history; None when it cannot be read)."""
    try:
        details = ml_client.jobs._runs_operations.get_run_details(name)  # no public API returns a job's error
        error = getattr(getattr(details, "error", None), "error", None)
        return getattr(error, "message", None)
    except Exception:  # the reason is a courtesy: never let reading it hide the failure itself
        return None


def status_text(status) -> str:
    """A job status as Azure spells it ("Completed"); azure-ai-ml hands some back as enum members."""
    return str(getattr(status, "value", status) or "")


def _number(value) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def model_folder(kind: str) -> str:
    """Where a run's MLflow model lies among its artifacts: AutoML writes outputs/mlflow-model, capc's trials outputs/model."""
    return "outputs/mlflow-model" if kind == "automl" else "outputs/model"


def model_path(kind: str, run_id: str) -> str:
    """A winning run's MLflow model as an azureml:// path (what the registered model points at)."""
    return f"azureml://jobs/{run_id}/outputs/artifacts/paths/{model_folder(kind)}/"


def download_model(ml_client, job: SubmittedJob, into: Path, workspace) -> Path:
    """The MLflow model of `job`'s best run, downloaded into `into`; returns the model's folder.

    azure-ai-ml's JobOperations.download with no output name fetches the run's default artifacts (its outputs/ and
    logs/ folders, where MLflow logged the model) to INTO/artifacts/, the SDK's public way to a child run's files:
    https://learn.microsoft.com/python/api/azure-ai-ml/azure.ai.ml.operations.joboperations#azure-ai-ml-operations-joboperations-download
    Raises CapcError when the download fails or the run left no MLflow model there.
    """
    from capc.azure.failures import azure_errors
    from capc.azure.workspace import quiet_sdk_output

    with azure_errors(f"download the artifacts of run {job.best_run_id}", workspace), quiet_sdk_output():
        ml_client.jobs.download(job.best_run_id, download_path=str(into))
    model_dir = into / "artifacts" / model_folder(job.kind)
    if not (model_dir / "MLmodel").is_file():
        raise CapcError(f"run {job.best_run_id} left no MLflow model in {model_folder(job.kind)}/ among its artifacts")
    return model_dir


def code_files(path: Path) -> list[str]:
    """The files of a code folder as azure-ai-ml uploads them (caches aside), relative and sorted."""
    return sorted(p.relative_to(path).as_posix() for p in path.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
