"""The generated trial script and scoring script, run for real on samples of the real data sets.

Each case renders a spec, starts src/train.py exactly as the sweep runner does (the sweep_job.yml command with
${{inputs.x}} and ${{search_space.p}} substituted, MLFLOW_RUN_ID of a run created beforehand), then checks the
metric history, loads outputs/model with mlflow.pyfunc, and serves it in-process through score.py's init()/run().
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from render_specs import TABULAR, base_spec, load, place_data, render_to

KERAS = importlib.util.find_spec("keras") is not None and importlib.util.find_spec("torch") is not None

# Small hyperparameters so one trial takes seconds; every one goes through the command line.
SMALL = {
    "logistic_regression": {"C": 1.0, "max_iter": 40},
    "random_forest": {"n_estimators": 12, "max_depth": 6},
    "lightgbm": {"n_estimators": 30, "learning_rate": 0.1},
    "keras_mlp": {"epochs": 3, "first_layer_neurons": 16, "second_layer_neurons": 8, "batch_size": 32},
}

# The default suite trains one case per tabular family; the rest of the matrix is marked slow.
QUICK = {("bank", "lightgbm", "accuracy"), ("housing", "random_forest", "normalized_root_mean_squared_error"), ("digits", "logistic_regression", "accuracy")}
CASES = [
    # (data set, family, metric, split)
    ("bank", "logistic_regression", "AUC_weighted", {"cross_validations": 3}),
    ("bank", "random_forest", "norm_macro_recall", {"validation_fraction": 0.25}),
    ("bank", "lightgbm", "accuracy", {"cross_validations": 3}),
    ("housing", "random_forest", "normalized_root_mean_squared_error", {"validation_fraction": 0.2}),
    ("housing", "lightgbm", "r2_score", {"cross_validations": 3}),
    ("digits", "logistic_regression", "accuracy", {"cross_validations": 5}),
    ("digits", "lightgbm", "average_precision_score_weighted", {"validation_fraction": 0.3}),
    ("digits", "random_forest", "precision_score_weighted", {"validation_fraction": 0.3}),
    ("housing", "lightgbm", "spearman_correlation", {"validation_fraction": 0.2}),
]
KERAS_CASES = [
    ("housing", "keras_mlp", "normalized_mean_absolute_error", {"validation_fraction": 0.2}),
    ("bank", "keras_mlp", "accuracy", {"cross_validations": 2}),
]


@pytest.fixture(scope="module")
def tracking_uri(tmp_path_factory) -> str:
    """One MLflow store for the module: creating a sqlite store costs seconds, so it is made once."""
    import mlflow

    uri = f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"
    mlflow.MlflowClient(uri).search_experiments()  # creates the tables
    return uri


def spec_for(tmp_path: Path, which: str, family: str, metric: str, split: dict):
    place_data(tmp_path, which)
    _, target, task, _ = TABULAR[which]
    first = next(iter(SMALL[family]))
    data = base_spec(
        "bank",
        name=f"{which}-{family.replace('_', '-')}",
        task=task,
        metric=metric,
        dataset={"path": f"data/{which}.csv", "format": "csv", "target": target, **split},
        automl={},
        sweep={"model": family, "search_space": {first: f"choice({SMALL[family][first]})"}},
        deployment={"probabilities": task == "classification"},
    )
    data.pop("schedule")
    return load(tmp_path, data)


def run_trial(job_dir: Path, trial_dir: Path, tracking_uri: str, values: dict, experiment: str) -> tuple[subprocess.CompletedProcess, str]:
    """Start train.py as the local sweep runner does; returns the process result and the MLflow run id."""
    import mlflow
    import yaml

    job = yaml.safe_load((job_dir / "sweep_job.yml").read_text(encoding="utf-8"))
    data_path = (job_dir / job["inputs"]["training_data"]["path"]).resolve()
    command = job["trial"]["command"].replace("${{inputs.training_data}}", shlex.quote(str(data_path)))
    command = re.sub(r"\$\{\{search_space\.(\w+)\}\}", lambda m: shlex.quote(str(values[m.group(1)])), command)
    argv = shlex.split(command)
    assert argv[:2] == ["python", "train.py"]
    extra = [a for name, value in values.items() if f"--{name}" not in argv for a in (f"--{name}", str(value))]
    client = mlflow.MlflowClient(tracking_uri)
    experiment_id = client.create_experiment(experiment) if client.get_experiment_by_name(experiment) is None else client.get_experiment_by_name(experiment).experiment_id
    run_id = client.create_run(experiment_id).info.run_id
    trial_dir.mkdir(parents=True)
    env = {**os.environ, "MLFLOW_TRACKING_URI": tracking_uri, "MLFLOW_EXPERIMENT_ID": experiment_id, "MLFLOW_RUN_ID": run_id}
    proc = subprocess.run(
        [sys.executable, str(job_dir / "src" / "train.py"), *argv[2:], *extra],
        cwd=trial_dir, env=env, capture_output=True, text=True, timeout=600,
    )
    return proc, run_id


def load_score_module(job_dir: Path, model_root: Path, name: str):
    os.environ["AZUREML_MODEL_DIR"] = str(model_root)
    # A module name of its own: inference-schema registers run() by qualified name, once per name.
    unique = f"score_{name.replace('-', '_')}_{abs(hash(str(job_dir)))}"
    spec = importlib.util.spec_from_file_location(unique, job_dir / "score.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.init()
    return module


def check_case(tmp_path: Path, tracking_uri: str, which: str, family: str, metric: str, split: dict) -> None:
    import mlflow
    import pandas as pd

    spec = spec_for(tmp_path, which, family, metric, split)
    out = tmp_path / "generated"
    render_to(spec, out)
    job_dir = out / spec.name
    trial_dir = tmp_path / "trial"
    proc, run_id = run_trial(job_dir, trial_dir, tracking_uri, SMALL[family], spec.name)
    assert proc.returncode == 0, proc.stderr[-3000:]

    # One report per interval under the Azure metric name, steps 1..n; the last one is the trial's result.
    history = mlflow.MlflowClient(tracking_uri).get_metric_history(run_id, metric)
    steps = sorted(m.step for m in history)
    assert steps == list(range(1, len(steps) + 1)) and len(steps) >= 2, steps
    final = max(history, key=lambda m: m.step).value
    assert math.isfinite(final)
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["metric"] == metric and summary["value"] == pytest.approx(final)
    if metric in ("accuracy", "AUC_weighted", "precision_score_weighted", "average_precision_score_weighted"):
        assert 0.5 < final <= 1.0, final
    if metric == "r2_score" or metric == "spearman_correlation":
        assert final > 0.2, final
    if metric.startswith("normalized_"):
        assert 0 < final < 0.5, final
    check_held_out_predictions(tracking_uri, run_id, task_of(which), metric, split, final)

    # The saved model predicts on raw rows: the preprocessing is inside it.
    _, target, task, _ = TABULAR[which]
    rows = pd.read_csv(tmp_path / "data" / f"{which}.csv").drop(columns=[target]).head(25)
    model = mlflow.pyfunc.load_model(str(trial_dir / "outputs" / "model"))
    predictions = model.predict(rows)
    assert len(predictions) == len(rows)

    # score.py, in-process, on the same model.
    score = load_score_module(job_dir, trial_dir / "outputs", spec.name)
    request = json.loads((job_dir / "sample_request.json").read_text(encoding="utf-8"))
    answer = score.run(data=request["data"])
    assert isinstance(answer, dict), getattr(answer, "data", answer)
    assert len(answer["result"]) == len(request["data"])
    json.dumps(answer)  # plain JSON types only
    if task == "regression":
        assert all(isinstance(v, float) for v in answer["result"])
    else:
        labels = set(pd.read_csv(tmp_path / "data" / f"{which}.csv")[target].tolist())
        assert set(answer["result"]) <= labels
        probabilities = answer["probabilities"]
        assert len(probabilities) == len(request["data"])
        assert all(abs(sum(p.values()) - 1.0) < 1e-6 for p in probabilities)
    if family != "keras_mlp":
        # capc's own sklearn pipelines are served by the numpy shortcut, which must answer as the pipeline does.
        assert score._fast is not None
        import mlflow.sklearn

        pipeline = mlflow.sklearn.load_model(str(trial_dir / "outputs" / "model"))
        records = json.loads(rows.to_json(orient="records"))
        fast = score.run(data=records)["result"]
        expected = pipeline.predict(rows).tolist()
        if task == "regression":
            assert fast == pytest.approx(expected, rel=1e-9, abs=1e-9)
        else:
            assert fast == expected
    columns = list(request["data"][0])
    split_answer = score.run(input_data={"columns": columns, "data": [[r[c] for c in columns] for r in request["data"]]})
    assert split_answer["result"] == answer["result"]
    check_bad_requests(score, request["data"][0])


def task_of(which: str) -> str:
    return TABULAR[which][2]


def check_held_out_predictions(tracking_uri: str, run_id: str, task: str, metric: str, split: dict, final: float) -> None:
    """The trial stores its predictions on its validation rows (every row, out of fold, under cross-validation);
    the report's primary metric on them is the value the trial logged: exactly for a holdout, and for a pooled
    metric over folds of equal size; close otherwise (a mean over folds is not the metric of the pooled rows)."""
    import mlflow

    from capc.report.evaluation import from_stored
    from capc.state import held_out
    from capc.state.registry import ModelVersion

    stored = held_out.load(mlflow.MlflowClient(tracking_uri), run_id)
    folds = split.get("cross_validations")
    if folds:
        assert stored.split == "cross_validation" and stored.folds == folds and stored.rows == stored.training_rows
    else:
        assert stored.split == "holdout" and stored.rows == math.ceil(split["validation_fraction"] * stored.training_rows)
    # each prediction's row among the labelled rows: every row once under cross-validation, distinct rows otherwise
    assert len(set(stored.row_index)) == stored.rows and 0 <= min(stored.row_index) and max(stored.row_index) < stored.training_rows
    model = ModelVersion(name="trial", version=1, task=task, metric=metric, value=final, goal="maximize", source="sweep",
                         run_id=run_id, spec_sha256="0" * 64, job_dir="", created="")
    name, value = from_stored(model, stored).primary
    pooled = metric in ("accuracy", "normalized_mean_absolute_error") and stored.training_rows % (folds or 1) == 0
    assert value == pytest.approx(final, abs=1e-9 if not folds or pooled else 0.05), (name, value, final)


def check_bad_requests(score, row: dict) -> None:
    """Every malformed request is a 400 whose message names the problem; run() never raises."""
    first_column = next(iter(row))
    numeric_column = next(c for c, v in row.items() if isinstance(v, (int, float)) and not isinstance(v, bool))
    cases = {
        "not a list": (dict(data="rows"), '"data" must be a list'),
        "empty": (dict(data=[]), "empty list"),
        "row not an object": (dict(data=[[1, 2]]), '"data"[0] must be an object'),
        "missing column": (dict(data=[{k: v for k, v in row.items() if k != first_column}]), json.dumps(first_column)),
        "wrong type": (dict(data=[{**row, numeric_column: "abc"}]), f"column {json.dumps(numeric_column)}, row 0: expected a number"),
        "nothing": (dict(), '"data"'),
        "both": (dict(data=[row], input_data={"columns": [], "data": []}), "not both"),
        "split not an object": (dict(input_data=[1]), '"input_data" must be an object'),
        "split row length": (dict(input_data={"columns": list(row), "data": [[1]]}), "one per column"),
    }
    for label, (kwargs, expected) in cases.items():
        response = score.run(**kwargs)
        assert getattr(response, "status_code", None) == 400, (label, response)
        message = json.loads(response.get_data(as_text=True))["message"]
        assert expected in message, (label, message)
    # Missing values are fine: they are imputed inside the model.
    assert isinstance(score.run(data=[{**row, numeric_column: None}]), dict)


@pytest.mark.parametrize(
    "which,family,metric,split",
    [c if c[:3] in QUICK else pytest.param(*c, marks=pytest.mark.slow) for c in CASES],
    ids=[f"{c[0]}-{c[1]}-{c[2]}" for c in CASES],
)
def test_trial_trains_logs_saves_and_serves(tmp_path, tracking_uri, which, family, metric, split):
    check_case(tmp_path, tracking_uri, which, family, metric, split)


@pytest.mark.slow
@pytest.mark.skipif(not KERAS, reason="keras and torch are not installed (pip install capc[keras])")
@pytest.mark.parametrize("which,family,metric,split", KERAS_CASES, ids=[f"{c[0]}-{c[1]}-{c[2]}" for c in KERAS_CASES])
def test_keras_trial(tmp_path, tracking_uri, which, family, metric, split):
    check_case(tmp_path, tracking_uri, which, family, metric, split)


def test_trial_arguments_are_cast_and_checked_as_the_domain_says(tmp_path, capsys):
    """Integers as ints (`50.0` from a quantised distribution, `49.6` from a continuous one, rounded); a value
    outside the family table's domain is refused by the script itself, naming the legal range."""
    spec = spec_for(tmp_path, "digits", "logistic_regression", "accuracy", {"validation_fraction": 0.2})
    render_to(spec, tmp_path / "generated")
    script = tmp_path / "generated" / spec.name / "src" / "train.py"
    module_spec = importlib.util.spec_from_file_location("trial_script", script)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    base = ["--data", "x.csv", "--target", "label"]
    args = module.parse_args(base + ["--max_iter", "50.0"])
    assert args.max_iter == 50 and isinstance(args.max_iter, int)
    assert args.C == 1.0 and args.penalty == "l2"  # the family defaults
    rounded = module.parse_args(base + ["--max_iter", "49.6"])
    assert rounded.max_iter == 50 and isinstance(rounded.max_iter, int)
    for argument, value, words in [("--max_iter", "0", "integer >= 1"), ("--C", "0", "real > 0"),
                                   ("--penalty", "L3", 'one of "l2", "l1", "elasticnet", "none"'), ("--l1_ratio", "1.5", "real in [0, 1]")]:
        with pytest.raises(SystemExit):
            module.parse_args(base + [argument, value])
        assert f"outside the domain of {argument[2:]}: {words}" in capsys.readouterr().err


def load_trial_module(tmp_path: Path, which: str, family: str, metric: str, split: dict):
    """The rendered train.py of a spec, imported as a module (its Trainer, helpers and constants)."""
    spec = spec_for(tmp_path, which, family, metric, split)
    render_to(spec, tmp_path / "generated")
    script = tmp_path / "generated" / spec.name / "src" / "train.py"
    module_spec = importlib.util.spec_from_file_location(f"trial_{which}_{family}", script)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module


LIGHTGBM_SAMPLING = {"subsample": 0.7, "colsample_bytree": 0.8}


@pytest.mark.parametrize(
    "which,metric,sampling",
    [("bank", "AUC_weighted", {}), ("bank", "accuracy", LIGHTGBM_SAMPLING), ("digits", "accuracy", LIGHTGBM_SAMPLING), ("housing", "r2_score", {})],
    ids=["binary", "binary-sampled", "multiclass-sampled", "regression"],
)
def test_lightgbm_intervals_train_the_model_one_fit_trains(tmp_path, which, metric, sampling):
    """The trial's booster, trained interval by interval, predicts after each interval exactly what one scikit-learn
    fit with all rounds predicts at that many rounds; without row/column sampling also exactly what the former path
    (a scikit-learn refit per interval from the booster so far) gave. The saved model is that one fit, on the rows
    of the split (holdout) or on every row (the refit under cross-validation)."""
    import warnings

    import numpy as np

    module = load_trial_module(tmp_path, which, "lightgbm", metric, {"validation_fraction": 0.25})
    _, target, task, _ = TABULAR[which]
    features, labels = module.load_table(str(tmp_path / "data" / f"{which}.csv"), target)
    features, labels = features.iloc[:1200], labels.iloc[:1200]
    y = np.asarray(labels, dtype=float) if task == "regression" else np.asarray(labels)
    classes = None if task == "regression" else np.unique(y)
    (train_rows, valid_rows), = module.make_splits(len(y), y)
    params = module.parse_args(["--data", "x", "--target", target, "--n_estimators", "23", "--learning_rate", "0.1",
                                "--num_leaves", "7", *[a for k, v in sampling.items() for a in (f"--{k}", str(v))]])
    params = {name: getattr(params, name) for name in module.HYPERPARAMETERS}

    trainer = module.Trainer(params, classes)
    trainer.start(features.iloc[train_rows], y[train_rows], features.iloc[valid_rows])
    one_fit = trainer.make_model()
    one_fit.fit(trainer.x, trainer.y)
    former = trainer.make_model()  # the former path: n_estimators = the chunk, init_model = the booster so far
    rounds = np.cumsum(trainer.schedule)
    assert trainer.intervals == 10 and rounds[-1] == 23
    for step in range(trainer.intervals):
        trainer.advance()
        former.set_params(n_estimators=trainer.schedule[step])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            former.fit(trainer.x, trainer.y, init_model=former.booster_ if step else None)
        for model in (one_fit, former) if not sampling else (one_fit,):
            at = {"num_iteration": int(rounds[step])} if model is one_fit else {}
            np.testing.assert_array_equal(trainer.predict_valid(), model.predict(trainer.x_valid, **at))
            if task != "regression":
                np.testing.assert_allclose(trainer.predict_proba_valid(), model.predict_proba(trainer.x_valid, **at), rtol=0, atol=1e-12)
            expected = module.azure_metric(metric, y[valid_rows], model.predict(trainer.x_valid, **at),
                                           None if task == "regression" else model.predict_proba(trainer.x_valid, **at), classes, 1.0)
            assert module.evaluate(metric, trainer, y[valid_rows], classes, 1.0) == pytest.approx(expected, abs=1e-12)

    # Holdout: the estimator saved is one fit on the split's training rows.
    trainer.save(str(tmp_path / "holdout_model"), features.head(5))
    saved = trainer.model
    assert type(saved) is type(one_fit) and saved.n_estimators == 23
    np.testing.assert_array_equal(saved.predict(trainer.x_valid), one_fit.predict(trainer.x_valid))

    # Cross-validation's refit on every row: nothing evaluated, one fit at the last interval.
    final = module.Trainer(params, classes)
    final.start(features, y, None)
    for _ in range(final.intervals):
        assert not final.fitted
        final.advance()
    assert final.fitted and final.booster is None and final.model.booster_.current_iteration() == 23
    every_row = final.make_model()
    every_row.fit(final.x, final.y)
    np.testing.assert_array_equal(final.model.predict(final.x), every_row.predict(final.x))


def test_trial_script_imports_fast(tmp_path):
    """Nothing heavy at import: `--help` answers without importing pandas, scikit-learn, mlflow or keras."""
    spec = spec_for(tmp_path, "bank", "lightgbm", "accuracy", {"validation_fraction": 0.2})
    render_to(spec, tmp_path / "generated")
    script = tmp_path / "generated" / spec.name / "src" / "train.py"
    probe = (
        "import runpy, sys; sys.argv = ['train.py', '--help']\n"
        "try:\n    runpy.run_path(sys.argv[0] if False else %r, run_name='__main__')\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('pandas', 'sklearn', 'mlflow', 'keras', 'lightgbm', 'numpy') if m in sys.modules]\n"
        "print(heavy)\n"
    ) % str(script)
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert proc.stdout.strip().splitlines()[-1] == "[]", proc.stdout + proc.stderr


def test_awkward_column_names_train_and_serve(tmp_path, tracking_uri):
    """Column names with dots, spaces and quotes (target included) pass through command line, training and scoring."""
    import pandas as pd

    place_data(tmp_path, "bank", rows=240)
    frame = pd.read_csv(tmp_path / "data" / "bank.csv")
    renamed = {"age": "it's", "job": "two words", "marital": 'say "hi"', "y": "did they 'subscribe'?"}
    frame.rename(columns=renamed).to_csv(tmp_path / "data" / "awkward.csv", index=False)
    spec = load(tmp_path, {
        "name": "awkward",
        "description": "quotes ' \" and ${{inputs.training_data}}",
        "dataset": {"path": "data/awkward.csv", "format": "csv", "target": renamed["y"], "drop": ["duration"], "validation_fraction": 0.25},
        "task": "classification",
        "metric": "accuracy",
        "sweep": {"model": "logistic_regression", "search_space": {"max_iter": "choice(30)"}},
        "deployment": {"probabilities": True},
    })
    render_to(spec, tmp_path / "generated")
    job_dir = tmp_path / "generated" / "awkward"
    proc, _ = run_trial(job_dir, tmp_path / "trial", tracking_uri, {"max_iter": 30}, "awkward")
    assert proc.returncode == 0, proc.stderr[-3000:]
    score = load_score_module(job_dir, tmp_path / "trial" / "outputs", "awkward")
    request = json.loads((job_dir / "sample_request.json").read_text(encoding="utf-8"))
    assert {"it's", "two words", 'say "hi"', "cons.conf.idx"} <= set(request["data"][0])
    assert "duration" not in request["data"][0]
    answer = score.run(data=request["data"])
    assert set(answer["result"]) <= {"yes", "no"} and set(answer["probabilities"][0]) == {"no", "yes"}


def test_select_best_picks_by_goal_among_what_deployment_model_allows(tmp_path):
    """select_best.py compares the recorded scores of the winners deployment.model lets win, by the metric's goal
    (azure_metrics.py's; a contradicting --goal is refused), and copies the better model."""
    import mlflow.sklearn
    from sklearn.dummy import DummyClassifier

    spec = spec_for(tmp_path, "digits", "logistic_regression", "accuracy", {"validation_fraction": 0.2})
    render_to(spec, tmp_path / "generated")
    script = tmp_path / "generated" / spec.name / "select" / "select_best.py"
    # Any number of candidates: AutoML and, for a conditional sweep, one sweep per family.
    scores = {"automl": 0.91, "sweep_logistic_regression": 0.87, "sweep_svc": 0.89}
    for name, value in scores.items():
        model = DummyClassifier().fit([[0], [1]], [0, 1])
        mlflow.sklearn.save_model(model, str(tmp_path / name / "model"), pip_requirements=["scikit-learn"])
        recorded = [{"metric": metric, "value": value} for metric in ("accuracy", "normalized_root_mean_squared_error")]
        for metric_dir, record in zip(("", "model"), recorded):  # one metrics.json per metric, where select_best looks
            (tmp_path / name / metric_dir / "metrics.json").write_text(json.dumps(record))
    candidates = [word for name in scores for word in ("--candidate", f"{name}={tmp_path / name}")]

    def select(metric, *options):
        out = tmp_path / f"out-{metric}-{'-'.join(options)}"
        proc = subprocess.run(
            [sys.executable, str(script), *candidates, "--metric", metric, *options, "--model_name", spec.name,
             "--output", str(out), "--no_register"],
            capture_output=True, text=True, timeout=120,
        )
        chosen = json.loads((out / "winner.json").read_text()) if proc.returncode == 0 else None
        assert chosen is None or (out / "model" / "MLmodel").is_file()
        return proc, chosen

    cases = [
        (("accuracy", "--goal", "maximize"), ("automl", "automl")),
        (("normalized_root_mean_squared_error",), ("sweep", "sweep_logistic_regression")),  # the metric's own goal
        (("accuracy", "--deployment_model", "sweep"), ("sweep", "sweep_svc")),  # the better AutoML model may not win
        (("accuracy", "--deployment_model", "automl"), ("automl", "automl")),
    ]
    for arguments, expected in cases:
        proc, chosen = select(*arguments)
        assert proc.returncode == 0, proc.stderr
        assert (chosen["source"], chosen["candidate"]) == expected, arguments
    proc, _ = select("accuracy", "--goal", "minimize")
    assert proc.returncode != 0 and "accuracy is to maximize, not minimize" in proc.stderr
    proc = subprocess.run(
        [sys.executable, str(script), "--candidate", f"sweep={tmp_path / 'sweep_svc'}", "--deployment_model", "automl",
         "--metric", "accuracy", "--model_name", "x", "--output", str(tmp_path / "automl-only"), "--no_register"],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode != 0 and "that deployment.model automl lets win" in proc.stderr
    assert "sweep: not weighed (deployment.model is automl)" in proc.stdout
    proc = subprocess.run(
        [sys.executable, str(script), "--candidate", f"automl={tmp_path / 'missing'}", "--candidate", f"sweep={tmp_path / 'missing2'}",
         "--metric", "accuracy", "--goal", "maximize", "--model_name", "x", "--output", str(tmp_path / "none"), "--no_register"],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode != 0 and "no candidate model" in proc.stderr


@pytest.mark.slow
@pytest.mark.skipif(not KERAS, reason="keras and torch are not installed (pip install capc[keras])")
def test_keras_cnn_trial_on_image_folders(tmp_path, tracking_uri):
    """keras_cnn reads class folders, logs per epoch, and its model scores base64 images (never server paths)."""
    import base64

    place_data(tmp_path, "mri")
    data = base_spec("mri", automl={}, deployment={"probabilities": True})
    data["sweep"]["search_space"] = {"epochs": "choice(2)"}
    spec = load(tmp_path, data)
    render_to(spec, tmp_path / "generated")
    job_dir = tmp_path / "generated" / "mri"
    values = {"epochs": 2, "image_size": 32, "filters": 8, "depth": 2, "batch_size": 8}
    proc, run_id = run_trial(job_dir, tmp_path / "trial", tracking_uri, values, "mri")
    assert proc.returncode == 0, proc.stderr[-3000:]
    import mlflow

    # One report per epoch, then the score of the restored best weights as the last step (the trial's result).
    assert [m.step for m in mlflow.MlflowClient(tracking_uri).get_metric_history(run_id, "accuracy")] == [1, 2, 3]
    score = load_score_module(job_dir, tmp_path / "trial" / "outputs", "mri")
    request = json.loads((job_dir / "sample_request.json").read_text(encoding="utf-8"))
    answer = score.run(data=request["data"])
    assert answer["result"][0] in {"yes", "no"} and set(answer["probabilities"][0]) == {"no", "yes"}
    an_image = next((tmp_path / "data" / "mri" / "yes").iterdir())
    assert score.run(data=[{"image": str(an_image)}]).status_code == 400  # a path is not an image
    not_an_image = base64.b64encode(b"plain text").decode()
    assert score.run(data=[{"image": not_an_image}]).status_code == 400
