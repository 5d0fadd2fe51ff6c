"""Backend, local: `capc submit JOB.yml` for an Azure ML `type: automl` job written by hand, on the same local
AutoML engine that runs the automl_job.yml capc compiles (capc.local.automl), and the AutoML node of a hand-written
pipeline (run_automl_node).

What runs: the job's MLTable folders read as Azure reads them (capc.jobfolder.mltable), its settings as the compiled
path reads them (AutoMLSettings.from_job_yaml), validation on validation_data when given (else
n_cross_validations / validation_data_size / Azure's rule), and with test_data (or test_data_size) Azure's test
run: the best model predicts every test row, and the predictions and every metric of the task are stored with a
`test` child run. What is recorded: an MLflow experiment named after the job with a submit run, the automl run
and one child run per candidate. Where the model goes, as on Azure: the best child's `outputs/mlflow-model`
(an artifact of that candidate run, and a folder under the run folder) and the job's `best_model` output
(outputs.best_model.path when it is a local folder, else named_outputs/best_model of the run folder). With
`--register NAME` it is registered with the scoring files a spec would compile (capc.local.automl_serving), so
`capc deploy`, `predict` and `report` take it as they take a compiled spec's model. `--resume` continues an
interrupted job (capc.local.automl_resume); `task: image_classification` runs on the image engine
(capc.local.automl_images).
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from capc.errors import CapcError
from capc.jobfolder.automl_yaml import IMAGE_TASKS, AutoMLJob, read_automl_job
from capc.jobfolder.folder import AUTOML_FILE
from capc.jobfolder.job_yaml import JobYaml
from capc.local.search_end import SearchReport
from capc.state import held_out, registry, tracking
from capc.state.tracking import COMPLETED, FAILED, INTERRUPTED

BEST_MODEL_FOLDER = "outputs/mlflow-model"  # where Azure writes the best child run's model
TEST_PREDICTIONS = "predictions/predictions.csv"  # where Azure's test run writes its predictions
TEST_SPLIT_SEED = 42


@dataclass
class AutoMLJobResult:
    """What a hand-written AutoML job (or pipeline node) left."""

    name: str
    task: str
    metric: str
    goal: str
    submit_run_id: str
    status: str  # completed | interrupted
    automl_run_id: str = ""
    value: float | None = None  # the best candidate's primary metric on its validation rows
    best: str = ""  # e.g. LightGBM-3
    best_run_id: str = ""  # the best candidate's child run
    candidates: int = 0
    model_dir: str = ""  # the best child's outputs/mlflow-model
    best_model: str = ""  # the job's best_model output folder
    test_metrics: dict = field(default_factory=dict)
    test_rows: int = 0
    test_predictions: str = ""
    model: registry.ModelVersion | None = None
    notes: list[str] = field(default_factory=list)
    search: SearchReport | None = None  # why the search ended, and the allowed algorithms it skipped

    @property
    def interrupted(self) -> bool:
        return self.status == INTERRUPTED

    def to_dict(self) -> dict:
        return {
            "name": self.name, "type": "automl", "task": self.task, "metric": self.metric, "goal": self.goal,
            "run_id": self.submit_run_id, "automl_run_id": self.automl_run_id, "status": self.status, "value": self.value,
            "best": self.best, "best_run_id": self.best_run_id, "candidates": self.candidates, "model_dir": self.model_dir,
            "best_model": self.best_model, "test": {"rows": self.test_rows, "metrics": self.test_metrics, "predictions": self.test_predictions}
            if self.test_rows else None, "model": self.model.to_dict() if self.model else None, "notes": self.notes,
            "searches": {"automl": self.search.to_dict()} if self.search else {},
        }


def run_automl_job_yaml(job: JobYaml, *, resume: bool = False, register: str | None = None, progress=None, say=None) -> AutoMLJobResult:
    """`capc submit JOB.yml` for `type: automl`; CapcError for what cannot run (before any run is recorded)."""
    say = say or (lambda text: None)
    automl = read_automl_job(job)
    if register:
        from capc.local.automl_serving import check_model_name  # noqa: PLC0415

        check_model_name(register)  # before any training
    if automl.task in IMAGE_TASKS:
        from capc.local.automl_images import run_image_job  # noqa: PLC0415 - keras stack only for images

        return run_image_job(automl, register=register, progress=progress, say=say)
    tables = _tables(automl)
    settings = _settings(automl)
    mlflow_client = tracking.client()
    exp_id = tracking.experiment_id(mlflow_client, job.name)
    warm_start = None
    if resume:
        settings, warm_start = _resumed(mlflow_client, exp_id, job, settings, say)
    submit_run = tracking.start_run(
        mlflow_client, exp_id, f"submit-{time.strftime('%Y%m%d-%H%M%S')}", "submit",
        tags={"capc.job_file": str(job.path.resolve()), "capc.job_sha256": job.sha256, "capc.job_type": "automl",
              "capc.metric": settings.primary_metric, "capc.goal": str(settings.goal)},
    )
    work_dir = registry.capc_home() / "runs" / submit_run
    try:
        result = _train(automl, settings, tables, mlflow_client, exp_id, submit_run, work_dir, automl.best_model_path, progress, say,
                        warm_start)
        if result.value is not None:
            mlflow_client.log_metric(submit_run, settings.primary_metric, result.value)
        if register and result.value is not None and not result.interrupted:
            from capc.local.automl_serving import register_job_model  # noqa: PLC0415

            result.model = register_job_model(automl, result, register, tables["training_data"], settings)
            mlflow_client.set_tag(submit_run, "capc.registered_model", result.model.ref)
    except BaseException:
        tracking.finish_run(mlflow_client, submit_run, FAILED)
        raise
    tracking.finish_run(mlflow_client, submit_run, result.status)
    return result


def run_automl_node(node: dict, node_dir: Path, tables: dict, best_model_dir: Path, *, experiment_id: str,
                    parent_run_id: str, progress=None, say=None, name: str = "automl") -> AutoMLJobResult:
    """One AutoML node of a hand-written pipeline, its inputs bound: `node` is the node's mapping (task, target,
    limits, ...; its training_data etc. may hold ${{...}} bindings), `node_dir` the folder its relative paths are
    read from, `tables` role (training_data / validation_data / test_data) -> the local MLTable folder bound to it,
    `best_model_dir` the folder its best_model output is written to (an MLflow model). Its runs are children of
    `parent_run_id` in `experiment_id`. Returns what it left; CapcError for what cannot run, KeyboardInterrupt
    passes through after its runs are marked interrupted."""
    data = {k: v for k, v in node.items() if k not in ("inputs", "outputs")}
    job = JobYaml(Path(node_dir) / f"{name}.yml", data, "", None)
    automl = read_automl_job(job, bound=tables)
    if automl.task in IMAGE_TASKS:
        raise CapcError(f"pipeline node {name}: an image AutoML node does not run inside a local pipeline yet; its job file runs "
                        "with `capc submit JOB.yml`.")
    settings = _settings(automl)
    mlflow_client = tracking.client()
    work_dir = registry.capc_home() / "runs" / parent_run_id / name  # the node's run folder, beside its step's
    result = _train(automl, settings, _tables(automl), mlflow_client, experiment_id, parent_run_id, work_dir, Path(best_model_dir),
                    progress, say or (lambda text: None))
    if result.interrupted:
        raise KeyboardInterrupt
    return result


def objective(job: JobYaml) -> tuple[str, str]:
    """(primary metric, goal) of an AutoML job for the live display, before the job is checked (Azure's defaults
    for what it leaves out; a metric the task lacks shows as given and is refused when the job is read)."""
    from capc import azure_names
    from capc.local.automl.settings import DEFAULT_PRIMARY_METRIC

    task = str(job.data.get("task") or "")
    spelling = str(job.data.get("primary_metric") or DEFAULT_PRIMARY_METRIC.get(task, "accuracy"))
    metric = azure_names.metric_from_yaml(task, spelling)
    return (metric, azure_names.AUTOML_METRICS[task][metric]) if metric else (spelling, "maximize")


def _resumed(mlflow_client, exp_id, job: JobYaml, settings, say):
    """(settings, warm start) of a resumed job: see capc.local.automl_resume."""
    from capc.local.automl_resume import interrupted_run, resumed_settings

    resumed = interrupted_run(mlflow_client, exp_id, job.sha256, settings.primary_metric, str(settings.goal))
    if resumed is None:
        say("note: --resume: the last run of this version of the job was not interrupted, so it runs from the start")
        return settings, None
    settings = resumed_settings(settings, resumed)
    say(f"note: --resume: continuing run {resumed.submit_run_id[:12]} ({resumed.finished} candidates finished): the search starts "
        f"from each learner's best configuration, with {settings.timeout_minutes:.2g} min and {settings.max_trials} trials left")
    return settings, resumed.warm_start


# ---------------------------------------------------------------- data


@dataclass
class _Tables:
    training_data: object  # pandas DataFrame
    validation_data: object = None
    test_data: object = None
    fill_values: dict = field(default_factory=dict)  # the job's imputer: column -> value, fixed on the training rows

    def __getitem__(self, role: str):
        return getattr(self, role)


def _tables(automl: AutoMLJob) -> _Tables:
    """The job's tables as the engine takes them: the columns that are no features dropped, the custom column
    types applied, and test_data_size's share split off the training rows."""
    from capc.jobfolder.mltable import read_table

    frames = {role: _prepared(read_table(path, role), automl, role) for role, path in automl.tables.items()}
    tables = _Tables(**frames)
    if automl.test_data_size:
        tables.training_data, tables.test_data = _split_test(tables.training_data, automl)
    if automl.imputers:
        _impute(tables, automl)
    return tables


def _impute(tables: _Tables, automl: AutoMLJob) -> None:
    """featurization.transformer_params.imputer: each column's fill value from the training rows (Azure's
    strategies), filled into every table; the saved model fills it into what it scores (AutoMLModel.fill_values)."""
    import pandas as pd

    training = tables.training_data
    for column, (strategy, fill_value) in automl.imputers.items():
        if column not in training.columns:
            raise CapcError(f"{automl.job.path}: featurization.transformer_params.imputer names `{column}`, not a column of the training table.")
        values = training[column]
        if strategy == "ffill":  # forecasting: each series' last value before the gap
            _forward_fill(tables, automl, column)
            continue
        if strategy in ("mean", "median"):
            if not pd.api.types.is_numeric_dtype(values):
                raise CapcError(f"{automl.job.path}: the imputer strategy {strategy} needs a numeric column; `{column}` holds text.",
                                "use most_frequent or constant for it")
            fill = values.mean() if strategy == "mean" else values.median()
        elif strategy == "most_frequent":
            fill = values.mode(dropna=True).iloc[0] if values.notna().any() else None
        else:
            fill = fill_value
        tables.fill_values[column] = fill.item() if hasattr(fill, "item") else fill
    fills = {c: v for c, v in tables.fill_values.items() if v is not None}
    for role in ("training_data", "validation_data", "test_data"):
        frame = getattr(tables, role)
        if frame is not None:
            setattr(tables, role, frame.fillna({c: v for c, v in fills.items() if c in frame.columns}))
    tables.fill_values = fills


def _forward_fill(tables: _Tables, automl: AutoMLJob, column: str) -> None:
    """A forecasting job's `ffill` imputer: in every table, a gap takes its series' last value in time order."""
    import pandas as pd

    block = automl.data.get("forecasting") or {}
    ids = block.get("time_series_id_column_names") or []
    ids = [ids] if isinstance(ids, str) else list(ids)
    time_column = block.get("time_column_name")
    for role in ("training_data", "validation_data", "test_data"):
        frame = getattr(tables, role)
        if frame is None or column not in frame.columns or time_column not in frame.columns:
            continue
        order = pd.to_datetime(frame[time_column], errors="coerce").sort_values(kind="stable").index
        ordered = frame.loc[order]
        filled = ordered.groupby(ids, sort=False)[column].ffill() if ids else ordered[column].ffill()
        frame = frame.copy()
        frame[column] = filled.reindex(frame.index)
        setattr(tables, role, frame)


def _prepared(frame, automl: AutoMLJob, role: str):
    import pandas as pd

    if role != "test_data" and automl.target not in frame.columns:
        from capc.spec.hints import did_you_mean

        raise CapcError(f"{automl.job.path}: target_column_name `{automl.target}` is not a column of the {role} table "
                        f"{automl.tables[role]}.", did_you_mean(automl.target, map(str, frame.columns)))
    frame = frame.drop(columns=[c for c in automl.not_features if c in frame.columns])
    for column, purpose in automl.column_types.items():
        if column not in frame.columns:
            raise CapcError(f"{automl.job.path}: featurization.column_name_and_types names `{column}`, not a column of the {role} table.")
        if purpose == "Numeric":
            frame[column] = pd.to_numeric(frame[column], errors="coerce")
        else:  # Categorical: each value a category, numbers included
            frame[column] = frame[column].map(lambda v: v if v is None or v != v else str(v)).astype(object)
    return frame


def _split_test(frame, automl: AutoMLJob):
    from sklearn.model_selection import train_test_split

    labels = frame[automl.target]
    stratify = labels if automl.task == "classification" and labels.value_counts().min() >= 2 else None
    train, test = train_test_split(frame, test_size=automl.test_data_size, random_state=TEST_SPLIT_SEED, stratify=stratify)
    return train.reset_index(drop=True), test.reset_index(drop=True)


def _settings(automl: AutoMLJob):
    from capc.local.automl import AutoMLSettings

    try:
        return AutoMLSettings.from_job_yaml(automl.data)
    except CapcError as exc:  # its messages name the compiled file
        raise CapcError(exc.message.replace(AUTOML_FILE, str(automl.job.path)), exc.hint) from None


# ---------------------------------------------------------------- the run


def _train(automl: AutoMLJob, settings, tables: _Tables, mlflow_client, exp_id, parent_run: str, work_dir: Path,
           best_model_dir: Path | None, progress, say, warm_start: dict | None = None) -> AutoMLJobResult:
    from capc.local.automl import run_automl
    from capc.local.automl_resume import candidate_tags

    for note in automl.notes:
        say(f"note: {note}")
    automl_run = tracking.start_run(mlflow_client, exp_id, "automl", "automl", parent=parent_run,
                                    tags={"capc.task": automl.task, "capc.metric": settings.primary_metric})
    out = AutoMLJobResult(automl.job.name, automl.task, settings.primary_metric, str(settings.goal), parent_run, COMPLETED,
                          automl_run, notes=list(automl.notes))
    candidate_runs: dict[int, str] = {}

    def record(candidate) -> None:
        metrics = {settings.primary_metric: candidate.value, **candidate.metrics}
        candidate_runs[candidate.index] = tracking.log_child(
            mlflow_client, exp_id, automl_run, f"{candidate.estimator}-{candidate.index}", "candidate", candidate.params, metrics,
            candidate.status, candidate.duration_s, tags={"capc.estimator": candidate.estimator, **candidate_tags(candidate)})
        if progress:
            progress.automl_candidate(candidate)

    if progress:
        progress.automl_started(settings.timeout_minutes * 60)
    try:
        result = run_automl(tables.training_data, settings, on_candidate=record, log_dir=work_dir / "automl",
                            validation=tables.validation_data, warm_start=warm_start)
    except KeyboardInterrupt:
        tracking.finish_run(mlflow_client, automl_run, INTERRUPTED)
        out.status, out.candidates = INTERRUPTED, len(candidate_runs)
        return out
    except BaseException:
        tracking.finish_run(mlflow_client, automl_run, FAILED)
        raise
    if progress:
        progress.automl_finished(result)
    best = result.best
    out.value, out.best, out.candidates = best.value, f"{best.estimator}-{best.index}", len(result.candidates)
    out.best_run_id = candidate_runs.get(best.index, "")
    out.notes += result.notes
    if tables.fill_values:  # the job's imputer travels with the model: it fills what the model scores
        result.model.fill_values = dict(tables.fill_values)
    saved = work_dir / "automl" / "model"
    if saved.exists():
        shutil.rmtree(saved)
    result.save_mlflow_model(saved)
    write_best_model(saved, out, mlflow_client, work_dir, best_model_dir)
    mlflow_client.log_metric(automl_run, settings.primary_metric, best.value)
    mlflow_client.set_tag(automl_run, "capc.best_estimator", best.estimator)
    search = result.search_report()  # why the search ended and what it skipped: for `capc runs` and the report
    for key, value in search.tags().items():
        mlflow_client.set_tag(automl_run, key, value)
    out.search = search
    if result.held_out is not None:  # what `capc report` judges a registered model by
        held_out.log(mlflow_client, automl_run, result.held_out)
    if tables.test_data is not None:
        _test_run(result, tables.test_data, automl, out, mlflow_client, exp_id, work_dir)
    tracking.finish_run(mlflow_client, automl_run, COMPLETED)
    return out


def write_best_model(model_dir: Path, out: AutoMLJobResult, mlflow_client, work_dir: Path, best_model_dir: Path | None) -> None:
    """The MLflow model in `model_dir` where Azure writes the best model: the best child's outputs/mlflow-model
    (a folder of the run folder, and an artifact of that child run), and the job's best_model output."""
    child = work_dir / (out.best_run_id or "best") / BEST_MODEL_FOLDER
    _replace_folder(model_dir, child)
    out.model_dir = str(child)
    if out.best_run_id:
        mlflow_client.log_artifacts(out.best_run_id, str(child), BEST_MODEL_FOLDER)
    target = best_model_dir or work_dir / "named_outputs" / "best_model"
    _replace_folder(child, target)
    out.best_model = str(target)


def _replace_folder(source: Path, target: Path) -> None:
    """`target` becomes a copy of `source`: copied beside it, then swapped in, so a reader never sees half of it."""
    staging = target.parent / f".{target.name}.partial"
    if staging.exists():
        shutil.rmtree(staging)
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(source, staging)
    if target.exists():
        shutil.rmtree(target)
    staging.rename(target)


def _test_run(result, test_frame, automl: AutoMLJob, out: AutoMLJobResult, mlflow_client, exp_id, work_dir: Path) -> None:
    """Azure's test run: the best model predicts every test row; its predictions and every metric of the task are
    stored with a `test` child run of the automl run."""
    from capc.local.automl_test import score_test_rows

    scored = score_test_rows(result, test_frame, automl.target)
    folder = work_dir / "test"
    path = folder / TEST_PREDICTIONS
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    scored.predictions.to_csv(partial, index=False)
    partial.replace(path)
    test_run = tracking.log_child(mlflow_client, exp_id, out.automl_run_id, "test", "test",
                                  {"model": out.best, "rows": scored.rows}, scored.metrics, COMPLETED, scored.duration_s)
    mlflow_client.log_artifact(test_run, str(path), str(Path(TEST_PREDICTIONS).parent))
    out.test_metrics, out.test_rows, out.test_predictions = scored.metrics, scored.rows, str(path)
    out.notes += scored.notes
