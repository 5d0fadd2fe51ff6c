"""capc.report's figures and page on synthetic data (fast): each figure is an inline-ready SVG, the page escapes
every value that comes from runs and specs, and nothing in it points outside the file."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import numpy as np
import pytest

from capc.state.registry import ModelVersion
from capc.report import default_report_path, figures
from capc.report.collect import BoardRow, ReportData, find_spec_file
from capc.report.evaluation import Evaluation
from capc.report.page import render_page
from devtools import FETCHING

HOSTILE = '<script>alert("x")</script> & $x$ --> "q"'


def parsed(svg: str) -> ElementTree.Element:
    """Inline SVG is XML once the xlink prefix is bound (an HTML parser binds it itself)."""
    return ElementTree.fromstring(svg.replace("<svg ", '<svg xmlns:xlink="urn:xlink" ', 1))


def assert_inline_svg(svg: str, prefix: str) -> ElementTree.Element:
    assert svg.startswith(f'<svg class="figure" role="img" id="{prefix}"'), svg[:120]
    assert "<?xml" not in svg and "DOCTYPE" not in svg and "<metadata" not in svg
    assert "http://" not in svg and "https://" not in svg
    assert "mathdefault" not in svg and "$" not in svg.replace("$x$", "")  # no mathtext source shown as labels
    root = parsed(svg)
    ids = [e.get("id") for e in root.iter() if e.get("id")]
    assert len(ids) == len(set(ids))
    assert all(i == prefix or i.startswith(prefix + "-") for i in ids)
    for reference in re.findall(r'(?:href="#|url\(#)([^")]+)', svg):
        assert reference in ids, f"dangling reference #{reference}"
    return root


def texts(root: ElementTree.Element) -> str:
    return " ".join("".join(e.itertext()) for e in root.iter("text"))


def curves():
    return [
        figures.RunCurve("LightGBM-0", "automl", "completed", [0], [3.0], [0.80]),
        figures.RunCurve("LightGBM-1", "automl", "completed", [0], [4.0], [0.84]),
        figures.RunCurve("trial_0", "sweep", "completed", [1, 2, 3], [10.0, 11.0, 12.0], [0.70, 0.80, 0.90], winner=True),
        figures.RunCurve("trial_1", "sweep", "early_terminated", [1, 2], [10.5, 11.5], [0.40, 0.45]),
        figures.RunCurve("trial_2", "sweep", "failed", [1], [13.0], [0.30]),
    ]


def test_metric_over_time_marks_early_terminated_and_winner():
    root = assert_inline_svg(figures.metric_over_time(curves(), "accuracy", "maximize"), "time")
    legend = texts(root)
    for label in ("sweep trial", "sweep trial, early terminated", "sweep trial, failed or interrupted", "AutoML candidate", "registered model"):
        assert label in legend
    assert "stroke-dasharray" in figures.metric_over_time(curves(), "accuracy", "maximize")  # dashed early-terminated lines


@pytest.mark.parametrize("metric, goal", [("accuracy", "maximize"), ("normalized_mean_absolute_error", "minimize")])
def test_metric_against_latency_draws_the_budget_and_the_registered_model(metric, goal):
    points = [
        figures.ServingPoint("VotingEnsemble-9", "automl", 0.92, 80.0),
        figures.ServingPoint("LightGBM-3", "automl", 0.915, 6.0, winner=True),
        figures.ServingPoint("trial_1", "sweep", 0.91, 0.8),
    ]
    svg = figures.metric_against_latency(points, metric, goal, 25.0)
    legend = texts(assert_inline_svg(svg, "serving"))
    for label in ("AutoML model", "sweep trial", "budget: p99 25 ms", "registered model", "VotingEnsemble-9", "p99 latency"):
        assert label in legend
    assert f"{metric} ({'higher' if goal == 'maximize' else 'lower'} is better)" in legend
    assert "budget" not in texts(assert_inline_svg(figures.metric_against_latency(points[1:2], metric, goal, None), "serving"))


def test_metric_over_time_without_trials_is_one_panel():
    only_automl = [c for c in curves() if c.source == "automl"]
    root = assert_inline_svg(figures.metric_over_time(only_automl, "r2_score", "maximize"), "time")
    assert "sweep trials, report by report" not in texts(root)
    assert "early terminated" not in texts(root)


def test_parameters_against_metric_handles_numbers_logs_and_categories():
    points = [
        figures.TrialPoint({"C": "0.001", "kernel": "rbf", "n": "50"}, 0.7, "completed"),
        figures.TrialPoint({"C": "10.0", "kernel": "linear", "n": "100"}, 0.9, "completed", winner=True),
        figures.TrialPoint({"C": "1.0", "kernel": "$x$ <b>&", "n": "200"}, 0.5, "early_terminated"),
    ]
    svg = figures.parameters_against_metric(points, ["C", "kernel", "n", "absent"], "accuracy")
    root = assert_inline_svg(svg, "params")
    labels = texts(root)
    assert "early terminated (last value)" in labels and "registered model" in labels
    assert "linear" in labels and "$x$ <b>&" in labels  # a category label, not mathtext
    assert "$x$ &lt;b&gt;&amp;" in svg  # matplotlib escapes text as XML
    assert "mathdefault" not in svg and "0.001" in labels and "10" in labels.split()  # C on a log axis, plain labels


def test_confusion_matrix_counts_labels_of_any_type():
    counts = figures.confusion_counts(["yes", "no", "yes", "yes"], ["yes", "yes", "no", "yes"], ["no", "yes"])
    assert counts.tolist() == [[0, 1], [1, 2]]
    digits = figures.confusion_counts(np.array([0, 1, 2, 2]), np.array([0, 2, 2, 2]), [0, 1, 2])
    assert digits.tolist() == [[1, 0, 0], [0, 0, 1], [0, 0, 2]]
    root = assert_inline_svg(figures.confusion_matrix(["a", "b", "a"], ["a", "a", "a"], ["a", "b"]), "confusion")
    assert "confusion matrix (3 rows)" in texts(root)


def test_roc_binary_names_the_positive_class_and_multiclass_averages():
    rng = np.random.default_rng(1)
    y = np.array(["no", "yes"] * 50)
    score = np.where(y == "yes", 0.7, 0.3) + rng.normal(0, 0.2, len(y))
    proba = np.column_stack([1 - score, score])
    assert "positive class yes" in texts(assert_inline_svg(figures.roc_curves(y, proba, ["no", "yes"]), "roc"))

    y3 = np.repeat([0, 1, 2], 30)
    proba3 = np.eye(3)[y3] * 0.6 + rng.uniform(0, 0.4, (90, 3))
    title = texts(assert_inline_svg(figures.roc_curves(y3, proba3 / proba3.sum(axis=1, keepdims=True), [0, 1, 2]), "roc"))
    assert "ROC one-vs-rest, macro AUC" in title


def test_regression_figures():
    rng = np.random.default_rng(2)
    actual = rng.uniform(0, 100, 200)
    predicted = actual + rng.normal(0, 5, 200)
    assert "predicted against actual (200 rows)" in texts(assert_inline_svg(figures.predicted_against_actual(actual, predicted), "predicted"))
    assert "residual (actual - predicted)" in texts(assert_inline_svg(figures.residuals(actual, predicted), "residuals"))
    assert_inline_svg(figures.predicted_against_actual(actual * 1e7 + 1e9, predicted * 1e7 + 1e9), "predicted")  # offset labels


def test_the_same_data_draws_the_same_svg():
    assert figures.metric_over_time(curves(), "accuracy", "maximize") == figures.metric_over_time(curves(), "accuracy", "maximize")


def test_inline_svg_strips_the_standalone_document_parts():
    document = (
        '<?xml version="1.0" encoding="utf-8" standalone="no"?>\n'
        '<!DOCTYPE svg PUBLIC "-//W3C//DTD SVG 1.1//EN"\n  "http://www.w3.org/Graphics/SVG/1.1/DTD/svg11.dtd">\n'
        '<svg xmlns:xlink="http://www.w3.org/1999/xlink" width="10pt" xmlns="http://www.w3.org/2000/svg" version="1.1">\n'
        ' <metadata><rdf:RDF xmlns:dc="http://purl.org/dc/elements/1.1/"></rdf:RDF></metadata>\n'
        ' <defs><path id="m1" d="M 0 0"/><clipPath id="p2"><rect/></clipPath></defs>\n'
        ' <use xlink:href="#m1" clip-path="url(#p2)"/><a href="#elsewhere"/>\n</svg>\n'
    )
    svg = figures.inline_svg(document, "fig")
    assert svg.startswith('<svg class="figure" role="img" id="fig" width="10pt" version="1.1">')
    assert 'id="fig-m1"' in svg and 'xlink:href="#fig-m1"' in svg and 'url(#fig-p2)' in svg
    assert 'href="#elsewhere"' in svg  # not an id of this figure: left alone
    assert "http" not in svg


# ---------------------------------------------------------------- the page


def model(**changes) -> ModelVersion:
    fields = dict(
        name="bank", version=3, task="classification", metric="accuracy", value=0.91, goal="maximize", source="sweep",
        run_id="r" * 32, spec_sha256="a" * 64, job_dir="/nowhere/generated/bank", created="2026-01-01T00:00:00Z",
        description=HOSTILE,
    )
    fields.update(changes)
    return ModelVersion(**fields)


def report_data(**changes) -> ReportData:
    board = [
        BoardRow(1, "sweep", HOSTILE, "r" * 32, "completed", 0.91, 3.0, {"C": "0.09999999999999995", "kernel": HOSTILE}, True),
        BoardRow(2, "sweep", "trial_1", "t" * 32, "early_terminated", 0.5, 1.0, {"C": "2"}, False),
        BoardRow(None, "sweep", "trial_2", "u" * 32, "failed", None, None, {}, False),
    ]
    fields = dict(
        model=model(), submit_name="submit-1", submit_sha256="a" * 64,
        manifest={"spec_sha256": "b" * 64, "capc_version": "0.1.0", "name": "bank"},
        spec_path=None, spec_text=None, compiled={"sweep_job.yml": f"description: {HOSTILE}\n"},
        automl_board=[BoardRow(3, "automl", "LightGBM-0", "c" * 32, "completed", 0.88, 0.5, {"n_estimators": "4"}, False)],
        sweep_board=board, curves=curves(), parameters=["C"], trial_points=[], notes=[f"note {HOSTILE}"],
    )
    fields.update(changes)
    return ReportData(**fields)


def evaluation(held_out: bool) -> Evaluation:
    return Evaluation("classification", held_out, f"how {HOSTILE}", 4, np.array(["a", "b", "a", "b"]),
                      np.array(["a", "b", "b", "b"]), None, ["a", "b"], {"accuracy": 0.75}, [])


def page(data=None, evaluation_result=None, problem=None) -> str:
    data = data or report_data()
    figure = figures.Figure("time", figures.metric_over_time(data.curves, "accuracy", "maximize"), f"caption {HOSTILE}")
    return render_page(data, [figure], evaluation_result, [], problem).decode("utf-8")


def test_page_escapes_every_value_from_runs_and_specs():
    html = page(evaluation_result=evaluation(True))
    assert "<script" not in html.lower()
    assert html.count("&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;") >= 5  # description, run name, params, note, caption, compiled job
    assert not FETCHING.search(html)
    assert "http://" not in html and "https://" not in html


def test_page_header_highlights_and_labels():
    html = page(evaluation_result=evaluation(True))
    assert "Model report: bank:3" in html
    assert html.count('<tr class="winner">') == 1
    assert 'class="badge sweep">sweep</span>' in html
    assert 'class="badge warn">differs</span>' in html  # the manifest's spec sha256 is not the model's
    assert 'class="badge ok">matches</span>' in html  # the submit run's is
    assert "C=0.1" in html  # long float spellings shortened
    assert 'class="badge held-out">held-out rows</span>' in html
    assert "compiled sweep_job.yml" in html and "<details open>" in html  # no spec file: the compiled job is open


def test_page_says_when_rows_were_trained_on_or_figures_are_missing():
    html = page(evaluation_result=evaluation(False))
    assert 'class="badge trained-on">no held-out rows</span>' in html
    assert 'class="badge held-out"' not in html
    # Training rows give one secondary line, never a measure table presented as validation.
    assert '<p class="secondary" id="training-fit">Fit on training rows (not validation;' in html
    assert "measure on these rows" not in html
    html = page(problem="image models are not scored here")
    assert "Not drawn: image models are not scored here" in html
    assert "validation figures not drawn: image models are not scored here" in html


def test_page_leads_with_the_held_out_summary_and_folds_long_leaderboards():
    board = [BoardRow(rank, "automl", f"LightGBM-{rank}", f"{rank:032d}", "completed", 1 - rank / 100, 0.1, {}, rank == 18)
             for rank in range(1, 26)]
    held = Evaluation("classification", True, "Held-out rows: out of fold.", 4, np.array(["a", "b", "a", "b"]),
                      np.array(["a", "b", "b", "b"]), None, ["a", "b"], {"accuracy": 0.75}, [],
                      uses="4 held-out rows: out-of-fold predictions of 2-fold cross-validation", primary=("accuracy", 0.75),
                      per_class=[{"class": "a", "rows": 2, "predicted": 1, "precision": 1.0, "recall": 0.5}])
    confusion = figures.Figure("confusion matrix", figures.confusion_matrix(held.y_true, held.y_pred, held.classes), "", held.uses)
    html = render_page(report_data(automl_board=board, sweep_board=[]), [], held, [confusion], None).decode("utf-8")
    order = [html.index(f'id="{key}"') for key in ("summary", "validation", "confusion", "leaderboard", "runs", "provenance", "spec")]
    assert order == sorted(order)
    assert 'class="badge held-out">held-out rows</span>' in html and "accuracy (primary metric)" in html
    assert html.count("<b>Uses:</b> 4 held-out rows: out-of-fold predictions of 2-fold cross-validation") == 2  # measures, figure
    assert '<table class="scores" id="per-class">' in html
    # Ten best rows and the winner (rank 18) open; the other 14 behind <details>, with no script to unfold them.
    shown, folded = html.split("<summary>the other 14 candidates</summary>")
    assert "LightGBM-10 " in shown and "LightGBM-18 ★" in shown and "LightGBM-11 " not in shown
    assert "LightGBM-11 " in folded and "LightGBM-25 " in folded and "LightGBM-18 " not in folded
    assert "<script" not in html.lower()


def test_default_report_path():
    assert default_report_path("bank") == Path("bank-report.html")
    assert default_report_path("bank:2") == Path("bank-2-report.html")


def test_find_spec_file_matches_bytes_not_names(tmp_path):
    import hashlib

    (tmp_path / "a.yaml").write_text("name: a\n")
    (tmp_path / "b.yml").write_text("name: b\n")
    (tmp_path / "notes.txt").write_text("name: b\n")
    sha = hashlib.sha256(b"name: b\n").hexdigest()
    assert find_spec_file(sha, [tmp_path / "missing", tmp_path]) == tmp_path / "b.yml"
    assert find_spec_file("0" * 64, [tmp_path]) is None


@pytest.mark.parametrize("status", ["early_terminated", "failed"])
def test_leaderboard_rows_show_their_status(status):
    html = page()
    assert f'class="status-{status}"' in html


@pytest.mark.parametrize(
    "html,fetches",
    [
        ('<img src="http://example.org/x.png">', True),
        ("<link href='//cdn.example.org/x.css'>", True),
        ('<div style="background: url(https://example.org/x.png)">', True),
        ("<style>@import 'x.css';</style>", True),
        ('<image xlink:href="http://example.org/x.png"/>', True),
        ("<pre>$schema: https://azuremlschemas.azureedge.net/x.json</pre>", False),
        ('<image xlink:href="data:image/png;base64,AAAA"/>', False),
        ('<use xlink:href="#time-m1"/>', False),
    ],
)
def test_the_fetch_pattern_tells_fetches_from_text(html, fetches):
    assert bool(FETCHING.search(html)) is fetches
