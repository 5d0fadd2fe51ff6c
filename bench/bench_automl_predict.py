"""Benchmark: one-row latency and 1,000-row throughput of AutoML models, FLAML's predict path against capc's fast
paths (prints figures, asserts nothing).

    python bench/bench_automl_predict.py [--model-dir DIR ...] [--json]

Each model is measured as the selection measures it (capc.serving_cost.measure: generated/bankmarketing/score.py
in-process, one training row per call for p50/p99, then one 1,000-row request), three times: with every member sent
through FLAML's own predict (the first path), through the fast path from score.py's DataFrame (model.FastTabularMember,
as before the column path), and as saved: score.py's typed columns straight to the members' input
(AutoMLModel.predict_columns; a model saved before it has none, so its last two figures agree). Without
--model-dir (an AutoML MLflow model, e.g. $CAPC_HOME/registry/bankmarketing/<v>/model), three are trained on 2,000
bank rows with a couple of FLAML iterations each: a LightGBM, an XGBoost, and a VotingEnsemble of those two and an
ExtraTrees. The machine may be shared: the load average is printed beside the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import warnings
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
JOB = REPO / "generated" / "bankmarketing"
DATA = REPO / "specs" / "data" / "bankmarketing" / "bankmarketing_train.csv"


def train_models(work: Path) -> dict[str, Path]:
    import numpy as np
    import pandas as pd

    from capc.local.automl.model import AutoMLModel, save_mlflow_model, with_ensemble
    from capc.local.automl.search import new_automl

    frame = pd.read_csv(DATA).sample(2000, random_state=0)
    X, y = frame.drop(columns=["y"]), (frame["y"] == "yes").astype(int)
    members = {}
    for learner in ("lgbm", "xgboost", "extra_tree"):
        members[learner] = new_automl()
        members[learner].fit(X, y, task="classification", estimator_list=[learner], max_iter=2, eval_method="holdout",
                             retrain_full=True, n_jobs=1, seed=1, verbose=0)
    numeric = [c for c in X.columns if pd.api.types.is_numeric_dtype(X[c])]
    base = AutoMLModel(task="classification", feature_columns=list(X.columns), numeric_columns=numeric,
                       members=[members["lgbm"]], weights=[1.0], classes=np.array(["no", "yes"]), kind="single")
    models = {
        "LightGBM": base,
        "XGBoost": with_ensemble(base, dict(members=[members["xgboost"]], weights=[1.0], stacker=None, kind="single")),
        "VotingEnsemble(3)": with_ensemble(base, dict(members=list(members.values()), weights=[0.5, 0.3, 0.2],
                                                      stacker=None, kind="vote")),
    }
    dirs = {}
    for name, model in models.items():
        dirs[name] = save_mlflow_model(model, work / name, X.head(20))
    return dirs


@contextmanager
def flaml_path_only():
    """score.py's mlflow.sklearn.load_model, returning the model with its members on FLAML's own path."""
    import mlflow.sklearn

    original = mlflow.sklearn.load_model

    def load(*args, **kwargs):
        model = original(*args, **kwargs)
        model._fast_members = [None] * len(model.members)
        return model

    mlflow.sklearn.load_model = load
    try:
        yield
    finally:
        mlflow.sklearn.load_model = original


@contextmanager
def frame_path_only():
    """score.py's mlflow.sklearn.load_model, returning the model without its column path (score.py builds a frame)."""
    import mlflow.sklearn

    original = mlflow.sklearn.load_model

    def load(*args, **kwargs):
        model = original(*args, **kwargs)
        model.predict_columns = model.predict_proba_columns = None  # not callable: score.py's init() keeps the frame
        return model

    mlflow.sklearn.load_model = load
    try:
        yield
    finally:
        mlflow.sklearn.load_model = original


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path, action="append", help="an AutoML MLflow model (repeatable)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()

    from rich.console import Console
    from rich.table import Table

    from capc.serving_cost import measure, records_from_file

    warnings.simplefilter("ignore")  # FLAML and scikit-learn notes, the same on both paths
    records = records_from_file(str(DATA), "y")
    figures = []
    with tempfile.TemporaryDirectory(prefix="capc-bench-automl-predict-") as folder:
        dirs = {str(d): d for d in args.model_dir} if args.model_dir else train_models(Path(folder))
        for name, model_dir in dirs.items():
            with flaml_path_only():
                flaml = measure(str(JOB / "score.py"), str(model_dir), records)
            with frame_path_only():
                frame = measure(str(JOB / "score.py"), str(model_dir), records)
            columns = measure(str(JOB / "score.py"), str(model_dir), records)
            figures.append({"model": name, "flaml_path": flaml.__dict__, "frame_fast_path": frame.__dict__,
                            "column_path": columns.__dict__})
    load = os.getloadavg()[0]
    if args.json:
        print(json.dumps({"figures": figures, "cpus": os.cpu_count(), "load_average_1m": round(load, 2)}, indent=2))
        return
    table = Table(title=f"AutoML models through score.py run() ({os.cpu_count()} CPUs, load {load:.1f})")
    for column in ("model", "path", "p50 ms", "p99 ms", "rows/s (1,000 rows)"):
        table.add_column(column, justify="left" if column in ("model", "path") else "right")
    for f in figures:
        for key, path in (("flaml_path", "FLAML's predict"), ("frame_fast_path", "fast path, DataFrame"),
                          ("column_path", "column path")):
            row = f[key]
            table.add_row(f["model"] if key == "flaml_path" else "", path, f"{row['p50_ms']:.2f}", f"{row['p99_ms']:.2f}",
                          f"{row['rows_per_s']:,.0f}")
    Console().print(table)


if __name__ == "__main__":
    main()
