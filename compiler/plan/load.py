"""Stage: plan (load): the spec's load budget against the machine that measures it and the instance that serves.

A load budget (deployment.min_requests_per_s, deployment.load) is measured where the model is selected, on that
machine's cores; the endpoint serves on deployment.instance_type, whose vCPUs come from the one size table
(capc.spec.service_rules.ONLINE_ENDPOINT_SIZES) and whose workers are deployment.yml's WORKER_COUNT
(max_concurrent_requests_per_instance). Scaled by cores, the budget met here says what to expect there: an
estimate, and a lower bound when the instance serves on more cores. The last registered version of the spec's model,
when its selection measured it under load, gives the same estimate from its own figure.
"""

from __future__ import annotations

from dataclasses import dataclass

from capc import serving_load
from capc.load_budget import instance_vcpus, load_budget_of


@dataclass(frozen=True)
class LoadPlan:
    budget: serving_load.LoadBudget
    measured_cores: int  # the cores a local selection measures on (this process's CPUs)
    local_workers: int  # azmlinfsrv workers there: WORKER_COUNT, at least one per core
    at_budget: serving_load.InstanceEstimate  # a model that just meets min_requests_per_s here, on the instance
    last_model: str | None = None  # NAME:VERSION whose selection measured it under load
    last_figure: serving_load.LoadFigure | None = None
    last_estimate: serving_load.InstanceEstimate | None = None

    def lines(self) -> list[str]:
        out = [f"load budget: {self.budget.describe()}, measured through azmlinfsrv with {self.local_workers} workers on "
               f"{self.measured_cores} local cores where the model is selected"]
        estimate = self.at_budget
        out += [line for line in estimate.lines() if not line.startswith("expected on")]
        if estimate.requests_per_s is not None:
            out.append(f"a model just meeting {self.budget.min_requests_per_s:g} requests/s here: ~{estimate.requests_per_s:,.0f} "
                       f"requests/s per instance on {estimate.instance_type} (estimate, scaled by cores "
                       f"{estimate.serving_cores}/{estimate.measured_cores})")
        if self.last_figure is not None and self.last_estimate is not None:
            out.append(f"last registered {self.last_model}: {self.last_figure.summary()} on {self.last_figure.cores} cores; "
                       + (f"~{self.last_estimate.requests_per_s:,.0f} requests/s expected on {estimate.instance_type} (estimate)"
                          if self.last_estimate.requests_per_s is not None else "no estimate for the instance"))
        return out

    def to_dict(self) -> dict:
        return {
            "budget": self.budget.describe(), "min_requests_per_s": self.budget.min_requests_per_s,
            "max_p99_ms": self.budget.max_p99_ms, "concurrency": self.budget.concurrency,
            "measured_cores": self.measured_cores, "local_workers": self.local_workers,
            "instance": self.at_budget.to_dict(),
            "last_model": self.last_model, "last_load": self.last_figure.record() if self.last_figure else None,
            "last_instance_estimate": self.last_estimate.to_dict() if self.last_estimate else None,
        }


def plan_load(spec, cores: int | None = None, last_model=None) -> LoadPlan | None:
    """The load section of a spec's plan (None without a load budget); `last_model`: its latest registered version."""
    deployment = spec.data["deployment"]
    budget = load_budget_of(deployment)
    if not budget.any:
        return None
    cores = cores or len(serving_load.usable_cpus())
    workers = int(deployment["max_concurrent_requests_per_instance"])  # deployment.yml's WORKER_COUNT
    vcpus = instance_vcpus(deployment["instance_type"])
    at_budget = serving_load.instance_estimate(budget.min_requests_per_s, cores, deployment["instance_type"], vcpus, workers)
    figure = serving_load.LoadFigure.from_record(((last_model.selection or {}).get("load")) if last_model else None)
    last_estimate = None
    if figure is not None:
        last_estimate = serving_load.instance_estimate(figure.requests_per_s, figure.cores, deployment["instance_type"], vcpus, workers)
    return LoadPlan(budget, cores, serving_load.local_worker_count(workers, cores), at_budget,
                    last_model.ref if figure is not None else None, figure, last_estimate)


def latest_registered(name: str):
    """The latest registered version of model `name`, or None (a plan never fails for the registry)."""
    from capc.state import registry

    try:
        versions = registry.list_models(name)
    except (OSError, ValueError, TypeError):
        return None
    return versions[-1] if versions else None
