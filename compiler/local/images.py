"""Backend, local: AutoML for images (the image folder itself is read by capc.local.image_folder).

Azure's AutoML for images fine-tunes pretrained vision models on a GPU cluster; no pretrained weights can be
had here, so the local engine's AutoML for images is a bounded search over capc's keras_cnn family (a small CNN
trained from scratch): the compiled keras_cnn trial script (src/train.py) run by the sweep runner over
AUTOML_SEARCH_SPACE below, within the job's timeout_minutes and max_trials, under the job's early-termination
policy. Each configuration is a child run of the AutoML run in MLflow.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path

from capc.errors import CapcError
from capc.state import tracking
from capc.state.tracking import COMPLETED, FAILED
from capc.jobfolder.data import image_root_from_mltable
from capc.local.automl_run import automl_job_run
from capc.local.image_folder import scan_image_folder
from capc.local.outcome import Outcome
from capc.local.search_end import SearchEnd, SearchReport, sweep_end
from capc.trial import trial_command

FAMILY = "keras_cnn"
TRIAL_MARKER = "# capc-trial: keras_cnn"  # second line of train_image.py.j2's output: this src/train.py is ours
METRIC = "accuracy"  # Azure ML's only primary metric for image classification

# The local AutoML search space (Azure-form distributions, as in sweep_job.yml). The job's own image settings
# (model_names, learning_rate, number_of_epochs) are for fine-tuning pretrained networks on a GPU and do not
# carry over: a CNN trained from scratch needs ~50-80 epochs (early stopping ends it when val_loss stalls) at an
# Adam learning rate near 1e-3. Sizes stay small: on 2 cores a 64-pixel trial takes a few minutes.
AUTOML_SEARCH_SPACE: dict[str, dict] = {
    "batch_size": {"type": "choice", "values": [16]},
    "depth": {"type": "choice", "values": [3, 4]},
    "dropout": {"type": "uniform", "min_value": 0.2, "max_value": 0.4},
    "epochs": {"type": "choice", "values": [80]},
    "filters": {"type": "choice", "values": [16, 32]},
    "image_size": {"type": "choice", "values": [64, 96]},
    "learning_rate": {"type": "loguniform", "min_value": -7.6, "max_value": -6.2},  # e^x: ~5e-4 .. 2e-3
}
CORES_PER_TRIAL = 4  # torch uses every core it sees: more trials at once than this allows only fight for them
SAMPLING_SEED = 42


# ---------------------------------------------------------------- AutoML for images


@dataclass
class ImageCandidate:
    """One finished configuration, in the shape the submit display shows AutoML candidates."""

    index: int
    status: str  # completed | failed | early_terminated | interrupted
    value: float | None
    params: dict
    duration_s: float | None
    run_id: str
    estimator: str = FAMILY


@dataclass
class ImageSearch:
    candidates: list[ImageCandidate]
    best: ImageCandidate | None
    stopped_because: str
    end: SearchEnd | None = None  # the limit that ended it, said as the tabular AutoML says it


def search_report_tagged(mlflow_client, automl_run: str, limits: dict, result) -> SearchReport:
    """Why the search ended, in the AutoML job's own terms (max_trials, timeout_minutes), tagged on its run."""
    end = sweep_end(result.stopped_because, limits["max_total_trials"], limits.get("timeout"), result.counts(),
                    settings=("max_trials", "timeout_minutes"))
    report = SearchReport("automl", end)
    for key, value in report.tags().items():
        mlflow_client.set_tag(automl_run, key, value)
    return report


def automl_sweep_job(job: dict, image_root: Path, cpu_count: int | None = None) -> dict:
    """The sweep job (sweep_job.yml's shape, in memory) that runs an image AutoML job's search locally."""
    limits = job.get("limits") or {}
    search_space = {name: dict(d) for name, d in AUTOML_SEARCH_SPACE.items()}
    cores = cpu_count or os.cpu_count() or 1
    concurrent = max(1, min(int(limits.get("max_concurrent_trials") or 1), cores // CORES_PER_TRIAL))
    sweep_limits = {"max_total_trials": int(limits.get("max_trials") or 1), "max_concurrent_trials": concurrent}
    if limits.get("timeout_minutes"):
        sweep_limits["timeout"] = int(limits["timeout_minutes"]) * 60
    if limits.get("trial_timeout_minutes"):
        sweep_limits["trial_timeout"] = int(limits["trial_timeout_minutes"]) * 60
    sweep_job = {
        "type": "sweep",
        "trial": {"code": "./src", "command": trial_command(METRIC, search_space, "search_space")},
        "inputs": {"training_data": {"type": "uri_folder", "path": str(image_root)}},
        "sampling_algorithm": {"type": "random", "seed": SAMPLING_SEED},
        "search_space": search_space,
        "objective": {"goal": "maximize", "primary_metric": METRIC},
        "limits": sweep_limits,
    }
    policy = (job.get("sweep") or {}).get("early_termination")
    if policy:
        sweep_job["early_termination"] = dict(policy)
    return sweep_job


def check_trial_script(job_dir: Path) -> Path:
    script = Path(job_dir) / "src" / "train.py"
    try:
        head = script.read_text(encoding="utf-8").splitlines()[:3]
    except FileNotFoundError:
        raise CapcError(f"{script} is missing: local AutoML for images runs capc's keras_cnn trial script.", "rebuild with `capc build`") from None
    if TRIAL_MARKER not in head:
        raise CapcError(
            f"{script} is not capc's keras_cnn trial script (the spec's sweep uses its own script), and local AutoML for images runs keras_cnn.",
            "use `sweep.model: keras_cnn`, or `capc submit --only sweep`",
        )
    return script


def run_image_automl(job_dir, job, mlflow_client, exp_id, submit_run, work_dir, progress):
    """AutoML for images on this machine: the keras_cnn search; returns the best configuration as an Outcome."""
    job_dir = Path(job_dir)
    check_trial_script(job_dir)
    folder = scan_image_folder(image_root_from_mltable(job_dir / "data"))
    message = folder.skipped_message()
    if message:
        # The trial script skips them too (and says so in its log); the user hears it once, here.
        if progress:
            progress.note(message)
        else:
            warnings.warn(message, stacklevel=2)
    sweep_job = automl_sweep_job(job, folder.root)
    tags = {"capc.family": FAMILY, "capc.task": "image_classification", "capc.images": str(folder.image_count)}
    with automl_job_run(mlflow_client, exp_id, submit_run, progress, sweep_job["limits"].get("timeout", 0) or 1, tags) as automl_run:
        return _search_images(job_dir, sweep_job, mlflow_client, exp_id, automl_run, work_dir, progress)


def _search_images(job_dir: Path, sweep_job: dict, mlflow_client, exp_id, automl_run, work_dir, progress):
    """The keras_cnn search as a sweep, recorded under `automl_run` (automl_job_run finishes it on an error)."""
    from capc.local.sweep import run_sweep_interruptibly  # noqa: PLC0415

    candidates: list[ImageCandidate] = []

    def on_event(kind: str, trial) -> None:
        if kind not in ("finished", "failed", "stopped"):
            return
        candidate = ImageCandidate(trial.number, trial.status, trial.value, dict(trial.params), trial.duration_s, trial.run_id)
        candidates.append(candidate)
        if progress:
            progress.automl_candidate(candidate)

    result, interrupted = run_sweep_interruptibly(
        on_interrupt=(lambda: progress.note("stopping: ending the running configuration (finished ones stay recorded)")) if progress else None,
        job=sweep_job, job_dir=job_dir, trials_dir=Path(work_dir) / "automl", tracking_uri=tracking.tracking_uri(),
        experiment_id=exp_id, parent_run_id=automl_run, on_event=on_event,
    )
    if interrupted or result.stopped_because == "interrupted":
        raise KeyboardInterrupt  # automl_job_run records the run as interrupted
    best = result.best
    by_run = {c.run_id: c for c in candidates}
    search = ImageSearch(candidates, by_run.get(best.run_id) if best else None, result.stopped_because)
    if best is None:
        tracking.finish_run(mlflow_client, automl_run, FAILED)
        if progress:
            progress.note(f"AutoML for images ended ({result.stopped_because}) before any configuration completed")
        return None
    if search.best is None:  # on_event was not called for it (a display problem): rebuild it from the trial
        search.best = ImageCandidate(best.number, COMPLETED, best.value, dict(best.params), best.duration_s, best.run_id)
    metrics = {METRIC: float(best.value)}
    trial_metrics = mlflow_client.get_run(best.run_id).data.metrics
    for name in ("recall", "val_loss"):
        if name in trial_metrics:
            metrics[name] = float(trial_metrics[name])
    for name, value in metrics.items():
        mlflow_client.log_metric(automl_run, name, value)
    mlflow_client.set_tag(automl_run, "capc.best_estimator", FAMILY)
    mlflow_client.set_tag(automl_run, "capc.best_trial", best.run_id)
    report = search_report_tagged(mlflow_client, automl_run, sweep_job["limits"], result)
    tracking.finish_run(mlflow_client, automl_run, COMPLETED)
    search.end = report.end
    if progress:
        progress.automl_finished(search)
    params = {"estimator": FAMILY, **best.params}
    return Outcome("automl", best.run_id, float(best.value), Path(best.output_dir) / "model", params, metrics, f"{FAMILY} trial {best.trial_id}",
                   search=report)
