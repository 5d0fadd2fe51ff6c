"""Stage: plan, before anything is submitted: what a submit of a spec runs, how long it may take, what it may cost.

Not the render context (that is capc.render.context): this stage reads a validated Spec and a price list and never
touches the network, except `quota` with `--target azure`. Modules, in the order `capc plan` uses them:
trials (search-space and AutoML arithmetic) -> prices (the price list) -> estimate (time and cost bounds, the
last local run) -> quota (Azure vCPU quota) -> page (tables and JSON).
"""

from capc.plan.estimate import SpecPlan, plan_spec
from capc.plan.prices import PriceList, load_prices

__all__ = ["PriceList", "SpecPlan", "load_prices", "plan_spec"]
