"""Benchmark of the whole local main job: `capc submit` of a reference spec (AutoML + sweep + selection), then the
registered model scored on rows it never saw.

For each tabular reference spec: hold out 20% of its training file (stratified for classification, seed 0), write
the other 80% and a copy of the spec pointing at it into a temporary folder, run the real console command

    capc submit SPEC --set automl.timeout_minutes=2 --set sweep.limits.max_total_trials=6 --json

(the README's main job) with a throw-away $CAPC_HOME, load the model it registered with MLflow (as a user would,
without capc) and score the holdout. Prints the winner (automl or sweep), its validation value, the holdout
figure against the issue's target and the wall time.

    python bench/bench_submit.py [--only bankmarketing] [--seeds 0 1 2] [--automl-minutes 2] [--sweep-trials 6] [--set K=V ...] [--keep DIR]

It prints the registered model's serving figures and the better candidates the spec's serving budget passed over;
`--keep DIR` leaves each case's folder (generated/, $CAPC_HOME with the registered model) for bench_endpoint.py.

One holdout of 5,272 bank rows has a standard error of about 0.004 in accuracy, as large as the gap between good
models; `--seeds` repeats each case on other splits (seed N holds out a different 20%) and prints the mean.

`--set` adds overrides, e.g. `--set automl.max_trials=1000` so that the 2-minute budget alone ends AutoML rather than
the specs' trial cap (30-40, as the seeds' cloud runs had).

Targets (holdout): bank marketing accuracy > 0.915, housing MAE < 30,000, digits accuracy >= 0.990.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from sklearn.metrics import accuracy_score, mean_absolute_error
from sklearn.model_selection import train_test_split

REPO = Path(__file__).resolve().parent.parent
DEFAULT_SEEDS = (0,)

# spec -> (holdout figure, passes, target text)
CASES = {
    "bankmarketing": ("accuracy", lambda v: v > 0.915, "> 0.915"),
    "housing": ("MAE", lambda v: v < 30_000, "< 30,000"),
    "mnist": ("accuracy", lambda v: v >= 0.990, ">= 0.990"),  # issue 19: the conditional sweep's svc, mean of 3 splits
}


def run_case(name: str, seed: int, minutes: int, trials: int, work: Path, extra: list[str]) -> dict:
    figure, passes, target_text = CASES[name]
    spec_path = REPO / "specs" / f"{name}.yaml"
    spec = yaml.safe_load(spec_path.read_text())
    data = spec_path.parent / spec["dataset"]["path"]
    target = spec["dataset"]["target"]
    frame = pd.read_csv(data)
    stratify = frame[target] if spec["task"] == "classification" else None
    train, holdout = train_test_split(frame, test_size=0.2, random_state=seed, stratify=stratify)
    folder = work / f"{name}-{seed}"
    folder.mkdir(parents=True)
    train.to_csv(folder / "train.csv", index=False)
    spec["dataset"]["path"] = "train.csv"
    (folder / "spec.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    env = {**os.environ, "CAPC_HOME": str(folder / "home")}
    argv = ["capc", "submit", str(folder / "spec.yaml"), "--out", str(folder / "generated"), "--json",
            "--set", f"automl.timeout_minutes={minutes}", "--set", f"sweep.limits.max_total_trials={trials}",
            *(word for override in extra for word in ("--set", override))]
    print(f"\n== {name}, split seed {seed}: {len(train)} training rows, {len(holdout)} holdout rows; {' '.join(argv[:3])} ...", flush=True)
    started = time.monotonic()
    done = subprocess.run(argv, env=env, capture_output=True, text=True)
    elapsed = time.monotonic() - started
    if done.returncode != 0:
        print(done.stdout[-2000:], done.stderr[-4000:])
        return {"name": name, "seed": seed, "figure": figure, "value": float("nan"), "target": target_text, "ok": False,
                "winner": "-", "wall_s": elapsed}
    result = json.loads(done.stdout[done.stdout.index("{"):])
    for side in result["results"]:
        print(f"   {side['source']:<6} best {result['metric']} {side['value']:.5f} ({side['label']})")
    selection = result.get("selection") or {}
    if selection.get("serving"):
        serving = selection["serving"]
        print(f"   serving ({selection['budget']}): p99 {serving['serving_p99_ms']:.1f} ms, p50 {serving['serving_p50_ms']:.1f} ms, "
              f"{serving['serving_rows_per_s']:,.0f} rows/s, {serving['serving_size_mb']:.2f} MB")
    for passed in selection.get("passed_over") or []:
        print(f"   passed over {passed['source']} {passed['label']} ({passed['value']:.5f}): {'; '.join(passed['reasons'])}")
    import mlflow.pyfunc

    model = mlflow.pyfunc.load_model(result["model"]["model_dir"])
    predictions = np.asarray(model.predict(holdout.drop(columns=[target])))
    truth = holdout[target].to_numpy()
    value = accuracy_score(truth, predictions) if figure == "accuracy" else mean_absolute_error(truth, predictions)
    print(f"   registered {result['model']['name']}:{result['model']['version']} from {result['winner']}; "
          f"holdout {figure} {shown(figure, value)} ({'meets' if passes(value) else 'MISSES'} target {target_text}); wall {elapsed:.0f}s", flush=True)
    return {"name": name, "seed": seed, "figure": figure, "value": value, "target": target_text, "ok": passes(value),
            "winner": result["winner"], "wall_s": elapsed}


def shown(figure: str, value: float) -> str:
    return f"{value:.4f}" if figure == "accuracy" else f"{value:,.0f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=sorted(CASES), action="append", help="run only this spec (repeatable)")
    parser.add_argument("--seeds", type=int, nargs="+", default=list(DEFAULT_SEEDS),
                        help="holdout split seeds; each case runs once per seed and the mean is printed")
    parser.add_argument("--automl-minutes", type=int, default=2)
    parser.add_argument("--sweep-trials", type=int, default=6)
    parser.add_argument("--keep", type=Path, default=None, help="keep each case's folder (its $CAPC_HOME and registered model) under this one")
    parser.add_argument("--set", dest="extra", action="append", default=[], metavar="KEY.PATH=VALUE",
                        help="one more override, e.g. automl.max_trials=1000")
    args = parser.parse_args(argv)
    print(f"cores: {os.cpu_count()}, load average at start: {os.getloadavg()[0]:.1f}")
    names = args.only or list(CASES)
    with tempfile.TemporaryDirectory() as tmp:
        work = args.keep or Path(tmp)
        rows = [run_case(n, seed, args.automl_minutes, args.sweep_trials, work, args.extra)
                for n in names for seed in args.seeds]
    print("\nspec           seed holdout figure        target     winner  wall")
    for r in rows:
        print(f"{r['name']:<14} {r['seed']:>4} {r['figure']:<8} {shown(r['figure'], r['value']):>12} {r['target']:>10}  "
              f"{r['winner']:<6} {r['wall_s']:>5.0f}s  {'ok' if r['ok'] else 'MISSED'}")
    verdicts = []
    for name in names:
        figure, passes, target_text = CASES[name]
        values = [r["value"] for r in rows if r["name"] == name]
        mean = float(np.mean(values))
        verdicts.append(passes(mean))
        if len(values) > 1:
            spread = f"sd {np.std(values, ddof=1):.4f}" if figure == "accuracy" else f"sd {np.std(values, ddof=1):,.0f}"
            print(f"{name:<14} mean {figure} over {len(values)} splits: {shown(figure, mean)} ({spread}); "
                  f"{'meets' if passes(mean) else 'MISSES'} target {target_text}")
    return 0 if all(verdicts) else 1


if __name__ == "__main__":
    sys.exit(main())
