"""Backend, Azure: `capc submit|status|cancel|deploy|endpoints|invoke --target azure` (azure-ai-ml SDK v2).

Importing this package loads neither azure.ai.ml nor azure.identity: they are imported inside the functions
that talk to Azure, so `capc build` and the local engine never pay for them.
"""

from capc.azure.backend import (
    SubmitResult,
    cancel,
    deploy,
    endpoint_delete,
    endpoint_keys,
    endpoint_logs,
    endpoint_show,
    invoke,
    status,
    submit,
)
from capc.azure.workspace import WorkspaceRef, resolve_workspace

__all__ = [
    "SubmitResult",
    "WorkspaceRef",
    "cancel",
    "deploy",
    "endpoint_delete",
    "endpoint_keys",
    "endpoint_logs",
    "endpoint_show",
    "invoke",
    "resolve_workspace",
    "status",
    "submit",
]
