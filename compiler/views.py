"""What the CLI prints: rich tables for runs, leaderboards and models, and JSON for scripts."""

from __future__ import annotations

import json
import math

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from capc.goal import Goal
from capc.serving_cost import ServingCost
from capc.winner_explanation import explanation, load_lines

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
    return escape(text if len(text) <= width else text[: width - 1] + "…")


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
        metrics = escape(", ".join(f"{k}={_fmt(v)}" for k, v in sorted(run.metrics.items())))
        table.add_row("  " * depth + f"{escape(run.name)} [dim]{run.run_id[:8]}", run.kind, _status(run.status), _duration(run.duration_s), metrics, _params(run.params))
        for child in sorted(by_parent.get(run.run_id, []), key=lambda c: c.start):
            add(child, depth + 1)

    ids = {r.run_id for r in rows}
    for root in [r for r in rows if r.parent not in ids]:
        add(root, 0)
    return table


def search_notes(rows) -> list[str]:
    """Why each AutoML and sweep run ended and what it skipped, newest first: printed under `capc runs`."""
    return [f"{run.run_id[:8]} {line}" for run in rows for line in run.search_lines()]


# Serving cost columns of the leaderboard (capc.serving_cost's run metrics): header -> (metric, format).
SERVING_COLUMNS = {"p99 ms": ("serving_p99_ms", "{:.1f}"), "rows/s": ("serving_rows_per_s", "{:,.0f}"), "MB": ("serving_size_mb", "{:.3g}")}


def leaderboard_table(rows, metric: str, goal: str, title: str) -> Table:
    table = Table(title=title, header_style="bold")
    columns = [("#", "right"), ("source", "left"), ("run", "left"), ("status", "left"), (metric, "right"), ("duration", "right")]
    for col, justify in columns + [(header, "right") for header in SERVING_COLUMNS]:
        # Headers stay whole on a narrow console: the parameters give way first.
        table.add_column(col, justify=justify, no_wrap=True, min_width=len(col) if col != "#" else 2)
    table.add_column("parameters", overflow="ellipsis", no_wrap=True, max_width=40)
    for i, r in enumerate(rows, start=1):
        # A conditional sweep's trials name their family: sweep/svc.
        source = "automl" if r.kind == "candidate" else "/".join(["sweep", *([r.params["family"]] if "family" in r.params else [])])
        serving = [form.format(r.metrics[name]) if name in r.metrics else "-" for name, form in SERVING_COLUMNS.values()]
        table.add_row(str(i), escape(source), f"{escape(r.name)} [dim]{r.run_id[:8]}", _status(r.status), _fmt(r.metrics.get(metric)),
                      _duration(r.duration_s), *serving, _params(r.params))
    return table


def models_table(models) -> Table:
    table = Table(title="registered models", header_style="bold")
    for col in ("name", "version", "metric", "value", "source", "source run", "created"):
        table.add_column(col)
    for m in models:
        table.add_row(m.name, str(m.version), m.metric, _fmt(m.value), m.source, m.run_id[:12], m.created)
    return table


def family_table(family: dict) -> Table:
    """One trial family (capc.family_reference.as_dict): its hyperparameters with domains and defaults."""
    extra = f"; needs capc[{family['extra']}]" if family["extra"] else ""
    title = f"{family['family']}: {', '.join(family['tasks'])}; reports its metric {family['reports_text']}{extra}"
    table = Table(title=escape(title), header_style="bold")
    for col in ("hyperparameter", "domain", "default", "meaning"):
        table.add_column(col)
    for h in family["hyperparameters"]:
        default = f'"{h["default"]}"' if isinstance(h["default"], str) else repr(h["default"])
        table.add_row(escape(h["name"]), escape(h["domain"]), escape(default), escape(h["help"]))
    return table


def pipeline_table(result) -> Table:
    """One row per pipeline step, in dependency order, with the best metric an engine step reached."""
    table = Table(title=f"{result.name}: pipeline run {result.run_id[:8]}", header_style="bold")
    for col in ("step", "type", "needs", "status", "duration", result.metric or "best", "note"):
        table.add_column(col, overflow="fold")
    for step in result.steps:
        note = step.detail.splitlines()[0] if step.detail else ""
        table.add_row(step.name, step.type, ", ".join(step.needs) or "-", _status(step.status), _duration(step.duration_s), _fmt(step.value), escape(note))
    return table


def submit_table(result) -> Table:
    """Each engine's best, the winner (which a serving budget may take from further down) and the better
    candidates the budget passed over, with the serving latency of those measured."""
    table = Table(title=f"{result.name}: best {result.metric} ({result.goal})", header_style="bold")
    for col in ("source", "run", result.metric, "p99 ms", "winner"):
        table.add_column(col)
    passed = {id(o): reasons for o, reasons in (result.selection.passed_over if result.selection else [])}
    shown = list(result.outcomes)
    shown += [o for o in [result.winner] if o is not None and o not in shown]
    shown += [o for o, _ in (result.selection.passed_over if result.selection else []) if o not in shown]
    for o in shown:
        mark = "✔" if o is result.winner else (escape("passed over: " + "; ".join(passed[id(o)])) if id(o) in passed else "")
        p99 = o.metrics.get("serving_p99_ms")
        table.add_row(o.source, f"{escape(o.label)} [dim]{(o.candidate_run_id or o.run_id)[:8]}", f"{o.value:.4f}",
                      "-" if p99 is None else f"{p99:.1f}", mark)
    return table


def print_submit(result) -> None:
    out = console()
    out.print(submit_table(result))
    if result.model:
        out.print(f"registered model [bold]{result.model.ref}[/] ({result.model.source} {escape(result.winner.label)}, {result.metric} {result.model.value:.4f})")
        selection = result.selection
        if selection and selection.cost:
            out.print(f"serving ({selection.budget.describe()}): {selection.cost.summary()}")
        for line in load_lines(selection.to_dict()) if selection else []:
            out.print(line, markup=False)
        for note in selection.notes if selection else []:
            out.print(f"note: {note}", markup=False)
    for search in result.searches:  # why each search ended, and the allowed algorithms it skipped
        for line in search.lines():
            out.print(line, markup=False, highlight=False, soft_wrap=True)
    if result.model:
        out.print(f"next: capc leaderboard {result.name} | capc deploy {result.name}")


def print_pipeline(result) -> None:
    out = console()
    for note in result.notes:
        out.print(f"note: {note}", markup=False)
    out.print(pipeline_table(result))
    if result.model:
        out.print(f"registered model [bold]{result.model.ref}[/] ({result.model.source}, {result.metric} {result.model.value:.4f})")
        winner = result.winner or {}
        cost = ServingCost.from_metrics(winner.get("serving") or {})
        if cost:
            out.print(f"serving ({winner.get('budget')}): {cost.summary()}")
        for line in explanation(winner):
            out.print(line, markup=False)
    for line in result.search_lines():  # why each engine step's search ended, and what it skipped
        out.print(line, markup=False, highlight=False, soft_wrap=True)


def print_job_run(result) -> None:
    """`capc submit JOB.yml`: the trials (or the run's metrics), then the best run's outputs and MLflow models."""
    out = console()
    if result.type == "sweep":
        table = Table(title=f"{result.name}: trials by {result.metric} ({result.goal})", header_style="bold")
        for col in ("trial", "status", result.metric, "parameters"):
            table.add_column(col)
        for trial in result.trials:
            value = f"{trial.value:.4f}" if isinstance(trial.value, (int, float)) else "-"
            params = escape(", ".join(f"{k}={v}" for k, v in trial.params.items()))
            table.add_row(trial.trial_id, trial.status, value, params)
        out.print(table)
        if result.value is not None:
            out.print(f"best {result.metric} [bold]{result.value:.4f}[/] ({escape(', '.join(f'{k}={v}' for k, v in result.params.items()))})")
    else:
        table = Table(title=f"{result.name}: command run ({result.status})", header_style="bold")
        table.add_column("metric")
        table.add_column("last value")
        for name, value in sorted(result.metrics.items()):
            table.add_row(name, f"{value:.4f}")
        out.print(table)
    files = result.files
    if files is None:
        return
    # Paths and output names are the user's: printed as they are, never read as markup.
    out.print(f"run {files.run_id} in {files.folder}", markup=False)
    for name, folder in files.named_outputs.items():
        out.print(f"  output {name}: {folder}", markup=False)
    shown = [f for f in files.outputs if not f.startswith("named_outputs/")]
    for rel in shown[:20]:
        out.print(f"  outputs/: {rel}", markup=False)
    if len(shown) > 20:
        out.print(f"  ... and {len(shown) - 20} more in {files.folder}/outputs", markup=False)
    for model in files.models:
        out.print(f"  MLflow model: [bold]{escape(str(model))}[/]")
    if not files.models:
        out.print("  no MLflow model: the run neither saved one to its outputs nor logged one")


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


def print_model(model, as_json: bool = False) -> None:
    """`capc models show`: the version's fields, then why it won (its figures, each better candidate passed over);
    with --json the fields and its feature importance (capc.report.importance: the report's figures)."""
    if as_json:
        from capc.report.importance import as_json as importance_json

        print_json({**model.to_dict(), "feature_importance": importance_json(model)})
        return
    print_fields(model_fields(model), 12, hidden=("selection",))
    record = model.selection or {}
    if record.get("budget") or record.get("load_budget"):
        budgets = [b for b in (record.get("budget"), record.get("load_budget")) if b and b != "no serving budget"]
        print(f"{'chosen under':>12}: {'; '.join(budgets) or 'no budget'}")
    for line in explanation(record):
        print(f"{'':>12}  {line}")


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


def record_lines(rows) -> list[str]:
    """Under `capc runs`: each submit run's seed, data fingerprint and hashes (capc.state.run_record)."""
    from capc.state.fingerprint import DataFingerprint

    lines = []
    for run in rows:
        record = run.record
        if run.kind != "submit" or not record:
            continue
        data = DataFingerprint.from_dict(record.get("data"))
        seed = f"seed {record['seed']}" + (" (drawn)" if record.get("seed_drawn") else "") + (", reproducible" if record.get("reproducible") else "")
        lines.append(f"{run.name} {run.run_id[:8]}: {seed}; data {data.summary() if data else 'not recorded'}; "
                     f"spec {str(record.get('spec_sha256') or '-')[:12]}, job folder {str(record.get('manifest_sha256') or '-')[:12]}")
    return lines


def model_fields(model) -> dict:
    """`capc models show`: the registration, its data as a fingerprint summary plus the schema."""
    from capc.state.fingerprint import DataFingerprint

    fields = model.to_dict()
    data = DataFingerprint.from_dict(fields.pop("data", None))
    fields["data"] = data.summary() if data else "not recorded"
    if data:
        fields["schema"] = ", ".join(f"{name}:{kind}" for name, kind in data.schema.items())
    return fields


def print_automl_job(result) -> None:
    """`capc submit JOB.yml` of an AutoML job: the best candidate, where its model lies, the test run's metrics."""
    out = console()
    if result.value is None:
        out.print(f"{escape(result.name)}: AutoML {result.status} after {result.candidates} candidate(s); no model was kept")
        return
    out.print(f"{escape(result.name)}: best {result.metric} [bold]{result.value:.4f}[/] ({escape(result.best)}, of {result.candidates} "
              f"candidates, {result.goal}) on its validation rows")
    out.print(f"  best child's model: {result.model_dir}", markup=False)
    out.print(f"  output best_model: {result.best_model}", markup=False)
    if result.test_rows:
        table = Table(title=f"test run: {result.test_rows:,} rows", header_style="bold")
        table.add_column("metric")
        table.add_column("value", justify="right")
        for name, value in sorted(result.test_metrics.items()):
            table.add_row(("* " if name == result.metric else "") + name, _fmt(value))
        out.print(table)
        out.print(f"  test predictions: {result.test_predictions}", markup=False)
    for note in result.notes:
        out.print(f"note: {note}", markup=False)
    for line in result.search.lines() if result.search else []:  # why the search ended, and what it skipped
        out.print(line, markup=False, highlight=False, soft_wrap=True)
    if result.model:
        out.print(f"registered model [bold]{result.model.ref}[/] ({result.metric} {result.model.value:.4f})")
        name = result.model.name
        rows = "--horizon N --output forecast.csv" if result.model.task == "forecasting" else "--input FILE.csv --output OUT.csv"
        out.print(f"next: capc deploy {name} | capc predict {name} {rows} | capc report {name}", markup=False)
