"""Benchmark: brain-MRI tumour detection (specs/data/mri) trained locally, scored on images it never saw.

A stratified 20 % of the images is held out first (seeded); the rest goes through capc's local engine:
  --mode automl (default)  run_image_automl - the bounded keras_cnn search - with the time budget as its
                           timeout, on a job folder laid out as `capc build` lays it (src/train.py rendered from
                           templates/train_image.py.j2, data/MLTable + images.jsonl);
  --mode trial             one keras_cnn trial of TRIAL_PARAMS (--param NAME=VALUE overrides one).
The winning model (an MLflow pyfunc model) then labels the held-out images; the script prints accuracy, the
recall of the tumour class (`yes`), the confusion matrix, the wall time of training and the machine's load
average (the 2-core machine may be shared: read the figures with it).

    python bench/bench_mri.py [--minutes 10] [--mode automl|trial] [--seed 0] [--param image_size=64 ...]
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "specs" / "data" / "mri"
PARSERS = {"int": "as_int", "float": "float", "str": "str"}
# --mode trial's configuration unless --param says otherwise: the best from-scratch setting found on this data.
TRIAL_PARAMS = {"image_size": 64, "filters": 16, "depth": 3, "dropout": 0.3, "learning_rate": 0.001, "epochs": 80, "batch_size": 16}


def stratified_holdout(folder, fraction: float, seed: int) -> tuple[dict, dict]:
    """({class: training paths}, {class: held-out paths}): `fraction` of every class, drawn with `seed`."""
    rng = random.Random(seed)
    train, test = {}, {}
    for label, paths in folder.classes.items():
        paths = sorted(paths)
        rng.shuffle(paths)
        held = round(len(paths) * fraction)
        test[label], train[label] = sorted(paths[:held]), sorted(paths[held:])
    return train, test


def link_folder(root: Path, classes: dict) -> Path:
    for label, paths in classes.items():
        (root / label).mkdir(parents=True)
        for path in paths:
            os.symlink(path, root / label / path.name)
    return root


def render(template: str, context: dict, path: Path) -> None:
    from capc.render.render import environment

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(environment().get_template(template).render(context), encoding="utf-8")


def job_folder(job_dir: Path, train_root: Path, train: dict, validation_fraction: float) -> None:
    """What `capc build` writes for an image spec, as far as the local engine reads it."""
    from capc.families import FAMILIES
    from capc.image_files import IMAGE_SUFFIXES

    family = FAMILIES["keras_cnn"]
    context = {
        "name": "mri",
        "train": {
            "hyperparameters": [{"name": h.name, "parser": PARSERS[h.kind], "default": h.default, "help": h.help} for h in family.hyperparameters],
            "validation_fraction": validation_fraction,
            "image_suffixes": sorted(IMAGE_SUFFIXES),
        },
    }
    render("train_image.py.j2", context, job_dir / "src" / "train.py")
    rows = [
        {"image_url": os.path.relpath(train_root / label / p.name, job_dir / "data").replace(os.sep, "/"), "label": label}
        for label, paths in train.items()
        for p in paths
    ]
    render("MLTable_images.j2", {"name": "mri", "dataset": {"images": rows}}, job_dir / "data" / "MLTable")
    render("images.jsonl.j2", {"name": "mri", "dataset": {"images": rows}}, job_dir / "data" / "images.jsonl")


def automl_job(spec_file: Path, minutes: int) -> dict:
    """The image AutoML job of specs/mri.yaml, with the benchmark's time budget."""
    import yaml

    spec = yaml.safe_load(spec_file.read_text(encoding="utf-8"))
    automl = spec.get("automl", {})
    image = automl.get("image", {})
    from capc.spec.search_space import parse_compact

    return {
        "type": "automl",
        "task": "image_classification",
        "primary_metric": "accuracy",
        "limits": {"timeout_minutes": minutes, "max_trials": automl.get("max_trials", 10), "max_concurrent_trials": automl.get("max_concurrent_trials", 1)},
        "training_parameters": {"early_stopping": True, "number_of_epochs": image.get("number_of_epochs", 15)},
        "sweep": {"sampling_algorithm": "random", "early_termination": {"type": "bandit", "slack_factor": 0.2, "evaluation_interval": 2, "delay_evaluation": 6}},
        "search_space": [{"learning_rate": parse_compact(image.get("learning_rate", "uniform(0.001, 0.01)"))}],
    }


def train_automl(job_dir: Path, minutes: int, home: Path):
    from capc.local import images
    from capc.state import tracking

    os.environ["CAPC_HOME"] = str(home)
    client = tracking.client()
    experiment = tracking.experiment_id(client, "mri-bench")
    submit_run = tracking.start_run(client, experiment, "bench", "submit")
    outcome = images.run_image_automl(job_dir, automl_job(REPO / "specs" / "mri.yaml", minutes), client, experiment, submit_run, home / "work", None)
    trials = [r for r in tracking.list_runs("mri-bench") if r.kind == "trial"]
    summary = [{"status": r.status, "accuracy": r.metrics.get("accuracy"), "params": r.params, "seconds": r.duration_s} for r in sorted(trials, key=lambda r: r.start)]
    return outcome.model_dir, {"winner": outcome.label, "params": outcome.params, "validation": outcome.metrics, "trials": summary}


def train_one(job_dir: Path, params: dict, home: Path):
    import subprocess

    import mlflow

    uri = f"sqlite:///{home / 'mlflow.db'}"
    client = mlflow.MlflowClient(uri)
    experiment = client.create_experiment("mri-bench", artifact_location=(home / "artifacts").as_uri())
    run_id = client.create_run(experiment).info.run_id
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "MLFLOW_EXPERIMENT_ID": experiment, "MLFLOW_RUN_ID": run_id}
    command = [sys.executable, "train.py", "--data", str(job_dir / "train-images"), "--metric", "accuracy"]
    command += [f"--{k}={v}" for k, v in params.items()]
    done = subprocess.run(command, cwd=job_dir / "src", env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"trial failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    metrics = client.get_run(run_id).data.metrics
    return job_dir / "src" / "outputs" / "model", {"params": params, "validation": {k: metrics.get(k) for k in ("accuracy", "recall", "val_loss")}, "epochs": len(client.get_metric_history(run_id, "loss"))}


def evaluate(model_dir: Path, test: dict, positive: str) -> dict:
    import mlflow.pyfunc
    import pandas as pd

    model = mlflow.pyfunc.load_model(str(model_dir))
    truth, payload = [], []
    for label, paths in test.items():
        for path in paths:
            truth.append(label)
            payload.append(base64.b64encode(path.read_bytes()).decode())
    predicted = list(model.predict(pd.DataFrame({"image": payload}))["label"])
    classes = sorted(test)
    confusion = {t: {p: sum(1 for a, b in zip(truth, predicted) if a == t and b == p) for p in classes} for t in classes}
    positives = [p for t, p in zip(truth, predicted) if t == positive]
    return {
        "images": len(truth),
        "accuracy": sum(a == b for a, b in zip(truth, predicted)) / len(truth),
        f"recall_{positive}": sum(p == positive for p in positives) / len(positives),
        "confusion (true -> predicted)": confusion,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=int, default=10, help="training budget (AutoML timeout)")
    parser.add_argument("--mode", choices=("automl", "trial"), default="automl")
    parser.add_argument("--seed", type=int, default=0, help="seed of the holdout draw")
    parser.add_argument("--holdout", type=float, default=0.2)
    parser.add_argument("--param", action="append", default=[], help="NAME=VALUE for --mode trial")
    args = parser.parse_args()

    from capc.local.image_folder import scan_image_folder

    folder = scan_image_folder(DATA)
    train, test = stratified_holdout(folder, args.holdout, args.seed)
    positive = folder.class_names[-1]
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="capc-bench-mri-") as scratch:
        scratch = Path(scratch)
        job_dir = scratch / "generated" / "mri"
        train_root = link_folder(job_dir / "train-images", train)
        job_folder(job_dir, train_root, train, validation_fraction=0.2)
        started = time.monotonic()
        if args.mode == "automl":
            model_dir, training = train_automl(job_dir, args.minutes, scratch / "home")
        else:
            params = {**TRIAL_PARAMS, **dict(p.split("=", 1) for p in args.param)}
            model_dir, training = train_one(job_dir, params, scratch)
        train_s = time.monotonic() - started
        result = evaluate(model_dir, test, positive)
    report = {
        "mode": args.mode,
        "holdout_seed": args.seed,
        "train_images": sum(map(len, train.values())),
        "holdout": result,
        "training": training,
        "train_wall_s": round(train_s, 1),
        "budget_s": args.minutes * 60,
        "cpus": os.cpu_count(),
        "load_average_before": [round(v, 2) for v in load_before],
        "load_average_after": [round(v, 2) for v in os.getloadavg()],
    }
    print(json.dumps(report, indent=2, default=str))
    print(f"\nholdout accuracy {result['accuracy']:.3f}   recall({positive}) {result[f'recall_{positive}']:.3f}   "
          f"on {result['images']} unseen images; trained in {train_s:.0f} s (budget {args.minutes * 60} s), "
          f"load average {load_before[0]:.1f} -> {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
