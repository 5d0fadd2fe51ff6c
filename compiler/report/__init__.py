"""Report stage: a registered model version -> one self-contained HTML file (`capc report NAME[:VERSION]`).

    registry + MLflow store + job folder --collect--> ReportData
    registered model + training table --evaluation--> predictions on validation rows
    both --figures--> inline SVG --page--> HTML bytes --> written atomically (temp file + rename)

Reads only what `capc submit` left (the registry, the store under $CAPC_HOME, generated/<name>/); changes none
of it. A model or store that cannot be reported on is a CapcError; a part that cannot be drawn (an image model's
validation, a training table that moved) becomes a note in the report instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from capc.artifacts import atomic_write_bytes
from capc.errors import CapcError


@dataclass(frozen=True)
class WrittenReport:
    path: Path
    ref: str
    figures: int
    held_out: bool | None  # None: no validation figures
    notes: list[str] = field(default_factory=list)


def default_report_path(ref: str) -> Path:
    """NAME-report.html for NAME, NAME-VERSION-report.html for NAME:VERSION, in the working directory."""
    name, _, version = ref.partition(":")
    return Path(f"{name}-{version}-report.html" if version else f"{name}-report.html")


def write_report(ref: str, out: Path | None = None) -> WrittenReport:
    from capc.state import registry
    from capc.report.collect import collect
    from capc.report.evaluation import evaluate
    from capc.report.page import render_page

    model = registry.get(ref)
    data = collect(model)
    run_figures = _run_figures(data)
    evaluation, problem = None, None
    try:
        evaluation = evaluate(model)
    except CapcError as exc:
        problem = str(exc)
    evaluation_figures = _evaluation_figures(evaluation) if evaluation else []
    html = render_page(data, run_figures, evaluation, evaluation_figures, problem)
    path = out or default_report_path(ref)
    try:
        atomic_write_bytes(path, html, mode=0o644)  # a page to share, not a secret
    except OSError as exc:
        raise CapcError(f"cannot write the report to {path}: {exc.strerror or exc}.") from None
    notes = data.notes + ([f"validation figures not drawn: {problem}"] if problem else [])
    return WrittenReport(path, model.ref, len(run_figures) + len(evaluation_figures),
                         evaluation.held_out if evaluation else None, notes)


def _run_figures(data) -> list:
    from capc.report import figures

    out = []
    if data.curves:
        out.append(figures.Figure(
            "metric over time",
            figures.metric_over_time(data.curves, data.model.metric, data.model.goal),
            "Left: each sweep trial's reports of the primary metric as it trained (early-terminated trials dashed, ending "
            "in a cross). Right: the same reports at the time they were logged, and each AutoML candidate as a dot when "
            "it finished. The star is the registered model's run.",
        ))
    if data.parameters and data.trial_points:
        out.append(figures.Figure(
            "parameters against the metric",
            figures.parameters_against_metric(data.trial_points, data.parameters, data.model.metric),
            "One panel per swept parameter: each trial's value of it against the trial's final primary metric "
            "(the last value an early-terminated trial reported).",
        ))
    return out


def _evaluation_figures(evaluation) -> list:
    from capc.report import figures

    if evaluation.task == "regression":
        return [
            figures.Figure("predicted against actual", figures.predicted_against_actual(evaluation.y_true, evaluation.y_pred),
                           "Each row's prediction against its actual value; a perfect model lies on the dashed line."),
            figures.Figure("residuals", figures.residuals(evaluation.y_true, evaluation.y_pred),
                           "Actual minus predicted, against the prediction: a pattern here is error the model leaves on the table."),
        ]
    out = [figures.Figure("confusion matrix", figures.confusion_matrix(evaluation.y_true, evaluation.y_pred, evaluation.classes),
                          "Rows: the actual class; columns: the predicted one. Numbers are row counts; colour is the share of the actual class.")]
    if evaluation.probabilities is not None:
        binary = len(evaluation.classes) == 2
        out.append(figures.Figure(
            "ROC", figures.roc_curves(evaluation.y_true, evaluation.probabilities, evaluation.classes),
            "ROC curve of the positive class." if binary else "One-vs-rest ROC curve per class.",
        ))
    return out
