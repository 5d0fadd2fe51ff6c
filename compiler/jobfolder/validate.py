"""Job folder stage: `capc validate JOB.yml` - a hand-written Azure ML job checked with azure-ai-ml's own loader
and the rules Azure enforces only when the job is submitted, every problem as FILE:LINE:COL. A component file
(command, pipeline, parallel or Spark; capc.jobfolder.kinds tells which) is checked with azure-ai-ml's component
loader, as `az ml component create` would.

azure-ai-ml reports schema problems as one nested mapping (key path -> messages; a field that may take several
shapes lists one mapping per shape); each message is placed at the key it names, or at the nearest key the file
has when it names a missing one.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

from capc.errors import CapcError, SpecInvalid, SpecProblem
from capc.jobfolder.folder import SWEEP_LIMIT_DEFAULTS, sweep_limit
from capc.jobfolder.job_yaml import JobYaml, quiet_sdk_experimental_notices
from capc.jobfolder.kinds import FileKind, schema_name

# Keys azure-ai-ml puts in its error paths that are not keys of the file.
LOADER_ONLY_KEYS = ("value", "_schema")


def validate_job_yamls(paths: list[Path]) -> tuple[list[SpecProblem], list[str], list[str]]:
    """`capc validate` of job YAMLs: (every problem of every file, an "ok" line per file without one, warnings:
    what Azure accepts but likely did not mean, such as a key written twice)."""
    from capc.jobfolder.job_yaml import load_job_yaml

    problems, ok, warnings = [], [], []
    for path in paths:
        try:
            job = load_job_yaml(path)
        except SpecInvalid as exc:
            problems += exc.problems
            continue
        found = validate_job_yaml(job)
        problems += found
        warnings += [f"{path}: {note}" for note in job.duplicate_notes]
        if not found:
            what = {FileKind.OTHER_AZURE: f"Azure ML {schema_name(job.data)} file", FileKind.CONDA_FILE: "conda file"}.get(job.kind, f"Azure ML {job.kind.value}")
            ok.append(f"{path}: ok ({what})")
    return problems, ok, warnings


def validate_job_yaml(job: JobYaml) -> list[SpecProblem]:
    """Every problem of the job file: the loader's first, then the service rules (only when the loader accepts it)."""
    problems = loader_problems(job)
    if not problems:
        problems = service_rule_problems(job)
    return sorted(set(problems))


def loader_problems(job: JobYaml) -> list[SpecProblem]:
    """azure-ai-ml's loader for what the file is: load_component for a component, load_job for a job, the asset's
    own loader (load_compute, load_environment, ...) for the other files `capc build` writes."""
    from azure.ai.ml import load_component, load_job
    from marshmallow import ValidationError

    quiet_sdk_experimental_notices()
    if job.kind is FileKind.CONDA_FILE:
        return _conda_problems(job)
    if job.kind.is_job or job.kind.is_component:
        load = load_component if job.kind.is_component else load_job
    else:
        load = _asset_loader(job)
        if load is None:
            return [SpecProblem(str(job.path), 1, 1, "", f"an {job.kind.value} file ({job.data.get('$schema')}) that capc has no "
                                "azure-ai-ml loader for: it validates jobs, components, and compute, environment, data, "
                                "model, endpoint, deployment and schedule files")]
    overrides = [{key: value} for key, value in job.overrides]
    try:
        load(source=job.path, params_override=overrides)
    except ValidationError as exc:
        return [_problem(job, path, message) for path, message in _loader_messages(exc)]
    except Exception as exc:  # azure-ai-ml's own ValidationException and friends: one message, no key path
        message = getattr(exc, "message", None) or str(exc)
        return [SpecProblem(str(job.path), 1, 1, "", f"azure-ai-ml cannot load it: {message.strip()}")]
    return []


def _conda_problems(job: JobYaml) -> list[SpecProblem]:
    """A conda file's shape, as conda reads it: dependencies are strings, and at most one `pip:` list of strings."""
    problems = []
    for index, entry in enumerate(job.data["dependencies"]):
        pip = entry.get("pip") if isinstance(entry, Mapping) else None
        if isinstance(entry, str) or isinstance(pip, list) and all(isinstance(line, str) for line in pip):
            continue
        problems.append(_at(job, ("dependencies",), f"dependencies[{index}]", "a dependency is a package spec (`numpy=1.26`) or `pip:` with a list of requirements"))
    return problems


# azure-ai-ml's loader for each asset file by the name in its $schema (the files `capc build` writes beside the jobs).
ASSET_LOADERS = {
    "amlcompute": "load_compute", "computeinstance": "load_compute", "environment": "load_environment", "data": "load_data",
    "model": "load_model", "managedonlineendpoint": "load_online_endpoint", "kubernetesonlineendpoint": "load_online_endpoint",
    "managedonlinedeployment": "load_online_deployment", "kubernetesonlinedeployment": "load_online_deployment",
    "batchendpoint": "load_batch_endpoint", "batchdeployment": "load_batch_deployment", "schedule": "load_schedule",
}


def _asset_loader(job: JobYaml):
    from azure.ai.ml.entities import _load_functions  # every load_* the package exports, and load_schedule, which it does not

    name = ASSET_LOADERS.get(schema_name(job.data) or "")
    return getattr(_load_functions, name, None) if name else None


def _loader_messages(exc) -> list[tuple[tuple, str]]:
    """(key path, message) pairs out of azure-ai-ml's ValidationError (its text holds the mapping as JSON)."""
    found: list[tuple[tuple, str]] = []
    for entry in exc.messages if isinstance(exc.messages, list) else [exc.messages]:
        _walk(_unwrapped(_decoded(entry)), (), found)
    return found


def _decoded(entry):
    """The JSON mapping inside one of the loader's message strings (the string itself when it holds none)."""
    if not isinstance(entry, str):
        return entry
    start = entry.find("{")
    try:
        return json.JSONDecoder().raw_decode(entry[start:])[0] if start >= 0 else entry
    except ValueError:
        return entry


def _unwrapped(tree):
    """A union schema's wrapper ({"result": "Failed", "errors": [{"path", "message"}]}, e.g. a command file
    without `type:`) opened to the messages of the schema it tried, each under its path."""
    if not (isinstance(tree, Mapping) and tree.get("result") == "Failed" and isinstance(tree.get("errors"), list)):
        return tree
    opened: dict = {}
    for error in tree["errors"]:
        if not isinstance(error, Mapping):
            continue
        inner = _unwrapped(_decoded(str(error.get("message", ""))))
        where = str(error.get("path") or "*")
        if where in ("*", ""):
            opened.update(inner if isinstance(inner, Mapping) else {"": inner})
        else:
            opened[where] = inner
    return opened


def _walk(tree, path: tuple, found: list) -> None:
    if isinstance(tree, str):
        found.append((path, tree))
    elif isinstance(tree, Mapping):
        for key, value in tree.items():
            _walk(value, path + (str(key),), found)
    elif isinstance(tree, list):
        if tree and all(isinstance(item, Mapping) for item in tree):
            _walk(_likeliest_shape(tree), path, found)  # one mapping per shape the field may take
        else:
            for item in tree:
                _walk(item, path, found)


def _likeliest_shape(shapes: list[Mapping]) -> Mapping:
    """Of a union field's per-shape errors, the shape the user most likely meant: its `type` matched, fewest errors."""

    def score(shape: Mapping) -> tuple[int, int]:
        type_wrong = any("type" == key for key in shape)
        return (1 if type_wrong else 0, _count(shape))

    return min(shapes, key=score)


def _count(tree) -> int:
    if isinstance(tree, Mapping):
        return sum(_count(v) for v in tree.values())
    if isinstance(tree, list):
        return sum(_count(v) for v in tree) or 1
    return 1


def _problem(job: JobYaml, path: tuple, message: str) -> SpecProblem:
    """A message at the deepest key of `path` the file has (a missing key points at its parent)."""
    data, keys = job.data, []
    for key in path:
        if key in LOADER_ONLY_KEYS:
            continue
        if isinstance(data, Mapping) and key in data:
            keys.append(key)
            data = data[key]
        else:
            shown = ".".join(keys + [key])
            return _at(job, tuple(keys), shown, message)
    return _at(job, tuple(keys), ".".join(keys), message)


def _at(job: JobYaml, keys: tuple, shown: str, message: str, hint: str | None = None) -> SpecProblem:
    mark = job.loaded.mark_of(keys, key=True)
    if isinstance(mark, tuple):  # a --set override: it points at the override, not the file
        return SpecProblem(mark[0], mark[1], 1, shown, message, hint)
    return SpecProblem(str(job.path), mark.line, mark.column, shown, message, hint)


# ---------------------------------------------------------------- service rules


# The rules of capc's service-rule table that concern a sweep job alone, and where their key paths lie in a job YAML.
SWEEP_RULES = ("sampling_accepts_distributions", "bayesian_takes_no_early_termination", "sweep_limits_within_maxima")
SPEC_TO_JOB_PATH = {("sweep", "search_space"): ("search_space",), ("sweep", "early_termination"): ("early_termination",), ("sweep", "limits"): ("limits",)}


def service_rule_problems(job: JobYaml) -> list[SpecProblem]:
    """What Azure refuses only at submit time: capc's service-rule table (capc.spec.service_rules) on the job's
    sweep, then the early-termination settings as the local engine reads them."""
    if job.type == "pipeline":
        return _pipeline_rule_problems(job)
    if job.kind is not FileKind.SWEEP_JOB:
        return []
    from capc.policies import policy_from_mapping
    from capc.spec.search_space import algorithm_of
    from capc.spec.service_rules import ERROR, SERVICE_RULES

    data, problems = job.data, []
    try:
        algorithm, _ = algorithm_of(data.get("sampling_algorithm", "random"))
    except CapcError as exc:
        return [_at(job, ("sampling_algorithm",), "sampling_algorithm", exc.message, exc.hint)]
    limits = data.get("limits") or {}
    # The job's sweep in the shape the table reads (a spec's `sweep` section).
    view = {"sweep": {
        "sampling": algorithm, "search_space": dict(data.get("search_space") or {}), "early_termination": data.get("early_termination"),
        "limits": {key: sweep_limit(limits, key) for key in SWEEP_LIMIT_DEFAULTS},
    }}
    for rule in SERVICE_RULES:
        if rule.name not in SWEEP_RULES or rule.severity != ERROR:
            continue
        for finding in rule.check(view):
            path = SPEC_TO_JOB_PATH[finding.path[:2]] + tuple(finding.path[2:])
            problems.append(_at(job, path, ".".join(map(str, path)), finding.message, finding.hint))
    try:
        policy_from_mapping(data.get("early_termination"))
    except CapcError as exc:
        problems.append(_at(job, ("early_termination",), "early_termination", exc.message, exc.hint))
    return problems


PIPELINE_RULES = ("pipeline_sweep_takes_no_seed",)  # rules that read a pipeline job mapping as it is


def _pipeline_rule_problems(job: JobYaml) -> list[SpecProblem]:
    from capc.spec.service_rules import SERVICE_RULES

    return [
        _at(job, finding.path, ".".join(map(str, finding.path)), finding.message, finding.hint)
        for rule in SERVICE_RULES if rule.name in PIPELINE_RULES
        for finding in rule.check(job.data)
    ]
