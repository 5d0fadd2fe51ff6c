"""Backend, Azure: which workspace, which credential, and the MLClient that talks to it.

The workspace comes from a config.json (the file the Azure portal offers on the workspace's Overview page), else
from AZURE_SUBSCRIPTION_ID / AZURE_RESOURCE_GROUP / AZUREML_WORKSPACE_NAME, else from ./config.json or
./.azureml/config.json. Credentials are DefaultAzureCredential's chain (az login, a service principal in the
environment, managed identity) unless the caller hands one in. azure.ai.ml is imported only inside functions:
`capc build` never loads it.
"""

from __future__ import annotations

import io
import json
import logging
import re
import sys
from collections.abc import Mapping
from contextlib import contextmanager, redirect_stderr
from dataclasses import asdict, dataclass
from pathlib import Path

from capc.errors import CapcError

ENV_KEYS = ("AZURE_SUBSCRIPTION_ID", "AZURE_RESOURCE_GROUP", "AZUREML_WORKSPACE_NAME")
CONFIG_KEYS = ("subscription_id", "resource_group", "workspace_name")
DISCOVERED_CONFIGS = (Path("config.json"), Path(".azureml") / "config.json")
WORKSPACE_HINT = (
    "pass --workspace config.json (download it from the workspace's Overview page in the Azure portal), "
    "or set AZURE_SUBSCRIPTION_ID, AZURE_RESOURCE_GROUP and AZUREML_WORKSPACE_NAME"
)


@dataclass(frozen=True)
class WorkspaceRef:
    """One Azure ML workspace, and where capc learnt of it (shown in messages)."""

    subscription_id: str
    resource_group: str
    workspace_name: str
    source: str = "arguments"

    @property
    def arm_id(self) -> str:
        return (
            f"/subscriptions/{self.subscription_id}/resourceGroups/{self.resource_group}"
            f"/providers/Microsoft.MachineLearningServices/workspaces/{self.workspace_name}"
        )

    def describe(self) -> str:
        return f"workspace '{self.workspace_name}' (resource group '{self.resource_group}', subscription {self.subscription_id}; from {self.source})"

    def to_dict(self) -> dict:
        return asdict(self)


# Stands in for the workspace in a dry run without configuration: the request bodies keep their shape.
PLACEHOLDER = WorkspaceRef("<subscription-id>", "<resource-group>", "<workspace>", "placeholder: no workspace configured")


def resolve_workspace(config_path: Path | None, env: Mapping[str, str], cwd: Path | None = None) -> WorkspaceRef:
    """The workspace to use: `config_path`, else the environment, else a config.json found in `cwd`."""
    if config_path is not None:
        return _from_config(Path(config_path))
    present = {key: env.get(key, "").strip() for key in ENV_KEYS}
    if any(present.values()):
        missing = [key for key, value in present.items() if not value]
        if missing:
            raise CapcError(
                f"the Azure ML workspace is only partly set in the environment: {', '.join(missing)} "
                f"{'is' if len(missing) == 1 else 'are'} missing.",
                f"set all three of {', '.join(ENV_KEYS)}, or pass --workspace config.json",
            )
        return WorkspaceRef(*(present[key] for key in ENV_KEYS), source="environment")
    base = Path(cwd) if cwd is not None else Path.cwd()
    for candidate in DISCOVERED_CONFIGS:
        if (base / candidate).is_file():
            return _from_config(base / candidate)
    raise CapcError("no Azure ML workspace is configured.", WORKSPACE_HINT)


def _from_config(path: Path) -> WorkspaceRef:
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CapcError(f"the workspace config {path} does not exist.", WORKSPACE_HINT) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CapcError(f"cannot read the workspace config {path}: {exc}.", WORKSPACE_HINT) from None
    except json.JSONDecodeError as exc:
        raise CapcError(f"the workspace config {path} is not valid JSON (line {exc.lineno}: {exc.msg}).", WORKSPACE_HINT) from None
    if not isinstance(config, dict):
        raise CapcError(f"the workspace config {path} must be a JSON object with {', '.join(CONFIG_KEYS)}.", WORKSPACE_HINT)
    scope = config.get("Scope")
    if isinstance(scope, str) and scope.count("/") >= 8:
        # The older portal download: {"Scope": "/subscriptions/S/resourceGroups/R/providers/.../workspaces/W"}
        pieces = scope.split("/")
        return WorkspaceRef(pieces[2], pieces[4], pieces[8], source=str(path))
    missing = [key for key in CONFIG_KEYS if not str(config.get(key) or "").strip()]
    if missing:
        raise CapcError(f"the workspace config {path} lacks {', '.join(missing)}.", WORKSPACE_HINT)
    return WorkspaceRef(*(str(config[key]).strip() for key in CONFIG_KEYS), source=str(path))


def default_credential():
    """DefaultAzureCredential without the interactive browser: az login, environment, managed identity."""
    from azure.identity import DefaultAzureCredential

    return DefaultAzureCredential(exclude_interactive_browser_credential=True)


def connect(workspace: WorkspaceRef, credential=None):
    """An MLClient for `workspace`; contacts nothing until the first call (see `check_access`)."""
    from azure.ai.ml import MLClient

    from capc.azure.failures import azure_errors

    quiet_sdk_loggers()
    with azure_errors("connect to Azure ML", workspace):
        return MLClient(
            credential if credential is not None else default_credential(),
            subscription_id=workspace.subscription_id,
            resource_group_name=workspace.resource_group,
            workspace_name=workspace.workspace_name,
            enable_telemetry=False,
            show_progress=False,
        )


def quiet_sdk_loggers() -> None:
    """azure-ai-ml logs progress chatter at INFO to its own stderr handlers; capc says what it does itself."""
    for name in list(logging.root.manager.loggerDict):
        if name == "azure.ai.ml" or name.startswith("azure.ai.ml."):
            logger = logging.getLogger(name)
            if logger.level and logger.level < logging.WARNING:
                logger.setLevel(logging.WARNING)


@contextmanager
def quiet_sdk_output():
    """azure-ai-ml prints colour resets and blank lines to stderr around uploads: drop those, keep anything else."""
    captured = io.StringIO()
    try:
        with redirect_stderr(captured):
            yield
    finally:
        text = re.sub(r"\x1b\[[0-9;]*m", "", captured.getvalue())
        if text.strip():
            sys.stderr.write(text)


def check_access(ml_client, workspace: WorkspaceRef):
    """Read the workspace once, so a bad login, subscription, workspace name or role fails here, clearly."""
    from capc.azure.failures import azure_errors

    with azure_errors("read the workspace", workspace):
        return ml_client.workspaces.get(workspace.workspace_name)

