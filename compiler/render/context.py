"""Stage 3, render: a validated Spec -> the render context, everything a template needs, computed once in Python.

The sweep's and the pipeline's parts of it are capc.render.sweep_context.

Templates only place these values (through the quoting filters); every decision - Azure spellings, the sweep
command line, relative data paths, package pins, sample rows - is made here.
"""

from __future__ import annotations

import csv
import math
import os
import re
from pathlib import Path, PurePath

from capc import azure_names
from capc.data_location import is_remote
from capc.errors import CapcError
from capc.families import FAMILIES
from capc.image_files import class_images, image_base64
from capc.render.forecast_serving import forecast_serving
from capc.render.forecasting_context import azure_forecasting
from capc.render.pins import AZURE_MLFLOW_PINS, RUNTIME_PINS
from capc.render.sweep_context import image_holdout, pipeline_context, sweep_context


# capc.json's deployment section: what a backend's selection needs of the spec's deployment.
RUN_DEPLOYMENT_KEYS = ("model", "max_latency_ms", "max_model_mb", "min_requests_per_s", "load", "instance_type")

# What pandas.read_csv reads as missing by default: these cells become None in sample rows.
CSV_MISSING = frozenset({
    "", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN", "<NA>", "N/A",
    "NA", "NULL", "NaN", "None", "n/a", "nan", "null",
})
INTEGER = re.compile(r"^[+-]?\d+$")
NUMBER = re.compile(r"^[+-]?(\d+\.?\d*([eE][+-]?\d+)?|\.\d+([eE][+-]?\d+)?|inf|Inf|INF|infinity|Infinity)$")
TYPE_SAMPLE_ROWS = 500  # rows read to decide a column's type
SAMPLE_REQUEST_ROWS = 2
DEFAULT_DEPLOYMENT = "blue"
# Azure's documented example policy for image sweeps, used when AutoML early termination is on.
IMAGE_EARLY_TERMINATION = {"type": "bandit", "slack_factor": 0.2, "evaluation_interval": 2, "delay_evaluation": 6}


def build_context(spec, out_dir: Path) -> dict:
    """The render context of `spec` whose artifacts go to out_dir/<name>/."""
    data = spec.data
    job_dir = Path(os.path.abspath(Path(out_dir) / spec.name))
    dataset = _dataset(spec, job_dir)
    sweep = sweep_context(spec, dataset)
    environment = _environment(spec, sweep)
    deployment = _deployment(spec)
    automl = _automl(spec, dataset)
    return {
        "pipeline": pipeline_context(spec, dataset, automl, sweep, environment),
        "train": sweep["train"] if sweep else None,  # the one-family form's trial script
        "score": _score(spec, dataset, deployment),
        "forecast": forecast_serving(spec, dataset),  # None unless task: forecasting
        "name": spec.name,
        "description": data["description"],
        "task": spec.task,
        "metric": spec.metric,
        "goal": str(spec.goal),
        "spec_sha256": spec.sha256,
        "is_image": spec.task == "image_classification",
        "compute": f"azureml:{data['compute']['name']}",
        "dataset": dataset,
        "automl": automl,
        "sweep": sweep,
        "environment": environment,
        "deployment": deployment,
        "batch": _batch(spec, deployment),
        "schedule": _schedule(spec),
        "model_name": spec.name,
        "cluster": dict(data["compute"]),
        "run": _run_settings(spec, automl, sweep),
        "seed": spec.data.get("seed"),
    }


def _run_settings(spec, automl: dict, sweep: dict | None) -> dict:
    """capc.json: what a backend needs besides Azure's own files (capc.jobfolder reads it; no spec at submit)."""
    return {
        "name": spec.name,
        "description": spec.data["description"],
        "task": spec.task,
        "metric": spec.metric,
        "goal": azure_names.AUTOML_METRICS[spec.task][spec.metric],
        "automl": {"enabled": automl["enabled"]},
        # The spec's seed (null: each local run draws one and records it), for AutoML, which Azure cannot seed.
        "seed": spec.data.get("seed"),
        "sweep": {"enabled": bool(sweep and sweep["enabled"])},
        # deployment.model, the serving and load budgets the local selection applies (capc.selection.budget_of,
        # capc.load_budget) and the instance its estimate is for.
        "deployment": {key: spec.data["deployment"].get(key) for key in RUN_DEPLOYMENT_KEYS},
    }


# ---------------------------------------------------------------- data


def _dataset(spec, job_dir: Path) -> dict:
    ds = spec.data["dataset"]
    fmt = ds["format"]
    remote = is_remote(ds["path"])
    out = {
        "format": fmt,
        "remote": remote,
        "target": ds.get("target", "label"),
        "drop": list(ds["drop"]),
        "cross_validations": ds.get("cross_validations"),
        "validation_fraction": None if "cross_validations" in ds else ds["validation_fraction"],
        "features": None,  # [{"name", "kind"}]; None when the data is not on this machine
        "sample_rows": [],
        "target_examples": [],  # the first rows' labels, typed: examples for the scoring swagger
        "images": [],  # image_folder: [{"image_url", "label"}] relative to data/
    }
    if remote:
        out["path_from_job"] = out["path_from_data_dir"] = ds["path"]
        return out
    source = Path(os.path.abspath(spec.path.parent / ds["path"]))
    out["path_from_job"] = _relative(source, job_dir)
    out["path_from_data_dir"] = _relative(source, job_dir / "data")
    if fmt == "image_folder":
        out["images"] = _image_listing(source, job_dir / "data")
        out["features"] = [{"name": "image", "kind": "image"}]
        out["sample_rows"] = [{"image": _smallest_image_base64(source)}]
        out["target_examples"] = sorted({row["label"] for row in out["images"]})[:1]
        out["classes"] = sorted({row["label"] for row in out["images"]})
        return out
    excluded = {out["target"], *out["drop"]}
    if fmt == "parquet":
        columns, rows = _parquet_head(source)
    else:
        columns, rows = _csv_head(source)
    out["features"] = [{"name": name, "kind": kind} for name, kind in columns if name not in excluded]
    kinds = dict(columns)
    typed = [_typed_row(raw, kinds) if fmt == "csv" else raw for raw in rows[:SAMPLE_REQUEST_ROWS]]
    out["sample_rows"] = [{name: value for name, value in row.items() if name not in excluded} for row in typed]
    out["target_examples"] = [row.get(out["target"]) for row in typed if row.get(out["target"]) is not None]
    return out


def _relative(target: Path, start: Path) -> str:
    """`target` relative to `start`, with forward slashes: artifacts never hold an absolute path."""
    try:
        rel = os.path.relpath(target, start)
    except ValueError:  # another drive on Windows
        raise CapcError(f"the dataset {target} and the output folder {start} are on different drives.", "keep them on one drive") from None
    return PurePath(rel).as_posix()


def _csv_head(path: Path) -> tuple[list[tuple[str, str]], list[dict]]:
    """(column, kind) pairs from the header and the first rows, plus those rows as {column: text}."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f)
            header = next(reader, None)
            rows = [row for _, row in zip(range(TYPE_SAMPLE_ROWS), reader)]
    except (OSError, UnicodeDecodeError) as exc:
        raise CapcError(f"cannot read {path}: {exc}") from None
    if not header:
        raise CapcError(f"{path} is empty: no header row.")
    padded = [row + [""] * (len(header) - len(row)) for row in rows]
    by_column = list(zip(*padded)) if padded else [()] * len(header)
    columns = [(name, _column_kind(cells)) for name, cells in zip(header, by_column)]
    return columns, [dict(zip(header, row)) for row in padded[:SAMPLE_REQUEST_ROWS]]


def _column_kind(cells) -> str:
    """integer | number | string, as pandas would read the column (all missing: number, like pandas)."""
    kind = "integer"
    for cell in cells:
        cell = cell.strip()
        if cell in CSV_MISSING:
            continue
        if INTEGER.match(cell):
            continue
        if NUMBER.match(cell):
            kind = "number"
            continue
        return "string"
    return kind


def _typed_row(raw: dict, kinds: dict) -> dict:
    row = {}
    for name, cell in raw.items():
        if cell.strip() in CSV_MISSING:
            row[name] = None
        elif kinds[name] == "integer":
            row[name] = int(cell)
        elif kinds[name] == "number":
            value = float(cell)
            row[name] = value if math.isfinite(value) else None
        else:
            row[name] = cell
    return row


def _parquet_head(path: Path) -> tuple[list[tuple[str, str]], list[dict]]:
    import pyarrow.parquet as pq
    import pyarrow.types as pat

    try:
        parquet = pq.ParquetFile(path)
    except (OSError, ValueError) as exc:
        raise CapcError(f"cannot read {path}: {exc}") from None
    columns = []
    for field in parquet.schema_arrow:
        t = field.type
        kind = "integer" if pat.is_integer(t) else "number" if pat.is_floating(t) or pat.is_decimal(t) else "boolean" if pat.is_boolean(t) else "string"
        columns.append((field.name, kind))
    rows: list[dict] = []
    for batch in parquet.iter_batches(batch_size=SAMPLE_REQUEST_ROWS):
        rows = [{k: _plain(v) for k, v in r.items()} for r in batch.to_pylist()]
        break
    return columns, rows


def _plain(value):
    """A parquet cell as a JSON-able value."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    return str(value)


def _smallest_image_base64(folder: Path) -> str:
    """The smallest image (ties by path) base64-encoded: a real request that keeps sample_request.json small."""
    images = [p for files in class_images(folder).values() for p in files]
    smallest = min(images, key=lambda p: (p.stat().st_size, p.as_posix()))
    return image_base64(smallest.read_bytes())


def _image_listing(folder: Path, data_dir: Path) -> list[dict]:
    """Every image under folder/<class>/, sorted, as the JSONL rows of the image MLTable."""
    return [
        {"image_url": _relative(Path(os.path.abspath(image)), data_dir), "label": label}
        for label, images in class_images(folder).items()
        for image in images
    ]


# ---------------------------------------------------------------- AutoML


def _automl(spec, dataset: dict) -> dict:
    settings = spec.data["automl"]
    limits = {
        "timeout_minutes": settings["timeout_minutes"],
        "trial_timeout_minutes": settings["trial_timeout_minutes"],
        "max_trials": settings["max_trials"],
        "max_concurrent_trials": settings["max_concurrent_trials"],
        "enable_early_termination": settings["enable_early_termination"],
    }
    if settings["exit_score"] is not None:
        limits["exit_score"] = settings["exit_score"]
    split = (
        {"n_cross_validations": dataset["cross_validations"]}
        if dataset["cross_validations"]
        else {"validation_data_size": dataset["validation_fraction"]}
    )
    out = {
        "enabled": settings["enabled"],
        "compute": f"azureml:{spec.data['compute']['name']}",
        "task": spec.task,
        # Azure's loader compares primary metrics in snake case, so the name users know loads as it is.
        "primary_metric": spec.metric,
        "target_column_name": dataset["target"],
        "training_data_path": dataset["path_from_job"] if dataset["remote"] else "./data",
        "split": split,
        "limits": limits,
    }
    if spec.task == "image_classification":
        out.update(_image_automl(spec, dataset))
        return out
    training = {
        "enable_stack_ensemble": settings["enable_ensembles"],
        "enable_vote_ensemble": settings["enable_ensembles"],
    }
    if settings["allowed_models"]:
        training["allowed_training_algorithms"] = [azure_names.yaml_spelling(m) for m in settings["allowed_models"]]
    if settings["blocked_models"]:
        training["blocked_training_algorithms"] = [azure_names.yaml_spelling(m) for m in settings["blocked_models"]]
    out["training"] = training
    out["featurization"] = {"mode": settings["featurization"]}
    out["forecasting"] = azure_forecasting(spec)  # None unless task forecasting
    return out


def _image_automl(spec, dataset: dict) -> dict:
    from capc.spec.search_space import SearchSpaceError, parse_compact

    image = spec.data["automl"]["image"]
    settings = spec.data["automl"]
    learning_rate = image["learning_rate"]
    if isinstance(learning_rate, str):
        try:
            learning_rate = parse_compact(learning_rate)
        except SearchSpaceError as exc:
            raise CapcError(f"automl.image.learning_rate: {exc}", exc.hint) from None
    limits = {
        "timeout_minutes": settings["timeout_minutes"],
        "max_trials": settings["max_trials"],
        "max_concurrent_trials": settings["max_concurrent_trials"],
    }
    sweep = {"sampling_algorithm": image["sampling"]}
    if settings["enable_early_termination"]:
        sweep["early_termination"] = dict(IMAGE_EARLY_TERMINATION)
    return {
        "compute": f"azureml:{image['gpu_compute']}",
        "limits": limits,
        "split": {"validation_data_size": image_holdout(dataset)},
        "training_parameters": {"early_stopping": image["early_stopping"], "number_of_epochs": image["number_of_epochs"]},
        "image_sweep": sweep,
        "image_search_space": [{
            "model_name": {"type": "choice", "values": list(image["model_names"])},
            "learning_rate": learning_rate,
        }],
    }


# ---------------------------------------------------------------- environment, deployment, schedule


def _environment(spec, sweep: dict | None) -> dict:
    env = spec.data["environment"]
    pip = [f"{name}=={version}" for name, version in sorted({**RUNTIME_PINS, **AZURE_MLFLOW_PINS}.items())]
    # The sweep families' extras (keras, torch): the deployment may serve the sweep's winner.
    for family in sweep["families"] if sweep else ():
        pip += [p for p in FAMILIES[family].pip if p not in pip]
    pip += [p for p in env["pip"] if p not in pip]
    return {
        "name": f"{spec.name}-env",
        "image": env["image"],
        "python": env["python"],
        "pip": pip,
    }


def _deployment(spec) -> dict:
    d = spec.data["deployment"]
    return {
        "endpoint": d.get("endpoint") or f"{spec.name}-endpoint",
        "name": DEFAULT_DEPLOYMENT,
        "model": f"azureml:{spec.name}@latest",
        "auth_mode": d["auth_mode"],
        "instance_type": d["instance_type"],
        "instance_count": d["instance_count"],
        "app_insights_enabled": d["app_insights"],
        "request_settings": {
            "request_timeout_ms": d["request_timeout_ms"],
            "max_concurrent_requests_per_instance": d["max_concurrent_requests_per_instance"],
        },
        # The inference server runs one worker per concurrent request it may be given.
        "environment_variables": {
            "WORKER_COUNT": str(d["max_concurrent_requests_per_instance"]),
            "SCORING_TIMEOUT_MS": str(d["request_timeout_ms"]),
            "OMP_NUM_THREADS": "1",  # workers are processes; threads per one-row request only add overhead
        },
        "probabilities": bool(d["probabilities"]) and spec.task not in ("regression", "forecasting"),
    }


# Batch endpoints share the online endpoints' name rules (azure.ai.ml EndpointConfigurations: 3-32 characters).
ENDPOINT_NAME_MAX_LENGTH = 32
BATCH_ENDPOINT_SUFFIX = "-batch"
BATCH_DEPLOYMENT = "mlflow"
# Azure's documented defaults, except a mini-batch timeout of 5 minutes instead of 30 s: loading an MLflow model
# and its environment on a fresh node takes longer than scoring.
BATCH_SETTINGS = {
    "mini_batch_size": 10,  # input files per run() of the generated MLflow scoring script
    "max_concurrency_per_instance": 1,
    "output_action": "append_row",
    "output_file_name": "predictions.csv",
    "retry_settings": {"max_retries": 3, "timeout": 300},
    "error_threshold": -1,  # count failed files, never abort the job for them: the log names each
    "logging_level": "info",
}


def _batch(spec, deployment: dict) -> dict:
    """The batch endpoint and its MLflow model deployment: no scoring script, no environment (Azure builds both)."""
    stem = spec.name[: ENDPOINT_NAME_MAX_LENGTH - len(BATCH_ENDPOINT_SUFFIX)].rstrip("-")
    return {
        "endpoint": stem + BATCH_ENDPOINT_SUFFIX,
        "name": BATCH_DEPLOYMENT,
        "description": f"The latest registered {spec.name} model (MLflow), scored without a scoring script.",
        "model": deployment["model"],
        # Only Microsoft Entra tokens: batch endpoints have no keys.
        "auth_mode": "aad_token",
        "compute": f"azureml:{spec.data['compute']['name']}",
        "instance_count": spec.data["compute"]["max_instances"],
        "settings": dict(BATCH_SETTINGS),
    }


# Stand-ins for missing sample cells in the swagger document, so each column is documented with its type.
KIND_EXAMPLES = {"integer": 0, "number": 0.0, "boolean": False, "string": "", "image": "<base64-encoded image bytes>"}


def _score(spec, dataset: dict, deployment: dict) -> dict:
    features = dataset["features"]
    if features is None:  # a registered data asset: columns unknown until the model is trained
        columns, records = None, [{"column": "value"}]
    else:
        columns = [[f["name"], f["kind"]] for f in features]
        rows = dataset["sample_rows"] or [{}]
        records = [{f["name"]: _swagger_value(row.get(f["name"]), f["kind"]) for f in features} for row in rows[:1]]
    if spec.task == "regression":
        result = {"result": [0.0]}
    else:
        label = dataset["target_examples"][0] if dataset["target_examples"] else "label"
        result = {"result": [label]}
        if deployment["probabilities"]:
            result["probabilities"] = [{str(label): 1.0}]
    return {"features": columns, "swagger_records": records, "swagger_result": result}


def _swagger_value(value, kind: str):
    if kind == "image":
        return KIND_EXAMPLES["image"]
    return KIND_EXAMPLES[kind] if value is None else value


def _schedule(spec) -> dict | None:
    schedule = spec.data.get("schedule")
    if not schedule:
        return None
    trigger = {"type": "cron", "expression": schedule["cron"]} if "cron" in schedule else {
        "type": "recurrence",
        "frequency": schedule["recurrence"]["frequency"],
        "interval": schedule["recurrence"]["interval"],
    }
    trigger["time_zone"] = schedule["time_zone"]
    if schedule.get("start_time"):
        trigger["start_time"] = schedule["start_time"]
    return {"name": f"{spec.name}-retrain", "trigger": trigger, "description": f"Retrain {spec.name}: AutoML and the sweep, best model registered."}
