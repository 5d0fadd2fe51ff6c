"""Backend, Azure: the runs that could be registered, and the registration of the chosen one as an MLflow model.

The model is named after the spec; its tags say which run it came from and which spec built it, so a deployed
model can always be traced back (capc_run_id, capc_source, capc_spec_sha256, capc_metric, capc_value), and what
serving it cost when capc measured it (capc_serving_p99_ms, capc_serving_size_mb, ...).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from capc.jobfolder import JobFolder
from capc.serving_cost import may_serve
from capc.azure.jobs import SubmittedJob, model_path
from capc.errors import CapcError


@dataclass(frozen=True)
class RegisteredModel:
    name: str
    version: str
    source: str  # "automl" | "sweep" | "sweep_<family>" (the job kind the winner came from)
    run_id: str
    job: str
    metric: str
    value: float | None
    path: str

    @property
    def ref(self) -> str:
        return f"{self.name}:{self.version}"

    def to_dict(self) -> dict:
        return {**asdict(self), "ref": self.ref}


def candidates(jobs: list[SubmittedJob], deployment_model: str = "best") -> list[SubmittedJob]:
    """The completed jobs whose best child could be registered: those with a value of the primary metric, of a
    kind the spec's deployment.model lets win (capc.serving_cost.may_serve). Which of them wins is
    capc.azure.selection's call."""
    return [j for j in jobs if j.status == "Completed" and j.best_run_id and j.best_value is not None
            and may_serve(deployment_model, j.kind)]


def register(ml_client, folder: JobFolder, winner: SubmittedJob, workspace, serving: dict[str, float] | None = None) -> RegisteredModel:
    """Register the winner's MLflow model under the spec's name (the next version); `serving`: its measured serving
    cost (capc.serving_cost metrics), kept as tags so the model says what serving it costs."""
    from azure.ai.ml.constants import AssetTypes
    from azure.ai.ml.entities import Model

    from capc.azure.failures import azure_errors

    path = model_path(winner.kind, winner.best_run_id)
    model = Model(
        name=folder.name,
        path=path,
        type=AssetTypes.MLFLOW_MODEL,
        description=f"Best run of {folder.name} by {folder.metric} ({folder.goal}), registered by capc.",
        tags={
            "capc_run_id": winner.best_run_id,
            "capc_job": winner.name,
            "capc_source": winner.kind,
            "capc_spec_sha256": folder.spec_sha256,
            "capc_metric": folder.metric,
            "capc_value": repr(winner.best_value),
            **{f"capc_{name}": f"{value:g}" for name, value in sorted((serving or {}).items())},
        },
    )
    with azure_errors(f"register model {folder.name} from run {winner.best_run_id}", workspace):
        created = ml_client.models.create_or_update(model)
    return RegisteredModel(folder.name, str(created.version), winner.kind, winner.best_run_id, winner.name, folder.metric, winner.best_value, path)


def registered_by_pipeline(ml_client, folder: JobFolder, pipeline: SubmittedJob, workspace) -> RegisteredModel:
    """The model version the pipeline's select-best step registered (the newest of the spec's name)."""
    from capc.azure.failures import azure_errors

    version = latest_version(ml_client, folder.name, workspace)
    with azure_errors(f"read model {folder.name}:{version}", workspace):
        model = ml_client.models.get(folder.name, version=version)
    tags = dict(model.tags or {})
    value = tags.get("capc_value") or tags.get(folder.metric)
    try:
        value = float(value) if value is not None else None
    except ValueError:
        value = None
    return RegisteredModel(
        folder.name, version, tags.get("capc_source", "pipeline"), tags.get("capc_run_id", pipeline.name),
        pipeline.name, folder.metric, value, str(model.path),
    )


def latest_version(ml_client, name: str, workspace) -> str:
    """The newest registered version of model `name` (versions are numbered by registration)."""
    from azure.core.exceptions import ResourceNotFoundError

    from capc.azure.failures import azure_errors

    with azure_errors(f"read the versions of model {name}", workspace):
        try:
            versions = [str(m.version) for m in ml_client.models.list(name=name)]
        except ResourceNotFoundError:
            versions = []
    if not versions:
        raise CapcError(
            f"no model named {name} is registered in {workspace.describe()}.",
            f"run `capc submit specs/{name}.yaml --target azure` first: it registers the best run",
        )
    return max(versions, key=lambda v: (v.isdigit(), int(v) if v.isdigit() else 0, v))
