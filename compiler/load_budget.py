"""Backend glue: the spec's load budget (deployment.min_requests_per_s, deployment.load) as the selections apply it.

The rule and the measurement are capc.serving_load's (self-contained, also run by the pipeline's select step); this
module gives it what only capc knows: the budget from a job folder's capc.json, the server settings from its
deployment.yml (as `capc deploy` reads them), and the deployment instance's vCPUs from the one size table
(capc.spec.service_rules.ONLINE_ENDPOINT_SIZES), for the estimate on the instance.
"""

from __future__ import annotations

from pathlib import Path

from capc import serving_load
from capc.errors import CapcError
from capc.jobfolder.serving import deployment_settings
from capc.spec import schema_default

def load_budget_of(deployment: dict) -> serving_load.LoadBudget:
    """capc.json's (or a Spec's) deployment section -> the load budget; none when the section predates it."""
    load = deployment.get("load") or {}
    return serving_load.LoadBudget(
        deployment.get("min_requests_per_s"), load.get("max_p99_ms"),
        int(load.get("concurrency") or schema_default("deployment.load.concurrency")),
    )


def instance_vcpus(instance_type: str | None) -> int | None:
    from capc.spec.service_rules import ONLINE_ENDPOINT_SIZES

    if not instance_type:
        return None
    for size, (_family, vcpus, _gpus) in ONLINE_ENDPOINT_SIZES.items():
        if size.lower() == instance_type.lower():
            return vcpus
    return None


def server_settings(job_dir: Path, concurrency: int) -> serving_load.LoadSettings:
    """How `capc deploy` would serve from `job_dir`: deployment.yml's WORKER_COUNT and environment variables."""
    environment = _deployment_environment(Path(job_dir))
    try:
        workers = int(environment.get("WORKER_COUNT") or 1)
    except ValueError:
        workers = 1
    return serving_load.LoadSettings(concurrency=concurrency, workers=workers, environment=environment)


def _deployment_environment(job_dir: Path) -> dict:
    try:
        return deployment_settings(job_dir)["environment"]
    except CapcError:  # unreadable deployment.yml: measure with the defaults (`capc deploy` would refuse it)
        return {}


def estimate(figure: serving_load.LoadFigure | None, deployment: dict, job_dir: Path, cores: int | None = None) -> serving_load.InstanceEstimate:
    """The throughput expected on deployment.instance_type from `figure` (or, without one, only the cores: what
    measured here against what the instance serves on)."""
    workers = server_settings(job_dir, 1).workers
    instance_type = deployment.get("instance_type") or schema_default("deployment.instance_type")
    measured = figure.cores if figure else (cores or len(serving_load.usable_cpus()))
    return serving_load.instance_estimate(figure.requests_per_s if figure else None, measured, instance_type,
                                          instance_vcpus(instance_type), workers)


def within_load(budget: serving_load.LoadBudget, score_py: Path, records: list[dict] | None, job_dir: Path, no_records: str = ""):
    """serving_cost.choose's `also_within`: a contender measured under load against `budget`; None without a budget."""
    if not budget.any:
        return None
    settings = server_settings(job_dir, budget.concurrency)

    def check(contender) -> list[str]:
        if records is None:
            return [f"could not be measured under load: {no_records or 'no request rows'}"]
        try:
            contender.load = serving_load.measure_load(str(score_py), contender.model_dir, records, settings, app_root=str(job_dir))
        except serving_load.LoadError as exc:
            return [f"could not be measured under load: {exc}"]
        return budget.reasons(contender.load)

    return check
