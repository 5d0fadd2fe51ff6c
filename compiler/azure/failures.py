"""Backend, Azure: what azure-core, azure-identity and azure-ai-ml raise, turned into one-paragraph CapcErrors.

One table, first match wins: each entry says which failures it covers (HTTP status, ARM error code, or the
exception's kind), the message (what happened) and the hint (what to do). `azure_errors(action)` wraps a call.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass

from capc.errors import CapcError

MAX_DETAIL = 400  # characters of the service's own message kept in ours: one paragraph, not a dump


@dataclass(frozen=True)
class Observed:
    """The facts of one failure that the table matches on."""

    kind: str  # "credential" (no token), "http" (an answer), "network" (no answer), "sdk" (azure-ai-ml refused)
    status: int | None
    code: str
    detail: str


@dataclass(frozen=True)
class Failure:
    name: str
    applies: Callable[[Observed], bool]
    message: str  # str.format fields: action, workspace, code, status, detail
    hint: str


def _code_in(*codes: str) -> Callable[[Observed], bool]:
    wanted = {c.lower() for c in codes}
    return lambda o: o.code.lower() in wanted


QUOTA_CODES = ("QuotaExceeded", "OutOfQuota", "InsufficientQuota", "ResourceQuotaExceeded", "SkuNotAvailable")

FAILURES: tuple[Failure, ...] = (
    Failure(
        "not_signed_in",
        lambda o: o.kind == "credential",
        "capc could not get an Azure access token to {action}: no credential is signed in ({detail})",
        "run `az login` (then `az account set --subscription <id>`), or set AZURE_TENANT_ID, AZURE_CLIENT_ID and "
        "AZURE_CLIENT_SECRET for a service principal, then retry",
    ),
    Failure(
        "token_rejected",
        lambda o: o.status == 401,
        "Azure rejected the access token while trying to {action} ({code}): the login has expired or belongs to "
        "another tenant",
        "run `az login --tenant <the subscription's tenant>` and retry",
    ),
    Failure(
        "no_permission",
        lambda o: o.status == 403 or o.code.lower() in {"authorizationfailed", "linkedauthorizationfailed", "forbidden"},
        "your identity has no permission to {action} in {workspace} ({code}: {detail})",
        "ask the workspace owner for the 'AzureML Data Scientist' role (or Contributor) on the workspace, then retry; "
        "a subscription_id or resource_group that is not the workspace's can answer the same",
    ),
    Failure(
        "wrong_subscription",
        _code_in("SubscriptionNotFound", "InvalidSubscriptionId"),
        "the subscription of {workspace} does not exist or this login cannot see it ({detail})",
        "check subscription_id in the workspace config; `az account list -o table` lists the subscriptions you can "
        "use",
    ),
    Failure(
        "wrong_resource_group",
        _code_in("ResourceGroupNotFound"),
        "the resource group of {workspace} does not exist ({detail})",
        "check resource_group in the workspace config (the portal's workspace Overview page shows it)",
    ),
    Failure(
        "wrong_workspace",
        # ARM names the missing resource in quotes: "...workspaces/NAME' under resource group..." is the workspace.
        lambda o: o.status == 404 and re.search(r"workspaces/[^/'\s]+'", o.detail) is not None,
        "{workspace} was not found ({detail})",
        "check workspace_name in the workspace config, or download a fresh config.json from the workspace's "
        "Overview page in the Azure portal",
    ),
    Failure(
        "quota",
        lambda o: o.code.lower() in {c.lower() for c in QUOTA_CODES} or "quota" in o.detail.lower(),
        "Azure ML refused to {action}: the subscription's quota does not allow it ({code}: {detail})",
        "request more quota for this VM family (Azure ML studio > Quota, or the portal's Usage + quotas), or choose "
        "a smaller compute.size / max_instances or deployment.instance_type / instance_count in the spec",
    ),
    Failure(
        "network",
        lambda o: o.kind == "network",
        "capc could not reach Azure to {action}: {detail}",
        "check the network connection and any proxy settings (HTTPS_PROXY), then retry",
    ),
    Failure(
        "sdk_refused",
        lambda o: o.kind == "sdk",
        "azure-ai-ml refused to {action}: {detail}",
        "the generated files may be stale or edited by hand: run `capc build` and retry",
    ),
    Failure(
        "service_error",
        lambda o: True,
        "Azure ML refused to {action} ({status} {code}): {detail}",
        "the message above is Azure's; `capc --debug ...` shows the full error",
    ),
)


def observe(exc: BaseException) -> Observed | None:
    """The facts of an Azure failure, or None when `exc` is not one (a bug: let it surface)."""
    from azure.core.exceptions import ClientAuthenticationError, HttpResponseError, ServiceRequestError, ServiceResponseError

    if isinstance(exc, ClientAuthenticationError) and getattr(exc, "response", None) is None:
        return Observed("credential", None, "", _detail(str(exc.message if hasattr(exc, "message") else exc)))
    if isinstance(exc, HttpResponseError):
        status = getattr(exc, "status_code", None) or getattr(getattr(exc, "response", None), "status_code", None)
        error = getattr(exc, "error", None)
        code = str(getattr(error, "code", None) or _header_code(exc) or "")
        message = getattr(error, "message", None) or exc.message or str(exc)
        return Observed("http", status, code, _detail(message))
    if isinstance(exc, (ServiceRequestError, ServiceResponseError)):
        return Observed("network", None, "", _detail(str(exc)))
    try:
        from azure.ai.ml.exceptions import MlException
    except ImportError:  # pragma: no cover - azure-ai-ml is a dependency
        MlException = ()  # noqa: N806
    if isinstance(exc, MlException):
        return Observed("sdk", None, "", _detail(getattr(exc, "message", None) or str(exc)))
    if type(exc).__name__ == "ValidationError" and type(exc).__module__.startswith("marshmallow"):
        return Observed("sdk", None, "", _detail(str(exc)))
    return None


def explain(exc: BaseException, action: str, workspace=None) -> CapcError | None:
    """The CapcError for an Azure failure, or None when `exc` is not one."""
    observed = observe(exc)
    if observed is None:
        return None
    failure = next(f for f in FAILURES if f.applies(observed))
    fields = {
        "action": action,
        "workspace": workspace.describe() if workspace is not None else "the workspace",
        "code": observed.code or "no error code",
        "status": observed.status or "",
        "detail": observed.detail or "no details given",
    }
    message = failure.message.format(**fields).replace("  ", " ")
    error = CapcError(message + ".", failure.hint + ".")
    error.failure = failure.name  # which table entry: tests and --json output use it
    return error


@contextmanager
def azure_errors(action: str, workspace=None):
    """Run a block of Azure calls; an Azure failure leaves it as a CapcError saying what to do."""
    try:
        yield
    except CapcError:
        raise
    except Exception as exc:
        error = explain(exc, action, workspace)
        if error is None:
            raise
        raise error from exc


def _detail(text: str) -> str:
    """The service's message as one short line: the first meaningful line(s), whitespace collapsed."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(text))  # azure-ai-ml colours some of its messages
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    # azure-core repeats "Code: X / Message: Y" under the summary line: keep the summary.
    lines = [line for line in lines if not re.match(r"^(Code|Message|Target|Exception Details|Additional Information):", line)] or lines
    flat = " ".join(lines)
    flat = re.sub(r"^\(\w+\)\s*", "", flat)
    flat = re.sub(r"\s+", " ", flat).strip().rstrip(".")
    return flat if len(flat) <= MAX_DETAIL else flat[: MAX_DETAIL - 1].rstrip() + "…"


def _header_code(exc) -> str | None:
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None) or {}
    return headers.get("x-ms-error-code") if hasattr(headers, "get") else None
