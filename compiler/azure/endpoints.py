"""Backend, Azure: the managed online endpoint of a spec - deploy, show, keys, logs, invoke, delete.

Everything comes from generated/<name>/ (endpoint.yml, deployment.yml, sample_request.json); the deployment
serves the registered model version capc chose and runs in the environment capc registered from the same files.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

from capc.azure.jobs import status_text
from capc.errors import CapcError
from capc.image_files import image_request_body, is_image_path
from capc.jobfolder.serving import deployment_name, endpoint_files, endpoint_name, sample_request_file


@dataclass
class DeployResult:
    endpoint: str
    deployment: str
    model: str
    scoring_uri: str | None
    auth_mode: str
    provisioning_state: str
    traffic: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def deploy(ml_client, job_dir: Path, model_name: str, model_version: str, environment, workspace, say) -> DeployResult:
    """Endpoint (create or update), deployment of model_name:model_version, 100% traffic; waits until healthy."""
    from azure.ai.ml import load_online_deployment, load_online_endpoint

    from capc.azure.failures import azure_errors
    from capc.azure.workspace import quiet_sdk_output

    endpoint_yml, deployment_yml = endpoint_files(job_dir)
    with azure_errors(f"load {endpoint_yml.name} and {deployment_yml.name}"):
        endpoint = load_online_endpoint(source=endpoint_yml)
        deployment = load_online_deployment(source=deployment_yml)
    deployment.model = f"azureml:{model_name}:{model_version}"
    deployment.endpoint_name = endpoint.name
    if environment is not None:
        deployment.environment = environment.ref
    say(f"creating or updating endpoint {endpoint.name} ({endpoint.auth_mode} auth)")
    with azure_errors(f"create online endpoint {endpoint.name}", workspace):
        ml_client.online_endpoints.begin_create_or_update(endpoint).result()
    say(f"deploying {model_name}:{model_version} as {deployment.name} on {deployment.instance_count} x {deployment.instance_type} (waits until it is up)")
    with azure_errors(f"create deployment {deployment.name} of endpoint {endpoint.name}", workspace), quiet_sdk_output():
        ml_client.online_deployments.begin_create_or_update(deployment).result()
    endpoint.traffic = {deployment.name: 100}
    with azure_errors(f"route all traffic of {endpoint.name} to {deployment.name}", workspace):
        ml_client.online_endpoints.begin_create_or_update(endpoint).result()
    with azure_errors(f"read endpoint {endpoint.name}", workspace):
        live = ml_client.online_endpoints.get(endpoint.name)
        live_deployment = ml_client.online_deployments.get(deployment.name, endpoint.name)
    state = status_text(live_deployment.provisioning_state)
    if state.lower() != "succeeded" or status_text(live.provisioning_state).lower() != "succeeded":
        tail = _logs_tail(ml_client, deployment.name, endpoint.name)
        raise CapcError(
            f"the deployment {deployment.name} of {endpoint.name} ended in state {state or 'unknown'} instead of Succeeded."
            + (f" Its log ends with: {tail}" if tail else ""),
            f"read the full log with `capc endpoints logs {Path(job_dir).name} --target azure`, fix score.py or the environment, and deploy again",
        )
    return DeployResult(
        endpoint.name, deployment.name, f"{model_name}:{model_version}", live.scoring_uri, status_text(live.auth_mode),
        state, dict(live.traffic or {}),
    )


def show(ml_client, job_dir: Path, workspace) -> dict:
    name = endpoint_name(job_dir)
    endpoint = _get_endpoint(ml_client, name, workspace)
    from capc.azure.failures import azure_errors

    with azure_errors(f"list deployments of {name}", workspace):
        deployments = list(ml_client.online_deployments.list(name))
    return {
        "name": endpoint.name,
        "scoring_uri": endpoint.scoring_uri,
        "auth_mode": status_text(endpoint.auth_mode),
        "provisioning_state": status_text(endpoint.provisioning_state),
        "traffic": dict(endpoint.traffic or {}),
        "deployments": [
            {
                "name": d.name,
                "model": str(d.model) if d.model is not None else None,
                "instance_type": d.instance_type,
                "instance_count": d.instance_count,
                "provisioning_state": status_text(d.provisioning_state),
            }
            for d in sorted(deployments, key=lambda d: d.name)
        ],
    }


def keys(ml_client, job_dir: Path, workspace, regenerate: str | None = None) -> dict:
    """The endpoint's keys; `regenerate` ("primary" | "secondary") replaces one first, the other keeps working."""
    from capc.azure.failures import azure_errors

    name = endpoint_name(job_dir)
    _get_endpoint(ml_client, name, workspace)
    if regenerate is not None:
        if regenerate not in ("primary", "secondary"):
            raise CapcError(f"--regenerate takes primary or secondary, not {regenerate!r}.")
        with azure_errors(f"regenerate the {regenerate} key of endpoint {name}", workspace):
            ml_client.online_endpoints.begin_regenerate_keys(name=name, key_type=regenerate).result()
    with azure_errors(f"read the keys of endpoint {name}", workspace):
        credentials = ml_client.online_endpoints.get_keys(name)
    if hasattr(credentials, "primary_key"):
        return {"primary_key": credentials.primary_key, "secondary_key": credentials.secondary_key}
    return {"access_token": getattr(credentials, "access_token", None), "expiry_time_utc": getattr(credentials, "expiry_time_utc", None)}


def logs(ml_client, job_dir: Path, workspace, lines: int = 100) -> str:
    from capc.azure.failures import azure_errors

    name = endpoint_name(job_dir)
    deployment = deployment_name(job_dir)
    _get_endpoint(ml_client, name, workspace)
    with azure_errors(f"read the logs of deployment {deployment} of {name}", workspace):
        return ml_client.online_deployments.get_logs(deployment, name, lines=lines)


def delete(ml_client, job_dir: Path, workspace) -> str:
    from capc.azure.failures import azure_errors

    name = endpoint_name(job_dir)
    _get_endpoint(ml_client, name, workspace)
    with azure_errors(f"delete endpoint {name}", workspace):
        ml_client.online_endpoints.begin_delete(name=name).result()
    return name


def invoke(ml_client, job_dir: Path, workspace, request_file: Path | None = None) -> str:
    """POST a request (default: sample_request.json) to the endpoint with its key; the reply's text.

    As locally, a request file that is an image rather than JSON is sent as {"data": ["<base64 of the image>"]}.
    """
    from capc.azure.failures import azure_errors

    name = endpoint_name(job_dir)
    request_file = Path(request_file) if request_file else sample_request_file(job_dir)
    if not request_file.is_file():
        raise CapcError(f"the request file {request_file} does not exist.", "pass a JSON file with the request body")
    _get_endpoint(ml_client, name, workspace)
    with tempfile.TemporaryDirectory(prefix="capc-invoke-") as scratch:
        body_file = _json_request_file(request_file, Path(scratch))
        with azure_errors(f"invoke endpoint {name}", workspace):
            return ml_client.online_endpoints.invoke(endpoint_name=name, request_file=str(body_file))


def _json_request_file(path: Path, scratch: Path) -> Path:
    raw = path.read_bytes()
    try:
        json.loads(raw)
        return path
    except (UnicodeDecodeError, json.JSONDecodeError):
        pass
    if not is_image_path(path):
        raise CapcError(f"the request file {path} is neither JSON nor an image.", "pass a JSON request body, or an image for an image endpoint")
    encoded = scratch / "request.json"
    encoded.write_bytes(image_request_body(raw))
    return encoded


def _get_endpoint(ml_client, name: str, workspace):
    from azure.core.exceptions import ResourceNotFoundError

    from capc.azure.failures import azure_errors

    with azure_errors(f"read endpoint {name}", workspace):
        try:
            return ml_client.online_endpoints.get(name)
        except ResourceNotFoundError:
            raise CapcError(
                f"the online endpoint {name} does not exist in {workspace.describe()}.",
                "deploy it first: `capc deploy NAME --target azure`",
            ) from None


def _logs_tail(ml_client, deployment: str, endpoint: str, lines: int = 20) -> str:
    try:
        text = ml_client.online_deployments.get_logs(deployment, endpoint, lines=lines)
    except Exception:  # the log is a courtesy in an error message: never let it hide the error
        return ""
    return " | ".join(line.strip() for line in str(text).splitlines() if line.strip())[-600:]
