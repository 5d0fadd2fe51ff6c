"""Backend, local: `capc submit JOB.yml --register NAME` - a hand-written AutoML job's best model registered with the
files a compiled spec's model is registered with, so `capc deploy`, `predict` and `report` take it alike.

A registered model points at the job folder it was trained from (its score.py, sample_request.json,
deployment.yml, data/MLTable). A hand-written job has none, so capc compiles one through its own build: the job
names its task, primary metric and target, which is all a spec needs; the training table (as the engine read it,
after the MLTable's transformations and the job's column types) is written beside it as parquet, and the
rendered score.py, sample request and deployment files come from the same templates as a spec's. The folder's
automl_job.yml is the job as it ran (its overrides applied, training_data pointing at that table), not a
compiled one. The folder lies under $CAPC_HOME/jobs/NAME/<the job's hash>/, one per version of the job file.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from capc.artifacts import with_manifest, write_tree
from capc.errors import CapcError
from capc.jobfolder.folder import AUTOML_FILE
from capc.state import registry

TRAINING_TABLE = "training.parquet"
SPEC_FILE = "spec.yaml"


def register_job_model(automl, result, name: str, training_frame, settings) -> registry.ModelVersion:
    """Compile the serving folder of the job's model and register result.model_dir under `name`."""
    check_model_name(name)
    folder = serving_folder(automl, name, training_frame, settings)
    best_params = {"estimator": result.best.rsplit("-", 1)[0]}
    return registry.register(
        Path(result.model_dir), name=name, task=automl.task, metric=settings.primary_metric, value=result.value,
        goal=str(settings.goal), source="automl", run_id=result.automl_run_id, spec_sha256=automl.job.sha256,
        job_dir=str(folder), metrics={settings.primary_metric: result.value, **{f"test_{k}": v for k, v in result.test_metrics.items()}},
        params=best_params, description=str(automl.data.get("description") or f"AutoML job {automl.job.path.name}"),
    )


def check_model_name(name: str) -> None:
    """A spec's name rule: the model's name also names its job folder and its local endpoint."""
    from capc.spec.validate import schema

    name_rule = schema()["properties"]["name"]
    if not re.match(name_rule["pattern"], name):
        raise CapcError(f"--register {name}: not a model name. {name_rule['description']}", "e.g. --register bank-automl")


def serving_folder(automl, name: str, training_frame, settings) -> Path:
    """$CAPC_HOME/jobs/NAME/<hash>/NAME: the job folder capc compiles for the job's model (see the module docstring)."""
    from capc.render.render import render_artifacts
    from capc.spec.validate import load_spec

    root = registry.capc_home() / "jobs" / name / (automl.job.sha256[:16] or "node")
    root.mkdir(parents=True, exist_ok=True)
    table = root / TRAINING_TABLE
    partial = root / (TRAINING_TABLE + ".partial")
    try:
        training_frame.to_parquet(partial, index=False)
    except (ValueError, TypeError, OSError) as exc:  # a column pyarrow cannot store (mixed types)
        raise CapcError(f"cannot store the training table of {automl.job.path} for its scoring files: {exc}") from None
    partial.replace(table)
    spec_text = yaml.safe_dump(_spec(automl, name, settings), sort_keys=False)
    (root / SPEC_FILE).write_text(spec_text, encoding="utf-8")
    spec = load_spec(root / SPEC_FILE)
    files = render_artifacts(spec, root)
    files[AUTOML_FILE] = _job_as_run(automl, root / name)
    target = root / name
    # The folder is the job's: its manifest carries the job's hash, which the registered model records too.
    write_tree(target, with_manifest(files, automl.job.sha256, name))  # the whole folder swapped at once
    return target


def _spec(automl, name: str, settings) -> dict:
    """The spec that compiles the job's scoring files: its task, metric and target, the table it trained on."""
    return {
        "name": name,
        "description": str(automl.data.get("description") or f"AutoML job {automl.job.path.name}, run by capc"),
        "dataset": {"path": TRAINING_TABLE, "format": "parquet", "target": settings.target_column,
                    **({"cross_validations": settings.forecast_folds} if automl.task == "forecasting" else {})},
        "task": automl.task,
        "metric": settings.primary_metric,
        "automl": {"enabled": True},
        **({"forecasting": _forecasting_block(automl)} if automl.task == "forecasting" else {}),
    }


def _forecasting_block(automl) -> dict:
    """The job's forecasting: settings under the spec's keys (the spec takes Azure's names; a key it lacks is left out)."""
    from capc.spec.validate import schema

    known = schema()["properties"]["forecasting"]["properties"]
    return {k: v for k, v in (automl.data.get("forecasting") or {}).items() if k in known}


def _job_as_run(automl, folder: Path) -> bytes:
    """The job's YAML as it ran: training_data is the table written beside the folder, the other tables absolute."""
    data = {k: v for k, v in automl.data.items()}
    data["training_data"] = {"type": "mltable", "path": "./data"}
    for role in ("validation_data", "test_data"):
        if role in automl.tables:
            data[role] = {"type": "mltable", "path": str(automl.tables[role])}
    header = f"# {automl.job.path.name} as capc ran it (--set overrides applied); training_data: the table it read, in data/.\n"
    return (header + yaml.safe_dump(data, sort_keys=False)).encode("utf-8")
