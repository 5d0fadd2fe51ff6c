"""The command line: argument handling only; each command calls the stages (spec -> render -> artifacts -> backend).

A command that runs somewhere picks its backend once (capc.backends: local or Azure, the same methods) and calls it;
what it prints comes from capc.views. Every CapcError becomes a one-paragraph message on stderr and exit code 1;
tracebacks only with --debug. A stop (Ctrl-C, SIGTERM, SIGHUP; capc.stopping) of a long command exits 130 or 143
with a line saying what was kept, never a traceback.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from capc import __version__, stopping
from capc.backends import AzureBackend, backend_for
from capc.cli_options import (
    CapcGroup, data_map_option, env_option, json_option, out_option, quiet_option, spec_files, stops_cleanly, strict_option,
    target_option, register_option, workspace_option,
)
from capc.errors import CapcError, SpecInvalid, SpecProblem
from capc.family_reference import families_command


@click.group(cls=CapcGroup, commands=[families_command], context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="capc")
@click.option("--debug", is_flag=True, help="Show tracebacks.")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """capc: compile experiment specs into Azure ML artifacts and run them locally or on Azure."""
    ctx.ensure_object(dict)["debug"] = debug


def _load_all(paths: list[Path]):
    """Validate every spec; report every problem of every file before failing."""
    from capc.jobfolder.kinds import file_kind
    from capc.spec import load_spec

    specs, problems = [], []
    for path in paths:
        if (kind := file_kind(path)).is_azure:  # from its content: a job or component file is no spec, whatever its name
            problems.append(SpecProblem(str(path), 1, 1, "", f"an Azure ML {kind.value}, not a capc spec", "`capc validate` and `capc submit` take it as it is"))
            continue
        try:
            specs.append(load_spec(path))
        except SpecInvalid as exc:
            problems.extend(exc.problems)
    if problems:
        raise SpecInvalid(problems)
    return specs


@cli.command()
@click.argument("specs", nargs=-1, required=True, type=click.Path(path_type=Path), metavar="SPEC|JOB.yml...")
@strict_option
def validate(specs: tuple[Path, ...], strict: bool) -> None:
    """Check specs against the schema, the semantic rules and Azure's submit-time rules; an Azure ML job YAML
    written by hand with azure-ai-ml's own loader and the same submit-time rules."""
    from capc.jobfolder.kinds import is_azure_file
    from capc.jobfolder.validate import validate_job_yamls
    from capc.spec.service_rules import refuse_warnings

    job_paths = [p for p in specs if is_azure_file(p)]
    problems, job_lines, job_warnings = validate_job_yamls(job_paths)
    try:
        loaded = _load_all([p for p in specs if p not in job_paths])
    except SpecInvalid as exc:
        raise SpecInvalid(exc.problems + problems) from None
    if problems:
        raise SpecInvalid(problems)
    if strict:
        refuse_warnings(loaded)
    for spec in loaded:
        click.echo(f"{spec.path}: ok ({spec.name}, {spec.task}, {spec.metric})")
        for warning in spec.warnings:
            click.echo(f"warning: {warning}", err=True)
    for line in job_lines:
        click.echo(line)
    for warning in job_warnings:
        click.echo(f"warning: {warning}", err=True)


@cli.command("plan")
@spec_files
@click.option("--target", type=click.Choice(["local", "azure"]), default="local", show_default=True, help="azure: also check the region's vCPU quota.")
@click.option("--set", "overrides", multiple=True, metavar="KEY.PATH=VALUE", help="Override a spec value (as `capc submit --set`).")
@click.option("--trials", "list_trials", is_flag=True, help="List every combination of a grid sweep.")
@click.option("--prices", "prices_file", type=click.Path(path_type=Path), default=None, help="Your own price list (the format of capc/plan/prices.json).")
@click.option("--max-cost", type=click.FloatRange(min=0), default=None, metavar="AMOUNT", help="Exit 1 when a submit may cost more (in the price list's currency).")
@strict_option
@click.option("--workspace", "workspace_config", type=click.Path(path_type=Path), default=None, help="Azure ML config.json (as `capc submit`).")
@json_option
def plan_command(specs: tuple[Path, ...], target: str, overrides: tuple[str, ...], list_trials: bool, prices_file: Path | None,
                 max_cost: float | None, strict: bool, workspace_config: Path | None, as_json: bool) -> None:
    """What a submit of each SPEC would run, how long and at what cost at most, before anything runs (like `terraform plan`)."""
    from capc import views
    from capc.backends import backend_for
    from capc.plan import page
    from capc.plan.make import make_plans, over_budget
    from capc.plan.quota import fill_quota, quota_error

    plans, prices = make_plans(list(specs), list(overrides), prices_file, strict)
    fill_quota(plans, backend_for(target, workspace_config).vm_capacity())
    if as_json:
        views.print_json(page.to_json(plans, prices, list_trials))
    else:
        for plan in plans:
            views.console().print(page.render(plan, prices, list_trials))
    for warning in (w for plan in plans for w in plan.warnings):
        click.echo(f"warning: {warning}", err=True)
    error = quota_error(plans) or over_budget(plans, max_cost)
    if error:
        raise error


@cli.command()
@spec_files
@out_option
def build(specs: tuple[Path, ...], out_dir: Path) -> None:
    """Compile specs into OUT/<name>/ (atomic: an interrupted build leaves the old output whole)."""
    from capc.build import build_spec

    for spec in _load_all(list(specs)):
        target, files, changes = build_spec(spec, out_dir)
        click.echo(f"{target}: {len(files)} files, {_summary(changes)}")


@cli.command()
@spec_files
@out_option
@click.option("--exit-code", is_flag=True, help="Exit 1 when a build would change anything.")
@click.option("--stat", is_flag=True, help="Only the summary, no unified diffs.")
def diff(specs: tuple[Path, ...], out_dir: Path, exit_code: bool, stat: bool) -> None:
    """Show what `capc build` would change, like `terraform plan`."""
    from capc.artifacts import plan_changes, unified_diff
    from capc.build import compile_spec

    any_change = False
    for spec in _load_all(list(specs)):
        target = out_dir / spec.name
        changes = plan_changes(target, compile_spec(spec, out_dir))
        any_change |= bool(changes)
        if not changes:
            click.echo(f"{target}: no changes")
            continue
        click.echo(f"{target}: {_summary(changes)}")
        marks = {"added": ("+", "green"), "changed": ("~", "yellow"), "removed": ("-", "red")}
        for change in changes:
            sign, colour = marks[change.kind]
            click.secho(f"  {sign} {change.path}", fg=colour)
        if not stat:
            for change in changes:
                click.echo(unified_diff(change, target.as_posix()), nl=False)
    if exit_code and any_change:
        sys.exit(1)


def _summary(changes) -> str:
    counts = {kind: sum(1 for c in changes if c.kind == kind) for kind in ("added", "changed", "removed")}
    if not changes:
        return "up to date"
    return ", ".join(f"{n} {kind}" for kind, n in counts.items())


@cli.command("schema")
@click.option("--markdown", is_flag=True, help="Print the key reference table (as in the README) instead.")
def schema_command(markdown: bool) -> None:
    """Print the spec's JSON Schema (for editors: yaml-language-server)."""
    if markdown:
        from capc.spec.reference import markdown as reference

        click.echo(reference(), nl=False)
        return
    from capc.spec import schema

    click.echo(json.dumps(schema(), indent=2))


# ---------------------------------------------------------------- local engine


@cli.command()
@click.argument("source", metavar="SPEC|JOB_FOLDER|JOB.yml", type=click.Path(path_type=Path), required=False)
@click.option("--target", type=click.Choice(["local", "azure"]), default="local", show_default=True, help="Where the jobs run.")
@click.option("--only", type=click.Choice(["automl", "sweep", "pipeline"]), default=None, help="Run one job only.")
@click.option("--set", "overrides", multiple=True, metavar="KEY.PATH=VALUE", help="Override a value of the spec (validated like the spec) or of the job YAML (e.g. inputs.NAME.path=LOCAL_FILE).")
@click.option("--resume", is_flag=True, help="Continue an interrupted sweep without repeating finished trials.")
@quiet_option
@data_map_option
@env_option
@click.option("--reproducible", is_flag=True, help="With a seed: budgets count trials, not time, so two runs on the same data give the same leaderboard and model.")
@click.option("--like", "like_run", metavar="RUN_ID", default=None, help="Repeat a submit run's settings: its spec, --set overrides, seed and --reproducible.")
@click.option("--no-wait", is_flag=True, help="Azure: return once the jobs are submitted.")
@click.option("--dry-run", is_flag=True, help="Azure: contact nothing; print the REST bodies and assets a submit would send.")
@click.option("--workspace", "workspace_config", type=click.Path(path_type=Path), default=None, help="Azure ML config.json (else AZURE_SUBSCRIPTION_ID, AZURE_RESOURCE_GROUP, AZUREML_WORKSPACE_NAME).")
@register_option
@out_option
@json_option
@stops_cleanly
def submit(source: Path | None, target: str, only: str | None, overrides: tuple[str, ...], resume: bool, quiet: bool, data_map: Path | None, env_mode: str,
           reproducible: bool, like_run: str | None, no_wait: bool, dry_run: bool, workspace_config: Path | None, out_dir: Path, as_json: bool,
           register_as: str | None = None) -> None:
    """Run a spec (built first), a job folder built before (generated/<name>/, no spec needed), or an Azure ML sweep
    or command job YAML written by hand (on the local engine): locally by default, or on Azure ML."""
    from capc.build import build_for_submit
    from capc.jobfolder import is_job_folder, read_job_folder
    from capc.jobfolder.kinds import is_azure_file
    from capc.state.run_record import submit_settings

    source, overrides, reproducible, seed = submit_settings(like_run, source, overrides, reproducible)  # --like RUN_ID
    backend = backend_for(target, workspace_config)
    if is_azure_file(source):
        if only or no_wait or dry_run or reproducible:
            raise CapcError("--only, --no-wait, --dry-run and --reproducible apply to a spec or a job folder, not to a job YAML.", f"capc submit {source}")
        backend.submit_job_yaml(source, list(overrides), resume=resume, as_json=as_json, data_map=data_map, env_mode=env_mode, register=register_as, quiet=quiet)
        return
    if data_map or env_mode != "job" or register_as:
        raise CapcError("--data-map, --env and --register apply to an Azure ML job YAML written by hand, not to a spec or a job folder (a spec registers its winner under its own name).", f"capc submit {source}")
    if is_job_folder(source):
        if overrides:
            raise CapcError(
                f"{source} is a compiled job folder: --set changes a spec, and the folder's files are what runs.",
                "submit the spec with --set (it is built again), or edit the spec and `capc build`",
            )
        job_dir = source
    else:
        spec, job_dir = build_for_submit(source, list(overrides), out_dir)
        click.echo("".join(f"warning: {w}\n" for w in spec.warnings), err=True, nl=False)
    backend.submit(
        read_job_folder(job_dir, only), source, list(overrides), only=only, resume=resume, as_json=as_json, no_wait=no_wait, dry_run=dry_run,
        reproducible=reproducible, seed=seed, quiet=quiet,
    )


@cli.command()
@click.argument("name", required=False)
@json_option
def runs(name: str | None, as_json: bool) -> None:
    """Every run and child run (status, duration, parameters, metrics)."""
    from capc import views
    from capc.state.tracking import list_runs

    rows = list_runs(name)
    if as_json:
        views.print_json([r.to_dict() for r in rows])
        return
    if not rows:
        click.echo("no runs yet: `capc submit SPEC` starts one.")
        return
    out = views.console()
    out.print(views.runs_table(rows, f"runs{' of ' + name if name else ''}"))
    for line in views.search_notes(rows):
        out.print(line, markup=False, highlight=False, soft_wrap=True)
    click.echo("\n".join(views.record_lines(rows)))


@cli.command()
@click.argument("name")
@json_option
def leaderboard(name: str, as_json: bool) -> None:
    """AutoML candidates and sweep trials of NAME, best first by the primary metric."""
    from capc import views
    from capc.state.tracking import list_runs, submit_objective

    rows = list_runs(name)
    submits = [r for r in rows if r.kind == "submit"]
    if not submits:
        raise CapcError(f"no runs recorded for `{name}`.", f"run `capc submit specs/{name}.yaml` first")
    metric, goal = submit_objective(submits[0].run_id)
    board = views.leaderboard_rows(rows, metric, goal)
    if as_json:
        views.print_json({"name": name, "metric": metric, "goal": goal, "runs": [r.to_dict() for r in board]})
        return
    views.console().print(views.leaderboard_table(board, metric, goal, f"{name}: leaderboard by {metric} ({goal})"))


@cli.group()
def models() -> None:
    """The local model registry."""


@models.command("list")
@click.argument("name", required=False)
@json_option
def models_list(name: str | None, as_json: bool) -> None:
    """Registered models and versions."""
    from capc import views

    from capc.state import registry

    found = registry.list_models(name)
    if as_json:
        views.print_json([m.to_dict() for m in found])
        return
    if not found:
        click.echo("no registered models yet: `capc submit SPEC` registers the best one.")
        return
    views.console().print(views.models_table(found))


@models.command("show")
@click.argument("ref", metavar="NAME[:VERSION]")
@json_option
def models_show(ref: str, as_json: bool) -> None:
    """One registered model version (latest by default)."""
    from capc import views

    from capc.state import registry

    views.print_model(registry.get(ref), as_json)


@cli.command()
@click.argument("name_or_job", metavar="NAME|JOB_ID")
@click.option("--target", type=click.Choice(["local", "azure"]), default="local", show_default=True)
@click.option("--workspace", "workspace_config", type=click.Path(path_type=Path), default=None, help="Azure ML config.json.")
def status(name_or_job: str, target: str, workspace_config: Path | None) -> None:
    """Status of a spec's last jobs (or one job)."""
    backend_for(target, workspace_config).status(name_or_job)


@cli.command()
@click.argument("job_id")
@click.option("--workspace", "workspace_config", type=click.Path(path_type=Path), default=None, help="Azure ML config.json.")
def cancel(job_id: str, workspace_config: Path | None) -> None:
    """Cancel an Azure ML job (or a spec's last jobs, by NAME). Local jobs stop with Ctrl-C."""
    AzureBackend(workspace_config).cancel(job_id)


# ---------------------------------------------------------------- endpoints


@cli.command()
@click.argument("name")
@click.option("--model", "model_ref", metavar="NAME:VERSION", default=None, help="Registered model to serve (default: latest version of NAME).")
@target_option
@click.option("--port", type=int, default=None, help="Local port (default: a free one).")
@workspace_option
@json_option
def deploy(name: str, model_ref: str | None, target: str, port: int | None, workspace_config: Path | None, as_json: bool) -> None:
    """Serve a registered model behind key auth (replaces the model of a running endpoint without downtime)."""
    backend_for(target, workspace_config).deploy(name, model_ref, port, as_json)


@cli.group()
def endpoints() -> None:
    """Local (or --target azure) online endpoints."""


@endpoints.command("list")
@json_option
def endpoints_list(as_json: bool) -> None:
    """Local endpoints and their state."""
    from capc import serve, views

    found = serve.list_endpoints()
    if as_json:
        views.print_json([e.to_dict() for e in found])
        return
    if not found:
        click.echo("no endpoints: `capc deploy NAME` starts one.")
        return
    views.console().print(views.endpoints_table(found))


@endpoints.command("show")
@click.argument("name")
@target_option
@workspace_option
@json_option
def endpoints_show(name: str, target: str, workspace_config: Path | None, as_json: bool) -> None:
    """One endpoint: URIs, model, state (and its primary key with --json, as `az ml online-endpoint show` + keys)."""
    from capc import views

    data = backend_for(target, workspace_config).endpoint_show(name)
    if as_json:
        views.print_json(data)
        return
    views.print_fields(data, 20, hidden=("primary_key", "primaryKey"), dicts_as_json=False)


@endpoints.command("keys")
@click.argument("name")
@click.option("--regenerate", type=click.Choice(["primary", "secondary"]), default=None, help="Replace one key (the other keeps working).")
@target_option
@workspace_option
def endpoints_keys(name: str, regenerate: str | None, target: str, workspace_config: Path | None) -> None:
    """The endpoint's keys, as JSON (like `az ml online-endpoint get-credentials`)."""
    from capc import views

    views.print_json(backend_for(target, workspace_config).endpoint_keys(name, regenerate))


@endpoints.command("logs")
@click.argument("name")
@click.option("--follow", "-f", is_flag=True, help="Keep printing new requests.")
@click.option("--tail", "tail_lines", type=int, default=None, help="Only the last N records.")
@click.option("--server", is_flag=True, help="The inference server's own output instead of the request log.")
@target_option
@workspace_option
@json_option
def endpoints_logs(name: str, follow: bool, tail_lines: int | None, server: bool, target: str, workspace_config: Path | None, as_json: bool) -> None:
    """Request log: time, status, latency, request id (no payloads)."""
    backend_for(target, workspace_config).endpoint_logs(name, follow, tail_lines, server, as_json)


@endpoints.command("delete")
@click.argument("name")
@target_option
@workspace_option
def endpoints_delete(name: str, target: str, workspace_config: Path | None) -> None:
    """Stop the endpoint and forget its keys."""
    backend_for(target, workspace_config).endpoint_delete(name)


@cli.command()
@click.argument("name")
@click.option("--data", "data_file", type=click.Path(path_type=Path), default=None, help="Request body (JSON), or an image to encode; default: the generated sample_request.json.")
@target_option
@workspace_option
def invoke(name: str, data_file: Path | None, target: str, workspace_config: Path | None) -> None:
    """Call an endpoint and print its reply."""
    backend_for(target, workspace_config).invoke(name, data_file)


@cli.command("bench")
@click.argument("name")
@click.option("--requests", "-n", "request_count", type=int, default=1000, show_default=True, help="Requests in all.")
@click.option("--concurrency", "-c", type=int, default=4, show_default=True, help="Requests in flight at once.")
@click.option("--rows", "rows_per_request", type=int, default=1, show_default=True, help="Dataset rows per request.")
@json_option
def bench_command(name: str, request_count: int, concurrency: int, rows_per_request: int, as_json: bool) -> None:
    """Load-test a local endpoint with real rows of its dataset (like Apache Bench), on loopback only."""
    from capc import serve, views
    from capc.jobfolder.data import request_rows

    info = serve.show(name)
    rows = request_rows(Path(info.job_dir), limit=max(rows_per_request * 50, 1000))
    result = serve.bench(name, rows, requests=request_count, concurrency=concurrency, rows_per_request=rows_per_request)
    if as_json:
        views.print_json(result.to_dict())
    else:
        click.echo(result.report())
    if result.errors:
        raise CapcError(f"{result.errors} of {result.requests} requests failed; first error: {result.first_error}")


@cli.command("predict")
@click.argument("ref", metavar="NAME[:VERSION]")
@click.option("--input", "input_path", type=click.Path(path_type=Path), default=None, help="CSV file to score: a header row, then one row per prediction (a forecast: the rows to forecast).")
@click.option("--output", "output_path", required=True, type=click.Path(path_type=Path), help="CSV file to write: the input's columns plus prediction (and probability_<class>); a forecast: time, ids, forecast (and q<quantile>). Replaced only once every row scored.")
@click.option("--chunk-rows", type=click.IntRange(min=1), default=None, help="Rows read and scored at once; memory holds one chunk.")
@click.option("--horizon", type=click.IntRange(min=1), default=None, help="Forecasting model: forecast this many steps after each series' history (instead of --input).")
@click.option("--quantiles", "quantiles_text", default=None, metavar="Q,Q,...", help="Forecasting model: forecast quantiles too, e.g. 0.1,0.9.")
@json_option
@stops_cleanly
def predict_command(ref: str, input_path: Path | None, output_path: Path, chunk_rows: int | None, horizon: int | None,
                    quantiles_text: str | None, as_json: bool) -> None:
    """Score a CSV file of any size with a registered model (latest by default), as its local endpoint would; a
    forecasting model forecasts the file's rows, or --horizon steps of every series."""
    from capc import views
    from capc.serve.predict import predict

    try:
        result = predict(ref, input_path, output_path, chunk_rows=chunk_rows, horizon=horizon, quantiles_text=quantiles_text)
    except KeyboardInterrupt as exc:
        click.echo(f"interrupted ({stopping.signal_name()}): {output_path} was not written (an earlier one is left as it was); run the command again.", err=True)
        sys.exit(stopping.exit_status_of(exc))
    if as_json:
        views.print_json(result.to_dict())
    else:
        click.echo(result.summary())


@cli.command("report")
@click.argument("ref", metavar="NAME[:VERSION]")
@click.option("--out", "out_file", type=click.Path(dir_okay=False, path_type=Path), default=None, help="HTML file to write (default: NAME-report.html, or NAME-VERSION-report.html, in the working directory).")
def report_command(ref: str, out_file: Path | None) -> None:
    """One self-contained HTML report of a registered model (latest by default): leaderboard, runs, validation figures."""
    from capc.report import write_report

    written = write_report(ref, out_file)
    click.echo(f"wrote {written.path} ({written.ref}, {written.figures} figures)")
    for note in written.notes:
        click.echo(f"note: {note}", err=True)


def main() -> None:
    cli(prog_name="capc")


if __name__ == "__main__":
    main()
