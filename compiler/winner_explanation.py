"""Shared view: why the registered model won, as lines, from the selection record kept with it.

Local submits, local pipeline runs and (through the select step's winner.json) Azure pipelines keep one record per
registered version (capc.state.registry.ModelVersion.selection): the budgets, the winner's figures, the better
candidates passed over with their reasons, and the estimate on the deployment's instance. `capc models show`, the
pipeline's result and the report's summary read it here, so a winner ranked below other candidates is never shown
without its reason.
"""

from __future__ import annotations

from capc import serving_load

RECORD_KEYS = ("budget", "load_budget", "load", "instance_estimate", "passed_over")


def selection_record(winner: dict) -> dict:
    """The record kept with a model the pipeline's select step chose (its winner.json)."""
    return {key: winner.get(key) for key in RECORD_KEYS} | {"serving": winner.get("serving")}


def passed_over_lines(record: dict | None) -> list[str]:
    """One line per better-scoring candidate passed over, with its figure against the budget."""
    out = []
    for passed in (record or {}).get("passed_over") or []:
        name = passed.get("label") or passed.get("source") or "a candidate"
        source = f"{passed['source']} " if passed.get("label") and passed.get("source") else ""
        value = passed.get("value")
        shown = f"{value:.6g}" if isinstance(value, (int, float)) else "?"
        out.append(f"passed over {source}{name} ({shown}): {'; '.join(passed.get('reasons') or ['no reason recorded'])}")
    return out


def load_lines(record: dict | None) -> list[str]:
    """The winner under load (how it was measured) and the throughput expected on the instance."""
    record = record or {}
    out = []
    figure = serving_load.LoadFigure.from_record(record.get("load"))
    if figure is not None:
        out.append(f"under load ({record.get('load_budget') or 'no load budget'}): {figure.summary()}; {figure.how()}")
    estimate = record.get("instance_estimate")
    if estimate:
        fields = serving_load.InstanceEstimate.__dataclass_fields__
        out += serving_load.InstanceEstimate(**{k: estimate.get(k) for k in fields}).lines()
    return out


def explanation(record: dict | None) -> list[str]:
    return load_lines(record) + passed_over_lines(record)
