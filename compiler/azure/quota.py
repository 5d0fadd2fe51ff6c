"""Backend, Azure: the region's VM sizes and per-family vCPU quota of a workspace, for `capc plan --target azure`.

Reads only, through azure-ai-ml's own calls (MLClient.compute.list_sizes and list_usage, both for the workspace's
region); returns plain data so the plan stage never sees an SDK object.
"""

from __future__ import annotations

from dataclasses import dataclass

from capc.azure.failures import azure_errors
from capc.azure.workspace import WorkspaceRef, connect


@dataclass(frozen=True)
class VmSizeFacts:
    name: str
    family: str  # the quota family, e.g. standardDSv2Family
    vcpus: int
    gpus: int


@dataclass(frozen=True)
class FamilyUsage:
    family: str
    in_use: int
    limit: int


def read_quota(workspace: WorkspaceRef, credential=None) -> tuple[dict[str, VmSizeFacts], dict[str, FamilyUsage]]:
    """(lower-case size -> facts, lower-case family -> usage) of the workspace's region."""
    ml_client = connect(workspace, credential)
    with azure_errors("read the VM sizes and vCPU quota of the workspace's region", workspace):
        sizes = list(ml_client.compute.list_sizes())
        usages = list(ml_client.compute.list_usage())
    facts = {}
    for size in sizes:
        name = _field(size, "name")
        if name:
            facts[name.lower()] = VmSizeFacts(name, str(_field(size, "family") or ""), int(_field(size, "v_cp_us", "vCPUs") or 0), int(_field(size, "gpus") or 0))
    families = {}
    for usage in usages:
        name = _field(usage, "name")
        family = _field(name, "value") if name is not None else None
        if family and _field(usage, "limit") is not None:
            families[str(family).lower()] = FamilyUsage(str(family), int(_field(usage, "current_value", "currentValue") or 0), int(_field(usage, "limit")))
    return facts, families


def _field(obj, *names):
    """An attribute or mapping key, by the first of `names` present (the SDK's entities copy REST dicts as they are)."""
    for name in names:
        if isinstance(obj, dict) and name in obj:
            return obj[name]
        if not isinstance(obj, dict) and getattr(obj, name, None) is not None:
            return getattr(obj, name)
    return None
