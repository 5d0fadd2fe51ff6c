"""Backend, Azure: the commands the CLI calls for `--target azure` - submit, status, cancel, deploy, endpoints.

Each is a plain function over a generated/<name>/ folder and a WorkspaceRef: plan the assets (offline), then -
unless it is a dry run - connect, check access, create what is missing, submit, follow, register, deploy.
Submissions are remembered under $CAPC_HOME/azure/<name>.json so `capc status NAME` and `capc deploy NAME`
know the jobs and the model of the last submit. azure.ai.ml is imported only inside the functions it serves.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console

from capc.azure.assets import AssetAction, AssetPlan, plan_assets
from capc.jobfolder import JobFolder
from capc.azure.jobs import SubmittedJob
from capc.azure.registry import RegisteredModel
from capc.azure.workspace import PLACEHOLDER, WorkspaceRef, resolve_workspace
from capc.errors import CapcError

if TYPE_CHECKING:
    from capc.selection import Selection

DEFAULT_POLL_SECONDS = 15.0  # between looks at running jobs; CAPC_AZURE_POLL_SECONDS overrides it


@dataclass
class SubmitResult:
    name: str
    workspace: WorkspaceRef
    metric: str
    goal: str
    dry_run: bool = False
    assets: list[AssetAction] = field(default_factory=list)
    jobs: list[SubmittedJob] = field(default_factory=list)
    model: RegisteredModel | None = None
    requests: list[dict] = field(default_factory=list)  # dry run: the PUT of each job
    selection: Selection | None = None  # how the registered run was chosen (not for a pipeline: its step chose)

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "target": "azure",
            "workspace": self.workspace.to_dict(),
            "metric": self.metric,
            "goal": self.goal,
            "dry_run": self.dry_run,
            "assets": [a.to_dict() for a in self.assets],
            "jobs": [j.to_dict() for j in self.jobs],
            "model": self.model.to_dict() if self.model else None,
            "requests": self.requests,
            "selection": self.selection.to_dict() if self.selection else None,
        }


# ---------------------------------------------------------------- submit


def submit(
    folder: JobFolder,
    workspace: WorkspaceRef | None,
    wait: bool = True,
    dry_run: bool = False,
    credential=None,
    console: Console | None = None,
    poll_seconds: float | None = None,
    quiet: bool = False,
) -> SubmitResult:
    """Submit the jobs of a job folder (read by capc.jobfolder, --only applied) to Azure ML (see the module
    docstring). The cluster of its compute.yml is created or updated; other computes the jobs use must exist; the
    winner capc.json names (best | automl | sweep) is registered. A dry run contacts nothing and needs no workspace.
    """
    console = console or Console()
    plan = plan_assets(folder)
    if dry_run:
        return _dry_run(folder, plan, workspace or PLACEHOLDER, console)
    from capc.azure import schedule as schedules
    from capc.azure.assets import ensure_assets
    from capc.azure.jobs import load_jobs, submit_job
    from capc.azure.progress import JobProgress, follow
    from capc.azure.workspace import check_access, connect

    workspace = workspace or resolve_workspace(None, os.environ)
    say = _sayer(console)
    ml_client = connect(workspace, credential)
    check_access(ml_client, workspace)
    say(f"{folder.name}: submitting to {workspace.describe()}")
    result = SubmitResult(folder.name, workspace, folder.metric, folder.goal)
    result.assets = ensure_assets(ml_client, plan, workspace, say)
    jobs = load_jobs(folder, plan)
    for kind, job in jobs.items():
        submitted = submit_job(ml_client, kind, job, workspace)
        result.jobs.append(submitted)
        say(f"submitted {kind} job {submitted.name}: {submitted.studio_url or '(no Studio URL)'}")
    schedule = schedules.load(folder, jobs["pipeline"]) if "pipeline" in jobs else None
    if schedule is not None:
        say(f"created or updated the retraining schedule {schedules.create(ml_client, schedule, workspace)} of the pipeline")
    _remember(folder, result)
    if not wait:
        say(f"not waiting: follow them with `capc status {folder.name} --target azure`")
        return result
    try:
        with JobProgress(console, folder.metric, folder.goal, quiet=quiet) as progress:
            follow(ml_client, result.jobs, folder.goal, workspace, progress, _poll_seconds(poll_seconds))
    except KeyboardInterrupt:
        say(f"stopped following; the jobs keep running in Azure ML: `capc status {folder.name} --target azure`, "
            f"`capc cancel {folder.name} --target azure`")
        raise
    _conclude(ml_client, folder, result, say)
    return result


def _conclude(ml_client, folder: JobFolder, result: SubmitResult, say) -> None:
    """After the jobs ended: register the best run (a pipeline registers its own), then report what failed."""
    from capc.azure.jobs import failure_reason
    from capc.azure.registry import register, registered_by_pipeline

    workspace = result.workspace
    failed = [j for j in result.jobs if j.status != "Completed"]
    for job in failed:
        job.error = failure_reason(ml_client, job.name)
    pipeline = next((j for j in result.jobs if j.kind == "pipeline"), None)
    if pipeline is not None:
        if pipeline.status == "Completed":  # its last step compared the winners and registered the better one
            result.model = registered_by_pipeline(ml_client, folder, pipeline, workspace)
            say(f"the pipeline registered model {result.model.ref}; next: capc deploy {folder.name} --target azure")
    else:
        try:
            result.selection = _select(ml_client, folder, result, say)
        except CapcError as exc:  # none fits the serving budget: nothing is registered
            _remember(folder, result)
            if failed:
                raise CapcError(f"{exc.message} Besides, {_jobs_failed(folder, failed, None).message}", exc.hint) from None
            raise
        if result.selection is not None:
            winner = result.selection.winner
            cost = result.selection.cost
            result.model = register(ml_client, folder, winner, workspace, cost.metrics() if cost else None)
            say(
                f"registered model {result.model.ref} from {winner.kind} run {winner.best_run_id} "
                f"({folder.metric} {winner.best_value:.4f}); next: capc deploy {folder.name} --target azure"
            )
    _remember(folder, result)
    if failed:
        raise _jobs_failed(folder, failed, result.model)
    if result.model is None:
        raise CapcError(
            f"the jobs of {folder.name} completed but none recorded a best run with a value of {folder.metric}, so no model was registered.",
            "open the jobs in Azure ML studio (URLs above) to see what the trials logged",
        )


def _select(ml_client, folder: JobFolder, result: SubmitResult, say) -> Selection | None:
    """The job whose best run to register, by capc.azure.selection: candidates downloaded and measured here."""
    from capc.azure.jobs import download_model
    from capc.azure.registry import candidates
    from capc.azure.selection import select
    from capc.selection import budget_of, is_measured

    if not candidates(result.jobs, folder.deployment_model):
        return None
    budget = budget_of(folder.deployment)
    if is_measured(folder.task) and budget.any:
        say(f"choosing the model to register within the serving budget ({budget.describe()}): each job's best run, best "
            f"first, is downloaded and measured on this machine until one fits")
    elif is_measured(folder.task):
        say("measuring what serving the winner costs: its run's model is downloaded and measured on this machine")
    selection = select(
        result.jobs, folder, lambda job, into: download_model(ml_client, job, into, result.workspace),
        on_fetch=lambda job: say(f"downloading the model of {job.kind} run {job.best_run_id}"),
        on_measured=lambda job, cost: say(f"serving cost of {job.kind} run {job.best_run_id}: {cost.summary()}"),
    )
    if selection is not None:
        for line in selection.explanation + selection.notes:
            say(line)
    return selection


def _poll_seconds(given: float | None) -> float:
    if given is not None:
        return given
    try:
        return float(os.environ.get("CAPC_AZURE_POLL_SECONDS", DEFAULT_POLL_SECONDS))
    except ValueError:
        raise CapcError(f"CAPC_AZURE_POLL_SECONDS must be a number of seconds, not {os.environ['CAPC_AZURE_POLL_SECONDS']!r}.") from None


def _dry_run(folder: JobFolder, plan: AssetPlan, workspace: WorkspaceRef, console: Console) -> SubmitResult:
    from capc.azure import schedule as schedules
    from capc.azure.jobs import load_jobs, rest_request

    result = SubmitResult(folder.name, workspace, folder.metric, folder.goal, dry_run=True)
    jobs = load_jobs(folder, plan)
    for kind, job in jobs.items():
        method, path, body = rest_request(kind, job, workspace, plan)
        result.requests.append({"job": kind, "method": method, "path": path, "body": body})
    schedule = schedules.load(folder, jobs["pipeline"]) if "pipeline" in jobs else None
    if schedule is not None:  # its job is the pipeline just resolved offline
        method, path, body = schedules.rest_request(schedule, workspace)
        result.requests.append({"job": "schedule", "method": method, "path": path, "body": body})
    text = dry_run_text(folder, plan, workspace, result.requests, in_git_work_tree())
    console.print(text, highlight=False, markup=False, soft_wrap=True, end="")
    return result


def in_git_work_tree(cwd: Path | None = None) -> bool:
    """Whether azure-ai-ml would add git properties to a job submitted from `cwd` (it asks git about the working
    directory, `git rev-parse --is-inside-work-tree`; its AZUREML_GIT_* variables stand in for a repository)."""
    import subprocess

    if any(os.environ.get(f"AZUREML_GIT_{part}") for part in ("REPOSITORY_URI", "BRANCH", "COMMIT")):
        return True
    try:
        answer = subprocess.run(["git", "rev-parse", "--is-inside-work-tree"], cwd=cwd, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return False
    return answer.returncode == 0 and answer.stdout.strip() == "true"


def dry_run_text(folder: JobFolder, plan: AssetPlan, workspace: WorkspaceRef, requests: list[dict], in_git: bool = False) -> str:
    """What `submit --dry-run` prints: the assets it would create and each job's REST request (deterministic for a
    given `in_git`: whether the working directory is in a git work tree, whose properties the SDK then adds)."""
    from capc.azure.jobs import code_files

    lines = [
        f"# capc submit {folder.name} --target azure --dry-run: nothing was contacted; this is what would be sent.",
        f"# workspace: {workspace.arm_id} ({workspace.source})",
        "# assets (each created only if missing; versions are content hashes):",
    ]
    rows = [("compute", c.name, c.summary()) for c in plan.computes]
    rows += [("data", f"{d.name}:{d.version}", d.summary()) for d in plan.data]
    if plan.environment is not None:
        rows.append(("environment", f"{plan.environment.name}:{plan.environment.version}", plan.environment.summary()))
    for kind, code_dir in sorted(plan.code.items()):
        rows.append(("code", f"{code_dir.name}/ ({kind})", f"uploaded by azure-ai-ml at submission: {', '.join(code_files(code_dir))}"))
    width = max(len(r[1]) for r in rows) if rows else 0
    lines += [f"#   {kind:<12} {name:<{width}}  {what}" for kind, name, what in rows]
    lines.append("# git properties of the working copy (azureml.git.*, mlflow.source.git.*) are added at submission." if in_git else
                 "# no git repository in the working directory: the jobs carry no git properties.")
    for request in requests:
        lines.append("")
        lines.append("# retraining schedule of the pipeline job (schedule.yml)" if request["job"] == "schedule" else f"# {request['job']} job")
        lines.append(f"{request['method']} {request['path']}")
        lines.append(json.dumps(request["body"], indent=2, sort_keys=True))
    return "\n".join(lines) + "\n"


def _jobs_failed(folder: JobFolder, failed: list[SubmittedJob], model: RegisteredModel | None) -> CapcError:
    parts = []
    for job in failed:
        reason = f": {job.error}" if job.error else ""
        parts.append(f"the {job.kind} job {job.name} ended {job.status}{reason}")
    registered = f" The best completed run was still registered as {model.ref}." if model else ""
    where = " ".join(f"{j.studio_url}" for j in failed if j.studio_url)
    return CapcError(
        f"{folder.name} on Azure: {'; '.join(parts)}.{registered}",
        f"open {where} for the job's logs (outputs + logs tab), fix the cause and submit again"
        if where else "read the job's logs in Azure ML studio, fix the cause and submit again",
    )


# ---------------------------------------------------------------- status and cancel


def status(name_or_job: str, workspace: WorkspaceRef | None, credential=None, console: Console | None = None) -> list[SubmittedJob]:
    """The jobs of the last submit of spec NAME (or one job by its name), read from the workspace."""
    from capc.azure.jobs import refresh
    from capc.azure.progress import JobProgress

    console = console or Console()
    ml_client, workspace, record, jobs = _jobs_of(name_or_job, workspace, credential)
    goal = (record or {}).get("goal", "maximize")
    for job in jobs:
        refresh(ml_client, job, goal, workspace)
    console.print(JobProgress(console, (record or {}).get("metric", "metric"), goal).table(jobs))
    return jobs


def cancel(name_or_job: str, workspace: WorkspaceRef | None, credential=None, console: Console | None = None) -> list[str]:
    """Cancel one job by name, or every unfinished job of the last submit of spec NAME; returns the names."""
    from capc.azure.failures import azure_errors
    from capc.azure.jobs import refresh

    console = console or Console()
    ml_client, workspace, _, jobs = _jobs_of(name_or_job, workspace, credential)
    cancelled = []
    for job in jobs:
        refresh(ml_client, job, "maximize", workspace)
        if job.finished:
            console.print(f"{job.name}: already {job.status}", highlight=False)
            continue
        with azure_errors(f"cancel job {job.name}", workspace):
            ml_client.jobs.begin_cancel(job.name)
        cancelled.append(job.name)
        console.print(f"{job.name}: cancel requested", highlight=False)
    return cancelled


def _jobs_of(name_or_job: str, workspace: WorkspaceRef | None, credential):
    """(client, workspace, record, jobs): the jobs of spec NAME's last submit, else the one job so named."""
    from azure.core.exceptions import ResourceNotFoundError

    from capc.azure.failures import azure_errors
    from capc.azure.workspace import connect

    record = _recall(name_or_job)
    workspace = workspace or _record_workspace(record) or resolve_workspace(None, os.environ)
    ml_client = connect(workspace, credential)
    if record:
        return ml_client, workspace, record, [SubmittedJob(j["kind"], j["name"], j.get("studio_url"), "") for j in record["jobs"]]
    with azure_errors(f"read job {name_or_job}", workspace):
        try:
            job = ml_client.jobs.get(name_or_job)
        except ResourceNotFoundError:
            raise CapcError(
                f"there is no job named {name_or_job} in {workspace.describe()}, and capc has no record of a submit of a spec named {name_or_job}.",
                "pass a job name as Azure ML studio shows it, or the spec's name after `capc submit SPEC --target azure`",
            ) from None
    from capc.azure.jobs import job_kind

    return ml_client, workspace, None, [SubmittedJob(job_kind(job), job.name, getattr(job, "studio_url", None), "")]


# ---------------------------------------------------------------- deploy and the endpoint


def deploy(
    job_dir: Path,
    spec_name: str,
    workspace: WorkspaceRef | None,
    credential=None,
    console: Console | None = None,
    model_version: str | None = None,
):
    """Managed online endpoint + deployment of the registered model (the last submit's, else the latest version)."""
    from capc.azure.assets import ensure_environment, environment_asset
    from capc.azure.endpoints import deploy as deploy_endpoint
    from capc.azure.registry import latest_version
    from capc.azure.workspace import check_access, connect

    console = console or Console()
    say = _sayer(console)
    folder_path = Path(job_dir)
    record = _recall(spec_name)
    workspace = workspace or _record_workspace(record) or resolve_workspace(None, os.environ)
    ml_client = connect(workspace, credential)
    check_access(ml_client, workspace)
    if model_version is None:
        remembered = (record or {}).get("model") or {}
        same_workspace = _record_workspace(record) is not None and _record_workspace(record).arm_id == workspace.arm_id
        model_version = remembered.get("version") if same_workspace else None
        model_version = model_version or latest_version(ml_client, spec_name, workspace)
    environment = environment_asset(folder_path, spec_name)
    if environment is not None:
        ensure_environment(ml_client, environment, workspace, say)
    result = deploy_endpoint(ml_client, folder_path, spec_name, model_version, environment, workspace, say)
    say(f"endpoint {result.endpoint} is up: {result.scoring_uri} ({result.auth_mode} auth, traffic {result.traffic})")
    say(f"next: capc invoke {spec_name} --target azure")
    return result


def endpoint_show(job_dir: Path, workspace: WorkspaceRef | None, credential=None, console: Console | None = None) -> dict:
    from capc.azure.endpoints import show

    ml_client, workspace = _client_for(job_dir, workspace, credential)
    return show(ml_client, Path(job_dir), workspace)


def endpoint_keys(
    job_dir: Path, workspace: WorkspaceRef | None, credential=None, console: Console | None = None, regenerate: str | None = None
) -> dict:
    from capc.azure.endpoints import keys

    ml_client, workspace = _client_for(job_dir, workspace, credential)
    return keys(ml_client, Path(job_dir), workspace, regenerate)


def endpoint_logs(job_dir: Path, workspace: WorkspaceRef | None, credential=None, console: Console | None = None, lines: int = 100) -> str:
    from capc.azure.endpoints import logs

    ml_client, workspace = _client_for(job_dir, workspace, credential)
    return logs(ml_client, Path(job_dir), workspace, lines)


def endpoint_delete(job_dir: Path, workspace: WorkspaceRef | None, credential=None, console: Console | None = None) -> str:
    from capc.azure.endpoints import delete

    ml_client, workspace = _client_for(job_dir, workspace, credential)
    name = delete(ml_client, Path(job_dir), workspace)
    (console or Console()).print(f"deleted endpoint {name}", highlight=False)
    return name


def invoke(job_dir: Path, workspace: WorkspaceRef | None, request_file: Path | None = None, credential=None, console: Console | None = None) -> str:
    from capc.azure.endpoints import invoke as invoke_endpoint

    ml_client, workspace = _client_for(job_dir, workspace, credential)
    return invoke_endpoint(ml_client, Path(job_dir), workspace, request_file)


def _client_for(job_dir: Path, workspace: WorkspaceRef | None, credential):
    from capc.azure.workspace import connect

    record = _recall(Path(job_dir).name)
    workspace = workspace or _record_workspace(record) or resolve_workspace(None, os.environ)
    return connect(workspace, credential), workspace


# ---------------------------------------------------------------- the submission record


def record_path(name: str) -> Path:
    from capc.state.home import capc_home

    return capc_home() / "azure" / f"{name}.json"


def _remember(folder: JobFolder, result: SubmitResult) -> None:
    from capc.artifacts import atomic_write_bytes

    record = {
        **result.to_dict(),
        "job_dir": str(folder.path.resolve()),
        "spec_sha256": folder.spec_sha256,
        "submitted": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    atomic_write_bytes(record_path(folder.name), (json.dumps(record, indent=2, sort_keys=True) + "\n").encode())


def _recall(name: str) -> dict | None:
    path = record_path(name) if "/" not in name and name else None
    if path is None or not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None


def _record_workspace(record: dict | None) -> WorkspaceRef | None:
    if not record or not record.get("workspace"):
        return None
    ws = record["workspace"]
    if str(ws.get("subscription_id", "")).startswith("<"):
        return None
    return WorkspaceRef(ws["subscription_id"], ws["resource_group"], ws["workspace_name"], f"the last submit ({record_path(record['name'])})")


def _sayer(console: Console):
    return lambda text: console.print(text, highlight=False, markup=False, soft_wrap=True)
