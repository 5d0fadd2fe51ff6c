"""Stage 5, backend choice: one object per `--target` (this machine, or an Azure ML workspace), the same methods on both.

The CLI picks the backend once (`backend_for`) and each command calls one method, so no command branches on the
target. A backend reads the generated job folder (and $CAPC_HOME), never the raw spec; what it prints goes through
capc.views. Heavy imports (azure-ai-ml, MLflow, the serving stack) stay inside the methods that need them.
"""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path

import click

from capc import stopping
from capc.errors import CapcError

DEFAULT_OUT = Path("generated")


def _resume_command(source: Path, overrides: list[str], only: str | None = None, extra: list[str] | tuple = ()) -> str:
    """The command line that continues an interrupted submit of `source` with the same --only, --set and `extra`
    options (a job YAML's --data-map and --env)."""
    return shlex.join(["capc", "submit", str(source), *(["--only", only] if only else []), *(f"--set={o}" for o in overrides), *extra, "--resume"])


def _exit_interrupted(recorded: str, resume_command: str, kept: str) -> None:
    """A stopped local run: what was kept, the command that continues it, and the signal's exit status (130/143)."""
    click.echo(f"interrupted ({stopping.signal_name()}): {recorded}. To continue: {resume_command} ({kept}).", err=True)
    sys.exit(stopping.exit_status())


def _show_pipeline_result(result, as_json: bool, resume_command: str) -> None:
    """A local pipeline run's table (or --json), then its stop or its first failed step (exit 1)."""
    from capc import views

    if as_json:
        views.print_json(result.to_dict())
    else:
        views.print_pipeline(result)
    if result.interrupted:
        _exit_interrupted("finished steps are recorded", resume_command,
                          "completed steps are kept and a sweep step keeps its finished trials; the others run again")
    if result.failed:
        failed = result.failed[0]
        raise CapcError(
            f"pipeline step `{failed.name}` of {result.name} failed with {failed.detail} ({len(result.failed)} step(s) failed;"
            f" steps that needed them were skipped). Its last output lines:\n{failed.output_tail}",
            f"the whole log: {failed.log}",
        )


class LocalBackend:
    """The embedded engine, the local model registry and local endpoints."""

    def submit(self, folder, source: Path, overrides: list[str], *, only: str | None, resume: bool, as_json: bool,
               no_wait: bool = False, dry_run: bool = False, reproducible: bool = False, seed: int | None = None,
               quiet: bool = False) -> None:
        """Run a job folder (read by capc.jobfolder with --only applied): AutoML and sweeps, or its pipeline.
        `source` and `overrides` are what the user gave (a spec and its --set, or the folder), for the resume hint
        and the run's record; `reproducible` and `seed` (a job folder's --like): capc.local.reproducible."""
        from capc import views

        if dry_run or no_wait:
            raise CapcError("--dry-run and --no-wait apply to --target azure.", "`capc diff SPEC` shows what a local build would change")
        # What a stopped submit tells its user to run next.
        resume_command = _resume_command(source, overrides, only, ["--reproducible"] if reproducible else [])
        if folder.job("pipeline"):
            if reproducible:
                raise CapcError("--reproducible runs AutoML and the sweeps of a submit, not the pipeline's steps.", "leave out --only pipeline")
            self._submit_pipeline(folder, resume, as_json, resume_command, quiet)
            return
        from capc.local.progress import SubmitProgress
        from capc.local.reproducible import prepare_submit
        from capc.local.submit import submit_local

        say = (lambda text: click.echo(f"note: {text}", err=True))
        record = prepare_submit(folder, source, overrides, reproducible, say, seed=seed)
        with SubmitProgress(folder.metric, folder.goal, quiet=quiet) as progress:
            result = submit_local(folder, resume=resume, progress=progress, record=record)
        if as_json:
            views.print_json(result.to_dict())
        else:
            views.print_submit(result)
        if result.interrupted:
            _exit_interrupted("finished work is recorded", resume_command, "finished sweep trials are kept, the others run; AutoML starts over")

    def _submit_pipeline(self, folder, resume: bool, as_json: bool, resume_command: str, quiet: bool = False) -> None:
        from capc.local.pipeline import run_pipeline
        from capc.local.progress import PipelineProgress

        with PipelineProgress(quiet=quiet) as display:
            result = run_pipeline(folder, resume=resume, display=display)
        _show_pipeline_result(result, as_json, resume_command)

    def submit_job_yaml(self, path: Path, overrides: list[str], *, resume: bool, as_json: bool,
                        data_map: Path | None = None, env_mode: str = "job", register: str | None = None, quiet: bool = False) -> None:
        """An Azure ML sweep, command, AutoML or pipeline job written by hand, on the local engine (capc.local.handwritten,
        capc.local.automl_job, capc.local.pipeline);
        `data_map` a --data-map file (capc.local.data_map), `env_mode` job | current (capc.local.environments)."""
        from capc import views
        from capc.jobfolder.job_yaml import check_runs_locally, load_job_yaml
        from capc.local.data_map import bind_job_data, read_data_map
        from capc.local.handwritten import run_job_yaml

        job = load_job_yaml(path, overrides)
        if data_map:
            job = bind_job_data(job, read_data_map(data_map))
        check_runs_locally(job)
        for note in job.duplicate_notes:
            click.echo(f"note: {note}", err=True)
        if job.type == "automl":  # runs in capc's interpreter: the AutoML engine is capc's own
            self.submit_automl_job_yaml(path, overrides, resume=resume, as_json=as_json, data_map=data_map, register=register, quiet=quiet)
            return
        if register:
            raise CapcError(f"--register names the model of an AutoML job; {path} is a `{job.type}` job.", f"capc submit {path}")
        again = [f"--data-map={data_map}"] if data_map else []
        again += [f"--env={env_mode}"] if env_mode != "job" else []
        resume_command = _resume_command(path, overrides, extra=again)
        if job.type == "pipeline":
            from capc.local.pipeline import run_pipeline_yaml
            from capc.local.progress import PipelineProgress

            with PipelineProgress(quiet=quiet) as display:
                result = run_pipeline_yaml(job, resume=resume, display=display, env_mode=env_mode)
            _show_pipeline_result(result, as_json, resume_command)
            return
        objective = job.data.get("objective") or {}
        say = (lambda text: click.echo(text, err=True))
        if job.type == "sweep":
            from capc.local.progress import SubmitProgress

            with SubmitProgress(str(objective.get("primary_metric", "metric")), str(objective.get("goal", "maximize")).lower(), quiet=quiet) as progress:
                result = run_job_yaml(job, resume=resume, progress=progress, say=say, env_mode=env_mode)
        else:
            result = run_job_yaml(job, resume=resume, say=say, env_mode=env_mode)
        if as_json:
            views.print_json(result.to_dict())
        else:
            views.print_job_run(result)
        if result.interrupted:
            click.echo(f"interrupted ({stopping.signal_name()}): finished trials are recorded. To continue: {resume_command}", err=True)
            sys.exit(stopping.exit_status())

    def submit_automl_job_yaml(self, path: Path, overrides: list[str], *, resume: bool, as_json: bool, register: str | None = None,
                               data_map: Path | None = None, quiet: bool = False) -> None:
        """An Azure ML AutoML job written by hand, on the local AutoML engine (capc.local.automl_job)."""
        from capc import views
        from capc.jobfolder.job_yaml import load_job_yaml
        from capc.local.automl_job import objective, run_automl_job_yaml
        from capc.local.data_map import bind_job_data, read_data_map
        from capc.local.progress import SubmitProgress

        job = load_job_yaml(path, overrides)
        if data_map:
            job = bind_job_data(job, read_data_map(data_map))
        say = (lambda text: click.echo(text, err=True))
        with SubmitProgress(*objective(job), quiet=quiet) as progress:
            result = run_automl_job_yaml(job, resume=resume, register=register, progress=progress, say=say)
        if as_json:
            views.print_json(result.to_dict())
        else:
            views.print_automl_job(result)
        if result.interrupted:
            _exit_interrupted("finished candidates are recorded", _resume_command(path, overrides),
                              "the search starts from each learner's best configuration, with the budget left")

    def status(self, name_or_job: str) -> None:
        from capc import views
        from capc.state.tracking import list_runs

        rows = [r for r in list_runs(name_or_job) if r.kind in ("submit", "automl", "sweep")]
        if not rows:
            raise CapcError(f"no local runs of `{name_or_job}`.", "`capc runs` lists every experiment's runs")
        latest = max((r for r in rows if r.kind == "submit"), key=lambda r: r.start)
        views.console().print(views.runs_table([latest] + [r for r in rows if r.parent == latest.run_id], f"{name_or_job}: last submit"))

    def deploy(self, name: str, model_ref: str | None, port: int | None, as_json: bool) -> None:
        from capc import serve, views
        from capc.serve.naming import deploy_target
        from capc.state import registry

        model = registry.get(model_ref or name)
        endpoint = deploy_target(model.name, Path(model.job_dir))  # as Azure names it: the spec's deployment.endpoint
        info = serve.deploy(endpoint, model.model_dir, Path(model.job_dir), port=port, model_ref=model.ref)
        if as_json:
            views.print_json(info.to_dict())
            return
        views.print_deployed(info)

    def endpoint_show(self, name: str) -> dict:
        from capc import serve

        return serve.show(name).to_dict()

    def endpoint_keys(self, name: str, regenerate: str | None) -> dict:
        from capc import serve

        return serve.regenerate_key(name, regenerate) if regenerate else serve.keys(name)

    def endpoint_logs(self, name: str, follow: bool, tail_lines: int | None, server: bool, as_json: bool) -> None:
        import json

        from capc import serve

        if server:
            for line in serve.server_logs(name, follow=follow, tail_lines=tail_lines):
                click.echo(line.rstrip("\n"))
            return
        for record in serve.logs(name, follow=follow, tail_lines=tail_lines):
            click.echo(json.dumps(record, sort_keys=True) if as_json else serve.format_log_record(record))

    def endpoint_delete(self, name: str) -> None:
        from capc import serve

        click.echo(f"deleted endpoint {serve.delete(name)}")  # the model's name finds its endpoint too

    def invoke(self, name: str, data_file: Path | None) -> None:
        from capc import serve

        result = serve.invoke(name, _request_body(data_file) if data_file else None)
        click.echo(result.text)
        if not result.ok:
            raise CapcError(f"endpoint {name} answered {result.status} (request id {result.request_id}).")


    def vm_capacity(self) -> None:
        """VM sizes and vCPU quota of a region: this machine has none to check (`capc plan`)."""
        return None


class AzureBackend:
    """An Azure ML workspace: from `--workspace config.json`, else the environment or ./config.json."""

    def __init__(self, workspace_config: Path | None, out_dir: Path = DEFAULT_OUT):
        self.workspace_config = workspace_config
        self.out_dir = out_dir

    def workspace(self, required: bool = False):
        """The workspace named on the command line; without --workspace, None lets each call resolve its own
        (so a dry run needs none), unless `required`."""
        if self.workspace_config is None and not required:
            return None
        from capc.azure import resolve_workspace

        return resolve_workspace(self.workspace_config, os.environ)

    def vm_capacity(self):
        """The workspace region's VM sizes and per-family vCPU usage, for `capc plan --target azure`."""
        from capc.azure.quota import read_quota

        return read_quota(self.workspace(required=True))

    def job_dir(self, name: str) -> Path:
        from capc.jobfolder.serving import has_endpoint

        job_dir = self.out_dir / name
        if not has_endpoint(job_dir):
            raise CapcError(f"no generated artifacts for `{name}` in {job_dir}.", f"run `capc build specs/{name}.yaml` first")
        return job_dir

    def submit(self, folder, source: Path, overrides: list[str], *, only: str | None, resume: bool, as_json: bool,
               no_wait: bool = False, dry_run: bool = False, reproducible: bool = False, seed: int | None = None,
               quiet: bool = False) -> None:
        from rich.console import Console

        if reproducible:
            raise CapcError(
                "--reproducible applies to the local engine: Azure AutoML takes no seed and counts time "
                "(Azure/MachineLearningNotebooks#1455).",
                "submit locally, or leave out --reproducible (the sweep job and the trial scripts still get the spec's seed)",
            )

        from capc import views
        from capc.azure import submit as azure_submit

        # --json: the result (jobs, the registered model, how it was chosen) on stdout, the progress on stderr.
        console = Console(stderr=True) if as_json else None
        result = azure_submit(folder, self.workspace(required=not dry_run), wait=not no_wait, dry_run=dry_run, console=console, quiet=quiet)
        if as_json:
            views.print_json(result.to_dict())

    def submit_job_yaml(self, path: Path, overrides: list[str], *, resume: bool, as_json: bool,
                        data_map: Path | None = None, env_mode: str = "job", register: str | None = None, quiet: bool = False) -> None:
        raise CapcError(
            f"{path} is an Azure ML job written by hand; capc runs such files on the local engine only.",
            f"run it here with `capc submit {path}`, or submit it to Azure as it is: `az ml job create -f {path}`",
        )

    def status(self, name_or_job: str) -> None:
        from capc.azure import status as azure_status

        azure_status(name_or_job, self.workspace())

    def cancel(self, job_id: str) -> None:
        from capc.azure import cancel as azure_cancel

        for name in azure_cancel(job_id, self.workspace()):
            click.echo(f"cancel requested: {name}")

    def deploy(self, name: str, model_ref: str | None, port: int | None, as_json: bool) -> None:
        from capc.azure import deploy as azure_deploy

        version = model_ref.partition(":")[2] or None if model_ref else None
        azure_deploy(self.job_dir(name), name, self.workspace(), model_version=version)

    def endpoint_show(self, name: str) -> dict:
        from capc.azure import endpoint_show

        return endpoint_show(self.job_dir(name), self.workspace())

    def endpoint_keys(self, name: str, regenerate: str | None) -> dict:
        from capc.azure import endpoint_keys

        return endpoint_keys(self.job_dir(name), self.workspace(), regenerate=regenerate)

    def endpoint_logs(self, name: str, follow: bool, tail_lines: int | None, server: bool, as_json: bool) -> None:
        from capc.azure import endpoint_logs

        click.echo(endpoint_logs(self.job_dir(name), self.workspace(), lines=tail_lines or 100))

    def endpoint_delete(self, name: str) -> None:
        from capc.azure import endpoint_delete

        endpoint_delete(self.job_dir(name), self.workspace())

    def invoke(self, name: str, data_file: Path | None) -> None:
        from capc.azure import invoke as azure_invoke

        click.echo(azure_invoke(self.job_dir(name), self.workspace(), data_file))


def backend_for(target: str, workspace_config: Path | None = None) -> LocalBackend | AzureBackend:
    """The backend `--target` names (click has checked it is local or azure)."""
    return AzureBackend(workspace_config) if target == "azure" else LocalBackend()


def _request_body(path: Path) -> bytes:
    """A JSON body as it is; an image file is encoded as capc's {"data": ["<base64>"]}."""
    from capc.image_files import image_request_body, is_image_path

    try:
        content = path.read_bytes()
    except OSError as exc:
        raise CapcError(f"cannot read {path}: {exc.strerror}") from None
    if is_image_path(path):
        return image_request_body(content)
    return content
