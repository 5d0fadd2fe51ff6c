"""What the CLI prints: rich tables for runs, leaderboards and models, and JSON for scripts."""

from __future__ import annotations

import json
import math

from rich.console import Console
from rich.table import Table

from capc.goal import Goal

LEAF_KINDS = ("candidate", "trial")


def console() -> Console:
    """Wide enough for run tables when piped (rich falls back to 80 columns off a terminal)."""
    plain = Console()
    return plain if plain.is_terminal else Console(width=160)


def print_json(data) -> None:
    print(json.dumps(data, indent=2, sort_keys=True, default=str))


def _fmt(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        return f"{value:.4f}" if abs(value) < 1e5 else f"{value:,.0f}"
    return str(value)


def _params(params: dict, width: int = 60) -> str:
    text = ", ".join(f"{k}={v}" for k, v in sorted(params.items()))
    return text if len(text) <= width else text[: width - 1] + "…"


def leaderboard_rows(rows, metric: str, goal: str):
    """Leaf runs (AutoML candidates, sweep trials) that have the metric, best first; the rest after."""
    leaves = [r for r in rows if r.kind in LEAF_KINDS]
    scored = Goal(goal).ranked(leaves, lambda r: r.metrics.get(metric))
    return scored + [r for r in leaves if r not in scored]


def runs_table(rows, title: str) -> Table:
    table = Table(title=title, header_style="bold")
    for col in ("run", "kind", "status", "duration", "metrics", "parameters"):
        table.add_column(col, overflow="fold")
    by_parent: dict = {}
    for r in rows:
        by_parent.setdefault(r.parent, []).append(r)

    def add(run, depth):
        metrics = ", ".join(f"{k}={_fmt(v)}" for k, v in sorted(run.metrics.items()))
        table.add_row("  " * depth + f"{run.name} [dim]{run.run_id[:8]}", run.kind, _status(run.status), _duration(run.duration_s), metrics, _params(run.params))
        for child in sorted(by_parent.get(run.run_id, []), key=lambda c: c.start):
            add(child, depth + 1)

    ids = {r.run_id for r in rows}
    for root in [r for r in rows if r.parent not in ids]:
        add(root, 0)
    return table


def leaderboard_table(rows, metric: str, goal: str, title: str) -> Table:
    table = Table(title=title, header_style="bold")
    for col, justify in (("#", "right"), ("source", "left"), ("run", "left"), ("status", "left"), (metric, "right"), ("duration", "right")):
        table.add_column(col, justify=justify, no_wrap=True)
    table.add_column("parameters", overflow="ellipsis", no_wrap=True, max_width=70)
    for i, r in enumerate(rows, start=1):
        # A conditional sweep's trials name their family: sweep/svc.
        source = "automl" if r.kind == "candidate" else "/".join(["sweep", *([r.params["family"]] if "family" in r.params else [])])
        table.add_row(str(i), source, f"{r.name} [dim]{r.run_id[:8]}", _status(r.status), _fmt(r.metrics.get(metric)), _duration(r.duration_s), _params(r.params))
    return table


def models_table(models) -> Table:
    table = Table(title="registered models", header_style="bold")
    for col in ("name", "version", "metric", "value", "source", "source run", "created"):
        table.add_column(col)
    for m in models:
        table.add_row(m.name, str(m.version), m.metric, _fmt(m.value), m.source, m.run_id[:12], m.created)
    return table


def pipeline_table(result) -> Table:
    """One row per pipeline step, in dependency order, with the best metric an engine step reached."""
    table = Table(title=f"{result.name}: pipeline run {result.run_id[:8]}", header_style="bold")
    for col in ("step", "type", "needs", "status", "duration", result.metric, "note"):
        table.add_column(col, overflow="fold")
    for step in result.steps:
        note = step.detail.splitlines()[0] if step.detail else ""
        table.add_row(step.name, step.type, ", ".join(step.needs) or "-", _status(step.status), _duration(step.duration_s), _fmt(step.value), note)
    return table


def submit_table(result) -> Table:
    """One row per engine of a local submit, the winner marked."""
    table = Table(title=f"{result.name}: best {result.metric} ({result.goal})", header_style="bold")
    for col in ("source", "best run", result.metric, "winner"):
        table.add_column(col)
    for o in result.outcomes:
        table.add_row(o.source, f"{o.label} [dim]{o.run_id[:8]}", f"{o.value:.4f}", "✔" if o is result.winner else "")
    return table


def print_submit(result) -> None:
    out = console()
    out.print(submit_table(result))
    if result.model:
        out.print(f"registered model [bold]{result.model.ref}[/] ({result.model.source}, {result.metric} {result.model.value:.4f})")
        out.print(f"next: capc leaderboard {result.name} | capc deploy {result.name}")


def print_pipeline(result) -> None:
    out = console()
    out.print(pipeline_table(result))
    if result.model:
        out.print(f"registered model [bold]{result.model.ref}[/] ({result.model.source}, {result.metric} {result.model.value:.4f})")


def endpoints_table(endpoints) -> Table:
    table = Table(title="local endpoints", header_style="bold")
    for col in ("name", "state", "model", "scoring URI", "updated"):
        table.add_column(col)
    for e in endpoints:
        table.add_row(e.name, e.state, e.model, e.scoring_uri, e.updated)
    return table


def print_deployed(info) -> None:
    """A local endpoint just deployed: where to call it and how."""
    print(f"endpoint {info.name} serves {info.model} ({info.state})")
    print(f"  scoring URI: {info.scoring_uri}")
    print(f"  swagger:     {info.swagger_uri}")
    print(f"  docs:        {info.docs_uri}")
    print(f"  key:         capc endpoints keys {info.name}   (send it as: Authorization: Bearer <key>)")
    print(f"  try it:      capc invoke {info.name}")


def print_fields(data: dict, width: int, hidden: tuple[str, ...] = (), dicts_as_json: bool = True) -> None:
    """`key: value` lines, keys right-aligned to `width`; `hidden` keys left out."""
    for key, value in data.items():
        if key not in hidden:
            print(f"{key:>{width}}: {json.dumps(value, sort_keys=True) if dicts_as_json and isinstance(value, dict) else value}")


def _duration(seconds) -> str:
    if seconds is None:
        return "-"
    return f"{seconds:.1f}s" if seconds < 120 else f"{seconds / 60:.1f}m"


def _status(status: str) -> str:
    colour = {"completed": "green", "failed": "red", "early_terminated": "yellow", "interrupted": "yellow", "running": "cyan"}.get(status, "white")
    return f"[{colour}]{status}[/]"
