"""A sweep trial that records its start; the second trial to start waits for MARKS/release (a stop lands in it)."""
import argparse
import time
from pathlib import Path

import mlflow

parser = argparse.ArgumentParser()
parser.add_argument("--marks", required=True)
parser.add_argument("--n", type=int, required=True)
parser.add_argument("--model_output", required=True)
args = parser.parse_args()

marks = Path(args.marks)
with open(marks / "trials.txt", "a") as started:
    started.write(f"{args.n}\n")
if len((marks / "trials.txt").read_text().split()) == 2:
    while not (marks / "release").exists():
        time.sleep(0.1)
with mlflow.start_run():
    mlflow.log_metric("score", float(args.n))
Path(args.model_output, "model.txt").write_text(str(args.n))
