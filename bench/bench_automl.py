"""Benchmark of the local AutoML engine (capc.local.automl) on the three reference tabular datasets.

For each dataset: hold out 20% of the rows (stratified for classification, fixed seed), run AutoML on the rest
with a time budget (2 minutes each by default) and the split/metric settings of the reference spec, then
score the saved-and-reloaded MLflow model on the holdout. Prints one block per dataset and a summary table.

    python bench/bench_automl.py                  # all three, 2 minutes each
    python bench/bench_automl.py --only housing --minutes 1
    python bench/bench_automl.py --split auto     # no folds/holdout in the job: Azure's default by row count

Targets (holdout): bank marketing accuracy > 0.915, housing MAE < 30,000, digits accuracy > 0.95.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import accuracy_score, mean_absolute_error
from sklearn.model_selection import train_test_split

from capc.local.automl import AutoMLSettings, run_automl

DATA = Path(__file__).resolve().parent.parent / "specs" / "data"
SEED = 0

# name -> (csv, target, automl_job.yml fields as the reference spec compiles them, holdout figure, target)
CASES = {
    "bankmarketing": (
        "bankmarketing/bankmarketing_train.csv", "y",
        {"task": "classification", "primary_metric": "accuracy", "n_cross_validations": 5},
        "accuracy", lambda v: v > 0.915, "> 0.915",
    ),
    "housing": (
        "housing/housing.csv", "median_house_value",
        {"task": "regression", "primary_metric": "normalized_mean_absolute_error", "validation_data_size": 0.2},
        "MAE", lambda v: v < 30_000, "< 30,000",
    ),
    "digits": (
        "digits/digits_train.csv", "label",
        {"task": "classification", "primary_metric": "accuracy", "n_cross_validations": 5},
        "accuracy", lambda v: v > 0.95, "> 0.95",
    ),
}


def run_case(name: str, minutes: float, max_trials: int, ensembles: bool, split: str) -> dict:
    csv, target, fields, figure, passes, target_text = CASES[name]
    if split == "auto":  # the job names no split: Azure's rule picks one from the row count
        fields = {k: v for k, v in fields.items() if k not in ("n_cross_validations", "validation_data_size")}
    frame = pd.read_csv(DATA / csv)
    stratify = frame[target] if fields["task"] == "classification" else None
    train, holdout = train_test_split(frame, test_size=0.2, random_state=SEED, stratify=stratify)
    job = {
        **fields,
        "target_column_name": target,
        "limits": {"timeout_minutes": minutes, "max_trials": max_trials, "enable_early_termination": True},
        "training": {"enable_vote_ensemble": ensembles, "enable_stack_ensemble": ensembles},
        "featurization": {"mode": "auto"},
    }
    settings = AutoMLSettings.from_job_yaml(job)
    print(f"\n== {name}: {len(train)} training rows, {len(holdout)} holdout rows, {minutes:g} min, "
          f"metric {settings.primary_metric}", flush=True)
    started = time.monotonic()
    result = run_automl(train.reset_index(drop=True), settings)
    elapsed = time.monotonic() - started
    with tempfile.TemporaryDirectory() as tmp:
        import mlflow.pyfunc

        result.save_mlflow_model(Path(tmp) / "model")
        model = mlflow.pyfunc.load_model(str(Path(tmp) / "model"))
        predictions = np.asarray(model.predict(holdout.drop(columns=[target])))
    truth = holdout[target].to_numpy()
    value = accuracy_score(truth, predictions) if figure == "accuracy" else mean_absolute_error(truth, predictions)
    by_algorithm: dict[str, int] = {}
    for c in result.candidates:
        by_algorithm[c.estimator] = by_algorithm.get(c.estimator, 0) + 1
    print(f"   {len(result.candidates)} candidates: " + ", ".join(f"{k} {v}" for k, v in sorted(by_algorithm.items())))
    for c in result.candidates:
        if c.estimator in ("VotingEnsemble", "StackEnsemble"):
            print(f"   {c.estimator}: {settings.primary_metric} {c.value:.5f} {c.params}")
    print(f"   best: {result.best.estimator} (candidate {result.best.index}), validation "
          f"{settings.primary_metric} {result.best.value:.5f}")
    for note in result.notes:
        print(f"   note: {note}")
    shown = f"{value:.4f}" if figure == "accuracy" else f"{value:,.0f}"
    verdict = "meets" if passes(value) else "MISSES"
    print(f"   holdout {figure}: {shown} ({verdict} target {target_text}); wall {elapsed:.0f}s", flush=True)
    return {"name": name, "figure": figure, "value": shown, "target": target_text, "ok": passes(value),
            "best": result.best.estimator, "candidates": len(result.candidates), "wall_s": elapsed}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=sorted(CASES), action="append", help="run only this dataset (repeatable)")
    parser.add_argument("--minutes", type=float, default=2.0, help="AutoML timeout per dataset (default 2)")
    parser.add_argument("--max-trials", type=int, default=1000)
    parser.add_argument("--no-ensembles", action="store_true")
    parser.add_argument("--split", choices=["spec", "auto"], default="spec",
                        help="spec: the reference spec's folds / holdout (default); auto: Azure's rule by row count")
    args = parser.parse_args(argv)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"cores: {os.cpu_count()}, load average at start: {load:.1f}")
    rows = [run_case(n, args.minutes, args.max_trials, not args.no_ensembles, args.split) for n in (args.only or list(CASES))]
    print("\ndataset        holdout figure        target     best              candidates  wall")
    for r in rows:
        print(f"{r['name']:<14} {r['figure']:<8} {r['value']:>12} {r['target']:>10}  {r['best']:<17} {r['candidates']:>10}  "
              f"{r['wall_s']:>4.0f}s  {'ok' if r['ok'] else 'MISSED'}")
    return 0 if all(r["ok"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
