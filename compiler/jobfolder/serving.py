"""Job folder: the files that serve its model, read here for both backends - endpoint.yml and deployment.yml (Azure's
online endpoint and deployment), environment.yml with its conda file, and sample_request.json.

capc's build always writes deployment.yml's request_settings (the spec's defaults are applied when it compiles); a
hand-written deployment.yml may leave them out, and then they mean what Azure does without them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from capc.errors import CapcError

ENDPOINT_FILE = "endpoint.yml"
DEPLOYMENT_FILE = "deployment.yml"
ENVIRONMENT_FILE = "environment.yml"
CONDA_FILE = "conda.yml"  # the trial scripts' and score.py's conda environment (select/ has its own)
SAMPLE_REQUEST = "sample_request.json"
# Azure's request_timeout_ms when deployment.yml's request_settings leave it out (managed online deployment YAML
# reference: request_settings.request_timeout_ms, default 5000).
AZURE_REQUEST_TIMEOUT_MS = 5000


def sample_request_file(folder: Path) -> Path:
    """The sample request of a job folder, or of the copy of it that a local endpoint serves from."""
    return Path(folder) / SAMPLE_REQUEST


def has_endpoint(job_dir: Path) -> bool:
    return (Path(job_dir) / ENDPOINT_FILE).is_file()


def endpoint_files(job_dir: Path) -> tuple[Path, Path]:
    """(endpoint.yml, deployment.yml); CapcError when either is missing."""
    endpoint_yml, deployment_yml = Path(job_dir) / ENDPOINT_FILE, Path(job_dir) / DEPLOYMENT_FILE
    for path in (endpoint_yml, deployment_yml):
        if not path.is_file():
            raise CapcError(f"{path} does not exist.", f"run `capc build` for {Path(job_dir).name} first")
    return endpoint_yml, deployment_yml


def endpoint_name(job_dir: Path) -> str:
    endpoint_yml, _ = endpoint_files(job_dir)
    data = yaml.safe_load(endpoint_yml.read_text(encoding="utf-8")) or {}
    if not data.get("name"):
        raise CapcError(f"{endpoint_yml} names no endpoint.", "run `capc build` again")
    return str(data["name"])


def named_endpoint(job_dir: Path) -> str | None:
    """The online endpoint's name in the folder's endpoint.yml (the spec's deployment.endpoint); None without one
    (a hand-written AutoML job's model has no endpoint.yml: its local endpoint takes the model's name)."""
    path = Path(job_dir) / ENDPOINT_FILE
    data = yaml.safe_load(path.read_text(encoding="utf-8")) if path.is_file() else None
    return str(data["name"]) if isinstance(data, dict) and data.get("name") else None


def deployment_name(job_dir: Path) -> str:
    _, deployment_yml = endpoint_files(job_dir)
    data = yaml.safe_load(deployment_yml.read_text(encoding="utf-8")) or {}
    return str(data.get("name") or "blue")


def deployment_settings(job_dir: Path) -> dict:
    """request_timeout_ms and environment_variables of the job folder's deployment.yml (none: Azure's defaults)."""
    path = Path(job_dir) / DEPLOYMENT_FILE
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        data = {}
    except yaml.YAMLError as exc:
        raise CapcError(f"{path} is not valid YAML: {exc}", "rebuild it with `capc build SPEC`") from None
    request = data.get("request_settings") or {}
    environment = {str(k): str(v) for k, v in (data.get("environment_variables") or {}).items()}
    return {"request_timeout_ms": request.get("request_timeout_ms") or AZURE_REQUEST_TIMEOUT_MS, "environment": environment}


@dataclass(frozen=True)
class EnvironmentFiles:
    """environment.yml as written, and the conda file it names (None when it names none)."""

    path: Path
    name: str | None
    image: str
    conda_path: Path | None
    version: str | None = None  # capc's build: a hash of conda.yml and the image (render/environment_version.py)

    @property
    def files(self) -> dict[str, Path]:
        """The files that make up the environment, by the role that names them (what its version hashes)."""
        return {ENVIRONMENT_FILE: self.path, **({CONDA_FILE: self.conda_path} if self.conda_path is not None else {})}


def environment_files(job_dir: Path) -> EnvironmentFiles | None:
    """The job folder's environment.yml and its conda file; None without one, CapcError when the conda file is gone."""
    path = Path(job_dir) / ENVIRONMENT_FILE
    if not path.is_file():
        return None
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    conda = data.get("conda_file")
    conda_path = (path.parent / conda).resolve() if isinstance(conda, str) else None
    if conda_path is not None and not conda_path.is_file():
        raise CapcError(f"{path} names conda file {conda}, which is not there.", "run `capc build` again")
    version = str(data["version"]) if data.get("version") is not None else None
    return EnvironmentFiles(path, str(data["name"]) if data.get("name") else None, str(data.get("image") or ""), conda_path, version)


def read_trial_conda(job_dir: Path) -> dict | None:
    """conda.yml as loaded (what a pipeline's trial steps run in); None when the folder has none."""
    path = Path(job_dir) / CONDA_FILE
    return yaml.safe_load(path.read_text(encoding="utf-8")) if path.is_file() else None
