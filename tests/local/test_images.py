"""Image classification, local side: image-folder scanning, the keras_cnn trial script, score_image.py, and
local AutoML for images.

The templates are rendered here with the context the render stage gives them (see TRAIN_CONTEXT and
SCORE_CONTEXT), from capc's own family table. Image folders are built per test from synthetic images (every
mode and format a real folder holds) plus a few real MRI scans from specs/data/mri.
"""

from __future__ import annotations

import base64
import importlib.util
import io
import json
import os
import shutil
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import capc
from capc.errors import CapcError
from capc.families import FAMILIES
from capc.jobfolder import data
from capc.local import image_folder, images
from capc.image_files import IMAGE_SUFFIXES
from capc.render import sweep_context
from capc.render.render import environment
from capc.state import held_out

KERAS = importlib.util.find_spec("keras") is not None and importlib.util.find_spec("torch") is not None
needs_keras = pytest.mark.skipif(not KERAS, reason="keras/torch not installed (pip install capc[keras])")
from repo import DATA

MRI = DATA / "mri"
PARSERS = {"int": "as_int", "float": "float", "str": "str"}

# What the render stage passes train_image.py.j2 and score_image.py.j2 (the contract with capc.render.context).
TRAIN_CONTEXT = {
    "name": "mri",
    "train": {
        "hyperparameters": [
            {"name": h.name, "parser": PARSERS[h.kind], "default": h.default, "help": h.help, "domain": sweep_context.domain_of(h)}
            for h in FAMILIES["keras_cnn"].hyperparameters
        ],
        "validation_fraction": 0.25,
        "image_suffixes": sorted(IMAGE_SUFFIXES),
        "held_out_artifact": held_out.ARTIFACT_PATH,
    },
}
SCORE_CONTEXT = {"deployment": {"probabilities": True}, "dataset": {"classes": ["no", "yes"]}}
TINY = {"epochs": 2, "image_size": 24, "filters": 4, "depth": 2, "batch_size": 4, "dropout": 0.1, "learning_rate": 0.01}


def render(template: str, context: dict, path: Path) -> Path:
    """One template rendered to `path`, with the modules the build copies beside a trial script (azure_metrics.py)."""
    from capc.render.render import TRIAL_MODULES

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(environment().get_template(template).render(context), encoding="utf-8")
    package = Path(capc.__file__).resolve().parent
    for artifact, module in TRIAL_MODULES.items():
        shutil.copy(package / module, path.parent / Path(artifact).name)
    return path


def load_module(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def picture(mode: str, size=(40, 30), seed=0, bright=False) -> Image.Image:
    """A synthetic picture in any mode: a bright blob on a dark field (bright=True) or a plain gradient."""
    rng = np.random.default_rng(seed)
    h, w = size[1], size[0]
    base = np.linspace(10, 90, w)[None, :].repeat(h, axis=0) + rng.normal(0, 5, (h, w))
    if bright:
        base[h // 4 : h // 2, w // 4 : w // 2] = 250
    gray = np.clip(base, 0, 255).astype(np.uint8)
    if mode == "I;16":
        return Image.fromarray(gray.astype(np.uint16) * 200)
    image = Image.fromarray(gray, "L")
    if mode == "RGB":
        return Image.merge("RGB", (image, image.point(lambda v: v // 2), image))
    if mode == "RGBA":
        return Image.merge("RGBA", (image, image, image, Image.new("L", size, 200)))
    if mode == "P":
        return image.convert("RGB").convert("P", palette=Image.Palette.ADAPTIVE)
    return image


def save(image: Image.Image, path: Path, fmt: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, fmt)
    return path


def messy_folder(root: Path) -> dict[str, list[str]]:
    """yes/ and no/ with every kind of file a real folder holds; returns the names that must be kept."""
    kept = {"no": [], "yes": []}
    files = [
        ("no", "1 no.jpeg", "L", "JPEG"),
        ("no", "N2.JPG", "RGB", "JPEG"),
        ("no", "no 99.png", "RGBA", "PNG"),
        ("no", "palette.PNG", "P", "PNG"),
        ("no", "png inside.jpg", "L", "PNG"),  # a PNG named .jpg, as in specs/data/mri
        ("yes", "Y1.jpg", "RGB", "JPEG"),
        ("yes", "Y 2.JPEG", "L", "JPEG"),
        ("yes", "scan16.png", "I;16", "PNG"),
    ]
    for i, (label, name, mode, fmt) in enumerate(files):
        save(picture(mode, seed=i, bright=label == "yes"), root / label / name, fmt)
        kept[label].append(name)
    (root / "yes" / "broken.jpg").write_bytes(b"this is not a jpeg")
    good = io.BytesIO()
    picture("RGB").save(good, "JPEG")
    (root / "no" / "truncated.jpg").write_bytes(good.getvalue()[:200])
    (root / "no" / "notes.txt").write_text("not an image, not an image suffix")
    (root / "yes" / ".DS_Store").write_bytes(b"\0\0")
    (root / ".hidden").mkdir()
    return {label: sorted(names) for label, names in kept.items()}


# ---------------------------------------------------------------- image folders


def test_scan_keeps_every_readable_image_and_names_the_unreadable(tmp_path):
    kept = messy_folder(tmp_path / "imgs")
    folder = image_folder.scan_image_folder(tmp_path / "imgs")
    assert folder.class_names == ["no", "yes"]
    assert {label: sorted(p.name for p in paths) for label, paths in folder.classes.items()} == kept
    assert sorted(s.path.name for s in folder.skipped) == ["broken.jpg", "truncated.jpg"]
    message = folder.skipped_message()
    assert "broken.jpg" in message and "truncated.jpg" in message and "2 unreadable files" in message
    assert folder.image_count == 8


def test_scan_without_verify_trusts_suffixes(tmp_path):
    messy_folder(tmp_path / "imgs")
    folder = image_folder.scan_image_folder(tmp_path / "imgs", verify=False)
    assert folder.skipped == [] and folder.image_count == 10


def test_empty_class_is_an_error_naming_it(tmp_path):
    save(picture("RGB"), tmp_path / "imgs" / "yes" / "a.jpg", "JPEG")
    (tmp_path / "imgs" / "no").mkdir()
    with pytest.raises(CapcError, match=r"class 'no' in .* has no readable image"):
        image_folder.scan_image_folder(tmp_path / "imgs")


def test_class_of_unreadable_files_only_is_an_error_naming_them(tmp_path):
    save(picture("RGB"), tmp_path / "imgs" / "yes" / "a.jpg", "JPEG")
    (tmp_path / "imgs" / "no").mkdir()
    (tmp_path / "imgs" / "no" / "bad scan.png").write_bytes(b"\x89PNG garbage")
    with pytest.raises(CapcError, match="class 'no'") as info:
        image_folder.scan_image_folder(tmp_path / "imgs")
    assert "bad scan.png" in str(info.value)


def test_one_class_and_missing_folder_are_errors(tmp_path):
    save(picture("RGB"), tmp_path / "imgs" / "yes" / "a.jpg", "JPEG")
    with pytest.raises(CapcError, match="at least two; found only 'yes'"):
        image_folder.scan_image_folder(tmp_path / "imgs")
    with pytest.raises(CapcError, match="does not exist"):
        image_folder.scan_image_folder(tmp_path / "nowhere")


def test_real_mri_folder_scans_clean():
    folder = image_folder.scan_image_folder(MRI)
    assert folder.class_names == ["no", "yes"]
    assert folder.skipped == []
    assert len(folder.classes["no"]) >= 50 and len(folder.classes["yes"]) >= 50


def test_image_root_from_the_generated_mltable(tmp_path):
    messy_folder(tmp_path / "specs" / "data" / "imgs")
    data_dir = tmp_path / "generated" / "imgs" / "data"
    folder = image_folder.scan_image_folder(tmp_path / "specs" / "data" / "imgs")
    rows = [
        {"image_url": os.path.relpath(p, data_dir).replace(os.sep, "/"), "label": label}
        for label, paths in folder.classes.items()
        for p in paths
    ]
    context = {"name": "imgs", "dataset": {"images": rows}}
    render("MLTable_images.j2", context, data_dir / "MLTable")
    render("images.jsonl.j2", context, data_dir / "images.jsonl")
    assert data.image_root_from_mltable(data_dir) == (tmp_path / "specs" / "data" / "imgs").resolve()
    lines = (data_dir / "images.jsonl").read_text().splitlines()
    bad = json.loads(lines[0])
    bad["label"] = "yes"
    (data_dir / "images.jsonl").write_text("\n".join([json.dumps(bad), *lines[1:]]) + "\n")
    with pytest.raises(CapcError, match="not in a sub-folder named after its label"):
        data.image_root_from_mltable(data_dir)


# ---------------------------------------------------------------- AutoML search -> sweep job


AUTOML_JOB = {
    "type": "automl",
    "task": "image_classification",
    "primary_metric": "accuracy",
    "limits": {"timeout_minutes": 60, "max_trials": 10, "max_concurrent_trials": 2},
    "training_parameters": {"early_stopping": True, "number_of_epochs": 15},
    "sweep": {"sampling_algorithm": "random", "early_termination": {"type": "bandit", "slack_factor": 0.2, "evaluation_interval": 2, "delay_evaluation": 6}},
    "search_space": [{"model_name": {"type": "choice", "values": ["resnet50"]}, "learning_rate": {"type": "uniform", "min_value": 0.001, "max_value": 0.01}}],
}


def test_automl_job_becomes_a_runnable_sweep_job(tmp_path):
    from capc.local.sweep_plan import plan_sweep

    (tmp_path / "src").mkdir()
    (tmp_path / "imgs").mkdir()
    job = images.automl_sweep_job(AUTOML_JOB, tmp_path / "imgs", cpu_count=2)
    space = job["search_space"]
    assert space == images.AUTOML_SEARCH_SPACE
    assert set(space) == set(FAMILIES["keras_cnn"].parameter_names)  # every keras_cnn hyperparameter searched
    assert "--image_size ${{search_space.image_size}}" in job["trial"]["command"]
    assert job["limits"] == {"max_total_trials": 10, "max_concurrent_trials": 1, "timeout": 3600}
    assert job["early_termination"]["type"] == "bandit"
    plan = plan_sweep(job, tmp_path)  # the sweep runner accepts it as it is
    assert plan.metric == "accuracy" and plan.goal == "maximize" and plan.max_total_trials == 10
    assert plan.inputs["training_data"] == str((tmp_path / "imgs").resolve())
    assert images.automl_sweep_job(AUTOML_JOB, tmp_path, cpu_count=16)["limits"]["max_concurrent_trials"] == 2


def test_trial_script_must_be_capcs_keras_cnn(tmp_path):
    with pytest.raises(CapcError, match="missing"):
        images.check_trial_script(tmp_path)
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "train.py").write_text("print('my own trial')\n")
    with pytest.raises(CapcError, match="not capc's keras_cnn trial script"):
        images.check_trial_script(tmp_path)
    render("train_image.py.j2", TRAIN_CONTEXT, tmp_path / "src" / "train.py")
    assert images.check_trial_script(tmp_path) == tmp_path / "src" / "train.py"


# ---------------------------------------------------------------- the trial script's image handling


@pytest.fixture(scope="module")
def trial_module(tmp_path_factory):
    path = render("train_image.py.j2", TRAIN_CONTEXT, tmp_path_factory.mktemp("script") / "train.py")
    return load_module(path, "capc_test_train_image")


def test_trial_script_decodes_every_mode_to_rgb(trial_module, tmp_path):
    for i, mode in enumerate(["L", "RGB", "RGBA", "P", "I;16"]):
        path = save(picture(mode, seed=i, bright=True), tmp_path / f"{i}.png", "PNG")
        array = trial_module.image_array(str(path), 32)
        assert array.shape == (32, 32, 3) and array.dtype == np.uint8
        assert array.max() > 100  # 16-bit scans are stretched, not clipped to white or black
    jpeg = save(picture("L"), tmp_path / "g.jpg", "JPEG")
    assert trial_module.image_array(jpeg.read_bytes(), 16).shape == (16, 16, 3)
    with pytest.raises(OSError):
        trial_module.image_array(b"not an image", 16)


def test_trial_script_trims_dark_borders(trial_module):
    field = np.zeros((100, 100), dtype=np.uint8)
    field[30:70, 20:60] = 200
    trimmed = trial_module.trim_dark_border(Image.fromarray(field).convert("RGB"))
    assert trimmed.size == (40, 40)
    dark = Image.new("RGB", (50, 50))
    assert trial_module.trim_dark_border(dark).size == (50, 50)


def test_trial_script_reads_base64_forms(trial_module):
    raw = b"\x89PNG\r\n"
    text = base64.b64encode(raw).decode()
    assert trial_module.decode_image_value(text) == raw
    assert trial_module.decode_image_value("data:image/png;base64," + text) == raw
    assert trial_module.decode_image_value(raw) == raw
    with pytest.raises(ValueError, match="not base64"):
        trial_module.decode_image_value("%%% not base64 %%%")


def test_trial_script_split_is_stratified_and_reproducible(trial_module):
    labels = np.array([0] * 40 + [1] * 60)
    train, valid = trial_module.stratified_split(labels, 0.2)
    assert sorted(np.concatenate([train, valid]).tolist()) == list(range(100))
    assert (labels[valid] == 0).sum() == 8 and (labels[valid] == 1).sum() == 12
    again = trial_module.stratified_split(labels, 0.2)
    assert np.array_equal(valid, again[1])
    assert trial_module.validation_scores(np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]]), np.array([0, 1, 1]), 2) == pytest.approx((2 / 3, 0.5))


def test_trial_script_stops_on_a_class_without_images(trial_module, tmp_path):
    save(picture("RGB"), tmp_path / "imgs" / "yes" / "a.jpg", "JPEG")
    (tmp_path / "imgs" / "no").mkdir()
    (tmp_path / "imgs" / "no" / "bad.jpg").write_bytes(b"garbage")
    with pytest.raises(SystemExit, match="class 'no'"):
        trial_module.load_images(str(tmp_path / "imgs"), 16)


# ---------------------------------------------------------------- train + score, end to end (keras)


def training_folder(root: Path) -> Path:
    """A dozen images: synthetic ones of every mode plus three real scans per class, one unreadable file."""
    messy_folder(root)
    for label in ("no", "yes"):
        for source in sorted((MRI / label).iterdir())[:3]:
            shutil.copy(source, root / label / f"real {source.name}")
    return root


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One tiny trial run the way the sweep runner starts it: its own process, MLFLOW_RUN_ID set."""
    if not KERAS:
        pytest.skip("keras/torch not installed (pip install capc[keras])")
    import mlflow

    base = tmp_path_factory.mktemp("trial")
    folder = training_folder(base / "mri images")
    script = render("train_image.py.j2", TRAIN_CONTEXT, base / "src" / "train.py")
    uri = f"sqlite:///{base / 'mlflow.db'}"
    client = mlflow.MlflowClient(uri)
    experiment = client.create_experiment("images", artifact_location=(base / "artifacts").as_uri())
    run_id = client.create_run(experiment).info.run_id
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "MLFLOW_EXPERIMENT_ID": experiment, "MLFLOW_RUN_ID": run_id, "KERAS_BACKEND": "torch"}
    command = [sys.executable, str(script), "--data", str(folder), "--target", "label", "--metric", "accuracy"]
    command += [f"--{k}={v}" for k, v in TINY.items()]
    done = subprocess.run(command, cwd=base / "src", env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return types.SimpleNamespace(base=base, folder=folder, client=client, run_id=run_id, output=done.stdout + done.stderr, model_dir=base / "src" / "outputs" / "model")


@needs_keras
def test_trial_logs_each_epoch_and_saves_a_model(trained):
    history = trained.client.get_metric_history(trained.run_id, "accuracy")
    assert [m.step for m in sorted(history, key=lambda m: m.step)] == [1, 2, 3]  # two epochs, then the kept weights
    metrics = trained.client.get_run(trained.run_id).data.metrics
    assert {"recall", "loss", "val_loss", "train_accuracy", "trial_seconds"} <= set(metrics)
    params = trained.client.get_run(trained.run_id).data.params
    assert params["image_size"] == "24" and params["family"] == "keras_cnn" and params["classes"] == "no,yes"
    assert "broken.jpg" in trained.output and "truncated.jpg" in trained.output  # skipped, by name
    last = json.loads(trained.output.strip().splitlines()[-1]) if trained.output.strip().splitlines()[-1].startswith("{") else None
    assert (trained.model_dir / "MLmodel").is_file()
    labels = json.loads((trained.model_dir / "artifacts" / "labels.json").read_text())
    assert labels["classes"] == ["no", "yes"] and labels["image_size"] == 24
    requirements = (trained.model_dir / "requirements.txt").read_text()
    assert "keras==3.15.0" in requirements and "torch==2.13.0" in requirements
    assert last is None or last["metric"] == "accuracy"


@needs_keras
def test_trial_stores_its_validation_predictions_for_the_report(trained):
    """The report's confusion matrix and per-class recall come from these: the validation images only, and their
    accuracy is exactly the one the trial logged last."""
    from capc.report.evaluation import from_stored
    from capc.state.registry import ModelVersion

    stored = held_out.load(trained.client, trained.run_id)
    assert stored.task == "image_classification" and stored.split == "holdout" and stored.fraction == 0.25
    assert stored.classes == ["no", "yes"] and set(stored.y_true) == {"no", "yes"}
    assert stored.rows < stored.training_rows  # the validation split, not every image
    model = ModelVersion(name="mri", version=1, task="image_classification", metric="accuracy", value=0.0,
                         goal="maximize", source="sweep", run_id=trained.run_id, spec_sha256="0" * 64, job_dir="", created="")
    evaluation = from_stored(model, stored)
    logged = trained.client.get_run(trained.run_id).data.metrics["accuracy"]
    assert evaluation.held_out and evaluation.primary == ("accuracy", pytest.approx(logged, abs=1e-12))
    assert f"{stored.rows:,} held-out validation images" in evaluation.uses


@needs_keras
def test_saved_model_predicts_from_base64_and_bytes(trained):
    import mlflow.pyfunc
    import pandas as pd

    model = mlflow.pyfunc.load_model(str(trained.model_dir))
    files = sorted((trained.folder / "yes").glob("real *"))[:2]
    as_text = pd.DataFrame({"image": [base64.b64encode(f.read_bytes()).decode() for f in files]})
    as_bytes = pd.DataFrame({"image": pd.Series([f.read_bytes() for f in files], dtype=object)})
    out_text, out_bytes = model.predict(as_text), model.predict(as_bytes)
    assert list(out_text.columns) == ["label", "probability_no", "probability_yes"]
    assert set(out_text["label"]) <= {"no", "yes"}
    probabilities = out_text[["probability_no", "probability_yes"]].to_numpy()
    assert np.allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    assert np.allclose(probabilities, out_bytes[["probability_no", "probability_yes"]].to_numpy(), atol=1e-6)
    with pytest.raises(Exception, match="row 0: not an image"):
        model.predict(pd.DataFrame({"image": [base64.b64encode(b"plain text").decode()]}))


@pytest.fixture(scope="module")
def score(trained, tmp_path_factory):
    path = render("score_image.py.j2", SCORE_CONTEXT, tmp_path_factory.mktemp("score") / "score.py")
    previous = os.environ.get("AZUREML_MODEL_DIR")
    os.environ["AZUREML_MODEL_DIR"] = str(trained.model_dir.parent)  # score.py looks for MLmodel below it
    try:
        module = load_module(path, "capc_test_score_image")
        module.init()
    finally:
        if previous is None:
            os.environ.pop("AZUREML_MODEL_DIR", None)
        else:
            os.environ["AZUREML_MODEL_DIR"] = previous
    return module


def b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


@needs_keras
def test_score_answers_both_request_forms(score, trained):
    files = sorted((trained.folder / "no").glob("real *"))[:2] + [trained.folder / "no" / "no 99.png"]
    azure = score.run(input_data={"columns": ["image"], "data": [b64(f) for f in files]})
    rows = score.run(input_data={"columns": ["image"], "data": [[b64(f)] for f in files]})
    capc = score.run(data=[b64(f) for f in files])
    records = score.run(data=[{"image": "data:image/jpeg;base64," + b64(f)} for f in files])
    assert azure == rows == capc == records
    assert len(azure["result"]) == 3 and set(azure["result"]) <= {"no", "yes"}
    for label, probabilities in zip(azure["result"], azure["probabilities"]):
        assert set(probabilities) == {"no", "yes"}
        assert abs(sum(probabilities.values()) - 1) < 1e-5
        assert label == max(probabilities, key=probabilities.get)
    json.dumps(azure)  # plain JSON values only


def status_and_message(response):
    return response.status_code, json.loads(response.get_data(as_text=True))["message"]


@needs_keras
def test_score_answers_400_on_bad_input(score, trained):
    good = b64(trained.folder / "yes" / "Y1.jpg")
    cases = {
        "not base64": score.run(data=[good, "@@@ definitely not base64 @@@"]),
        "not an image": score.run(data=[base64.b64encode(b"hello, I am text").decode()]),
        "empty list": score.run(input_data={"columns": ["image"], "data": []}),
        "both forms": score.run(data=[good], input_data={"columns": ["image"], "data": [good]}),
        "neither": score.run(),
        "no image column": score.run(input_data={"columns": ["picture"], "data": [[good]]}),
        "a number": score.run(data=[42]),
    }
    for case, response in cases.items():
        status, message = status_and_message(response)
        assert status == 400, case
        assert message, case
    assert "image 1: not valid base64" in status_and_message(cases["not base64"])[1]
    assert "image 0: not an image" in status_and_message(cases["not an image"])[1]
    assert "empty list" in status_and_message(cases["empty list"])[1]


@needs_keras
def test_score_swagger_describes_base64_images(score):
    from inference_schema.schema_util import get_input_schema, get_output_schema

    inputs = get_input_schema(score.run)["properties"]
    assert inputs["input_data"]["properties"]["data"]["items"] == {"type": "string", "format": "byte"}
    assert inputs["data"]["items"] == {"type": "string", "format": "byte"}
    outputs = get_output_schema(score.run)
    assert set(outputs["properties"]) == {"result", "probabilities"}
    assert set(outputs["properties"]["probabilities"]["items"]["properties"]) == {"no", "yes"}


# ---------------------------------------------------------------- local AutoML for images (slow)


@needs_keras
@pytest.mark.slow
@pytest.mark.usefixtures("capc_home")
def test_run_image_automl_end_to_end(tmp_path, monkeypatch):
    from capc.state import tracking
    from capc.local.outcome import Outcome

    folder = training_folder(tmp_path / "specs" / "data" / "mri")
    job_dir = tmp_path / "generated" / "mri"
    render("train_image.py.j2", TRAIN_CONTEXT, job_dir / "src" / "train.py")
    scan = image_folder.scan_image_folder(folder)
    rows = [{"image_url": os.path.relpath(p, job_dir / "data").replace(os.sep, "/"), "label": c} for c, ps in scan.classes.items() for p in ps]
    render("MLTable_images.j2", {"name": "mri", "dataset": {"images": rows}}, job_dir / "data" / "MLTable")
    render("images.jsonl.j2", {"name": "mri", "dataset": {"images": rows}}, job_dir / "data" / "images.jsonl")
    job = json.loads(json.dumps(AUTOML_JOB))
    job["limits"] = {"timeout_minutes": 10, "max_trials": 2, "max_concurrent_trials": 1}
    tiny_space = {name: {"type": "choice", "values": [value]} for name, value in TINY.items()}
    monkeypatch.setattr(images, "AUTOML_SEARCH_SPACE", tiny_space)
    client = tracking.client()
    experiment = tracking.experiment_id(client, "mri")
    submit_run = tracking.start_run(client, experiment, "submit", "submit")
    with pytest.warns(UserWarning, match="broken.jpg"):
        outcome = images.run_image_automl(job_dir, job, client, experiment, submit_run, tmp_path / "work", None)
    assert isinstance(outcome, Outcome) and outcome.source == "automl"
    assert 0.0 <= outcome.value <= 1.0 and "recall" in outcome.metrics
    assert (outcome.model_dir / "MLmodel").is_file()
    children = [r for r in tracking.list_runs("mri") if r.kind == "trial"]
    assert len(children) == 2 and all(r.status == "completed" for r in children)
    automl = next(r for r in tracking.list_runs("mri") if r.kind == "automl")
    assert automl.status == "completed" and automl.metrics["accuracy"] == outcome.value
    assert {r.parent for r in children} == {automl.run_id}
    assert automl.search == {"stop_limit": "trials", "stop_reason": "max_trials 2 reached"}
    assert outcome.search.lines() == ["automl: ended by trials: max_trials 2 reached"]
