"""Stage: plan (trials): how many trials a sweep and an AutoML job run, and the search space in Azure's terms.

Grid sampling runs every combination of the `choice` values, at most max_total_trials of them; random and bayesian
sampling run max_total_trials (Azure ends the sweep earlier only on its timeout).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from dataclasses import dataclass

from capc.spec.search_space import DISTRIBUTIONS


@dataclass(frozen=True)
class SweepTrials:
    sampling: str
    space: dict  # parameter -> distribution in Azure's mapping form
    max_total_trials: int

    @property
    def grid_size(self) -> int | None:
        """Combinations of a grid (the product of the choice counts); None for random and bayesian sampling."""
        if self.sampling != "grid":
            return None
        return math.prod(len(dist["values"]) for dist in self.space.values())

    @property
    def count(self) -> int:
        return min(self.grid_size, self.max_total_trials) if self.grid_size is not None else self.max_total_trials

    def combinations(self) -> Iterator[dict]:
        """Every grid combination, in the search space's order (Azure runs `count` of them)."""
        if self.grid_size is None:
            return iter(())
        names = list(self.space)
        return (dict(zip(names, values)) for values in itertools.product(*(self.space[n]["values"] for n in names)))

    def described(self) -> dict[str, str]:
        return {name: azure_expression(dist) for name, dist in self.space.items()}


@dataclass(frozen=True)
class AutoMLTrials:
    max_trials: int
    max_concurrent_trials: int
    timeout_minutes: int
    trial_timeout_minutes: int | None  # None for image tasks: Azure bounds them by the job's timeout only
    cross_validations: int | None  # a trial is this many fits; None: one fit on a validation holdout

    @property
    def fits_per_trial(self) -> int:
        return self.cross_validations or 1


def sweep_trials(spec) -> SweepTrials | None:
    sweep = spec.data.get("sweep")
    if not sweep or not sweep["enabled"]:
        return None
    return SweepTrials(sweep["sampling"], dict(sweep["search_space"]), sweep["limits"]["max_total_trials"])


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
    )


def azure_expression(dist: dict) -> str:
    """{"type": "uniform", "min_value": 0.1, "max_value": 10} -> `uniform(min_value=0.1, max_value=10)`."""
    kind = dist["type"]
    if kind == "choice":
        return f"choice({', '.join(map(str, dist['values']))})"
    return f"{kind}({', '.join(f'{name}={dist[name]}' for name in DISTRIBUTIONS[kind])})"
