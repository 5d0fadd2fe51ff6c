"""Stage: plan (trials): how many trials a sweep and an AutoML job run, and the search space in Azure's terms.

Grid sampling runs every valid combination of the `choice` values (over a conditional space: every family's
own grid, capc.spec.conditional.grid_combinations), at most max_total_trials of them, as one sweep job. Random and
bayesian sampling run max_total_trials: one sweep job, or over a conditional space one per family with the
budget and concurrency split by weight (capc.spec.conditional.split_limit), as the build writes them.
"""

from __future__ import annotations

from dataclasses import dataclass

from capc.spec import conditional
from capc.spec.search_space import DISTRIBUTIONS


@dataclass(frozen=True)
class SweepJobTrials:
    """One sweep job of the submit: its name in the build (sweep, or sweep_<family>), trials and trials at once."""

    job: str
    trials: int
    max_concurrent_trials: int


@dataclass(frozen=True)
class SweepTrials:
    sampling: str
    branches: tuple  # capc.spec.conditional.SweepBranch, in spec order
    conditional: bool
    max_total_trials: int
    max_concurrent_trials: int
    # capc's trial scripts validate on dataset.cross_validations folds (rolling-origin ones when forecasting), then
    # refit on every row; None: a holdout split, or a user's script whose validation capc does not know.
    folds: int | None = None
    rolling_origin: bool = False

    @property
    def fits_per_trial(self) -> int | None:
        """Models one trial trains: each fold's and the refit's (a holdout's one); None for a user's script."""
        if self.folds:
            return self.folds + 1
        return 1 if all(b.family for b in self.branches) else None

    @property
    def fits(self) -> int | None:
        return None if self.fits_per_trial is None else self.count * self.fits_per_trial

    @property
    def grid_size(self) -> int | None:
        """Valid combinations of a grid; None for random and bayesian sampling."""
        return len(conditional.grid_combinations(list(self.branches))) if self.sampling == "grid" else None

    @property
    def count(self) -> int:
        return min(self.grid_size, self.max_total_trials) if self.grid_size is not None else self.max_total_trials

    def jobs(self) -> list[SweepJobTrials]:
        if self.sampling == "grid" or not self.conditional:
            return [SweepJobTrials("sweep", self.count, self.max_concurrent_trials)]
        weights = [b.weight for b in self.branches]
        totals = conditional.split_limit(self.max_total_trials, weights)
        at_once = conditional.split_limit(self.max_concurrent_trials, weights)
        return [SweepJobTrials(f"sweep_{b.name}", t, c) for b, t, c in zip(self.branches, totals, at_once)]

    def combinations(self) -> list[dict]:
        """Every grid combination (Azure runs `count` of them); a conditional grid names each one's family."""
        if self.sampling != "grid":
            return []
        found = conditional.grid_combinations(list(self.branches))
        return [{"family": c.branch, **c.params} if self.conditional else dict(c.params) for c in found]

    def described(self) -> list[dict]:
        """Per family: its name, weight and search space in Azure's terms."""
        return [{"family": b.name, "weight": b.weight, "search_space": {p: azure_expression(d) for p, d in b.search_space.items()}}
                for b in self.branches]


@dataclass(frozen=True)
class AutoMLTrials:
    max_trials: int
    max_concurrent_trials: int
    timeout_minutes: int
    trial_timeout_minutes: int | None  # None for image tasks: Azure bounds them by the job's timeout only
    cross_validations: int | None  # a trial is this many fits; None: one fit on a validation holdout
    rolling_origin: bool = False  # forecasting: the folds roll forward in time

    @property
    def fits_per_trial(self) -> int:
        return self.cross_validations or 1

    @property
    def fits(self) -> int:
        return self.max_trials * self.fits_per_trial


def sweep_trials(spec) -> SweepTrials | None:
    sweep = spec.data.get("sweep")
    if not sweep or not sweep["enabled"]:
        return None
    limits = sweep["limits"]
    branches = tuple(conditional.branches(sweep))
    folds = spec.data["dataset"].get("cross_validations") if all(b.family for b in branches) else None
    return SweepTrials(sweep["sampling"], branches, conditional.is_conditional(sweep), limits["max_total_trials"],
                       limits["max_concurrent_trials"], folds=folds, rolling_origin=spec.task == "forecasting")


def automl_trials(spec) -> AutoMLTrials | None:
    automl = spec.data["automl"]
    if not automl["enabled"]:
        return None
    image = spec.task == "image_classification"
    return AutoMLTrials(
        max_trials=automl["max_trials"],
        max_concurrent_trials=automl["max_concurrent_trials"],
        timeout_minutes=automl["timeout_minutes"],
        trial_timeout_minutes=None if image else automl["trial_timeout_minutes"],
        cross_validations=spec.data["dataset"].get("cross_validations"),
        rolling_origin=spec.task == "forecasting",
    )


def azure_expression(dist: dict) -> str:
    """{"type": "uniform", "min_value": 0.1, "max_value": 10} -> `uniform(min_value=0.1, max_value=10)`."""
    kind = dist["type"]
    if kind == "choice":
        return f"choice({', '.join(map(str, dist['values']))})"
    return f"{kind}({', '.join(f'{name}={dist[name]}' for name in DISTRIBUTIONS[kind])})"
