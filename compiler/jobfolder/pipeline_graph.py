"""Job folder stage: a pipeline job's graph - its steps in dependency order, each input bound to where its value
comes from. One reading for every pipeline the local engine runs: a hand-written `type: pipeline` job and the
pipeline_job.yml capc compiles.

Steps are a pipeline's `jobs`; a step whose `component` is a pipeline component (a file, or inline) is expanded
into its own steps, named `outer.inner`, so the runner sees one flat graph. Bindings are Azure's expressions
(https://learn.microsoft.com/azure/machine-learning/reference-yaml-core-syntax#binding-inputs-and-outputs-between-steps-in-a-pipeline-job):
`${{parent.inputs.X}}` (the enclosing pipeline's input), `${{parent.jobs.S.outputs.Y}}` (a sibling step's output,
also as `path:` of an input mapping) and, on a step's outputs, `${{parent.outputs.X}}` (the enclosing pipeline's
output). Relative paths (components, code, data, a sweep's trial) are read from the YAML file that writes them.
Components come from files (`component: ./train.yml`, `file:./train.yml`) or inline; a registered one
(`azureml:NAME:VERSION`, `azureml://registries/...`) is refused, naming it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from capc.data_location import is_remote, output_file_name
from capc.errors import CapcError
from capc.jobfolder.job_yaml import code_path

_EXPR = r"^\$\{\{\s*%s\s*\}\}$"
PARENT_INPUT = re.compile(_EXPR % r"parent\.inputs\.([\w-]+)")
PARENT_OUTPUT = re.compile(_EXPR % r"parent\.outputs\.([\w-]+)")
PARENT_JOB_OUTPUT = re.compile(_EXPR % r"parent\.jobs\.([\w-]+)\.outputs\.([\w-]+)")
PLACEHOLDER_INPUT = re.compile(r"\$\{\{\s*inputs\.([\w-]+)\s*\}\}")
SIBLING_REFERENCE = re.compile(r"\$\{\{\s*parent\.jobs\.([\w-]+)\.outputs\.")
STEP_TYPES = ("command", "sweep", "automl", "pipeline")  # what the local engine runs as a pipeline step
AUTOML_DATA = ("training_data", "validation_data", "test_data")  # an AutoML node's inputs, keys of the node itself
DATA_TYPES = ("uri_file", "uri_folder", "mltable", "mlflow_model", "custom_model", "triton_model")
HONOURED_SETTINGS = ("default_compute", "continue_on_step_failure")  # the rest of `settings` is named in a note
COMMAND_KEYS = ("command", "code", "environment", "environment_variables", "distribution", "resources", "limits")


@dataclass(frozen=True)
class Value:
    """A literal input: a number, integer, string or boolean."""

    value: object


@dataclass(frozen=True)
class Data:
    """A data input: a path on this machine (absolute) or, as written, a URI on Azure or the web."""

    type: str
    path: str


@dataclass(frozen=True)
class Upstream:
    """Another step's output (the step's flat name)."""

    step: str
    output: str


Source = Value | Data | Upstream


@dataclass
class GraphStep:
    name: str  # `outer.inner` for a step of a pipeline component
    type: str  # command | sweep | automl
    node: dict  # the node, merged with its command component (command, code, environment, declared inputs)
    base_dir: Path  # where the node's relative paths (code, trial) are read from
    inputs: dict[str, Source] = field(default_factory=dict)  # an optional input left out is absent
    outputs: dict[str, str | None] = field(default_factory=dict)  # name -> a folder the YAML chose, or None (a run folder)
    files: dict[str, str] = field(default_factory=dict)  # a uri_file output -> its file's name (the output is that file)
    needs: list[str] = field(default_factory=list)


@dataclass
class PipelineGraph:
    steps: list[GraphStep]  # in dependency order
    settings: dict
    notes: list[str] = field(default_factory=list)

    def step(self, name: str) -> GraphStep:
        return next(s for s in self.steps if s.name == name)


def read_pipeline(job: Mapping, job_dir: Path, where: str = "the pipeline") -> PipelineGraph:
    """The graph of a loaded pipeline job (`job_dir`: its file's folder); CapcError for what cannot run here."""
    settings = dict(job.get("settings") or {})
    reader = _Reader(where)
    scope_inputs = {name: _source(value, Path(job_dir), f"{where}: input {name}") for name, value in (job.get("inputs") or {}).items()}
    outputs = {name: _output_folder(value, Path(job_dir)) for name, value in (job.get("outputs") or {}).items()}
    for name, value in (job.get("outputs") or {}).items():
        path = value.get("path") if isinstance(value, Mapping) else None
        if path and outputs[name] is None:
            reader.notes.append(f"output {name} goes to {path} on Azure: here to a folder of the run (the table's outputs say where)")
    files = {name: f for name, value in (job.get("outputs") or {}).items() if (f := output_file_name(name, value))}
    reader.expand(job.get("jobs") or {}, Path(job_dir), "", scope_inputs, outputs, {}, files)
    for key in sorted(set(settings) - set(HONOURED_SETTINGS)):
        reader.notes.append(f"settings.{key} is Azure's: not applied locally")
    if settings.get("default_compute"):
        reader.notes.append(f"settings.default_compute ({settings['default_compute']}) is Azure's cluster: every step runs on this machine")
    return PipelineGraph(_in_dependency_order(reader.steps), settings, reader.notes)


class _Reader:
    def __init__(self, where: str):
        self.where = where
        self.steps: list[GraphStep] = []
        self.notes: list[str] = []

    def expand(self, jobs: Mapping, base_dir: Path, prefix: str, scope_inputs: dict, scope_outputs: dict, exported: dict,
               scope_files: dict | None = None) -> None:
        """Add the steps of one pipeline (its `jobs`) to the graph. `scope_inputs`: what `${{parent.inputs.X}}`
        means here (None: an optional input left out); `scope_outputs`: the folder (or None) each `${{parent.outputs.X}}` names; `exported`, filled
        here: each of this pipeline's outputs -> the step output behind it; `scope_files`: its uri_file outputs' file names."""
        scope_files = scope_files or {}
        if not isinstance(jobs, Mapping) or not jobs:
            raise CapcError(f"{self.where}{' (' + prefix.rstrip('.') + ')' if prefix else ''} has no `jobs`.")
        node_outputs: dict[str, dict[str, Upstream]] = {}  # step -> its outputs, once expanded
        for name in _siblings_in_order(jobs, self.where, prefix):
            node = jobs[name]
            if not isinstance(node, Mapping):
                raise CapcError(f"{self.where}: step `{prefix}{name}` is not a mapping of keys to values.")
            node, node_dir = self._with_component(dict(node), base_dir, prefix + name)
            kind = str(node.get("type", "command"))
            where = f"{self.where}: step `{prefix}{name}`"
            if kind not in STEP_TYPES:
                raise CapcError(f"{where} is a `{kind}` job; the local engine runs command, sweep, AutoML and pipeline steps.",
                                "submit the pipeline to Azure with `az ml job create -f`")
            if kind == "sweep":
                node = _with_inline_trial(node, node_dir, where)
            bound = {key: self._bind(value, base_dir, prefix, scope_inputs, node_outputs, f"{where}: input {key}")
                     for key, value in _given_inputs(node, kind).items()}
            inputs = {**_declared_defaults(node), **{k: v for k, v in bound.items() if v is not None}}
            if kind == "pipeline":
                inner_outputs = {o: scope_outputs.get(m.group(1)) if (m := PARENT_OUTPUT.match(str(v))) else _output_folder(v, base_dir)
                                 for o, v in (node.get("outputs") or {}).items()}
                inner_exported: dict[str, Upstream] = {}
                declared = {k: None for k in node.get("declared_inputs") or {}}
                inner_files = {o: f for o, v in (node.get("outputs") or {}).items() if (f := _file_of(o, v, node, scope_files))}
                self.expand(node.get("jobs") or {}, node_dir, f"{prefix}{name}.", {**declared, **inputs}, inner_outputs, inner_exported,
                            inner_files)
                node_outputs[name] = inner_exported
                for o, value in (node.get("outputs") or {}).items():
                    if (m := PARENT_OUTPUT.match(str(value))) and o in inner_exported:
                        exported[m.group(1)] = inner_exported[o]
                continue
            if node.get("compute"):
                self.notes.append(f"step {prefix}{name}: compute {node['compute']} is Azure's: it runs on this machine")
            if node.get("code"):
                code_path(node["code"], where)  # the preview `code: {local_path: ...}`: refused before any step runs
            step = GraphStep(prefix + name, kind, node, node_dir, inputs)
            for output, value in _declared_outputs(node).items():
                match = PARENT_OUTPUT.match(str(value)) if isinstance(value, str) else None
                step.outputs[output] = scope_outputs.get(match.group(1)) if match else _output_folder(value, base_dir)
                if file_name := _file_of(output, value, node, scope_files):
                    step.files[output] = file_name
                if match:
                    exported[match.group(1)] = Upstream(step.name, output)
            node_outputs[name] = {o: Upstream(step.name, o) for o in step.outputs}
            step.needs = list(dict.fromkeys(s.step for s in inputs.values() if isinstance(s, Upstream)))
            self.steps.append(step)

    def _with_component(self, node: dict, base_dir: Path, name: str) -> tuple[dict, Path]:
        """The node with its component read in (a file, or inline), and the folder its relative paths start from."""
        component = node.get("component")
        if component is None:
            return node, base_dir
        if isinstance(component, str):
            text = component.strip()
            if text.startswith("azureml:"):
                raise CapcError(
                    f"{self.where}: step `{name}` uses the registered component `{text}`; the local engine runs components "
                    "from files only (it never reaches a workspace or registry).",
                    "save the component's YAML beside the pipeline (`az ml component show --name NAME --version VERSION` prints "
                    "it) and write `component: ./FILE.yml`",
                )
            path = (base_dir / text.removeprefix("file:")).resolve()
            try:
                loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
            except (OSError, yaml.YAMLError) as exc:
                raise CapcError(f"{self.where}: step `{name}`: cannot read the component {text} ({path}): {exc}") from None
            component, component_dir = loaded, path.parent
        else:
            component_dir = base_dir
        if not isinstance(component, Mapping):
            raise CapcError(f"{self.where}: step `{name}`: the component is not a mapping of keys to values.")
        kind = str(component.get("type", "command"))
        merged = {k: v for k, v in node.items() if k != "component"}
        merged["type"] = kind
        merged["declared_outputs"] = component.get("outputs") or {}  # their types: a uri_file output is a file
        if kind == "pipeline":
            merged.update(jobs=component.get("jobs"), declared_inputs=component.get("inputs") or {})
            merged["outputs"] = {**{o: None for o in component.get("outputs") or {}}, **(node.get("outputs") or {})}
            return merged, component_dir
        for key in COMMAND_KEYS:
            if key in component and key not in node:
                merged[key] = component[key]
        if merged.get("code") and "code" not in node:  # a remote code (git+, azureml:) is refused where the step starts
            code = code_path(merged["code"], f"{self.where}: step `{name}`'s component")
            merged["code"] = os.path.relpath(component_dir / code, base_dir) if _is_local(code) else code
        if "environment" in component and "environment" not in node:
            merged["environment"] = environment_read_from(component["environment"], component_dir)
        merged["declared_inputs"] = component.get("inputs") or {}
        merged["outputs"] = {**{o: None for o in component.get("outputs") or {}}, **(node.get("outputs") or {})}
        return merged, base_dir

    def _bind(self, value, base_dir: Path, prefix: str, scope_inputs: dict, node_outputs: dict, where: str) -> Source | None:
        """Where one input's value comes from; None for an optional input its pipeline leaves out."""
        text = value.get("path") if isinstance(value, Mapping) and isinstance(value.get("path"), str) else value
        if isinstance(text, str):
            if match := PARENT_INPUT.match(text):
                if match.group(1) not in scope_inputs:
                    raise CapcError(f"{where} binds ${{{{parent.inputs.{match.group(1)}}}}}, which its pipeline does not declare.",
                                    f"declare it under the pipeline's inputs: ({', '.join(sorted(scope_inputs)) or 'none yet'})")
                return scope_inputs[match.group(1)]
            if match := PARENT_JOB_OUTPUT.match(text):
                step, output = match.groups()
                if step not in node_outputs:
                    raise CapcError(f"{where} reads the outputs of `{step}`, which is not a step of its pipeline.")
                if output not in node_outputs[step]:
                    raise CapcError(f"{where} reads output `{output}` of `{prefix}{step}`, which declares no such output.")
                return node_outputs[step][output]
        return _source(value, base_dir, where)


def _with_inline_trial(node: dict, base_dir: Path, where: str) -> dict:
    """A sweep node with its trial inline: a component file read in (its code made absolute), `${{inputs.P}}` of a
    searched parameter P written `${{search_space.P}}` (a pipeline's sweep binds its search space to the trial's
    inputs), the trial's other inputs with defaults and its outputs (a sweep's outputs are its best trial's) declared."""
    trial = node.get("trial") or {}
    if isinstance(trial, str):
        if trial.startswith("azureml:"):
            raise CapcError(f"{where}: the sweep's trial is the registered component `{trial}`; the local engine runs components "
                            "from files only.", "save the component's YAML beside the pipeline and write `trial: ./FILE.yml`")
        path = (base_dir / trial.removeprefix("file:")).resolve()
        try:
            trial = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise CapcError(f"{where}: cannot read the sweep's trial component {node['trial']} ({path}): {exc}") from None
        if isinstance(trial, Mapping) and trial.get("code"):
            trial = {**trial, "code": str((path.parent / code_path(trial["code"], f"{where}: the sweep's trial")).resolve())}
        if isinstance(trial, Mapping) and trial.get("environment"):
            trial = {**trial, "environment": environment_read_from(trial["environment"], path.parent)}
    if not isinstance(trial, Mapping):
        raise CapcError(f"{where}: the sweep's trial must be a command (command, code, environment) or a component file.")
    searched = set(node.get("search_space") or {})
    command = PLACEHOLDER_INPUT.sub(lambda m: "${{search_space.%s}}" % m.group(1) if m.group(1) in searched else m.group(0),
                                    str(trial.get("command") or ""))
    declared = {k: v for k, v in (trial.get("inputs") or {}).items() if k not in searched}
    outputs = {**{o: None for o in trial.get("outputs") or {}}, **(node.get("outputs") or {})}
    return {**node, "trial": {**trial, "command": command}, "declared_inputs": declared, "outputs": outputs}


def environment_read_from(environment, folder: Path):
    """An environment written in a file under `folder`, its local file paths (an environment file, a conda file) made
    absolute, so the step that takes it from a component reads them where the component's file is."""
    if isinstance(environment, str):
        text = environment.removeprefix("file:")
        if text.lower().endswith((".yml", ".yaml")) and not text.startswith("azureml") and _is_local(text):
            return str((folder / text).resolve())
        return environment
    if isinstance(environment, Mapping) and isinstance(environment.get("conda_file"), str) and _is_local(environment["conda_file"]):
        return {**environment, "conda_file": str((folder / environment["conda_file"].removeprefix("file:")).resolve())}
    return environment


def _file_of(name: str, value, node: Mapping, scope_files: dict) -> str | None:
    """The file name of a uri_file output (None: a folder): as the step writes it, else its enclosing pipeline's
    output it binds, else as its component declares it."""
    match = PARENT_OUTPUT.match(value) if isinstance(value, str) else None
    if match:
        return scope_files.get(match.group(1))
    return output_file_name(name, value) or output_file_name(name, (node.get("declared_outputs") or {}).get(name))


def _is_local(path: str) -> bool:
    return not is_remote(path)


def _source(value, base_dir: Path, where: str) -> Source | None:
    """A literal or data input as written in a YAML file under `base_dir`."""
    if isinstance(value, Mapping):
        if "path" in value:
            kind = str(value.get("type", "uri_folder"))
            path = str(value["path"])
            if _is_local(path):
                path = str((base_dir / path.removeprefix("file://").removeprefix("file:")).resolve())
            return Data(kind, path)
        for key in ("value", "default"):
            if key in value:
                return Value(value[key])
        if value.get("optional") or str(value.get("type", "")) in DATA_TYPES:
            return None
        raise CapcError(f"{where} has neither a path nor a value.")
    if value is None:
        return None
    return Value(value)


def _output_folder(value, base_dir: Path) -> str | None:
    """The folder an output names on this machine; None for Azure's default path or a datastore's (a run folder)."""
    path = value.get("path") if isinstance(value, Mapping) else None
    if not path or not _is_local(str(path)) or "${{" in str(path):
        return None
    return str((base_dir / str(path).removeprefix("file://").removeprefix("file:")).resolve())


def _given_inputs(node: Mapping, kind: str) -> dict:
    if kind == "automl":
        return {key: node[key] for key in AUTOML_DATA if node.get(key) is not None}
    return dict(node.get("inputs") or {})


def _declared_defaults(node: Mapping) -> dict[str, Source]:
    """A component's inputs with a default, as the step's values unless the step gives its own."""
    out = {}
    for name, declared in (node.get("declared_inputs") or {}).items():
        if isinstance(declared, Mapping) and "default" in declared:
            out[name] = Value(declared["default"])
    return out


def _declared_outputs(node: Mapping) -> dict:
    if str(node.get("type")) == "automl":
        return {"best_model": None, **(node.get("outputs") or {})}
    return dict(node.get("outputs") or {})


def _siblings_in_order(jobs: Mapping, where: str, prefix: str) -> list[str]:
    """The steps of one pipeline, each after the siblings whose outputs it reads (so a pipeline component's
    outputs are known before a sibling binds them)."""
    needs = {}
    for name, node in jobs.items():
        found = set(SIBLING_REFERENCE.findall(yaml.safe_dump(_inputs_only(node), default_flow_style=True))) if isinstance(node, Mapping) else set()
        unknown = sorted(found - set(jobs))
        if unknown:
            raise CapcError(f"{where}: step `{prefix}{name}` reads the outputs of `{unknown[0]}`, which is not a step of its pipeline.")
        needs[name] = found
    return _topological(needs, where)


def _inputs_only(node: Mapping) -> dict:
    return {k: node.get(k) for k in ("inputs", *AUTOML_DATA) if node.get(k) is not None}


def _topological(needs: dict[str, set], where: str) -> list[str]:
    ordered: list[str] = []
    while len(ordered) < len(needs):
        ready = [n for n in needs if n not in ordered and needs[n] <= set(ordered)]
        if not ready:
            stuck = sorted(set(needs) - set(ordered))
            raise CapcError(f"{where}: the pipeline's steps depend on each other in a cycle: {', '.join(stuck)}.")
        ordered.extend(ready)
    return ordered


def _in_dependency_order(steps: list[GraphStep]) -> list[GraphStep]:
    by_name = {s.name: s for s in steps}
    order = _topological({s.name: set(s.needs) for s in steps}, "the pipeline")
    return [by_name[n] for n in order]
