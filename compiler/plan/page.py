"""Stage: plan (page): one readable page per spec plan (rich tables), or the JSON scripts read."""

from __future__ import annotations

import time

from rich.console import Group
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from capc.plan.estimate import SpecPlan
from capc.plan.prices import PriceList

UNKNOWN = "price unknown"


def to_json(plans: list[SpecPlan], prices: PriceList, list_trials: bool) -> dict:
    return {"prices": prices.to_dict(), "specs": [plan.to_dict(list_trials) for plan in plans]}


def render(plan: SpecPlan, prices: PriceList, list_trials: bool = False) -> Group:
    parts: list = [Text.assemble((plan.name, "bold"), f"  {plan.path}  ", (f"spec {plan.sha256[:12]}", "dim"))]
    parts.append(_trials_table(plan))
    if plan.sweep:
        parts.append(_space_table(plan))
    if list_trials and plan.sweep and plan.sweep.grid_size is not None:
        parts.append(Text(f"grid combinations (Azure runs {plan.sweep.count} of {plan.sweep.grid_size})", style="italic"))
        parts.append(_combinations_table(plan))
    if plan.jobs:
        parts.append(_bounds_table(plan, prices))
    standing = [line for line in plan.costs if line.standing]
    if standing:
        parts.append(_standing_table(standing, plan.currency))
    if plan.last_local_run:
        run = plan.last_local_run
        jobs = ", ".join(f"{kind} {minutes(seconds / 60)}" for kind, seconds in sorted(run.jobs.items()))
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(run.started))
        parts.append(Text(f"last local run of this spec: {minutes(run.duration_s / 60)} ({run.status}, {when}{'; ' + jobs if jobs else ''})"))
    if plan.load:
        parts.append(Text("serving under load", style="bold"))
        parts += [Text(f"  {line}") for line in plan.load.lines()]
    if plan.data_change:
        parts.append(Text(f"data changed: {plan.data_change}", style="yellow"))
    if plan.quota:
        parts.append(_quota_table(plan))
    return Group(*parts, Text(""))


def _trials_table(plan: SpecPlan) -> Table:
    table = Table(title="trials", title_justify="left", header_style="bold")
    for col in ("job", "trials", "fits", "at once (max)", "timeout", "trial timeout", "notes"):
        table.add_column(col)
    if plan.automl:
        a = plan.automl
        kind = " rolling-origin folds" if a.rolling_origin else "-fold cross-validation"
        fits = f"{a.cross_validations}{kind}: {a.fits_per_trial} fits per trial" if a.cross_validations else "one fit per trial (holdout)"
        table.add_row("automl", str(a.max_trials), str(a.fits), str(a.max_concurrent_trials), minutes(a.timeout_minutes),
                      minutes(a.trial_timeout_minutes) if a.trial_timeout_minutes else "-", fits)
    if plan.sweep:
        s = plan.sweep
        for job in (j for j in plan.jobs if j.job.startswith("sweep")):
            if s.grid_size is not None:
                note = f"grid: {s.grid_size} combinations" + (f", capped at max_total_trials {s.max_total_trials}" if s.grid_size > s.max_total_trials else "")
            elif s.conditional:
                note = f"{s.sampling} sampling, this family's share of max_total_trials {s.max_total_trials}"
            else:
                note = f"{s.sampling} sampling: max_total_trials"
            if s.folds:
                note += f"\n{s.folds} {'rolling-origin' if s.rolling_origin else 'cross-validation'} folds and a refit: {s.fits_per_trial} fits per trial"
            fits = "-" if s.fits_per_trial is None else str(job.trials * s.fits_per_trial)
            table.add_row(job.job, str(job.trials), fits, str(job.max_concurrent_trials), minutes(job.timeout_minutes),
                          minutes(job.trial_timeout_minutes), note)
    return table


def _space_table(plan: SpecPlan) -> Table:
    table = Table(title="search space (Azure)", title_justify="left", header_style="bold")
    if plan.sweep.conditional:
        table.add_column("family")
    table.add_column("parameter")
    table.add_column("distribution")
    for branch in plan.sweep.described():
        for name, expression in branch["search_space"].items():
            table.add_row(*([branch["family"]] if plan.sweep.conditional else []), name, escape(expression))
    return table


def _combinations_table(plan: SpecPlan) -> Table:
    combinations = plan.sweep.combinations()
    names = list(dict.fromkeys(key for c in combinations for key in c))  # a conditional grid's families differ
    table = Table(header_style="bold")
    table.add_column("#", justify="right")
    for name in names:
        table.add_column(name)
    for i, combination in enumerate(combinations, start=1):
        table.add_row(str(i), *(escape(str(combination.get(n, ""))) for n in names))
    return table


def _bounds_table(plan: SpecPlan, prices: PriceList) -> Table:
    table = Table(title="time and cost, upper bounds", title_justify="left", header_style="bold", caption=prices.caption(), caption_justify="left")
    for col in ("job", "cluster", "at once", "wall", "node-hours", "per node-hour", "cost"):
        table.add_column(col, justify="left" if col in ("job", "cluster") else "right")
    for job in plan.jobs:
        line = next(c for c in plan.costs if c.what == f"{job.job} trials")
        nodes = f" x {job.cluster.max_instances}" if job.cluster.max_instances else ""
        table.add_row(job.job, f"{job.cluster.name} ({job.cluster.size or 'size unknown'}{nodes})", str(job.concurrency),
                      minutes(job.wall_minutes), f"{job.node_hours:.2f}", price(line.price, plan.currency), money(line.amount, plan.currency))
    for line in plan.costs:
        if not line.standing and not line.what.endswith(" trials"):
            table.add_row(line.what, f"{line.cluster} ({line.size or 'size unknown'})", "", "", f"{line.hours:.2f}", price(line.price, plan.currency), money(line.amount, plan.currency))
    table.add_row(Text("submit", style="bold"), "side by side" + (", trials queue" if plan.trials_queue else ""), "", Text(minutes(plan.wall_minutes), style="bold"), f"{plan.node_hours:.2f}", "",
                  Text(money(plan.job_cost, plan.currency), style="bold"))
    return table


def _standing_table(lines: list, currency: str) -> Table:
    table = Table(title="standing costs, per month (730 hours)", title_justify="left", header_style="bold")
    for col in ("what", "size", "node-hours", "per node-hour", "per month"):
        table.add_column(col, justify="right" if col not in ("what", "size") else "left")
    for line in lines:
        table.add_row(f"{line.what} ({line.cluster})" if line.cluster else line.what, line.size or "size unknown", f"{line.hours:.0f}", price(line.price, currency), money(line.amount, currency))
    return table


def _quota_table(plan: SpecPlan) -> Table:
    table = Table(title="vCPU quota of the workspace's region", title_justify="left", header_style="bold")
    for col in ("VM family", "clusters", "peak vCPUs", "in use", "limit", "left", ""):
        table.add_column(col)
    for row in plan.quota:
        ok = Text("ok", style="green") if row.enough else Text("not enough", style="bold red")
        table.add_row(row.family, ", ".join(row.clusters), str(row.needed), _int(row.in_use), _int(row.limit), _int(row.left), ok)
    return table


def minutes(value: float | None) -> str:
    if value is None:
        return "-"
    total = int(round(value))
    hours, rest = divmod(total, 60)
    return f"{hours} h {rest:02d} min" if hours else f"{rest} min"


def money(amount: float | None, currency: str) -> str:
    return UNKNOWN if amount is None else f"{amount:,.2f} {currency}"


def price(value: float | None, currency: str) -> str:
    return UNKNOWN if value is None else f"{value:.4g} {currency}"


def _int(value: int | None) -> str:
    return "-" if value is None else str(value)
