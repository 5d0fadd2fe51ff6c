"""Stage: plan (estimate): upper bounds of wall time, node-hours and cost of a spec's submit.

Per job (AutoML, sweep) on a cluster of at most N nodes:
    concurrency = min(max_concurrent_trials, N, trials)
    wall        <= min(timeout, ceil(trials / concurrency) x trial timeout)    (the timeout alone without a trial timeout)
    node-hours  <= min(trials x trial timeout, concurrency x wall)
The submit (and the pipeline) runs AutoML and the sweep side by side: its wall time is the longer job's, unless the
two share a cluster too small for both at once, when the jobs queue (at most the sum of both, at most the longer
timeout). Cost = node-hours x the size's hourly list price, plus each cluster's idle time before scale-down on its
busiest nodes; nodes kept up (min_instances) and the online endpoint are standing costs per month (730 hours).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from capc.plan.prices import PriceList
from capc.plan.trials import AutoMLTrials, SweepTrials, automl_trials, sweep_trials

HOURS_PER_MONTH = 730  # the month of Azure's pricing calculator


@dataclass(frozen=True)
class Cluster:
    name: str
    size: str | None  # None: a cluster the spec names but does not describe (image AutoML's gpu_compute)
    max_instances: int | None
    min_instances: int = 0
    idle_seconds: int = 0


@dataclass(frozen=True)
class JobBound:
    job: str  # automl, sweep, or sweep_<family> (a conditional sweep's per-family jobs)
    cluster: Cluster
    trials: int
    max_concurrent_trials: int
    timeout_minutes: int
    trial_timeout_minutes: int | None

    @property
    def concurrency(self) -> int:
        caps = [self.max_concurrent_trials, self.trials] + ([self.cluster.max_instances] if self.cluster.max_instances else [])
        return max(1, min(caps))

    @property
    def wall_minutes(self) -> float:
        if self.trial_timeout_minutes is None:
            return float(self.timeout_minutes)
        return float(min(self.timeout_minutes, math.ceil(self.trials / self.concurrency) * self.trial_timeout_minutes))

    @property
    def node_hours(self) -> float:
        busy = self.concurrency * self.wall_minutes
        if self.trial_timeout_minutes is not None:
            busy = min(busy, self.trials * self.trial_timeout_minutes)
        return busy / 60


@dataclass(frozen=True)
class CostLine:
    what: str
    cluster: str | None  # None for the endpoint
    size: str | None
    hours: float  # node-hours (per month for standing costs)
    price: float | None  # per node-hour; None: not in the price list
    standing: bool = False  # a monthly cost, not part of the job's bound

    @property
    def amount(self) -> float | None:
        return None if self.price is None else self.hours * self.price

    def to_dict(self) -> dict:
        return {"what": self.what, "cluster": self.cluster, "size": self.size, "hours": round(self.hours, 4), "price_per_hour": self.price,
                "amount": None if self.amount is None else round(self.amount, 4), "per_month": self.standing}


@dataclass
class SpecPlan:
    name: str
    path: str
    sha256: str
    sweep: SweepTrials | None
    automl: AutoMLTrials | None
    jobs: list[JobBound]
    costs: list[CostLine]
    currency: str
    warnings: list[str] = field(default_factory=list)
    last_local_run: object = None  # capc.state.history.LocalRun
    quota: list = field(default_factory=list)  # capc.plan.quota.FamilyQuota, with --target azure
    load: object = None  # capc.plan.load.LoadPlan: the load budget, the cores that measure it, the instance's estimate
    data_change: str | None = None  # how the data differs from the latest registered model's (capc.local.run_data)

    @property
    def wall_minutes(self) -> float:
        walls = []
        for cluster in {job.cluster for job in self.jobs}:
            on_it = [job for job in self.jobs if job.cluster == cluster]
            side_by_side = max(job.wall_minutes for job in on_it)
            fits = cluster.max_instances is None or sum(job.concurrency for job in on_it) <= cluster.max_instances
            queued = min(max(job.timeout_minutes for job in on_it), sum(job.wall_minutes for job in on_it))
            walls.append(side_by_side if fits else max(side_by_side, queued))
        return max(walls, default=0.0)

    @property
    def node_hours(self) -> float:
        return sum(job.node_hours for job in self.jobs)

    @property
    def trials_queue(self) -> bool:
        """The jobs' trials at once exceed a cluster they share: some wait for nodes."""
        clusters = {job.cluster for job in self.jobs if job.cluster.max_instances}
        return any(sum(j.concurrency for j in self.jobs if j.cluster == c) > c.max_instances for c in clusters)

    @property
    def job_cost(self) -> float | None:
        """Upper bound of the submit's cost; None when a size it uses has no price."""
        amounts = [line.amount for line in self.costs if not line.standing]
        return None if any(a is None for a in amounts) else sum(amounts)

    @property
    def unpriced_sizes(self) -> list[str]:
        return sorted({line.size or "(cluster not described in the spec)" for line in self.costs if line.price is None})

    def to_dict(self, list_trials: bool = False) -> dict:
        trials: dict = {}
        if self.sweep:
            trials["sweep"] = {
                "sampling": self.sweep.sampling, "conditional": self.sweep.conditional, "count": self.sweep.count,
                "max_total_trials": self.sweep.max_total_trials, "grid_size": self.sweep.grid_size,
                "families": self.sweep.described(),
                "jobs": [{"job": j.job, "trials": j.trials, "max_concurrent_trials": j.max_concurrent_trials} for j in self.sweep.jobs()],
                "folds": self.sweep.folds, "rolling_origin": self.sweep.rolling_origin, "fits_per_trial": self.sweep.fits_per_trial,
                "fits": self.sweep.fits,
            }
            if list_trials and self.sweep.grid_size is not None:
                trials["sweep"]["combinations"] = self.sweep.combinations()
        if self.automl:
            trials["automl"] = {
                "max_trials": self.automl.max_trials, "max_concurrent_trials": self.automl.max_concurrent_trials,
                "timeout_minutes": self.automl.timeout_minutes, "trial_timeout_minutes": self.automl.trial_timeout_minutes,
                "cross_validations": self.automl.cross_validations, "rolling_origin": self.automl.rolling_origin,
                "fits_per_trial": self.automl.fits_per_trial, "fits": self.automl.fits,
            }
        job_cost = self.job_cost
        return {
            "name": self.name,
            "spec": self.path,
            "spec_sha256": self.sha256,
            "trials": trials,
            "jobs": [
                {"job": j.job, "cluster": j.cluster.name, "size": j.cluster.size, "max_instances": j.cluster.max_instances,
                 "trials": j.trials, "concurrency": j.concurrency, "timeout_minutes": j.timeout_minutes,
                 "trial_timeout_minutes": j.trial_timeout_minutes, "wall_minutes": j.wall_minutes, "node_hours": round(j.node_hours, 4)}
                for j in self.jobs
            ],
            "wall_minutes": self.wall_minutes,
            "node_hours": round(self.node_hours, 4),
            "cost": {
                "currency": self.currency,
                "lines": [line.to_dict() for line in self.costs],
                "job_upper_bound": None if job_cost is None else round(job_cost, 4),
                "unpriced_sizes": self.unpriced_sizes,
            },
            "warnings": self.warnings,
            "last_local_run": self.last_local_run.to_dict() if self.last_local_run else None,
            "quota": [q.to_dict() for q in self.quota],
            "serving_load": self.load.to_dict() if self.load else None,
            "data_change": self.data_change,
        }


def clusters_of(spec) -> dict[str, Cluster]:
    """Job -> the cluster it runs on: the spec's compute, except image AutoML on its own gpu_compute."""
    compute = spec.data["compute"]
    main = Cluster(compute["name"], compute["size"], compute["max_instances"], compute["min_instances"], compute["idle_time_before_scale_down"])
    automl = main
    if spec.task == "image_classification" and spec.data["automl"]["image"]["gpu_compute"] != compute["name"]:
        automl = Cluster(spec.data["automl"]["image"]["gpu_compute"], None, None)
    return {"automl": automl, "sweep": main}


def plan_spec(spec, prices: PriceList, last_run=None, last_model=None) -> SpecPlan:
    """The bounds of one validated spec's submit under `prices`; `last_model`: the spec's latest registered version."""
    from capc.plan.load import plan_load

    sweep, automl = sweep_trials(spec), automl_trials(spec)
    clusters = clusters_of(spec)
    jobs = []
    if automl:
        jobs.append(JobBound("automl", clusters["automl"], automl.max_trials, automl.max_concurrent_trials, automl.timeout_minutes, automl.trial_timeout_minutes))
    if sweep:
        limits = spec.data["sweep"]["limits"]
        for part in sweep.jobs():  # per-family sweeps run side by side, each with the whole timeout (as the build writes them)
            jobs.append(JobBound(part.job, clusters["sweep"], part.trials, part.max_concurrent_trials, limits["timeout_minutes"], limits["trial_timeout_minutes"]))
    costs = [CostLine(f"{job.job} trials", job.cluster.name, job.cluster.size, job.node_hours, prices.hourly(job.cluster.size)) for job in jobs]
    for cluster in dict.fromkeys(job.cluster for job in jobs):
        busiest = sum(job.concurrency for job in jobs if job.cluster == cluster)
        nodes = min(busiest, cluster.max_instances) if cluster.max_instances else busiest
        if cluster.idle_seconds:
            costs.append(CostLine("idle before scale-down", cluster.name, cluster.size, nodes * cluster.idle_seconds / 3600, prices.hourly(cluster.size)))
        if cluster.min_instances:
            costs.append(CostLine("nodes kept up", cluster.name, cluster.size, cluster.min_instances * HOURS_PER_MONTH, prices.hourly(cluster.size), standing=True))
    deployment = spec.data["deployment"]
    costs.append(CostLine("online endpoint", None, deployment["instance_type"], deployment["instance_count"] * HOURS_PER_MONTH, prices.hourly(deployment["instance_type"]), standing=True))
    return SpecPlan(
        name=spec.name, path=str(spec.path), sha256=spec.sha256, sweep=sweep, automl=automl, jobs=jobs, costs=costs,
        currency=prices.currency, warnings=[str(w) for w in spec.warnings], last_local_run=last_run,
        load=plan_load(spec, last_model=last_model),
    )
