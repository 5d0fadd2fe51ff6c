"""Report stage, figures: plain data (runs, metric series, predictions) -> inline SVG text, drawn by matplotlib.

Pure: nothing here reads the store or the disk. Figures are drawn on `matplotlib.figure.Figure` objects (no
pyplot, so no GUI backend and no global figure registry) and saved as SVG with text kept as <text> (small, and
searchable in the page). The SVG is made fit for inlining in HTML: no XML prolog or DOCTYPE, no RDF metadata,
no namespace declarations (an HTML parser puts inline <svg> in the SVG namespace itself), and every id
prefixed so that several figures on one page never share one. Labels from runs and data are never read as
mathtext (`$` stays a dollar sign); matplotlib escapes them as XML.
"""

from __future__ import annotations

import io
import math
import re
from dataclasses import dataclass

import numpy as np

from capc.goal import Goal

AUTOML_COLOUR = "#1f6fb4"
SWEEP_COLOUR = "#e07b00"
STOPPED_COLOUR = "#8c8c8c"
FAILED_COLOUR = "#c0392b"
WINNER_COLOUR = "#d4a017"
STYLE = {
    "svg.fonttype": "none",  # text as <text>, not glyph paths
    "svg.hashsalt": "capc-report",  # the same data draws the same SVG
    "text.parse_math": False,
    "font.size": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "legend.frameon": False,
}
MAX_LABEL = 18  # characters of a class or category label on an axis
MAX_ROC_LEGEND = 12  # classes named in a one-vs-rest legend


@dataclass(frozen=True)
class RunCurve:
    """A run's primary metric over time: many points for a sweep trial, one for an AutoML candidate."""

    label: str
    source: str  # "automl" | "sweep"
    status: str  # completed | failed | early_terminated | interrupted
    steps: list[int]  # the step of each report (0 for a candidate's single value)
    seconds: list[float]  # when each report was logged, since the submit started
    values: list[float]
    winner: bool = False


@dataclass(frozen=True)
class TrialPoint:
    """A sweep trial's hyperparameters (as logged: text) and its final primary metric."""

    params: dict[str, str]
    value: float
    status: str
    winner: bool = False


@dataclass(frozen=True)
class ServingPoint:
    """A measured candidate: its primary metric and the p99 latency of one row through score.py."""

    label: str
    source: str  # "automl" | "sweep"
    value: float
    p99_ms: float
    winner: bool = False


@dataclass(frozen=True)
class Figure:
    """One figure of the page: its title, the SVG markup, a caption saying how to read it, and which rows
    (or runs) it uses and how many."""

    title: str
    svg: str
    caption: str = ""
    uses: str = ""


# ---------------------------------------------------------------- runs


def metric_over_time(curves: list[RunCurve], metric: str, goal: str) -> str:
    """Sweep trials by metric report (step), and every run over wall time: a line per sweep trial (early-terminated
    ones dashed, ending in a cross), a dot per AutoML candidate, a star on the registered model's run."""
    from matplotlib.lines import Line2D

    trials = [c for c in curves if c.source == "sweep"]
    panels = 2 if trials else 1
    with _style():
        figure, _ = _figure(5.4 * panels, 4.2, subplots=False)
        shown: set[str] = set()
        if trials:
            by_step = figure.add_subplot(1, panels, 1)
            for curve in trials:
                _draw_curve(by_step, curve, curve.steps, shown)
            by_step.set_xlabel("metric report (step) of the trial")
            by_step.set_ylabel(f"{metric} ({'higher' if Goal(goal).maximize else 'lower'} is better)")
            by_step.set_title("sweep trials, report by report")
        over_time = figure.add_subplot(1, panels, panels)
        for curve in curves:
            _draw_curve(over_time, curve, curve.seconds, shown)
        over_time.set_xlabel("seconds since the submit started")
        if not trials:
            over_time.set_ylabel(f"{metric} ({'higher' if Goal(goal).maximize else 'lower'} is better)")
        over_time.set_title("every run over time")
        handles = {
            "sweep": Line2D([], [], color=SWEEP_COLOUR, marker="o", markersize=3, label="sweep trial"),
            "stopped": Line2D([], [], color=STOPPED_COLOUR, linestyle="--", marker="X", markersize=7,
                              label="sweep trial, early terminated"),
            "failed": Line2D([], [], color=FAILED_COLOUR, linestyle=":", label="sweep trial, failed or interrupted"),
            "automl": Line2D([], [], color=AUTOML_COLOUR, marker="o", linestyle="none", label="AutoML candidate"),
            "winner": Line2D([], [], color=WINNER_COLOUR, marker="*", markersize=12, markeredgecolor="black",
                             markeredgewidth=0.6, linestyle="none", label="registered model"),
        }
        legend = [h for k, h in handles.items() if k in shown]
        figure.legend(handles=legend, loc="lower center", ncols=max(1, len(legend)), bbox_to_anchor=(0.5, 0.0), fontsize=8)
        figure.tight_layout(rect=(0, 0.07, 1, 1))
        return _svg(figure, "time")


def _draw_curve(axes, curve: RunCurve, xs, shown: set[str]) -> None:
    xs, ys = _finite_pairs(xs, curve.values)
    if not xs:
        return
    if curve.source == "automl":
        failed = curve.status != "completed"
        axes.scatter(xs, ys, s=22, color=FAILED_COLOUR if failed else AUTOML_COLOUR, alpha=0.8, zorder=3, linewidths=0)
        shown.add("automl")
    else:
        colour, dash, kind = _trial_look(curve.status)
        axes.plot(xs, ys, color=colour, linestyle=dash, linewidth=1.4, marker="o", markersize=2.5, alpha=0.9, zorder=2)
        if curve.status == "early_terminated":
            axes.plot(xs[-1:], ys[-1:], color=colour, marker="X", markersize=8, linestyle="none", zorder=4)
        shown.add(kind)
    if curve.winner:
        axes.plot(xs[-1:], ys[-1:], color=WINNER_COLOUR, marker="*", markersize=16, markeredgecolor="black",
                  markeredgewidth=0.6, linestyle="none", zorder=5)
        shown.add("winner")


def _trial_look(status: str) -> tuple[str, str, str]:
    if status == "early_terminated":
        return STOPPED_COLOUR, "--", "stopped"
    if status in ("failed", "interrupted"):
        return FAILED_COLOUR, ":", "failed"
    return SWEEP_COLOUR, "-", "sweep"


def parameters_against_metric(points: list[TrialPoint], parameters: list[str], metric: str) -> str:
    """One scatter per swept parameter: its value against the trial's final metric. Numbers on a numeric axis
    (logarithmic when they span two decades or more), anything else as categories."""
    from matplotlib.lines import Line2D

    columns = min(3, max(1, len(parameters)))
    rows = math.ceil(len(parameters) / columns)
    with _style():
        figure, _ = _figure(3.2 * columns, 2.8 * rows, subplots=False)
        for i, name in enumerate(parameters, start=1):
            axes = figure.add_subplot(rows, columns, i)
            texts = [p.params.get(name) for p in points]
            numbers = [_number(t) for t in texts]
            numeric = all(n is not None for n, t in zip(numbers, texts) if t is not None)
            if numeric:
                xs = numbers
                present = [n for n in numbers if n is not None]
                if present and min(present) > 0 and max(present) / min(present) >= 100:
                    _log_axis(axes)
            else:
                categories = sorted({t for t in texts if t is not None})
                xs = [None if t is None else categories.index(t) for t in texts]
                axes.set_xticks(range(len(categories)), [_short(c) for c in categories], rotation=30, ha="right")
            for point, x in zip(points, xs):
                if x is None or not math.isfinite(point.value):
                    continue
                colour, _, kind = _trial_look(point.status)
                marker = "X" if kind == "stopped" else "o"
                axes.scatter([x], [point.value], s=28, color=colour, marker=marker, alpha=0.85, linewidths=0, zorder=3)
                if point.winner:
                    axes.scatter([x], [point.value], s=150, color=WINNER_COLOUR, marker="*", edgecolors="black",
                                 linewidths=0.6, zorder=4)
            axes.set_xlabel(_short(name, 40))
            if (i - 1) % columns == 0:
                axes.set_ylabel(metric)
        legend = [Line2D([], [], color=SWEEP_COLOUR, marker="o", linestyle="none", label="trial")]
        if any(p.status == "early_terminated" for p in points):
            legend.append(Line2D([], [], color=STOPPED_COLOUR, marker="X", linestyle="none", label="early terminated (last value)"))
        if any(p.status in ("failed", "interrupted") for p in points):
            legend.append(Line2D([], [], color=FAILED_COLOUR, marker="o", linestyle="none", label="failed or interrupted"))
        if any(p.winner for p in points):
            legend.append(Line2D([], [], color=WINNER_COLOUR, marker="*", markersize=11, markeredgecolor="black",
                                 markeredgewidth=0.6, linestyle="none", label="registered model"))
        figure.legend(handles=legend, loc="upper center", ncols=len(legend), bbox_to_anchor=(0.5, 1.0), fontsize=8)
        figure.tight_layout(rect=(0, 0, 1, 1 - 0.35 / (2.8 * rows)))
        return _svg(figure, "params", tight=False)


# ---------------------------------------------------------------- serving


def metric_against_latency(points: list[ServingPoint], metric: str, goal: str, max_latency_ms: float | None) -> str:
    """Each measured candidate's primary metric against its p99 one-row latency (logarithmic when the latencies
    span two decades), the serving budget as a vertical line, a star on the registered model."""
    from matplotlib.lines import Line2D

    with _style():
        figure, axes = _figure(6.0, 4.0)
        for point in points:
            if not (math.isfinite(point.value) and math.isfinite(point.p99_ms)):
                continue
            colour = AUTOML_COLOUR if point.source == "automl" else SWEEP_COLOUR
            axes.scatter([point.p99_ms], [point.value], s=30, color=colour, alpha=0.85, linewidths=0, zorder=3)
            axes.annotate(_short(point.label, 24), (point.p99_ms, point.value), xytext=(4, 3), textcoords="offset points", fontsize=7)
            if point.winner:
                axes.scatter([point.p99_ms], [point.value], s=180, color=WINNER_COLOUR, marker="*", edgecolors="black",
                             linewidths=0.6, zorder=4)
        latencies = [p.p99_ms for p in points if p.p99_ms > 0]
        if latencies and max(latencies + [max_latency_ms or 0]) / min(latencies + [max_latency_ms or math.inf]) >= 100:
            _log_axis(axes)
        legend = [Line2D([], [], color=c, marker="o", linestyle="none", label=l)
                  for c, l, s in ((AUTOML_COLOUR, "AutoML model", "automl"), (SWEEP_COLOUR, "sweep trial", "sweep"))
                  if any(p.source == s for p in points)]
        if max_latency_ms is not None:
            axes.axvline(max_latency_ms, color=FAILED_COLOUR, linestyle="--", linewidth=1.2, zorder=2)
            legend.append(Line2D([], [], color=FAILED_COLOUR, linestyle="--", label=f"budget: p99 {max_latency_ms:g} ms"))
        if any(p.winner for p in points):
            legend.append(Line2D([], [], color=WINNER_COLOUR, marker="*", markersize=11, markeredgecolor="black",
                                 markeredgewidth=0.6, linestyle="none", label="registered model"))
        axes.set_xlabel("p99 latency of a one-row request through score.py (ms)")
        axes.set_ylabel(f"{metric} ({'higher' if goal == 'maximize' else 'lower'} is better)")
        axes.legend(handles=legend, loc="best", fontsize=8)
        return _svg(figure, "serving")


# ---------------------------------------------------------------- classification


def confusion_matrix(y_true, y_pred, classes) -> str:
    """Counts per (actual, predicted) class; the colour is the share of the actual class (recall per row)."""
    classes = list(classes)
    counts = confusion_counts(y_true, y_pred, classes)
    totals = counts.sum(axis=1, keepdims=True)
    shares = np.divide(counts, totals, out=np.zeros(counts.shape, dtype=float), where=totals > 0)
    side = min(9.0, max(3.8, 0.45 * len(classes) + 2.2))
    with _style():
        figure, axes = _figure(side + 0.8, side)
        axes.grid(False)
        image = axes.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0)
        figure.colorbar(image, ax=axes, fraction=0.046, pad=0.04, label="share of the actual class")
        labels = [_short(c) for c in classes]
        axes.set_xticks(range(len(classes)), labels, rotation=45 if len(classes) > 4 else 0, ha="right" if len(classes) > 4 else "center")
        axes.set_yticks(range(len(classes)), labels)
        if len(classes) <= 30:
            for (i, j), count in np.ndenumerate(counts):
                axes.text(j, i, str(count), ha="center", va="center", fontsize=8 if len(classes) <= 12 else 6,
                          color="white" if shares[i, j] > 0.6 else "black")
        axes.set_xlabel("predicted class")
        axes.set_ylabel("actual class")
        axes.set_title(f"confusion matrix ({int(counts.sum())} rows)")
        return _svg(figure, "confusion")


def confusion_counts(y_true, y_pred, classes) -> np.ndarray:
    """counts[i, j]: rows of actual class i predicted as j (labels of any type; ones outside `classes` skipped)."""
    index = {label: i for i, label in enumerate(classes)}
    counts = np.zeros((len(classes), len(classes)), dtype=int)
    for actual, predicted in zip(np.asarray(y_true).tolist(), np.asarray(y_pred).tolist()):
        if actual in index and predicted in index:
            counts[index[actual], index[predicted]] += 1
    return counts


def roc_curves(y_true, probabilities, classes) -> str:
    """Binary: the ROC curve of the positive class (the last in sorted order, as scikit-learn counts it).
    Multiclass: one-vs-rest per class, with the macro-average AUC in the title."""
    from sklearn.metrics import auc, roc_curve

    classes = list(classes)
    y = np.asarray(y_true, dtype=object)
    proba = np.asarray(probabilities, dtype=float)
    with _style():
        figure, axes = _figure(5.6, 4.8)
        axes.plot([0, 1], [0, 1], color="#999999", linestyle="--", linewidth=1, label="chance")
        if len(classes) == 2:
            positive = classes[1]
            fpr, tpr, _ = roc_curve(y == positive, proba[:, 1])
            area = auc(fpr, tpr)
            axes.plot(fpr, tpr, color=AUTOML_COLOUR, linewidth=2, label=f"{_short(positive)} (AUC {area:.3f})")
            axes.set_title(f"ROC curve, positive class {_short(positive, 30)}")
        else:
            areas = []
            colours = _palette(len(classes))
            for k, label in enumerate(classes):
                actual = y == label
                if actual.all() or not actual.any():
                    continue  # one-vs-rest needs both sides among these rows
                fpr, tpr, _ = roc_curve(actual, proba[:, k])
                areas.append(auc(fpr, tpr))
                named = k < MAX_ROC_LEGEND
                axes.plot(fpr, tpr, color=colours[k], linewidth=1.2, alpha=0.9,
                          label=f"{_short(label)} (AUC {areas[-1]:.3f})" if named else None)
            macro = float(np.mean(areas)) if areas else float("nan")
            axes.set_title(f"ROC one-vs-rest, macro AUC {macro:.3f}")
        axes.set_xlim(-0.01, 1.01)
        axes.set_ylim(-0.01, 1.01)
        axes.set_xlabel("false positive rate")
        axes.set_ylabel("true positive rate")
        axes.legend(loc="lower right", fontsize=7)
        return _svg(figure, "roc")


# ---------------------------------------------------------------- regression


def predicted_against_actual(y_true, y_pred) -> str:
    actual = np.asarray(y_true, dtype=float)
    predicted = np.asarray(y_pred, dtype=float)
    low = float(np.nanmin([actual.min(), predicted.min()]))
    high = float(np.nanmax([actual.max(), predicted.max()]))
    with _style():
        figure, axes = _figure(5.2, 4.8)
        axes.scatter(actual, predicted, s=9, alpha=0.45, color=AUTOML_COLOUR, linewidths=0)
        axes.plot([low, high], [low, high], color="#444444", linestyle="--", linewidth=1, label="predicted = actual")
        axes.set_xlabel("actual")
        axes.set_ylabel("predicted")
        axes.set_title(f"predicted against actual ({len(actual)} rows)")
        axes.legend(loc="upper left", fontsize=8)
        return _svg(figure, "predicted")


def residuals(y_true, y_pred) -> str:
    actual = np.asarray(y_true, dtype=float)
    predicted = np.asarray(y_pred, dtype=float)
    with _style():
        figure, axes = _figure(5.2, 4.8)
        axes.scatter(predicted, actual - predicted, s=9, alpha=0.45, color=SWEEP_COLOUR, linewidths=0)
        axes.axhline(0.0, color="#444444", linestyle="--", linewidth=1)
        axes.set_xlabel("predicted")
        axes.set_ylabel("residual (actual - predicted)")
        axes.set_title("residuals")
        return _svg(figure, "residuals")


def feature_importance(features: list[dict], metric: str, rows: int, top: int = 15) -> str:
    """The `top` features by permutation importance (capc.report.importance), most important at the top, each with
    the spread over repeats as an error bar."""
    shown = features[:top]
    names = [_short(f["feature"], 28) for f in shown][::-1]
    means = [f["importance"] for f in shown][::-1]
    spreads = [f["std"] for f in shown][::-1]
    with _style():
        figure, axes = _figure(6.4, 0.5 + 0.28 * max(len(shown), 1))
        colours = [AUTOML_COLOUR if m > 0 else STOPPED_COLOUR for m in means]
        axes.barh(range(len(shown)), means, xerr=spreads, color=colours, error_kw={"elinewidth": 0.8, "capsize": 2})
        axes.set_yticks(range(len(shown)), names)
        axes.axvline(0.0, color="#444444", linewidth=0.8)
        axes.set_xlabel(f"loss of {metric} when the feature is shuffled")
        axes.set_title(f"feature importance (top {len(shown)} of {len(features)}, {rows:,} rows)")
        axes.grid(axis="y", visible=False)
        return _svg(figure, "importance")


# ---------------------------------------------------------------- drawing and SVG clean-up


def _style():
    import matplotlib

    return matplotlib.rc_context(STYLE)


def _log_axis(axes) -> None:
    """A logarithmic x axis labelled in plain numbers (matplotlib's default labels are mathtext, which is off)."""
    from matplotlib.ticker import FuncFormatter, NullFormatter

    axes.set_xscale("log")
    axes.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    axes.xaxis.set_minor_formatter(NullFormatter())


def _figure(width: float, height: float, subplots: bool = True):
    from matplotlib.figure import Figure as MatplotlibFigure

    figure = MatplotlibFigure(figsize=(width, height), dpi=100)
    return figure, (figure.add_subplot() if subplots else None)


def _svg(figure, prefix: str, tight: bool = True) -> str:
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", bbox_inches="tight" if tight else None, metadata={"Date": None})
    return inline_svg(buffer.getvalue(), prefix)


_PROLOG = re.compile(r"\A\s*(<\?xml[^>]*\?>\s*)?(<!DOCTYPE[^>]*>\s*)?", re.S)
_METADATA = re.compile(r"<metadata>.*?</metadata>\s*", re.S)
_NAMESPACE = re.compile(r'\s+xmlns(:\w+)?="[^"]*"')
_ID = re.compile(r'\bid="([^"]+)"')
_REFERENCE = re.compile(r'(href="#|url\(#)([^")]+)')


def inline_svg(svg: str, prefix: str) -> str:
    """matplotlib's standalone SVG document -> an <svg> element for an HTML page (see the module docstring)."""
    svg = _PROLOG.sub("", svg, count=1)
    svg = _METADATA.sub("", svg, count=1)
    head_end = svg.index(">") + 1
    head = _NAMESPACE.sub("", svg[:head_end]).replace("<svg", f'<svg class="figure" role="img" id="{prefix}"', 1)
    body = svg[head_end:]
    ids = set(_ID.findall(body))
    body = _ID.sub(lambda m: f'id="{prefix}-{m.group(1)}"', body)
    body = _REFERENCE.sub(lambda m: m.group(1) + (f"{prefix}-{m.group(2)}" if m.group(2) in ids else m.group(2)), body)
    return (head + body).strip()


def _finite_pairs(xs, ys) -> tuple[list[float], list[float]]:
    pairs = [(float(x), float(y)) for x, y in zip(xs, ys) if math.isfinite(float(x)) and math.isfinite(float(y))]
    return [p[0] for p in pairs], [p[1] for p in pairs]


def _number(text) -> float | None:
    if text is None:
        return None
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def _short(value, width: int = MAX_LABEL) -> str:
    text = str(value)
    return text if len(text) <= width else text[: width - 1] + "…"


def _palette(n: int) -> list:
    from matplotlib import colormaps

    cmap = colormaps["tab10" if n <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(n)]
