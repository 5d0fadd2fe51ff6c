"""Backend, local: a hand-written `type: command` job (or a file with a top-level `command:` and no type), run
once as Azure runs it: its code copied to a folder of its own, inputs and outputs bound, the command handed to
capc.local.commands (bash for shell syntax, the job environment's python, environment_variables and the
distribution's rank variables set), MLflow attached to the run capc created, limits.timeout honoured.

--resume: a command job is one run. When the same version of the file (its bytes, --set overrides and data map)
completed before, that run is shown again and nothing runs; otherwise (interrupted, failed, never run) it runs.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from capc.errors import CapcError
from capc.jobfolder.job_yaml import JobYaml, code_path
from capc.local import bindings, commands
from capc.local.launch import output_tail
from capc.state import registry, tracking

COMMAND_RUN_TAG = "capc.command_run"  # on the submit run: the run the command's MLflow calls land in


def run_command_job(job: JobYaml, mlflow_client, exp_id: str, say, python: str | None = None, resume: bool = False):
    """One run of the job's command; a JobRunResult (capc.local.handwritten). CapcError when it fails."""
    from capc.local.handwritten import JobRunResult, run_files, start_submit

    data = job.data
    command = data.get("command")
    if not command:
        raise CapcError(f"{job.path}: the command job has no `command`.")
    inputs, declared_outputs = _bound_inputs(job, str(command))
    code_dir = (job.job_dir / code_path(data["code"], str(job.path))).resolve() if data.get("code") else None
    if code_dir is not None and not code_dir.is_dir():
        raise CapcError(f"{job.path}: code {data['code']} (resolved to {code_dir}) is not a folder.")
    timeout_s = (data.get("limits") or {}).get("timeout")
    if resume:
        done = _completed_before(mlflow_client, exp_id, job)
        if done is not None:
            submit_run, run_id, run_dir = done
            say(f"note: --resume: this version of the job completed in run {run_id}; nothing runs again")
            out = JobRunResult(job.name, "command", submit_run, None, None, "completed", metrics=dict(mlflow_client.get_run(run_id).data.metrics))
            out.files = run_files(mlflow_client, exp_id, run_id, run_dir)
            return out

    submit_run = start_submit(mlflow_client, exp_id, job, None, None)
    run_id = tracking.start_run(mlflow_client, exp_id, "command", "trial", parent=submit_run)
    mlflow_client.set_tag(submit_run, COMMAND_RUN_TAG, run_id)
    run_dir = registry.capc_home() / "runs" / submit_run / "command"
    if code_dir is not None:
        shutil.copytree(code_dir, run_dir, ignore=shutil.ignore_patterns("outputs", bindings.NAMED_OUTPUTS, "__pycache__"))
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "outputs").mkdir(exist_ok=True)
    prepared = commands.prepare_command(
        str(command), {"inputs": inputs, "outputs": bindings.output_folders(declared_outputs, run_dir)}, python=python,
        environment_variables=data.get("environment_variables"), distribution=data.get("distribution"),
    )
    for note in prepared.notes:
        say(f"note: {note}")
    env = {**os.environ, **prepared.env, "MLFLOW_TRACKING_URI": tracking.tracking_uri(), "MLFLOW_EXPERIMENT_ID": str(exp_id), "MLFLOW_RUN_ID": run_id}
    env.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    mlflow_client.set_tag(run_id, "capc.command", prepared.text[:5000])
    log_path = run_dir / "output.log"
    say(f"running `{prepared.text}` in {run_dir} (log: {log_path})")
    status, exit_code = commands.run_to_end(prepared, run_dir, env, log_path, float(timeout_s) if timeout_s else None)
    tracking.finish_run(mlflow_client, run_id, status)
    tracking.finish_run(mlflow_client, submit_run, status)
    out = JobRunResult(job.name, "command", submit_run, None, None, status, metrics=dict(mlflow_client.get_run(run_id).data.metrics))
    out.files = run_files(mlflow_client, exp_id, run_id, run_dir)
    if status == "failed":
        reason = "ran longer than limits.timeout" if exit_code is None else f"exited with status {exit_code}"
        raise CapcError(
            f"the command job {job.name} {reason}; it ran `{prepared.text}` in {run_dir}. The last lines of its output:\n"
            f"{output_tail(log_path).strip() or '(no output)'}",
            f"the whole log: {log_path}",
        )
    return out


def _bound_inputs(job: JobYaml, command: str) -> tuple[dict, dict]:
    """({input name: text for ${{inputs.NAME}}}, the declared outputs); CapcError for a binding nothing declares."""
    declared_inputs, declared_outputs = job.data.get("inputs") or {}, job.data.get("outputs") or {}
    references = commands.references(command)
    unknown = [f"{s}.{n}" for s, n in references
               if not (s == "inputs" and n in declared_inputs or s == "outputs" and n in declared_outputs)]
    if unknown:
        raise CapcError(
            f"{job.path}: the command refers to {', '.join('${{' + u + '}}' for u in unknown)}, which the job does not define.",
            "declare it under inputs: or outputs:",
        )
    inputs, optional = {}, commands.optional_only(command)
    for scope, name in references:
        if scope == "inputs" and name not in inputs:
            value = declared_inputs[name]
            if ("inputs", name) in optional and isinstance(value, dict) and not {"path", "value", "default"} & set(value):
                continue  # an optional input without a value: its $[[...]] is dropped
            inputs[name] = bindings.input_text(name, value, job.job_dir)
    return inputs, declared_outputs


def _completed_before(mlflow_client, exp_id: str, job: JobYaml) -> tuple[str, str, Path] | None:
    """(submit run, command run, its folder) of the latest submit of this version of the job, when it completed."""
    found = mlflow_client.search_runs(
        [exp_id], f"tags.`capc.job_sha256` = '{job.sha256}' and tags.`{tracking.KIND_TAG}` = 'submit'",
        order_by=["attributes.start_time DESC"], max_results=1,
    )
    if not found or tracking.status_of(found[0]) != tracking.COMPLETED:
        return None
    submit_run = found[0].info.run_id
    run_id = found[0].data.tags.get(COMMAND_RUN_TAG)
    run_dir = registry.capc_home() / "runs" / submit_run / "command"
    return (submit_run, run_id, run_dir) if run_id and run_dir.is_dir() else None
