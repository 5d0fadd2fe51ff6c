"""Backend, local: image classification - reading an image folder, and AutoML for images.

Azure's AutoML for images fine-tunes pretrained vision models on a GPU cluster; no pretrained weights can be
had here, so the local engine's AutoML for images is a bounded search over capc's keras_cnn family (a small CNN
trained from scratch): the compiled keras_cnn trial script (src/train.py) run by the sweep runner over
AUTOML_SEARCH_SPACE below, within the job's timeout_minutes and max_trials, under the job's early-termination
policy. Each configuration is a child run of the AutoML run in MLflow.

Image folders are messy (JPEG and PNG under any suffix case, grayscale and RGB, names with spaces): files that
cannot be decoded are skipped with a warning naming them; a class without a readable image is an error.
"""

from __future__ import annotations

import json
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from capc.errors import CapcError
from capc.state import tracking
from capc.image_files import IMAGE_SUFFIXES, image_base64, is_image_path
from capc.local.outcome import Outcome
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


# ---------------------------------------------------------------- image folders


@dataclass(frozen=True)
class SkippedFile:
    path: Path
    reason: str

    def __str__(self) -> str:
        return f"{self.path} ({self.reason})"


@dataclass
class ImageFolder:
    """A scanned image folder: readable images per class (sorted), and what was skipped and why."""

    root: Path
    classes: dict[str, list[Path]]
    skipped: list[SkippedFile] = field(default_factory=list)

    @property
    def class_names(self) -> list[str]:
        return list(self.classes)

    @property
    def image_count(self) -> int:
        return sum(len(files) for files in self.classes.values())

    def skipped_message(self) -> str | None:
        """One warning naming every skipped file, or None when nothing was skipped."""
        if not self.skipped:
            return None
        noun = "file" if len(self.skipped) == 1 else "files"
        return f"skipped {len(self.skipped)} unreadable {noun} in {self.root}: " + "; ".join(map(str, self.skipped))


def is_image_name(name: str) -> bool:
    return not name.startswith(".") and is_image_path(name)


def readable_image(path: Path) -> str | None:
    """None when `path` decodes as an image, else why not (a full decode: truncated files fail here too)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            image.load()
    except UnidentifiedImageError:
        return "not an image Pillow can read"
    except (OSError, ValueError, SyntaxError) as exc:  # truncated data, broken headers
        return f"cannot decode: {exc}"
    return None


def scan_image_folder(root: Path, verify: bool = True) -> ImageFolder:
    """Classes (sub-folders, sorted) and their readable images; CapcError when the folder cannot be trained on.

    Files with an image suffix that do not decode are skipped (listed in `skipped`); other files are left out
    as the build's image listing leaves them out. verify=False trusts the suffixes (no decoding).
    """
    root = Path(root)
    if not root.is_dir():
        raise CapcError(f"image folder {root} does not exist.", "dataset.path of an image_folder spec names a folder with one sub-folder per class")
    classes: dict[str, list[Path]] = {}
    skipped: list[SkippedFile] = []
    for sub in sorted(root.iterdir()):
        if not sub.is_dir() or sub.name.startswith("."):
            continue
        good = []
        for path in sorted(sub.iterdir()):
            if not path.is_file() or not is_image_name(path.name):
                continue
            reason = readable_image(path) if verify else None
            if reason:
                skipped.append(SkippedFile(path, reason))
            else:
                good.append(path)
        classes[sub.name] = good
    if len(classes) < 2:
        found = f"only {next(iter(classes))!r}" if classes else "none"
        raise CapcError(
            f"image folder {root} needs one sub-folder per class, at least two; found {found}.",
            "put each class's images in a sub-folder named after the class (e.g. yes/ and no/)",
        )
    empty = [name for name, files in classes.items() if not files]
    if empty:
        names = ", ".join(repr(n) for n in empty)
        suffixes = " ".join(sorted(IMAGE_SUFFIXES))
        raise CapcError(
            f"class {names} in {root} has no readable image" if len(empty) == 1 else f"classes {names} in {root} have no readable image",
            f"each class needs at least one image file ({suffixes})" + (f"; skipped: {'; '.join(map(str, skipped))}" if skipped else ""),
        )
    return ImageFolder(root, classes, skipped)


def image_root_from_mltable(data_dir: Path) -> Path:
    """The image folder behind a generated image MLTable (data/MLTable + data/images.jsonl).

    Every row's image lies in <root>/<label>/<file>; the rows must agree on <root>.
    """
    table_file = Path(data_dir) / "MLTable"
    try:
        table = yaml.safe_load(table_file.read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        raise CapcError(f"no MLTable in {data_dir}; rebuild with `capc build`.") from None
    paths = table.get("paths") or [{}]
    listing = Path(data_dir) / str(paths[0].get("file", "images.jsonl"))
    try:
        lines = listing.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise CapcError(f"{table_file} lists its images in {listing}, which does not exist; rebuild with `capc build`.") from None
    roots = set()
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            url, label = str(row["image_url"]), str(row["label"])
        except (ValueError, KeyError, TypeError):
            raise CapcError(f"{listing}:{number}: expected a JSON object with image_url and label.") from None
        if url.startswith(("azureml:", "azureml://", "http://", "https://")):
            raise CapcError(f"the images of this job live on Azure ({url}); the local engine trains on a folder on this machine.")
        image = Path(os.path.abspath(Path(data_dir) / url))
        if image.parent.name != label:
            raise CapcError(f"{listing}:{number}: image {url} is not in a sub-folder named after its label {label!r}.")
        roots.add(image.parent.parent)
    if len(roots) != 1:
        raise CapcError(f"{listing} lists images from {len(roots)} folders; the local engine trains on one image folder.", "rebuild with `capc build`")
    return roots.pop()


def encode_image(path: Path) -> str:
    """A file's bytes as base64 text, what the scoring endpoint takes for one image."""
    try:
        return image_base64(Path(path).read_bytes())
    except OSError as exc:
        raise CapcError(f"cannot read image {path}: {exc.strerror or exc}") from None


def image_request(paths: list[Path]) -> dict:
    """The scoring request for image files, in Azure's split form (score.py also takes {"data": [...]})."""
    return {"input_data": {"columns": ["image"], "data": [encode_image(p) for p in paths]}}


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


def run_image_automl(spec, job_dir, job, mlflow_client, exp_id, submit_run, work_dir, progress):
    """AutoML for images on this machine: the keras_cnn search; returns the best configuration as an Outcome."""
    from capc.local.sweep import COMPLETED, INTERRUPTED, run_sweep_interruptibly  # noqa: PLC0415

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
    automl_run = tracking.start_run(
        mlflow_client, exp_id, "automl", "automl", parent=submit_run,
        tags={"capc.family": FAMILY, "capc.task": "image_classification", "capc.images": str(folder.image_count)},
    )
    candidates: list[ImageCandidate] = []

    def on_event(kind: str, trial) -> None:
        if kind not in ("finished", "failed", "stopped"):
            return
        candidate = ImageCandidate(trial.number, trial.status, trial.value, dict(trial.params), trial.duration_s, trial.run_id)
        candidates.append(candidate)
        if progress:
            progress.automl_candidate(candidate)

    if progress:
        progress.automl_started(sweep_job["limits"].get("timeout", 0) or 1)
    try:
        result, interrupted = run_sweep_interruptibly(
            on_interrupt=(lambda: progress.note("stopping: ending the running configuration (finished ones stay recorded)")) if progress else None,
            job=sweep_job, job_dir=job_dir, trials_dir=Path(work_dir) / "automl", tracking_uri=tracking.tracking_uri(),
            experiment_id=exp_id, parent_run_id=automl_run, on_event=on_event,
        )
    except BaseException:
        tracking.finish_run(mlflow_client, automl_run, "failed")
        raise
    if interrupted or result.stopped_because == "interrupted":
        tracking.finish_run(mlflow_client, automl_run, INTERRUPTED)
        raise KeyboardInterrupt
    best = result.best
    by_run = {c.run_id: c for c in candidates}
    search = ImageSearch(candidates, by_run.get(best.run_id) if best else None, result.stopped_because)
    if best is None:
        tracking.finish_run(mlflow_client, automl_run, "failed")
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
    tracking.finish_run(mlflow_client, automl_run, "completed")
    if progress:
        progress.automl_finished(search)
    params = {"estimator": FAMILY, **best.params}
    return Outcome("automl", best.run_id, float(best.value), Path(best.output_dir) / "model", params, metrics, f"{FAMILY} trial {best.trial_id}")
