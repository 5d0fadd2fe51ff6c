"""Stage 2, validated model: a sweep's branches (one per trial family) and what follows from them.

A sweep names one family (`model` or `script` with one `search_space`) or several (`families`: a conditional
search space, each family with its own parameters). Everything the later stages need to know about the
conditional form comes from here, once: the branches in spec order, the grid of valid combinations (grid
sampling sweeps over their indices) and the split of the trial budget between per-family sweeps (random and
bayesian). `capc plan` lists grid_combinations(); the render stage writes them to combinations.json.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

from capc.families import FAMILIES

# The grid's one parameter: the index of a combination in combinations.json.
COMBINATION_PARAMETER = "combination"
COMBINATIONS_FILE = "combinations.json"
# Tag of a per-family sweep job naming its family: the local engine logs it as each trial's `family` parameter.
FAMILY_TAG = "capc_family"


@dataclass(frozen=True)
class SweepBranch:
    """One family of a sweep: a built-in family (`family`) or the user's own trial script (`script`)."""

    name: str  # the key under sweep.families; the family's name for the one-family form
    family: str | None  # built-in trial family, None for a user script
    script: str | None  # user trial script, relative to the spec file
    search_space: dict  # parameter -> Azure mapping form, in spec order
    weight: float = 1.0

    @property
    def script_name(self) -> str:
        """The branch's trial script in the job's code folder (src/)."""
        return f"train_{self.name}.py"


@dataclass(frozen=True)
class Combination:
    """One point of a conditional grid: row `index` of combinations.json."""

    index: int
    branch: str
    params: dict

    def to_dict(self) -> dict:
        return {"index": self.index, "family": self.branch, "params": dict(self.params)}


def is_conditional(sweep: dict | None) -> bool:
    return bool(sweep) and "families" in sweep


def branches(sweep: dict) -> list[SweepBranch]:
    """The sweep's branches in spec order (a validated sweep: distributions already in mapping form)."""
    if not is_conditional(sweep):
        name = sweep.get("model") or "script"
        return [SweepBranch(name, sweep.get("model"), sweep.get("script"), dict(sweep["search_space"]))]
    out = []
    for name, entry in sweep["families"].items():
        script = entry.get("script")
        family = None if script else name
        out.append(SweepBranch(name, family, script, dict(entry["search_space"]), float(entry["weight"])))
    return out


def grid_combinations(sweep_branches: list[SweepBranch]) -> list[Combination]:
    """Every valid combination of a grid over the branches: per branch, the product of its parameters' choices.

    No combination mixes branches, so no trial receives another family's parameters; the count is exact:
    the sum over branches of the product of their choice counts.
    """
    out: list[Combination] = []
    for branch in sweep_branches:
        names = list(branch.search_space)
        for values in itertools.product(*(branch.search_space[n]["values"] for n in names)):
            out.append(Combination(len(out), branch.name, dict(zip(names, values))))
    return out


def split_limit(total: int, weights: list[float]) -> list[int]:
    """`total` (trials, or concurrent trials) between branches in proportion to `weights`, at least 1 each.

    Largest remainders decide the units rounding leaves over (ties: the earlier branch). Validation makes sure
    total >= len(weights).
    """
    whole = sum(weights)
    raw = [total * w / whole for w in weights]
    out = [max(1, math.floor(r)) for r in raw]
    order = sorted(range(len(raw)), key=lambda i: (-(raw[i] - math.floor(raw[i])), i))
    for i in order[: max(0, total - sum(out))]:
        out[i] += 1
    while sum(out) > total:  # the at-least-one rule took units from elsewhere: give them back from the largest
        largest = max(range(len(out)), key=lambda i: (out[i], -i))
        out[largest] -= 1
    return out


def family_of_parameter(name: str, exclude: str | None = None) -> list[str]:
    """Built-in families (other than `exclude`) that take a hyperparameter called `name`."""
    return [f.name for f in FAMILIES.values() if f.name != exclude and name in f.parameter_names]
