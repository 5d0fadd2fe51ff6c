"""`capc report`: errors, the validation rows it picks, and (slow) reports of real local submits, looked at in
headless Chromium.

The slow module fixture runs the real local engine on small samples with tiny budgets: a digits classification
whose registered model is a sweep trial under a holdout (so the report's rows are truly held out, and its
accuracy on them must equal the trial's logged value exactly), with one trial the bandit policy stops early;
and a housing regression whose registered model is AutoML's (refitted on every row, so the report judges it by
the predictions its candidate made on the search's holdout rows). Screenshots of the reports go to
tests/artifacts/ (git-ignored), for a person to look at.
"""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from capc.cli import cli
from capc.state import registry
from capc.report import evaluation
from devtools import FETCHING, chromium_page
from repo import REPO, csv_head, use_private_capc_home

ARTIFACTS = REPO / "tests" / "artifacts"  # screenshots for a person to look at (git-ignored)
HOSTILE_DESCRIPTION = "<b>digits</b> & <script>alert(1)</script>"


def _invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


# ---------------------------------------------------------------- errors


def test_no_such_model_is_a_clear_error(workdir):
    result = _invoke("report", "nope")
    assert result.exit_code == 1
    assert "no registered model named `nope`" in result.stderr
    assert "Traceback" not in result.output
    assert not (workdir / "nope-report.html").exists()


def test_a_model_without_runs_is_a_clear_error(workdir):
    model_dir = workdir / "model"
    model_dir.mkdir()
    (model_dir / "MLmodel").write_text("flavors: {}\n")
    registry.register(
        model_dir, name="lonely", task="classification", metric="accuracy", value=0.9, goal="maximize", source="sweep",
        run_id="0" * 32, spec_sha256="0" * 64, job_dir=str(workdir / "generated" / "lonely"),
    )
    result = _invoke("report", "lonely:1")
    assert result.exit_code == 1
    assert "no runs recorded for `lonely`" in result.stderr
    assert "Traceback" not in result.output
    assert not (workdir / "lonely-1-report.html").exists()


def test_image_models_without_stored_predictions_get_a_note_instead_of_validation_figures(workdir):
    from capc.errors import CapcError

    model = registry.ModelVersion(
        name="mri", version=1, task="image_classification", metric="accuracy", value=0.8, goal="maximize",
        source="sweep", run_id="0" * 32, spec_sha256="0" * 64, job_dir=str(workdir), created="",
    )
    with pytest.raises(CapcError, match="recorded no predictions on its validation images"):
        evaluation.evaluate(model)


# ---------------------------------------------------------------- which rows are held out


def _build(workdir: Path, dataset_extra: str, trials: str = "  model: logistic_regression\n") -> Path:
    csv_head(REPO / "specs/data/digits/digits_train.csv", workdir / "data/digits.csv", 300)
    spec = workdir / "digits.yaml"
    spec.write_text(
        f"name: digits-rows\ndataset: {{path: data/digits.csv, format: csv, target: label{dataset_extra}}}\n"
        "task: classification\nmetric: accuracy\n"
        "sweep:\n" + trials + "  search_space: {C: 'uniform(0.1, 2)'}\n"
    )
    result = _invoke("build", spec, "--out", workdir / "generated")
    assert result.exit_code == 0, result.output
    return workdir / "generated" / "digits-rows"


def test_a_sweep_holdout_is_the_trial_scripts_own_split(workdir):
    from sklearn.model_selection import train_test_split

    rows = evaluation._trial_holdout(_build(workdir, ", validation_fraction: 0.25"))
    assert rows.held_out and "Held-out rows" in rows.how and "(25%)" in rows.how
    labels = np.loadtxt(workdir / "data/digits.csv", delimiter=",", skiprows=1, usecols=0).astype(int)
    _, expected = train_test_split(np.arange(300), test_size=0.25, random_state=42, stratify=labels)
    assert list(rows.features.index) == list(expected)
    assert rows.labels.tolist() == labels[expected].tolist()
    assert "label" not in rows.features.columns


def test_cross_validation_means_rows_the_model_was_trained_on(workdir):
    rows = evaluation._trial_holdout(_build(workdir, ", cross_validations: 3"))
    assert not rows.held_out
    assert "No held-out predictions" in rows.how and "refitted the model on every row" in rows.how
    assert "fit on training rows, not validation" in rows.uses
    assert len(rows.labels) == 60  # a seeded 20% sample


def test_a_users_own_trial_script_is_not_imported(workdir):
    script = workdir / "my_train.py"
    script.write_text("raise SystemExit('must not run')\n")
    job_dir = _build(workdir, ", validation_fraction: 0.2", "  script: my_train.py\n")
    assert (job_dir / "src" / "train.py").read_text() == script.read_text()
    assert evaluation._trial_holdout(job_dir) is None


# ---------------------------------------------------------------- real submits (slow)

CLASSIFICATION = f"""\
name: digits-report
description: "{HOSTILE_DESCRIPTION}"
dataset: {{path: data/digits.csv, format: csv, target: label, validation_fraction: 0.2}}
task: classification
metric: accuracy
automl: {{timeout_minutes: 1, max_trials: 3, enable_ensembles: false}}
sweep:
  model: logistic_regression
  sampling: grid
  search_space: {{C: 'choice(0.0001, 1.0)', max_iter: 'choice(100)'}}
  early_termination: {{type: bandit, slack_factor: 0.1, evaluation_interval: 1, delay_evaluation: 1}}
  limits: {{max_total_trials: 2, max_concurrent_trials: 1}}
deployment: {{model: sweep, max_latency_ms: 5000}}
"""
REGRESSION = """\
name: housing-report
dataset: {path: data/housing.csv, format: csv, target: median_house_value, validation_fraction: 0.2}
task: regression
metric: normalized_mean_absolute_error
automl: {timeout_minutes: 1, max_trials: 3, enable_ensembles: false}
sweep:
  model: lightgbm
  sampling: random
  search_space: {n_estimators: 'choice(20, 50)', learning_rate: 'uniform(0.05, 0.2)'}
  limits: {max_total_trials: 2, max_concurrent_trials: 2}
deployment: {model: automl}
"""


@pytest.fixture(scope="module")
def submitted(tmp_path_factory):
    """Two real local submits (AutoML and a sweep each) in one $CAPC_HOME, then `capc report` of each."""
    root = tmp_path_factory.mktemp("report")
    with pytest.MonkeyPatch.context() as patch:
        use_private_capc_home(patch, root)
        csv_head(REPO / "specs/data/digits/digits_train.csv", root / "data/digits.csv", 400)
        csv_head(REPO / "specs/data/housing/housing.csv", root / "data/housing.csv", 800)
        (root / "digits.yaml").write_text(CLASSIFICATION)
        (root / "housing.yaml").write_text(REGRESSION)
        for spec in ("digits.yaml", "housing.yaml"):
            result = _invoke("submit", spec, "--out", root / "generated")
            assert result.exit_code == 0, result.output
        reports = {}
        for name in ("digits-report", "housing-report"):
            result = _invoke("report", name)
            assert result.exit_code == 0, result.output
            assert f"wrote {name}-report.html ({name}:1, 6 figures)" in result.stdout
            reports[name] = root / f"{name}-report.html"
        yield root, reports


def _registered(root: Path, name: str):
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CAPC_HOME", str(root / "home"))
        return registry.get(name)


def _winner_row(html: str) -> str:
    rows = re.findall(r'<tr class="winner">(.*?)</tr>', html, re.S)
    assert len(rows) == 1, rows
    return rows[0]


@pytest.mark.slow
def test_classification_report_of_a_sweep_winner(submitted):
    root, reports = submitted
    model = _registered(root, "digits-report")
    html = reports["digits-report"].read_text(encoding="utf-8")
    assert "Model report: digits-report:1" in html
    assert 'class="badge sweep">sweep</span>' in html
    assert html.count("<svg ") == 6 and 'id="confusion"' in html and 'id="roc"' in html
    # What drives it: permutation importance on the trial's own holdout rows, which the model never trained on.
    assert 'id="importance"' in html and "80 held-out rows, each feature shuffled 3 times" in html
    assert "feature importance (top 15 of 64, 80 rows)" in html
    # The serving trade-off: the measured winner starred, the spec's budget drawn.
    assert 'id="serving"' in html and "budget: p99 5000 ms" in html
    assert 'class="badge held-out">held-out rows</span>' in html and "80 held-out rows: the 20% holdout split of 400" in html
    assert 'id="per-class"' in html  # precision and recall of each digit on those rows
    # The winner row is the registered trial (grid order: C=1.0 first); the bandit stopped the other.
    winner = _winner_row(html)
    assert re.search(r'trial_0 (<span class="family">logistic_regression</span> )?★', winner)
    assert model.run_id[:8] in winner and f"{model.value:.4f}" in winner
    assert 'class="status-early_terminated">early terminated<' in html
    assert "2 trials, 1 early terminated" in html and "3 candidates" in html
    # The spec is found by its hash; the submit run's and the manifest's hashes agree with the registry's.
    assert "digits.yaml: its sha256 is the model&#39;s spec sha256" in html
    assert html.count('class="badge ok">matches</span>') == 2
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "<script" not in html.lower()
    # Compiled jobs mention schema URLs as text; nothing is fetched from anywhere.
    assert not FETCHING.search(html)


@pytest.mark.slow
def test_held_out_accuracy_is_the_trials_own_validation_score(submitted):
    """The registered trial logged its accuracy on its validation split; scored on the report's held-out rows,
    the registered model must give exactly that value, or the rows are not the trial's holdout."""
    root, _ = submitted
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CAPC_HOME", str(root / "home"))
        model = registry.get("digits-report")
        result = evaluation.evaluate(model)
    assert model.source == "sweep" and result.held_out and result.rows == 80
    assert result.scores["accuracy"] == pytest.approx(model.value, abs=1e-12)


@pytest.mark.slow
def test_held_out_error_of_the_automl_winner_is_its_logged_value(submitted):
    """AutoML registered its best candidate, refitted on every row; the report judges it by the predictions that
    candidate made on the search's holdout rows, which give exactly the value logged for it."""
    root, _ = submitted
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CAPC_HOME", str(root / "home"))
        model = registry.get("housing-report")
        result = evaluation.evaluate(model)
    assert model.source == "automl" and result.held_out and result.rows == 160
    assert result.primary == ("normalized_mean_absolute_error", pytest.approx(model.value, abs=1e-12))


@pytest.mark.slow
def test_regression_report_of_an_automl_winner(submitted):
    root, reports = submitted
    model = _registered(root, "housing-report")
    html = reports["housing-report"].read_text(encoding="utf-8")
    assert model.source == "automl"
    assert 'class="badge automl">AutoML</span>' in html
    assert 'id="predicted"' in html and 'id="residuals"' in html and 'id="confusion"' not in html
    # AutoML's holdout is FLAML's own split, and the model was refitted on every row: importance over all 800 rows.
    assert 'id="importance"' in html and "800 validation rows the refitted model trained on, each feature shuffled 3 times" in html
    assert 'id="serving"' in html and "budget: p99" not in html  # no budget: the registered model's latency only
    # Judged on the AutoML search's holdout rows (its validation_data_size), not on rows it trained on.
    assert 'class="badge held-out">held-out rows</span>' in html and 'class="badge trained-on"' not in html
    assert "160 held-out rows: the 20% holdout split of 800" in html
    assert "refitted on every row; these figures judge the configuration it was refitted from" in html
    winner = _winner_row(html)  # the candidate AutoML registered: its value is the model's
    assert f"{model.value:.4f}" in winner and "★" in winner
    assert not FETCHING.search(html)


def open_in_chromium(path: Path, profile: Path) -> dict:
    """Load `path` from file:// in headless Chromium: its console and log errors, every URL it requested, the
    box of each svg/img, and a full-page PNG screenshot."""
    with chromium_page("about:blank", profile) as page:
        for domain in ("Runtime", "Log", "Network", "Page"):
            page.call(f"{domain}.enable")
        page.call("Page.navigate", url=path.as_uri())
        page.wait_for("document.readyState === 'complete'", "the page")
        boxes = page.js(
            "Array.from(document.querySelectorAll('svg, img')).map(e => { const r = e.getBoundingClientRect();"
            " return {id: e.id, width: r.width, height: r.height}; })"
        )
        size = page.call("Page.getLayoutMetrics")["cssContentSize"]
        shot = page.call(
            "Page.captureScreenshot", format="png", captureBeyondViewport=True,
            clip={"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1},
        )["data"]
        events = list(page.events)
    errors = [e for e in events if e["method"] == "Runtime.exceptionThrown"
              or (e["method"] == "Runtime.consoleAPICalled" and e["params"]["type"] == "error")
              or (e["method"] == "Log.entryAdded" and e["params"]["entry"]["level"] == "error")]
    requested = [e["params"]["request"]["url"] for e in events if e["method"] == "Network.requestWillBeSent"]
    return {"errors": errors, "requested": requested, "boxes": boxes, "png": base64.b64decode(shot)}


@pytest.mark.slow
def test_the_browser_checks_see_errors_and_outside_requests(tmp_path):
    """The harness itself: a page with a console error, an exception and a fetch (to loopback) is caught."""
    bad = tmp_path / "bad.html"
    bad.write_text(
        "<!DOCTYPE html><html><body><img src='http://127.0.0.1:9/x.png' width='10' height='10'>"
        "<script>console.error('boom'); missingFunction();</script></body></html>"
    )
    seen = open_in_chromium(bad, tmp_path / "profile")
    kinds = {e["method"] for e in seen["errors"]}
    assert {"Runtime.consoleAPICalled", "Runtime.exceptionThrown"} <= kinds, kinds
    assert "http://127.0.0.1:9/x.png" in seen["requested"]


@pytest.mark.slow
@pytest.mark.parametrize("name", ["digits-report", "housing-report"])
def test_report_renders_in_chromium_without_errors(submitted, name, tmp_path):
    """Opened from file://: no console error, no request but the file itself, every figure laid out with a size."""
    _, reports = submitted
    seen = open_in_chromium(reports[name], tmp_path / "profile")
    ARTIFACTS.mkdir(exist_ok=True)
    screenshot = ARTIFACTS / f"report-{name}.png"
    screenshot.write_bytes(seen["png"])
    print(f"screenshot: {screenshot}")
    assert not seen["errors"], json.dumps(seen["errors"], indent=1)[:2000]
    # The page itself, and data: URLs inside it (matplotlib embeds an imshow raster as one): nothing else.
    assert seen["requested"][0] == reports[name].as_uri()
    assert all(url.startswith("data:") for url in seen["requested"][1:]), seen["requested"]
    # Validation (2), feature importance, metric per trial, parameters, and the serving trade-off (metric
    # against p99 latency).
    ids = [box["id"] for box in seen["boxes"]]
    assert len(ids) == 6 and "importance" in ids and ids[-1] == "serving", seen["boxes"]
    assert all(box["width"] > 100 and box["height"] > 100 for box in seen["boxes"]), seen["boxes"]
