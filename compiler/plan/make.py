"""Stage: plan (make): spec files -> validated Specs -> one SpecPlan each, with prices and the last local run.

What `capc plan` runs, minus the printing and the quota (the backend's region capacity, capc.plan.quota).
"""

from __future__ import annotations

from pathlib import Path

from capc.errors import CapcError, SpecInvalid
from capc.plan.estimate import SpecPlan, plan_spec
from capc.plan.prices import PriceList, load_prices


def make_plans(paths: list[Path], overrides: list[str], prices_file: Path | None = None, strict: bool = False) -> tuple[list[SpecPlan], PriceList]:
    """Plans of every spec (every problem of every file reported at once), under the chosen price list."""
    from capc.spec import load_spec
    from capc.spec.service_rules import refuse_warnings
    from capc.state.history import last_local_run

    specs, problems = [], []
    for path in paths:
        try:
            specs.append(load_spec(path, overrides))
        except SpecInvalid as exc:
            problems.extend(exc.problems)
    if problems:
        raise SpecInvalid(problems)
    if strict:
        refuse_warnings(specs)
    prices = load_prices(prices_file)
    from capc.plan.load import latest_registered

    return [plan_spec(spec, prices, last_local_run(spec.sha256), latest_registered(spec.name)) for spec in specs], prices


def over_budget(plans: list[SpecPlan], max_cost: float | None) -> CapcError | None:
    """`--max-cost`: the error for the first plan whose upper bound is above it, or cannot be known."""
    if max_cost is None:
        return None
    for plan in plans:
        bound = plan.job_cost
        if bound is None:
            unpriced = sorted({line.size or "a cluster the spec does not describe" for line in plan.costs if line.price is None and not line.standing})
            return CapcError(
                f"{plan.path}: cannot hold the plan to --max-cost {max_cost:g} {plan.currency}: price unknown for {', '.join(unpriced)}.",
                "pass a price list that has these sizes with --prices FILE",
            )
        if bound > max_cost:
            return CapcError(
                f"{plan.path}: the submit may cost up to {bound:,.2f} {plan.currency}, above --max-cost {max_cost:g} {plan.currency}.",
                "lower the trial counts, timeouts or max_instances, or choose a cheaper compute.size",
            )
    return None
