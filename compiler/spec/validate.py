"""Stage 2, validate: raw mapping -> Spec (defaults filled), or every problem at once as SpecInvalid.

First the JSON Schema (shapes, types, enums, unknown keys), then semantic checks that need more than one field
or a look at the data: each check is a small function registered in SEMANTIC_CHECKS. The last one runs Azure's
submit-time rules (capc.spec.service_rules): their errors join the problems, their warnings ride on Spec.warnings.
"""

from __future__ import annotations

import copy
import csv
import hashlib
import json
import os
from collections.abc import Callable, Iterable
import re
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path

from capc import azure_names, serving_cost
from capc.data_location import ASSET_PREFIX, is_remote
from capc.errors import SpecInvalid
from capc.goal import Goal
from capc.families import FAMILIES
from capc.image_files import class_images
from capc.spec import domains
from capc.spec import limits as limit_rules
from capc.spec.forecasting_checks import FORECASTING_CHECKS
from capc.spec.conditional import family_of_parameter, is_conditional
from capc.spec.hints import did_you_mean
from capc.spec.loader import LoadedSpec, load_spec_file
from capc.spec.overrides import apply_overrides
from capc.spec.schema_errors import explain_schema_errors, problem_at
from capc.spec.search_space import DISTRIBUTIONS, POLICY_KEYS, SAMPLING_ALLOWS, SearchSpaceError, normalise, parse_compact
from capc.spec.service_rules import ERROR, SERVICE_RULES



@dataclass(frozen=True)
class Spec:
    """A validated spec: `data` holds every key with the schema's defaults filled in."""

    path: Path
    data: dict
    sha256: str
    overrides: tuple = field(default=())  # ("key.path", value) pairs from --set, for the record
    warnings: tuple = field(default=())  # SpecProblems of service rules Azure would not refuse (capc.spec.service_rules)

    @property
    def name(self) -> str:
        return self.data["name"]

    @property
    def task(self) -> str:
        return self.data["task"]

    @property
    def metric(self) -> str:
        return self.data["metric"]

    @property
    def goal(self) -> Goal:
        return Goal.of(self.task, self.metric)


@cache
def schema() -> dict:
    """schema.json with the enums that name capc's own tables filled in from those tables."""
    loaded = json.loads(resources.files("capc.spec").joinpath("schema.json").read_text(encoding="utf-8"))
    for path, values in TABLE_ENUMS.items():
        node = loaded
        for key in path:
            node = node[key]
        rest = dict(node)
        node.clear()
        node.update({"enum": list(values), **rest})  # enum first, as the key reads in `capc schema`
    return loaded


def schema_default(key: str):
    """The schema's default of a dotted key (`sweep.limits.max_total_trials`): for readers of job files that may
    lack a value the spec always has, so the default is still written once."""
    node = schema()
    for part in key.split("."):
        node = node["properties"][part]
        if "$ref" in node:
            node = schema()["$defs"][node["$ref"].rsplit("/", 1)[-1]]
    return node["default"]


# Schema keys whose allowed values are the keys of a Python table: the table is the one source, so adding a task
# (with its metrics), a trial family, a distribution, a sampling algorithm or an early-termination policy is one
# edit there. Paths are into schema.json.
TABLE_ENUMS: dict[tuple, Iterable[str]] = {
    ("properties", "task"): azure_names.AUTOML_METRICS,
    ("properties", "sweep", "properties", "model"): FAMILIES,
    ("properties", "sweep", "properties", "sampling"): SAMPLING_ALLOWS,
    ("properties", "automl", "properties", "image", "properties", "sampling"): SAMPLING_ALLOWS,
    ("$defs", "distribution", "oneOf", 1, "properties", "type"): DISTRIBUTIONS,
    ("$defs", "early_termination", "properties", "type"): POLICY_KEYS,
}


def load_spec(path: Path | str, overrides: list[str] | None = None) -> Spec:
    """Load, apply `--set key.path=value` overrides, validate; raises SpecInvalid with every problem."""
    loaded = load_spec_file(Path(path))
    applied = apply_overrides(loaded, overrides or [])
    schema_problems = list(explain_schema_errors(loaded, schema()))
    data = copy.deepcopy(loaded.data)
    fill_defaults(data, schema(), schema())
    if isinstance(data.get("dataset"), dict) and "cross_validations" in data["dataset"]:
        data["dataset"].pop("validation_fraction", None)
    context = CheckContext(loaded, data)
    for check in SEMANTIC_CHECKS:
        try:
            check(context)
        except (KeyError, TypeError, AttributeError, ValueError):
            # Only reachable when the shape is already wrong: the schema problems say why.
            if not schema_problems:
                raise
    problems = schema_problems + [p for p in context.problems if p not in schema_problems]
    if problems:
        raise SpecInvalid(problems)
    _to_mapping_form(data)
    digest = hashlib.sha256(loaded.text)
    for key, value in applied:
        digest.update(f"\n--set {key}={json.dumps(value, sort_keys=True)}".encode())
    return Spec(path=Path(path), data=data, sha256=digest.hexdigest(), overrides=tuple(applied), warnings=tuple(sorted(set(context.warnings))))


def _to_mapping_form(data: dict) -> None:
    """The one rewrite of a valid spec: every distribution in Azure's mapping form, capc's form from here on."""
    sweep = data.get("sweep")
    if not sweep:
        return
    spaces = [entry["search_space"] for entry in sweep["families"].values()] if is_conditional(sweep) else [sweep["search_space"]]
    for space in spaces:
        for name, raw in space.items():
            space[name] = parse_compact(raw) if isinstance(raw, str) else normalise(raw)


# ---------------------------------------------------------------- defaults


def fill_defaults(data: dict, node: dict, root: dict) -> None:
    """Fill every `default` the schema declares, recursing into sections that are present or defaulted."""
    if "$ref" in node:
        node = root["$defs"][node["$ref"].rsplit("/", 1)[-1]]
    for key, sub in node.get("properties", {}).items():
        resolved = root["$defs"][sub["$ref"].rsplit("/", 1)[-1]] if "$ref" in sub else sub
        if key not in data and "default" in resolved:
            data[key] = copy.deepcopy(resolved["default"])
        if isinstance(data.get(key), dict) and ("properties" in resolved or isinstance(resolved.get("additionalProperties"), dict)):
            fill_defaults(data[key], resolved, root)
    # Entries of an open mapping whose values are sections of their own (sweep.families.<family>).
    extra = node.get("additionalProperties")
    extra = root["$defs"][extra["$ref"].rsplit("/", 1)[-1]] if isinstance(extra, dict) and "$ref" in extra else extra
    if isinstance(extra, dict) and "properties" in extra:
        for key, value in data.items():
            if key not in node.get("properties", {}) and isinstance(value, dict):
                fill_defaults(value, extra, root)


# ---------------------------------------------------------------- semantic checks


@dataclass
class CheckContext:
    loaded: LoadedSpec
    data: dict
    problems: list = field(default_factory=list)
    warnings: list = field(default_factory=list)  # findings Azure would not refuse (capc.spec.service_rules)

    def report(self, path: tuple, message: str, hint: str | None = None) -> None:
        self.problems.append(problem_at(self.loaded, path, message, hint))

    @property
    def spec_dir(self) -> Path:
        return self.loaded.path.parent


SEMANTIC_CHECKS: list[Callable[[CheckContext], None]] = []


def check(fn: Callable[[CheckContext], None]) -> Callable[[CheckContext], None]:
    SEMANTIC_CHECKS.append(fn)
    return fn


@check
def metric_fits_task(ctx: CheckContext) -> None:
    metrics = azure_names.AUTOML_METRICS[ctx.data["task"]]
    if ctx.data["metric"] not in metrics:
        ctx.report(("metric",), f"`{ctx.data['metric']}` is not a primary metric for {ctx.data['task']}", did_you_mean(ctx.data["metric"], metrics))


@check
def format_fits_task(ctx: CheckContext) -> None:
    fmt, task = ctx.data["dataset"]["format"], ctx.data["task"]
    if (fmt == "image_folder") != (task == "image_classification"):
        want = "image_folder" if task == "image_classification" else "csv or parquet"
        ctx.report(("dataset", "format"), f"format `{fmt}` does not fit task `{task}`", f"use {want}")
    if fmt != "image_folder" and "target" not in ctx.data["dataset"]:
        ctx.report(("dataset",), "missing required key `target`", "the label column of the table")
    if fmt == "image_folder" and "target" in ctx.data["dataset"]:
        ctx.report(("dataset", "target"), "image folders take their label from the sub-folder name", "remove `target`")
    if "cross_validations" in ctx.loaded.data.get("dataset", {}) and "validation_fraction" in ctx.loaded.data.get("dataset", {}):
        ctx.report(("dataset", "validation_fraction"), "give either cross_validations or validation_fraction, not both")


@check
def models_fit_task(ctx: CheckContext) -> None:
    known = azure_names.ALGORITHMS[ctx.data["task"]]  # KeyError for an unknown task: the schema reports it
    automl = ctx.data["automl"]
    for key in ("allowed_models", "blocked_models"):
        for i, name in enumerate(automl[key]):
            if isinstance(name, str) and name not in known:  # a non-string is the schema's to report
                hint = did_you_mean(name, known) if known else f"{ctx.data['task']} takes no algorithm list"
                ctx.report(("automl", key, i), f"`{name}` is not an Azure AutoML algorithm for {ctx.data['task']}", hint)
    both = sorted(set(automl["allowed_models"]) & set(automl["blocked_models"]))
    if both:
        ctx.report(("automl", "blocked_models"), f"{', '.join(both)} is both allowed and blocked", "list it in one of them")


@check
def sweep_fits_task(ctx: CheckContext) -> None:
    sweep = ctx.data.get("sweep")
    if not sweep:
        return
    if is_conditional(sweep):
        _families_fit_task(ctx, sweep)
        return
    family = FAMILIES.get(sweep.get("model", ""))
    if family:
        _family_fits_task(ctx, family, ("sweep", "model"))
    if "script" in sweep and not (ctx.spec_dir / sweep["script"]).is_file():
        ctx.report(("sweep", "script"), f"trial script `{sweep['script']}` not found next to the spec", "paths are relative to the spec file")


def _family_fits_task(ctx: CheckContext, family, where: tuple, key_mark: bool = False) -> None:
    task = ctx.data["task"]
    # An unknown task is the schema's to report; naming it again here would only repeat the typo.
    if task in azure_names.AUTOML_METRICS and task not in family.tasks:
        fitting = [f.name for f in FAMILIES.values() if task in f.tasks]
        message, hint = f"trial family `{family.name}` does not serve task `{task}`", f"for {task} use one of: {', '.join(fitting)}"
        ctx.problems.append(problem_at(ctx.loaded, where, message, hint, key_mark=key_mark))


def _families_fit_task(ctx: CheckContext, sweep: dict) -> None:
    """The conditional form: each branch a built-in family that serves the task, or a script of the user's."""
    # model or script with a search_space beside families is the schema's to report (two alternatives at once).
    given = [key for key in ("model", "script", "search_space") if key in sweep]
    for key in given if "search_space" not in given or given == ["search_space"] else ():
        if key in sweep:
            ctx.report(("sweep", key), f"`{key}` does not go with `families`", "give each family its own search_space (and script) under sweep.families")
    name_pattern = schema()["properties"]["sweep"]["properties"]["families"]["propertyNames"]["pattern"]
    for name, entry in sweep["families"].items():
        if not isinstance(entry, dict) or not re.fullmatch(name_pattern, name):
            continue  # the schema reports the type or the name
        where = ("sweep", "families", name)
        if name == "job" or name.startswith("trial"):
            # sweep_job.yml and sweep_trial_<family>.yml are taken by the build's other files.
            ctx.problems.append(problem_at(ctx.loaded, where, f"`{name}` cannot name a family (the build's sweep_{name}.yml is another file)", f"e.g. my_{name}", key_mark=True))
        if "script" in entry:
            if name in FAMILIES:
                ctx.report(where + ("script",), f"`{name}` is a built-in trial family; a branch with its own script needs another name", f"e.g. my_{name}")
            elif not (ctx.spec_dir / entry["script"]).is_file():
                ctx.report(where + ("script",), f"trial script `{entry['script']}` not found next to the spec", "paths are relative to the spec file")
        elif name not in FAMILIES:
            hint = did_you_mean(name, FAMILIES) or f"built-in families: {', '.join(FAMILIES)}; for your own trial script add `script`"
            ctx.problems.append(problem_at(ctx.loaded, where, f"unknown trial family `{name}`", hint, key_mark=True))
        else:
            _family_fits_task(ctx, FAMILIES[name], where, key_mark=True)
    if sweep["sampling"] == "grid":
        for name, entry in ctx.loaded.data["sweep"]["families"].items():
            if isinstance(entry, dict) and "weight" in entry:
                ctx.report(("sweep", "families", name, "weight"), "grid sampling runs every combination, so a family's weight has no effect", "remove weight, or use random or bayesian sampling")
        return
    # random and bayesian: one sweep per family, each with at least one trial and one trial at a time.
    count = len(sweep["families"])
    limits = sweep["limits"]
    for key in ("max_total_trials", "max_concurrent_trials"):
        if isinstance(limits.get(key), int) and limits[key] < count:
            ctx.report(
                ("sweep", "limits", key), f"{key} {limits[key]} cannot be split between {count} families (one sweep each)",
                f"raise it to at least {count}, or use grid sampling",
            )


@check
def search_space_is_valid(ctx: CheckContext) -> None:
    """Every distribution parses and names a hyperparameter of its family.

    Which distributions a sampling algorithm takes is Azure's rule: capc.spec.service_rules checks it.
    """
    sweep = ctx.data.get("sweep")
    if not sweep:
        return
    if is_conditional(sweep):
        for name, entry in sweep["families"].items():
            if isinstance(entry, dict) and isinstance(entry.get("search_space"), dict):
                family = FAMILIES.get(name) if "script" not in entry else None
                _check_space(ctx, family, entry["search_space"], ("sweep", "families", name, "search_space"))
        return
    if isinstance(sweep.get("search_space"), dict):
        _check_space(ctx, FAMILIES.get(sweep.get("model", "")), sweep["search_space"], ("sweep", "search_space"))


def _check_space(ctx: CheckContext, family, space: dict, where: tuple) -> None:
    for name, raw in space.items():
        if not isinstance(raw, (str, dict)):
            continue  # the schema reports the type
        at = where + (name,)
        try:
            dist = parse_compact(raw) if isinstance(raw, str) else normalise(raw)
        except SearchSpaceError as exc:
            ctx.report(at, str(exc), exc.hint)
            continue
        outside = domains.check(family.hyperparameter(name), dist) if family and name in family.parameter_names else None
        if outside:
            ctx.report(at, *outside)
        if family and name not in family.parameter_names:
            owners = family_of_parameter(name, exclude=family.name)
            if owners and where[1] == "families":
                listed = ctx.data["sweep"]["families"]
                owners = sorted(owners, key=lambda o: o not in listed)  # the spec's own families first
                ctx.report(at, f"`{name}` is a hyperparameter of {', '.join(f'`{o}`' for o in owners)}, not of `{family.name}`", f"move it under sweep.families.{owners[0]}.search_space")
            else:
                ctx.report(at, f"`{family.name}` has no hyperparameter `{name}`", did_you_mean(name, family.parameter_names))


@check
def image_learning_rate_is_valid(ctx: CheckContext) -> None:
    """automl.image.learning_rate is a compact distribution too; catch its typos here, not while rendering."""
    image = ctx.data["automl"]["image"]
    if not isinstance(image.get("learning_rate"), str):
        return  # the schema reports the type
    try:
        parse_compact(image["learning_rate"])
    except SearchSpaceError as exc:
        ctx.report(("automl", "image", "learning_rate"), str(exc), exc.hint)


@check
def early_termination_is_complete(ctx: CheckContext) -> None:
    sweep = ctx.data.get("sweep")
    policy = sweep.get("early_termination") if sweep else None
    if not policy:
        return
    kind = policy["type"]
    if kind == "bandit" and ("slack_factor" in policy) == ("slack_amount" in policy):
        ctx.report(("sweep", "early_termination"), "bandit needs exactly one of slack_factor and slack_amount", "e.g. slack_factor: 0.1")
    if kind == "truncation_selection" and "truncation_percentage" not in policy:
        ctx.report(("sweep", "early_termination"), "truncation_selection needs truncation_percentage", "e.g. truncation_percentage: 20")
    if kind != "bandit" and ({"slack_factor", "slack_amount"} & set(policy)):
        ctx.report(("sweep", "early_termination"), f"{kind} takes no slack_factor or slack_amount", "those belong to the bandit policy")
    if kind != "truncation_selection" and "truncation_percentage" in policy:
        ctx.report(("sweep", "early_termination", "truncation_percentage"), f"{kind} takes no truncation_percentage")


# Why a task's candidates are not measured against a serving or load budget (capc.serving_cost.is_measured).
_UNMEASURED = {
    "image_classification": "on tabular models; image_classification has none",
    "forecasting": "with one-row requests of the training table, and a forecasting model answers a horizon request instead",
}


@check
def deployment_fits_task(ctx: CheckContext) -> None:
    deployment = ctx.data["deployment"]
    if deployment["probabilities"] and ctx.data["task"] in ("regression", "forecasting"):
        ctx.report(("deployment", "probabilities"), f"{ctx.data['task']} models have no class probabilities", "remove it or set it to false")
    if deployment["model"] == "sweep" and not ctx.data.get("sweep"):
        ctx.report(("deployment", "model"), "deploys the sweep's winner, but the spec has no sweep", "use `best` or `automl`")
    if not serving_cost.is_measured(ctx.data["task"]):
        # The budget is measured with rows of the training table, which an image or forecasting model does not take.
        for key in ("max_latency_ms", "max_model_mb"):
            if key in deployment:
                ctx.report(("deployment", key), f"a serving budget is measured {_UNMEASURED[ctx.data['task']]}", f"remove {key}")
    compute = ctx.data["compute"]
    if compute["min_instances"] > compute["max_instances"]:
        ctx.report(("compute", "min_instances"), f"min_instances {compute['min_instances']} is above max_instances {compute['max_instances']}")


@check
def load_budget_is_measurable(ctx: CheckContext) -> None:
    """The load budget is measured with one-row requests of the training table, within the request timeout."""
    deployment = ctx.data["deployment"]
    keys = [(("deployment", "min_requests_per_s"), "min_requests_per_s" in deployment),
            (("deployment", "load", "max_p99_ms"), "max_p99_ms" in deployment["load"])]
    if not serving_cost.is_measured(ctx.data["task"]):
        why = "with rows of a table; image_classification has none" if ctx.data["task"] == "image_classification" else _UNMEASURED[ctx.data["task"]]
        for path, present in keys:
            if present:
                ctx.report(path, f"a load budget is measured {why}", f"remove {path[-1]}")
        return
    max_p99 = deployment["load"].get("max_p99_ms")
    if max_p99 is not None and max_p99 >= deployment["request_timeout_ms"]:
        ctx.report(("deployment", "load", "max_p99_ms"), f"{max_p99:g} ms is not below request_timeout_ms {deployment['request_timeout_ms']}",
                   "requests time out before that latency; lower max_p99_ms or raise request_timeout_ms")


@check
def dataset_is_readable(ctx: CheckContext) -> None:
    dataset = ctx.data["dataset"]
    if is_remote(dataset["path"]):
        if not dataset["path"].startswith(ASSET_PREFIX) or dataset["path"].count(":") != 2:
            ctx.report(("dataset", "path"), f"`{dataset['path']}` is not a data asset reference", "write azureml:NAME:VERSION")
        return
    path = ctx.spec_dir / dataset["path"]
    where = ("dataset", "path")
    if dataset["format"] == "image_folder":
        _check_image_folder(ctx, path, where)
        return
    if not path.is_file():
        ctx.report(where, f"data file `{dataset['path']}` not found (looked at {os.path.normpath(path)})", "paths are relative to the spec file")
        return
    try:
        header = read_header(path, dataset["format"])
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        ctx.report(where, f"cannot read the header of `{dataset['path']}`: {exc}")
        return
    if "target" in dataset and dataset["target"] not in header:
        ctx.report(("dataset", "target"), f"column `{dataset['target']}` is not in {path.name}", did_you_mean(dataset["target"], header))
    for i, column in enumerate(dataset["drop"]):
        if column not in header:
            ctx.report(("dataset", "drop", i), f"column `{column}` is not in {path.name}", did_you_mean(column, header))
        elif column == dataset.get("target"):
            ctx.report(("dataset", "drop", i), "the target column cannot be dropped")


def _check_image_folder(ctx: CheckContext, path: Path, where: tuple) -> None:
    if not path.is_dir():
        ctx.report(where, f"image folder `{ctx.data['dataset']['path']}` not found", "one sub-folder per class, relative to the spec file")
        return
    classes = image_classes(path)
    empty = sorted(name for name, count in classes.items() if count == 0)
    for name in empty:
        ctx.report(where, f"class folder `{name}` holds no images", "add images or remove the folder")
    if len([c for c in classes.values() if c]) < 2:
        ctx.report(where, f"image classification needs at least two class folders with images; found {len([c for c in classes.values() if c])}")


def image_classes(folder: Path) -> dict[str, int]:
    """Class name -> number of image files (by suffix) in each sub-folder."""
    return {name: len(files) for name, files in class_images(folder).items()}


def read_header(path: Path, fmt: str) -> list[str]:
    if fmt == "parquet":
        import pyarrow.parquet as pq

        return list(pq.read_schema(path).names)
    with open(path, newline="", encoding="utf-8-sig") as f:
        header = next(csv.reader(f), None)
    if not header:
        raise ValueError("the file is empty")
    return header


@check
def limits_can_bind(ctx: CheckContext) -> None:
    """Limits that can never take effect (capc.spec.limits): warnings, errors under --strict."""
    for finding in limit_rules.findings(ctx.data):
        ctx.warnings.append(problem_at(ctx.loaded, finding.path, finding.message, finding.hint))


SEMANTIC_CHECKS.extend(FORECASTING_CHECKS)  # task forecasting's block, columns, time column and folds


# Registered last, after every check of the spec's own shape and data.
@check
def service_rules_hold(ctx: CheckContext) -> None:
    """Azure's submit-time rules, from their one table: errors are problems, warnings ride on Spec.warnings."""
    for rule in SERVICE_RULES:
        for finding in rule.check(ctx.data):
            found = problem_at(ctx.loaded, finding.path, finding.message, finding.hint)
            (ctx.problems if rule.severity == ERROR else ctx.warnings).append(found)
