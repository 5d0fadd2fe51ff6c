"""Report stage: a registered model version -> one self-contained HTML file (`capc report NAME[:VERSION]`).

    registry + MLflow store + job folder --collect--> ReportData
    registered run's held-out predictions (or the trial's own split) --evaluation--> predictions on held-out rows
    both --figures--> inline SVG --page--> HTML bytes --> written atomically (temp file + rename)

Reads only what `capc submit` left (the registry, the store under $CAPC_HOME, generated/<name>/); changes none
of it. A model or store that cannot be reported on is a CapcError; a part that cannot be drawn (a run that kept
no held-out predictions, a training table that moved) becomes a note in the report instead. Every figure states
which rows it uses and how many; none drawn from training rows is shown.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from capc.artifacts import atomic_write_bytes, output_mode
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
    evaluation_figures = []
    if evaluation and evaluation.held_out:
        evaluation_figures = _forecast_figures(evaluation, model) if evaluation.forecast else _evaluation_figures(evaluation)
    importance_problem = None
    if evaluation and evaluation.held_out and model.task in ("classification", "regression"):
        try:
            evaluation_figures.append(_importance_figure(model))
        except CapcError as exc:
            importance_problem = str(exc)
    html = render_page(data, run_figures, evaluation, evaluation_figures, problem)
    path = out or default_report_path(ref)
    try:
        atomic_write_bytes(path, html, mode=output_mode())  # a page to share, not a secret: the umask decides
    except OSError as exc:
        raise CapcError(f"cannot write the report to {path}: {exc.strerror or exc}.") from None
    notes = data.notes + ([f"validation figures not drawn: {problem}"] if problem else [])
    notes += [f"feature importance not drawn: {importance_problem}"] if importance_problem else []
    return WrittenReport(path, model.ref, len(run_figures) + len(evaluation_figures),
                         evaluation.held_out if evaluation else None, notes)


def _run_figures(data) -> list:
    from capc.report import figures

    out = []
    candidates = sum(1 for c in data.curves if c.source == "automl")
    trials = sum(1 for c in data.curves if c.source == "sweep")
    if data.curves:
        out.append(figures.Figure(
            "metric over time",
            figures.metric_over_time(data.curves, data.model.metric, data.model.goal),
            "Left: each sweep trial's reports of the primary metric as it trained (early-terminated trials dashed, ending "
            "in a cross). Right: the same reports at the time they were logged, and each AutoML candidate as a dot when "
            "it finished. The star is the registered model's run.",
            f"the primary metric each run logged on its own validation rows: {_count(candidates, 'AutoML candidate')}, "
            f"{_count(trials, 'sweep trial')}",
        ))
    if data.parameters and data.trial_points:
        out.append(figures.Figure(
            "parameters against the metric",
            figures.parameters_against_metric(data.trial_points, data.parameters, data.model.metric),
            "One panel per swept parameter: each trial's value of it against the trial's final primary metric "
            "(the last value an early-terminated trial reported).",
            f"the final primary metric of {_count(len(data.trial_points), 'sweep trial')}",
        ))
    if data.serving_points:
        out.append(figures.Figure(
            "primary metric against serving latency",
            figures.metric_against_latency(data.serving_points, data.model.metric, data.model.goal, data.max_latency_ms),
            "Each candidate measured through score.py when the model was selected: its primary metric against the p99 "
            "latency of a one-row request on the machine that selected it. The dashed line is the serving budget "
            "(deployment.max_latency_ms); the selection measures best first and stops at the first candidate within it. "
            "The star is the registered model.",
        ))
    return out


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def _importance_figure(model):
    from capc.report import figures, importance

    found = importance.of_model(model)
    return figures.Figure(
        "feature importance",
        figures.feature_importance(found.features, found.metric, found.rows, importance.TOP),
        f"Permutation importance: how much the primary metric ({found.metric}, {found.baseline:.4f} on these rows) "
        f"worsens when one feature column is shuffled, the mean of {found.repeats} shuffles with its spread; nothing "
        f"is refitted. {found.how}",
        found.uses,
    )


def _forecast_figures(evaluation, model) -> list:
    """A forecasting model's held-out horizons (capc.report.forecast_figures), placed by the settings in its MLmodel
    metadata, with each series' history from the job's training table."""
    from capc.report import figures, forecast_figures

    settings = _forecast_settings(Path(model.model_dir))
    held_out = forecast_figures.HeldOutForecasts.of(evaluation.forecast, evaluation.y_true, evaluation.y_pred, settings)
    history = _series_history(Path(model.job_dir), settings, held_out)
    if not history:
        evaluation.notes.append("the training table could not be read, so the forecast figure shows the held-out horizon without the history before it.")
    errors = forecast_figures.error_by_step(held_out, evaluation.y_range)
    name = "normalized mean absolute error" if evaluation.y_range else "mean absolute error"
    shown = held_out.shown_series()
    return [
        figures.Figure(
            "forecast against actual", forecast_figures.forecast_against_actual(held_out, history),
            f"The last held-out horizon of {_count(len(shown), 'series')} (of {len(set(held_out.series))}): the history "
            "before the cut-off (dashed line), then the actual values, the forecast and the seasonal-naive forecast over "
            "the shaded horizon, both made from the rows up to the cut-off only.",
            f"{_count(sum(len(held_out.at_last_fold(s)[0]) for s in shown), 'held-out forecast')} of the last fold",
        ),
        figures.Figure(
            "error by horizon step", forecast_figures.error_by_horizon_step(errors, name),
            f"The {name} of every held-out forecast made that many steps after its cut-off, over all series and folds, "
            "beside the seasonal-naive forecast's" + (" (divided by the training target's range, as Azure normalizes it)." if evaluation.y_range else "."),
            evaluation.uses,
        ),
    ]


def _forecast_settings(model_dir: Path) -> dict:
    """The forecasting settings the local engine records in the MLmodel's metadata (capc_forecasting)."""
    import yaml

    from capc.forecast_requests import MODEL_METADATA_KEY

    try:
        mlmodel = yaml.safe_load((model_dir / "MLmodel").read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise CapcError(f"cannot read the forecasting settings of {model_dir}: {exc}") from None
    settings = (mlmodel.get("metadata") or {}).get(MODEL_METADATA_KEY)
    if not isinstance(settings, dict) or not {"time_column", "target", "series_ids", "horizon", "frequency"} <= set(settings):
        raise CapcError(f"{model_dir / 'MLmodel'} records no forecasting settings (metadata: {MODEL_METADATA_KEY}).")
    return settings


def _series_history(job_dir: Path, settings: dict, held_out) -> dict:
    """series key -> (times, values) of its training rows up to the last cut-off; {} when the table cannot be read."""
    import pandas as pd

    from capc.jobfolder.data import mltable_source, read_frame

    try:
        data_file, fmt, drop = mltable_source(job_dir / "data")
        table = read_frame(data_file, fmt, drop)
        times = pd.to_datetime(table[settings["time_column"]])
        values = table[settings["target"]].astype(float)
        ids = list(settings["series_ids"])
    except (CapcError, KeyError, ValueError, TypeError):
        return {}
    keys = table[ids].astype(str).agg("|".join, axis=1) if ids else pd.Series("", index=table.index)  # forecasting.series_keys
    history = {}
    for series in held_out.shown_series():
        rows = (keys == series) & (times <= held_out.last_origin)
        ordered = pd.DataFrame({"t": times[rows], "y": values[rows]}).sort_values("t")
        history[series] = (list(ordered["t"]), list(ordered["y"]))
    return history


def _evaluation_figures(evaluation) -> list:
    """Figures of held-out predictions only: a caller never draws these from training rows."""
    from capc.report import figures
    from capc.report.evaluation import drawn_sample

    uses = evaluation.uses
    if evaluation.task == "regression":
        keep = drawn_sample(evaluation)
        if len(keep) < evaluation.rows:
            uses += f" (a seeded sample of {len(keep):,} drawn; the scores use all {evaluation.rows:,})"
        actual, predicted = evaluation.y_true[keep], evaluation.y_pred[keep]
        return [
            figures.Figure("predicted against actual", figures.predicted_against_actual(actual, predicted),
                           "Each row's prediction against its actual value; a perfect model lies on the dashed line.", uses),
            figures.Figure("residuals", figures.residuals(actual, predicted),
                           "Actual minus predicted, against the prediction: a pattern here is error the model leaves on the table.", uses),
        ]
    out = [figures.Figure("confusion matrix", figures.confusion_matrix(evaluation.y_true, evaluation.y_pred, evaluation.classes),
                          "Rows: the actual class; columns: the predicted one. Numbers are row counts; colour is the share of the actual class.",
                          uses)]
    if evaluation.probabilities is not None:
        binary = len(evaluation.classes) == 2
        out.append(figures.Figure(
            "ROC", figures.roc_curves(evaluation.y_true, evaluation.probabilities, evaluation.classes),
            "ROC curve of the positive class." if binary else "One-vs-rest ROC curve per class.", uses,
        ))
    return out
