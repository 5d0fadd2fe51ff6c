"""Backend, local: a hand-written `task: image_classification` AutoML job on the local image engine
(capc.local.images: a bounded search over capc's keras_cnn family, the engine a spec's image AutoML runs on).

The job's training_data is a local JSONL MLTable (one {"image_url", "label"} line per image, image paths relative
to the MLTable folder, each image in <folder>/<label>/, as Azure's image examples lay them out). The engine runs a
compiled job folder (its keras_cnn trial script, its image listing), so capc builds one for the job, as
`--register` does for tabular jobs (capc.local.automl_serving): from the job's task and image folder, under
$CAPC_HOME/jobs/NAME/<the job's hash>/. The job's own limits and early-termination policy drive the search; its
validation share (validation_data_size, default 0.2) is the trial script's validation split. What the engine cannot
take is named in a note: a separate validation_data or test_data table, Azure's model_name / training_parameters /
search_space (for pretrained networks on a GPU), and images the listing leaves out of its class folders.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import yaml

from capc.artifacts import with_manifest, write_tree
from capc.state import registry, tracking
from capc.state.tracking import COMPLETED, FAILED

SPEC_FILE = "spec.yaml"
DEFAULT_VALIDATION_SHARE = 0.2
AZURE_IMAGE_KEYS = ("training_parameters", "search_space", "model_name")  # for fine-tuning pretrained networks on Azure


def image_notes(automl) -> list[str]:
    notes = []
    for role in ("validation_data", "test_data"):
        if role in automl.tables:
            notes.append(f"{role} is not honoured by the local image engine: it validates on a share "
                         "(validation_data_size) of the training images and runs no test run")
    given = [k for k in AZURE_IMAGE_KEYS if automl.data.get(k)]
    if given:
        notes.append(f"{', '.join(given)} not honoured locally: no pretrained weights can be had here, so the image engine "
                     "searches capc's keras_cnn family (a small CNN trained from scratch)")
    return notes


def run_image_job(automl, *, register: str | None, progress, say):
    """The job on the local image engine; returns capc.local.automl_job.AutoMLJobResult."""
    from capc.local.automl_job import AutoMLJobResult, write_best_model
    from capc.jobfolder.data import image_root_from_mltable
    from capc.local.image_folder import scan_image_folder
    from capc.local.images import run_image_automl

    notes = list(automl.notes) + image_notes(automl)
    root = image_root_from_mltable(automl.tables["training_data"])
    listed = sum(1 for line in _listing(automl.tables["training_data"]) if line.strip())
    found = scan_image_folder(root, verify=False).image_count
    if found > listed:
        notes.append(f"the image engine trains on every image of the class folders under {root} ({found}), "
                     f"not only the {listed} the listing names")
    for note in notes:
        say(f"note: {note}")
    name = register or _model_name(automl.job.name)
    folder = image_job_folder(automl, name, root)
    mlflow_client = tracking.client()
    exp_id = tracking.experiment_id(mlflow_client, automl.job.name)
    submit_run = tracking.start_run(
        mlflow_client, exp_id, f"submit-{time.strftime('%Y%m%d-%H%M%S')}", "submit",
        tags={"capc.job_file": str(automl.job.path.resolve()), "capc.job_sha256": automl.job.sha256, "capc.job_type": "automl",
              "capc.metric": "accuracy", "capc.goal": "maximize"},
    )
    work_dir = registry.capc_home() / "runs" / submit_run
    out = AutoMLJobResult(automl.job.name, automl.task, "accuracy", "maximize", submit_run, COMPLETED, notes=notes)
    try:
        outcome = run_image_automl(folder, automl.data, mlflow_client, exp_id, submit_run, work_dir, progress)
    except KeyboardInterrupt:
        tracking.finish_run(mlflow_client, submit_run, "interrupted")
        out.status = "interrupted"
        return out
    except BaseException:
        tracking.finish_run(mlflow_client, submit_run, FAILED)
        raise
    if outcome is not None:
        out.automl_run_id, out.value, out.best, out.best_run_id = outcome.run_id, outcome.value, outcome.label, outcome.run_id
        write_best_model(Path(outcome.model_dir), out, mlflow_client, work_dir, automl.best_model_path)
        mlflow_client.log_metric(submit_run, "accuracy", outcome.value)
        if register:
            out.model = registry.register(
                Path(out.model_dir), name=register, task=automl.task, metric="accuracy", value=outcome.value, goal="maximize",
                source="automl", run_id=outcome.run_id, spec_sha256=automl.job.sha256, job_dir=str(folder),
                metrics=dict(outcome.metrics), params=dict(outcome.params),
                description=str(automl.data.get("description") or f"AutoML job {automl.job.path.name}"),
            )
            mlflow_client.set_tag(submit_run, "capc.registered_model", out.model.ref)
    tracking.finish_run(mlflow_client, submit_run, COMPLETED)
    return out


def _listing(table_folder: Path) -> list[str]:
    table = yaml.safe_load((Path(table_folder) / "MLTable").read_text(encoding="utf-8")) or {}
    entry = (table.get("paths") or [{}])[0]
    return (Path(table_folder) / str(entry.get("file", "images.jsonl"))).read_text(encoding="utf-8").splitlines()


def _model_name(job_name: str) -> str:
    """A spec name (the folder's and the compiled files') from the job's experiment name."""
    slug = re.sub(r"[^a-z0-9]+", "-", job_name.lower()).strip("-")
    slug = slug if slug[:1].isalpha() else f"job-{slug}"
    return (slug[:32].rstrip("-") or "image-job") if len(slug) >= 2 else "image-job"


def image_job_folder(automl, name: str, root: Path) -> Path:
    """$CAPC_HOME/jobs/NAME/<hash>/NAME: the compiled image job folder (keras_cnn trial script, image listing,
    score.py) the local image engine runs, the job's own YAML as its automl_job.yml."""
    from capc.render.render import render_artifacts
    from capc.spec.validate import load_spec

    share = float(automl.data.get("validation_data_size") or DEFAULT_VALIDATION_SHARE)
    spec = {
        "name": name,
        "description": str(automl.data.get("description") or f"AutoML job {automl.job.path.name}, run by capc"),
        "dataset": {"path": str(root), "format": "image_folder", "validation_fraction": share},
        "task": "image_classification",
        "metric": "accuracy",
        "sweep": {"model": "keras_cnn", "enabled": False, "search_space": {"filters": "choice(16, 32)"}},
    }
    base = registry.capc_home() / "jobs" / name / (automl.job.sha256[:16] or "node")
    base.mkdir(parents=True, exist_ok=True)
    (base / SPEC_FILE).write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    loaded = load_spec(base / SPEC_FILE)
    files = render_artifacts(loaded, base)
    files["automl_job.yml"] = yaml.safe_dump(automl.data, sort_keys=False).encode("utf-8")
    target = base / name
    write_tree(target, with_manifest(files, automl.job.sha256, name))  # the job's folder: the job's hash
    return target
