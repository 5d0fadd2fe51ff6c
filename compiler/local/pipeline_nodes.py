"""Backend, local: what each pipeline step runs here - its command line, working folder and environment.

- a command step: its `command` as Azure runs it (capc.local.commands: `$[[...]]` optional parts, `${{inputs.X}}` /
  `${{outputs.X}}` bound to paths and values, `bash -c` for shell syntax, `environment_variables`, a distribution's
  rank variables), run in a snapshot of its `code` (hard links; an empty folder without `code`) with MLflow attached
  to the step's own run (MLFLOW_RUN_ID), as Azure ML starts a step. It starts through the trial launcher
  (capc.local.launch), the same one a sweep's trials use: `python SCRIPT` / `python -m MODULE` forked from the
  preloaded server, anything else spawned. A step whose environment capc built (capc.local.pipeline_envs) runs its
  `python` from that environment, always spawned.
- an engine step (sweep, AutoML): `python -m capc.local.pipeline_step`, a process of its own, so steps run side by
  side under the core budget (capc.local.cores.pin_steps). capc's compiled pipeline runs its job folder's
  automl_job.yml / sweep_job.yml there (the same settings as its nodes, which the tests keep equal); a
  hand-written node runs from the node itself, written to a request file.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Mapping
from pathlib import Path

from capc.errors import CapcError
from capc.jobfolder.job_yaml import code_path
from capc.jobfolder.pipeline_graph import Data, GraphStep, Upstream, Value
from capc.local import bindings, commands
from capc.data_location import is_remote
from capc.local.samplers import format_value
from capc.state import registry

SNAPSHOT_IGNORE = ("outputs", bindings.NAMED_OUTPUTS, "__pycache__", ".ipynb_checkpoints", "mlruns")
NODE_REQUEST = "node.json"  # what a hand-written engine step's process reads


def input_text(step: GraphStep, name: str, output_folder) -> str:
    """What `${{inputs.NAME}}` of a step becomes: a literal's text, a data input's local path, an upstream folder."""
    source = step.inputs[name]
    if isinstance(source, Value):
        return format_value(source.value)
    if isinstance(source, Upstream):
        return str(output_folder(source.step, source.output))
    return source.path


def check_data(step: GraphStep, where: str) -> None:
    """Every data input of the step is a file or folder on this machine: refused before any step runs."""
    for name, source in step.inputs.items():
        if not isinstance(source, Data):
            continue
        if is_remote(source.path):
            raise CapcError(
                f"{where}: step `{step.name}`'s input {name} points at {source.path}, which lives on Azure or the web; the "
                "local engine reads only files on this machine and never downloads data.",
                f"run it with a copy on this machine: --set jobs.{step.name}.inputs.{name}.path=LOCAL_PATH, or give the "
                "pipeline input it binds a local path (--set inputs.NAME.path=LOCAL_PATH)",
            )
        if not Path(source.path).exists():
            raise CapcError(f"{where}: step `{step.name}`'s input {name}: {source.path} does not exist.")


def prepared_command(step: GraphStep, inputs: Mapping[str, str], outputs: Mapping[str, str], python: str | None = None) -> commands.PreparedCommand:
    """The step's command as Azure runs it (capc.local.commands, the one place a command becomes a process: `bash -c`
    for shell syntax, `python SCRIPT` as an argv the fork server can run), with its bindings, environment_variables
    and distribution's rank variables; `python` is what `python` means in it (its built environment's; None: capc's)."""
    text = str(step.node.get("command") or "")
    if not text.strip():
        raise CapcError(f"pipeline step `{step.name}` has no `command`.")
    values = {"inputs": dict(inputs), "outputs": dict(outputs)}
    missing = [f"{s}.{n}" for s, n in commands.references(commands.OPTIONAL.sub("", text)) if n not in values.get(s, {})]
    if missing:
        raise CapcError(
            f"pipeline step `{step.name}`'s command uses {', '.join('${{' + m + '}}' for m in missing)}, which the step "
            "does not give (an optional input belongs inside $[[...]]).",
        )
    try:
        return commands.prepare_command(text, values, python=python, environment_variables=step.node.get("environment_variables"),
                                        distribution=step.node.get("distribution"))
    except CapcError as exc:
        raise CapcError(f"pipeline step `{step.name}`: {exc}") from None


def code_snapshot(step: GraphStep, folder: Path) -> Path:
    """The step's working folder: a copy of its `code` (hard links where the file system allows), as Azure uploads
    a snapshot; an empty folder when it names none."""
    target = folder / "code"
    if target.exists():
        shutil.rmtree(target)
    code = step.node.get("code")
    if not code:
        target.mkdir(parents=True)
        return target
    source = (step.base_dir / code_path(code, f"pipeline step `{step.name}`")).resolve()
    if not source.is_dir():
        raise CapcError(f"pipeline step `{step.name}`: code {code} (resolved to {source}) is not a folder.")
    skip = {Path(p).resolve() for p in (registry.capc_home(), target)}  # a code folder that holds capc's home, or the run
    by_name = shutil.ignore_patterns(*SNAPSHOT_IGNORE)

    def ignore(directory: str, names: list[str]) -> set[str]:
        return set(by_name(directory, names)) | {n for n in names if (Path(directory) / n).resolve() in skip}

    shutil.copytree(source, target, ignore=ignore, copy_function=_link_or_copy, symlinks=True)
    return target


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def engine_argv(kind: str, job_dir: Path, output: Path, parent_run: str, node: str, resume: bool) -> list[str]:
    """capc's compiled pipeline: the engine step runs the job folder's automl_job.yml or sweep job of the node's name."""
    argv = [sys.executable, "-m", "capc.local.pipeline_step", kind, "--job-dir", str(job_dir), "--output", str(output), "--parent-run", parent_run]
    if kind == "sweep":
        argv += ["--node", node] + (["--resume"] if resume else [])
    return argv


def node_request_argv(request_file: Path) -> list[str]:
    return [sys.executable, "-m", "capc.local.pipeline_step", "node", "--request", str(request_file)]


def write_node_request(step: GraphStep, folder: Path, output_folder, request: dict) -> Path:
    """A hand-written sweep or AutoML node, its inputs bound to local paths and values, for its step process."""
    node = {k: v for k, v in step.node.items() if k not in ("declared_inputs", "declared_outputs")}
    bound = {name: _bound_input(source, output_folder) for name, source in step.inputs.items()}
    if step.type == "automl":
        node.update(bound)
    else:
        node["inputs"] = bound
    path = folder / NODE_REQUEST
    temp = path.with_suffix(".tmp")
    temp.write_text(json.dumps({**request, "step": step.name, "type": step.type, "node": node, "base_dir": str(step.base_dir)},
                               indent=2, sort_keys=True, default=str) + "\n")
    temp.replace(path)
    return path


def _bound_input(source, output_folder):
    if isinstance(source, Value):
        return source.value
    if isinstance(source, Upstream):
        return {"type": "uri_folder", "path": str(output_folder(source.step, source.output))}
    return {"type": source.type, "path": source.path}
