"""Job folder stage: an Azure ML `type: automl` job written by hand, read for the local AutoML engine.

Azure's AutoML YAML reference (https://learn.microsoft.com/azure/machine-learning/reference-automl-job-yaml,
azure-ai-ml 1.35.2's AutoMLClassificationSchema / AutoMLRegressionSchema) is the contract: every key is either
honoured, named in a note saying why it is not, or (for a key Azure itself refuses) an error. Tables are MLTable
folders on this machine, relative to the job's folder as Azure reads them (given with --set: to the working
directory). Tasks: classification and regression run on the local tabular engine; image classification on the
local image engine (capc.local.automl_images); forecasting on the local engine's rolling-origin search
(capc.local.automl.forecast_search, which notes the `forecasting:` keys it does not honour); multi-label images,
object detection, segmentation and the NLP tasks are refused, each saying what the local engine lacks.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from capc.data_location import is_remote
from capc.errors import CapcError
from capc.jobfolder.job_yaml import JobYaml
from capc.spec.hints import did_you_mean

TABULAR_TASKS = ("classification", "regression", "forecasting")
IMAGE_TASKS = ("image_classification",)  # capc.local.automl_images: the local image engine
TABLES = ("training_data", "validation_data", "test_data")
# Task -> what the local engine lacks to run it.
REFUSED_TASKS = {
    "image_classification_multilabel": "a multi-label image learner: the local image engine (keras_cnn) trains one label per image",
    "image_object_detection": "an object detector (boxes and their training loop) and the pretrained weights Azure fine-tunes; the local image engine classifies whole images",
    "image_instance_segmentation": "a segmentation model (masks) and the pretrained weights Azure fine-tunes; the local image engine classifies whole images",
    "text_classification": "a pretrained language model (Azure fine-tunes BERT-family weights on a GPU); capc has no NLP engine and downloads no weights",
    "text_classification_multilabel": "a pretrained language model (Azure fine-tunes BERT-family weights on a GPU); capc has no NLP engine and downloads no weights",
    "text_ner": "a pretrained language model and a token tagger (Azure fine-tunes BERT-family weights on a GPU); capc has no NLP engine and downloads no weights",
}
# Keys that say where and how Azure runs the job: no local meaning, named in one note.
AZURE_SIDE = ("compute", "display_name", "identity", "services", "resources", "queue_settings", "environment_id",
              "environment_variables", "log_verbosity", "properties", "log_files")
RECORDED = ("$schema", "type", "name", "experiment_name", "description", "tags", "task", "primary_metric",
            "target_column_name", "n_cross_validations", "validation_data_size", "test_data_size", "limits", "training",
            "featurization", "outputs", "forecasting", *TABLES)
# An image job's own keys (AutoMLImageClassificationSchema): the image engine reads `sweep.early_termination`; the rest
# is for fine-tuning pretrained networks (capc.local.automl_images notes them).
IMAGE_KEYS = ("training_parameters", "search_space", "sweep")
# Keys the local engine reads but does not honour -> why (a note names each one the job sets).
NOT_HONOURED = {
    "positive_label": "binary metrics use the second label in sorted order",
    "weight_column_name": "rows are not weighted; the column is left out of the features",
    "cv_split_column_names": "folds are drawn by the engine; the columns are left out of the features",
    "limits.max_cores_per_trial": "each trial gets the threads of capc's core budget",
    "limits.max_nodes": "one machine",
    "training.enable_dnn_training": "no DNN learners locally",
    "training.enable_model_explainability": "no explanations are computed",
    "training.enable_onnx_compatible_models": "the model is saved as MLflow (python_function) only",
    "training.ensemble_model_download_timeout": "nothing is downloaded",
    "training.stack_ensemble_settings": "the StackEnsemble's meta-learner is Azure's default (logistic / elastic net)",
    "training.training_mode": "one training mode",
    "featurization.blocked_transformers": "the local featurization (FLAML's) uses none of Azure's transformers",
    "featurization.enable_dnn_featurization": "no DNN featurization locally",
    "featurization.dataset_language": "no text featurization locally",
}
SECTION_KEYS = {
    "limits": ("timeout_minutes", "trial_timeout_minutes", "max_trials", "max_concurrent_trials", "enable_early_termination",
               "exit_score", "max_cores_per_trial", "max_nodes"),
    "training": ("allowed_training_algorithms", "blocked_training_algorithms", "enable_vote_ensemble", "enable_stack_ensemble",
                 "enable_dnn_training", "enable_model_explainability", "enable_onnx_compatible_models",
                 "ensemble_model_download_timeout", "stack_ensemble_settings", "training_mode"),
    "featurization": ("mode", "column_name_and_types", "blocked_transformers", "transformer_params", "enable_dnn_featurization",
                      "dataset_language"),
    # azure-ai-ml 1.35.2's ForecastingSettingsSchema
    "forecasting": ("time_column_name", "time_series_id_column_names", "forecast_horizon", "frequency", "target_lags",
                    "target_rolling_window_size", "feature_lags", "seasonality", "use_stl", "short_series_handling_config",
                    "target_aggregate_function", "country_or_region_for_holidays", "cv_step_size",
                    "features_unknown_at_forecast_time"),
}
# featurization.column_name_and_types purposes: honoured ones set the column's dtype before training.
HONOURED_PURPOSES = ("Numeric", "Categorical")
IMPUTER_STRATEGIES = ("mean", "median", "most_frequent", "constant")  # Azure's imputer strategies
FORECASTING_IMPUTER_STRATEGIES = ("ffill",)  # and a forecasting job's: the series' last value (Azure's OJ-sales example)
PURPOSES = ("Numeric", "Categorical", "DateTime", "CategoricalHash", "Text")


@dataclass(frozen=True)
class AutoMLJob:
    """A hand-written AutoML job as the local engine takes it."""

    job: JobYaml
    task: str
    tables: dict  # training_data / validation_data / test_data -> MLTable folder on this machine
    column_types: dict  # featurization custom: column -> Numeric | Categorical
    imputers: dict  # featurization custom: column -> (strategy, fill_value) of transformer_params.imputer
    not_features: tuple  # weight and cv-split columns, left out of the features
    test_data_size: float | None
    best_model_path: Path | None  # outputs.best_model.path on this machine, else None (a run folder)
    notes: tuple

    @property
    def data(self) -> dict:
        return self.job.data

    @property
    def target(self) -> str:
        return str(self.data.get("target_column_name") or "")


def read_automl_job(job: JobYaml, bound: dict | None = None) -> AutoMLJob:
    """The job's tables, featurization and notes; CapcError for a task or key the local engine refuses. `bound`:
    role -> local MLTable folder for tables given from outside (a pipeline's inputs), in place of the file's."""
    data = job.data
    task = str(data.get("task") or "")
    if task in REFUSED_TASKS:
        raise CapcError(f"{job.path}: AutoML task `{task}` cannot run locally: it needs {REFUSED_TASKS[task]}.",
                        f"submit it to Azure with `az ml job create -f {job.path}`")
    if task not in TABULAR_TASKS + IMAGE_TASKS:
        known = TABULAR_TASKS + IMAGE_TASKS + tuple(REFUSED_TASKS)
        raise CapcError(f"{job.path}: `task: {task or '(none)'}` is not an Azure AutoML task.", did_you_mean(task, known) or "tasks: " + ", ".join(known))
    _check_keys(job, IMAGE_KEYS if task in IMAGE_TASKS else ())
    tables = {role: _table(job, role, (bound or {}).get(role)) for role in TABLES if data.get(role) or (bound or {}).get(role)}
    if "training_data" not in tables:
        raise CapcError(f"{job.path}: the AutoML job has no training_data.", "training_data: {type: mltable, path: ./training-mltable-folder}")
    if not data.get("target_column_name"):
        raise CapcError(f"{job.path}: the AutoML job has no target_column_name.")
    _check_validation(job, tables)
    notes = _notes(data)
    column_types = _column_types(job, notes)
    imputers = _imputers(job, notes)
    not_features = tuple(str(c) for c in ([data.get("weight_column_name")] if data.get("weight_column_name") else [])
                         + list(data.get("cv_split_column_names") or []))
    size = data.get("test_data_size")
    if size is not None and "test_data" in tables:
        raise CapcError(f"{job.path}: test_data and test_data_size both given; Azure takes one.")
    if size is not None and not 0 < float(size) < 1:
        raise CapcError(f"{job.path}: test_data_size must be between 0 and 1 (a share of the training rows), not {size}.")
    if task == "forecasting":
        _check_forecasting(job, size)
    elif data.get("forecasting") is not None:
        raise CapcError(f"{job.path}: `forecasting` settings belong to `task: forecasting`, not {task}.")
    return AutoMLJob(job, task, tables, column_types, imputers, not_features, None if size is None else float(size),
                     _best_model_path(job), tuple(notes))


def _check_keys(job: JobYaml, task_keys: tuple = ()) -> None:
    data = job.data
    unknown = [k for k in data if k not in RECORDED + AZURE_SIDE + task_keys + tuple(k.split(".")[0] for k in NOT_HONOURED)]
    for section, keys in SECTION_KEYS.items():
        value = data.get(section)
        if value is not None and not isinstance(value, dict):
            raise CapcError(f"{job.path}: `{section}` is a mapping of keys, not {value!r}.")
        unknown += [f"{section}.{k}" for k in value or {} if k not in keys]
    if unknown:
        known = list(RECORDED + AZURE_SIDE) + [f"{s}.{k}" for s, keys in SECTION_KEYS.items() for k in keys]
        hints = [h for h in (did_you_mean(k, known) for k in unknown) if h]
        raise CapcError(f"{job.path}: {', '.join(f'`{k}`' for k in unknown)} {'is not a key' if len(unknown) == 1 else 'are not keys'} "
                        "of an Azure AutoML tabular job (Azure's loader refuses it too).", "; ".join(hints) or None)


def _check_forecasting(job: JobYaml, test_data_size) -> None:
    """What a forecasting job cannot go without (azure-ai-ml refuses these too)."""
    block = job.data.get("forecasting")
    if not isinstance(block, dict) or not block.get("time_column_name") or block.get("forecast_horizon") in (None, ""):
        raise CapcError(f"{job.path}: a forecasting job needs `forecasting:` with time_column_name and forecast_horizon.",
                        "forecasting: {time_column_name: date, forecast_horizon: 14, time_series_id_column_names: [store]}")
    if test_data_size is not None:
        raise CapcError(f"{job.path}: test_data_size draws test rows at random, which is no test of a forecast.",
                        "give test_data: the rows of the horizon after the training rows")


def _table(job: JobYaml, role: str, bound) -> Path:
    if bound is not None:
        return Path(bound).resolve()
    entry = job.data[role]
    path = str(entry.get("path") or "") if isinstance(entry, dict) else str(entry)
    kind = str(entry.get("type", "mltable")) if isinstance(entry, dict) else "mltable"
    if kind != "mltable":
        raise CapcError(f"{job.path}: {role} is of type `{kind}`; AutoML takes an mltable input (a folder with an MLTable file).")
    if not path or is_remote(path):
        raise CapcError(f"{job.path}: {role} {path or '(no path)'} is not a folder on this machine; capc never downloads data.",
                        f"point it at a local copy: `--set {role}.path=FOLDER` (relative to the working directory), or map its URI "
                        "with `--data-map FILE`")
    local = Path(path.removeprefix("file://"))
    given_on_command_line = any(key == f"{role}.path" for key, _ in job.overrides)
    base = Path.cwd() if given_on_command_line else job.job_dir
    return (local if local.is_absolute() else base / local).resolve()


def _check_validation(job: JobYaml, tables: dict) -> None:
    data = job.data
    folds = data.get("n_cross_validations")
    if "validation_data" in tables and (data.get("validation_data_size") is not None or folds not in (None, "auto")):
        raise CapcError(f"{job.path}: validation_data is given, so validation_data_size and n_cross_validations must not be; "
                        "Azure validates on one of them.")


def _notes(data: dict) -> list[str]:
    notes = []
    azure_side = [k for k in AZURE_SIDE if k in data]
    if azure_side:
        notes.append(f"Azure-side settings with no local effect: {', '.join(azure_side)} (the job runs on this machine)")
    for key, why in NOT_HONOURED.items():
        section, _, name = key.rpartition(".")
        value = (data.get(section) or {}).get(name) if section else data.get(name)
        if value not in (None, False, [], {}):
            notes.append(f"{key} is not honoured locally: {why}")
    return notes


def _column_types(job: JobYaml, notes: list[str]) -> dict:
    featurization = job.data.get("featurization") or {}
    given = featurization.get("column_name_and_types") or {}
    if given and str(featurization.get("mode", "auto")).lower() != "custom":
        notes.append("featurization.column_name_and_types is read only with mode: custom (as Azure reads it); ignored")
        return {}
    honoured = {}
    for column, purpose in given.items():
        if purpose not in PURPOSES:
            raise CapcError(f"{job.path}: featurization.column_name_and_types.{column}: `{purpose}` is not a column purpose.",
                            did_you_mean(str(purpose), PURPOSES) or "purposes: " + ", ".join(PURPOSES))
        if purpose in HONOURED_PURPOSES:
            honoured[str(column)] = purpose
        else:
            notes.append(f"featurization.column_name_and_types.{column}: {purpose} is not honoured locally; the column is featurized as read")
    return honoured


def _imputers(job: JobYaml, notes: list[str]) -> dict:
    """transformer_params.imputer (mode custom): column -> (strategy, fill_value); the other transformers noted."""
    featurization = job.data.get("featurization") or {}
    params = featurization.get("transformer_params") or {}
    if params and str(featurization.get("mode", "auto")).lower() != "custom":
        notes.append("featurization.transformer_params is read only with mode: custom (as Azure reads it); ignored")
        return {}
    imputers = {}
    for transformer, entries in params.items():
        if _snake(transformer) != "imputer":
            notes.append(f"featurization.transformer_params.{transformer} is not honoured locally: the local featurization "
                         "(FLAML's) has no such transformer")
            continue
        for entry in entries or []:
            settings = (entry or {}).get("parameters") or {}
            strategy = str(settings.get("strategy", "mean"))
            strategies = IMPUTER_STRATEGIES + (FORECASTING_IMPUTER_STRATEGIES if job.data.get("task") == "forecasting" else ())
            if strategy not in strategies:
                raise CapcError(f"{job.path}: featurization.transformer_params.imputer: strategy `{strategy}` is not one Azure takes.",
                                did_you_mean(strategy, strategies) or "strategies: " + ", ".join(strategies))
            if strategy == "constant" and settings.get("fill_value") is None:
                raise CapcError(f"{job.path}: featurization.transformer_params.imputer: strategy constant needs parameters.fill_value.")
            for column in (entry or {}).get("fields") or []:
                imputers[str(column)] = (strategy, settings.get("fill_value"))
    return imputers


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", str(name)).lower()


def _best_model_path(job: JobYaml) -> Path | None:
    output = (job.data.get("outputs") or {}).get("best_model")
    path = str(output.get("path") or "") if isinstance(output, dict) else ""
    if not path or is_remote(path):
        return None  # Azure's default path: the run's own folder
    return (job.job_dir / path.removeprefix("file://")).resolve()
