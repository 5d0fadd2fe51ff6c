"""Backend, local endpoints: Azure's inference server (azmlinfsrv) serving a generated score.py.

The server is azureml-inference-server-http itself - gunicorn, its Flask app, inference-schema's swagger - with
AZUREML_MODEL_DIR pointing at the registered model, the way a managed online deployment's container runs it.
One difference: azmlinfsrv binds 0.0.0.0 (a container's network is its own); here it is bound to 127.0.0.1 so
nothing outside the machine can reach a server that has no authentication of its own. Run as a module, this
file is that launcher: `python -m capc.serve.inference_server <azmlinfsrv arguments>`.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from capc.jobfolder.folder import ENTRY_SCRIPT
from capc.serve.processes import LOOPBACK, python_argv

# Files of the job folder a deployment's code snapshot takes (`code: ./` in deployment.yml; data and jobs stay).
CODE_SUFFIXES = (".py", ".json")


@dataclass(frozen=True)
class ServerSettings:
    worker_count: int
    request_timeout_ms: int
    environment: dict  # deployment.yml's environment_variables, as Azure sets them in the container


def snapshot_code(job_dir: Path, target: Path) -> Path:
    """Copy score.py and its sibling modules, so rebuilding generated/ never changes a running deployment."""
    target.mkdir(parents=True, exist_ok=True)
    for path in sorted(job_dir.iterdir()):
        if path.is_file() and path.suffix in CODE_SUFFIXES:
            shutil.copy2(path, target / path.name)
    return target / ENTRY_SCRIPT


def command(code_dir: Path, model_dir: Path, port: int, settings: ServerSettings, service_name: str) -> tuple[list[str], dict]:
    argv = python_argv(
        "capc.serve.inference_server",
        "--entry_script", str(code_dir / ENTRY_SCRIPT),
        "--model_dir", str(model_dir),
        "--port", str(port),
        "--worker_count", str(settings.worker_count),
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AZUREML_", "AML_", "MLFLOW_"))}
    env.update({str(k): str(v) for k, v in settings.environment.items()})
    env.update(
        {
            "AML_APP_ROOT": str(code_dir),
            "AZUREML_MODEL_DIR": str(model_dir),
            "SCORING_TIMEOUT_MS": str(settings.request_timeout_ms),
            "SERVICE_NAME": service_name,
            # No telemetry, no Application Insights: capc's proxy writes the request log.
            "AML_APP_INSIGHTS_ENABLED": "false",
            "PYTHONUNBUFFERED": "1",
            # Each worker is one process; threads inside numpy/LightGBM would only fight the other workers for 2 cores.
            "OMP_NUM_THREADS": env.get("OMP_NUM_THREADS", "1"),
        }
    )
    return argv, env


def main() -> None:
    from azureml_inference_server_http import constants

    constants.DEFAULT_HOST = LOOPBACK  # read by amlserver when it builds gunicorn's bind address
    from azureml_inference_server_http import amlserver

    amlserver.run()


if __name__ == "__main__":
    main()
