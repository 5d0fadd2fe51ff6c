"""Backend, local: what each pipeline step runs here - its command line, working folder and environment.

- a command step: its `command` with `$[[...]]` optional parts kept only when every input they name is given (as
  Azure does), `${{inputs.X}}` / `${{outputs.X}}` bound to paths and values, run in a snapshot of its `code`
  (hard links; an empty folder without `code`), with its `environment_variables` and MLflow attached to the step's
  own run (MLFLOW_RUN_ID), as Azure ML starts a step. It starts through the trial launcher
  (capc.local.launch), the same one a sweep's trials use: `python SCRIPT` / `python -m MODULE` forked from the
  preloaded server, anything else spawned.
- an engine step (sweep, AutoML): `python -m capc.local.pipeline_step`, a process of its own, so steps run side by
  side under the core budget (capc.local.cores.pin_steps). capc's compiled pipeline runs its job folder's
  automl_job.yml / sweep_job.yml there (the same settings as its nodes, which the tests keep equal); a
  hand-written node runs from the node itself, written to a request file.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import sys
from pathlib import Path

from capc.errors import CapcError
from capc.jobfolder.pipeline_graph import Data, GraphStep, Upstream, Value
from capc.local import bindings
from capc.data_location import is_remote
from capc.local.launch import under_this_python
from capc.local.samplers import format_value
from capc.state import registry

OPTIONAL_PART = re.compile(r"\$\[\[(.*?)\]\]", re.S)
INPUT_REFERENCE = re.compile(r"\$\{\{\s*inputs\.([\w-]+)\s*\}\}")
SNAPSHOT_IGNORE = ("outputs", bindings.NAMED_OUTPUTS, "__pycache__", ".ipynb_checkpoints", "mlruns")
NODE_REQUEST = "node.json"  # what a hand-written engine step's process reads


def with_optional_parts(command: str, given: set[str]) -> str:
    """Azure's `$[[ --flag ${{inputs.x}} ]]`: the part, without its brackets, when every input in it is given; else nothing."""

    def keep(match: re.Match) -> str:
        return match.group(1) if set(INPUT_REFERENCE.findall(match.group(1))) <= given else ""

    return OPTIONAL_PART.sub(keep, command)


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


def command_words(step: GraphStep, inputs: Mapping[str, str], outputs: Mapping[str, str]) -> list[str]:
    """The step's command, bound: the argv it runs (`python` is this interpreter)."""
    text = with_optional_parts(str(step.node.get("command") or ""), set(inputs))
    if not text.strip():
        raise CapcError(f"pipeline step `{step.name}` has no `command`.")
    try:
        words = shlex.split(text)
    except ValueError as exc:
        raise CapcError(f"pipeline step `{step.name}`: its command cannot be split into words: {exc}.") from None
    values = {"inputs": dict(inputs), "outputs": dict(outputs)}
    missing = [f"{s}.{n}" for s, n in bindings.command_references(words) if n not in values.get(s, {})]
    if missing:
        raise CapcError(
            f"pipeline step `{step.name}`'s command uses {', '.join('${{' + m + '}}' for m in missing)}, which the step "
            "does not give (an optional input belongs inside $[[...]]).",
        )
    return under_this_python(bindings.bind(words, values))


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
    source = (step.base_dir / str(code).removeprefix("file:")).resolve()
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


def step_environment(step: GraphStep, base: Mapping[str, str]) -> dict:
    """The step's environment_variables over capc's environment (and MLflow's, which `base` carries)."""
    variables = {str(k): format_value(v) for k, v in (step.node.get("environment_variables") or {}).items()}
    return {**base, **variables}


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
    node = {k: v for k, v in step.node.items() if k not in ("declared_inputs",)}
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
