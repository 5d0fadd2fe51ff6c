"""Fit a one-number model (the mean of the first column) and log it to the step's MLflow run."""
import argparse
import json
from pathlib import Path

import mlflow

parser = argparse.ArgumentParser()
parser.add_argument("--data", required=True)
parser.add_argument("--lr", type=float, required=True)
parser.add_argument("--model", required=True)
parser.add_argument("--note", default=None)
args = parser.parse_args()

rows = Path(args.data, "rows.csv").read_text().splitlines()[1:]
mean = sum(float(r.split(",")[0]) for r in rows) / len(rows)
with mlflow.start_run():
    mlflow.log_metric("mean", mean)
    mlflow.log_param("lr", args.lr)
Path(args.model, "model.json").write_text(json.dumps({"mean": mean, "lr": args.lr, "note": args.note}))
print("trained")
