"""Report stage, page: ReportData, figures and the evaluation -> the HTML page's bytes (pure, in memory).

Rendered by templates/report.html.j2 in an HTML environment of its own: autoescape on, so every value that
comes from runs, specs or data is escaped; only the SVG figures (see capc.report.figures.inline_svg) enter as
markup. The page is self-contained: inline CSS, inline SVG, no script, no external URL.
"""

from __future__ import annotations

import math
from functools import cache

import jinja2
from markupsafe import Markup

from capc import __version__
from capc.report.collect import BoardRow, ReportData
from capc.report.evaluation import Evaluation
from capc.report.figures import Figure
from capc.winner_explanation import load_lines, passed_over_lines

TEMPLATE = "report.html.j2"
PARAMS_WIDTH = 110  # characters of a run's parameters shown in a leaderboard cell (all of them on hover)
BOARD_ROWS_SHOWN = 10  # a leaderboard's best rows shown open; the rest fold into a <details> element


@cache
def environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("capc.templates", "."),
        undefined=jinja2.StrictUndefined,
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def render_page(data: ReportData, run_figures: list[Figure], evaluation: Evaluation | None,
                evaluation_figures: list[Figure], evaluation_problem: str | None) -> bytes:
    context = page_context(data, run_figures, evaluation, evaluation_figures, evaluation_problem)
    return environment().get_template(TEMPLATE).render(context).encode("utf-8")


def page_context(data: ReportData, run_figures: list[Figure], evaluation: Evaluation | None,
                 evaluation_figures: list[Figure], evaluation_problem: str | None) -> dict:
    model = data.model
    source_name = {"automl": "AutoML", "sweep": "sweep"}
    winner_row = next((r for r in data.automl_board + data.sweep_board if r.winner), None)
    return {
        "title": f"Model report: {model.ref}",
        "subtitle": model.description or f"{model.task} on {model.metric}",
        "summary": _summary(data, winner_row, source_name, evaluation, evaluation_problem),
        "facts": _facts(data, winner_row, source_name),
        "notes": data.notes + ([f"validation figures not drawn: {evaluation_problem}"] if evaluation_problem else []),
        "searches": data.searches,
        "scope": f"submit {data.submit_name}" if data.submit_name else f"every submit of {model.name}",
        "metric": model.metric,
        "metric_header": Markup("_<wbr>").join(model.metric.split("_")),  # long metric names wrap at underscores
        "goal": model.goal,
        "boards": [
            _board("automl", "AutoML", data.automl_board, model.metric, "AutoML did not run in this submit."),
            _board("sweep", "sweep", data.sweep_board, model.metric, "The sweep did not run in this submit."),
        ],
        "validation": _evaluation_section(evaluation, evaluation_figures, evaluation_problem),
        "runs": _runs_section(run_figures),
        "spec_text": data.spec_text,
        "spec_label": _spec_label(data),
        "compiled": sorted(data.compiled.items()),
        "footer": f"Written by capc {__version__} from the registry and the MLflow store under $CAPC_HOME. "
                  "Self-contained: no script, no external resource.",
    }


def _summary(data: ReportData, winner_row: BoardRow | None, source_name: dict, evaluation: Evaluation | None,
             problem: str | None) -> list[dict]:
    """The few lines the page opens with: the winner, its logged validation value, and what held-out rows say."""
    model = data.model
    winner = source_name.get(model.source, model.source) + (f" ({winner_row.name})" if winner_row else "")
    lines = [
        _fact("winner", winner, badge=(model.source, source_name.get(model.source, model.source))),
        _fact(f"{model.metric}, logged", f"{_number(model.value)} ({model.goal}): the winner's score on its validation rows during training"),
        *_selection_facts(data, winner_row),
    ]
    if evaluation is None:
        lines.append(_fact("held-out rows", f"no figures: {problem}" if problem else "no figures"))
        return lines
    if not evaluation.held_out:
        lines.append(_fact("held-out rows", "none recorded for this model, so no validation figure is drawn",
                           badge=("trained-on", "no held-out rows")))
        return lines
    if evaluation.primary is not None:
        name, value = evaluation.primary
        lines.append(_fact(f"{name}, held-out", f"{_number(value)} on the rows below (recomputed here from their predictions)",
                           badge=("held-out", "held-out rows")))
    lines.append(_fact("other measures", "; ".join(f"{k} {_number(v)}" for k, v in _other_scores(evaluation).items())))
    lines.append(_fact("rows", evaluation.uses))
    return lines


def _selection_facts(data: ReportData, winner_row: BoardRow | None) -> list[dict]:
    """Why the winner won over better-scoring candidates (each with its figure against the budget), and its load; a
    winner ranked below runs that were not candidates says so too."""
    record = data.model.selection or {}
    facts = [_fact("passed over", line.removeprefix("passed over ")) for line in passed_over_lines(record)]
    better = sum(1 for r in data.automl_board + data.sweep_board if winner_row and r.rank is not None and r.rank < winner_row.rank)
    unexplained = better - len(record.get("passed_over") or [])
    if unexplained > 0:
        facts.append(_fact("not candidates", f"{unexplained} better-ranked run{'s' if unexplained != 1 else ''} on the boards below "
                           f"{'were' if unexplained != 1 else 'was'} not weighed: selection compares the models the engines keep "
                           "(AutoML's best per learner and its ensembles, each completed trial; a pipeline's select step only "
                           "each engine's best), and without a budget only the best"))
    return facts + [_fact("serving under load", line) for line in load_lines(record)]


def _facts(data: ReportData, winner_row: BoardRow | None, source_name: dict) -> list[dict]:
    model = data.model
    manifest = data.manifest or {}
    winner = source_name.get(model.source, model.source)
    if winner_row:
        winner += f" ({winner_row.name})"
    facts = [
        _fact("model", model.name),
        _fact("registered version", f"{model.ref}, registered {model.created}"),
        _fact("task", model.task),
        _fact("primary metric", f"{model.metric} ({model.goal})"),
        _fact("registered value", _number(model.value)),
        _fact("won by", winner, badge=(model.source, source_name.get(model.source, model.source))),
        _fact("best of each side", _sides(data)),
        _fact("spec sha256 (registry)", model.spec_sha256, mono=True),
    ]
    if data.submit_sha256 is not None:
        facts.append(_fact("spec sha256 (submit run)", data.submit_sha256, mono=True, badge=_match(data.submit_sha256, model.spec_sha256)))
    if manifest:
        facts.append(_fact("spec sha256 (manifest)", str(manifest.get("spec_sha256", "-")), mono=True,
                           badge=_match(manifest.get("spec_sha256"), model.spec_sha256)))
        facts.append(_fact("built by", f"capc {manifest.get('capc_version', '?')} into {model.job_dir}"))
    else:
        facts.append(_fact("build", f"{model.job_dir} (no manifest.json)"))
    if data.submit_name:
        facts.append(_fact("submit run", data.submit_name))
    facts += _data_facts(model)
    return facts


def _data_facts(model) -> list[dict]:
    """What the model was trained on (capc.state.fingerprint) and the seed of its run."""
    from capc.state.fingerprint import DataFingerprint

    data = DataFingerprint.from_dict(getattr(model, "data", None))
    facts = [_fact("training data", data.summary() if data else "not recorded (registered before capc kept data fingerprints)")]
    if data:
        facts.append(_fact("data sha256", data.sha256, mono=True))
        facts.append(_fact("data schema", ", ".join(f"{name}: {kind}" for name, kind in data.schema.items())))
    if getattr(model, "seed", None) is not None:
        facts.append(_fact("seed", str(model.seed)))
    return facts


def _fact(label: str, value: str, mono: bool = False, badge: tuple[str, str] | None = None) -> dict:
    return {"label": label, "value": value, "mono": mono, "badge": {"kind": badge[0], "text": badge[1]} if badge else None}


def _match(value, expected) -> tuple[str, str]:
    return ("ok", "matches") if value == expected else ("warn", "differs")


def _sides(data: ReportData) -> str:
    parts = []
    for label, board in (("AutoML", data.automl_board), ("sweep", data.sweep_board)):
        best = board[0] if board and board[0].rank is not None else None
        parts.append(f"{label} {_number(best.value)} ({best.name})" if best else f"{label} -")
    return "; ".join(parts)


def _board(source: str, title: str, rows: list[BoardRow], metric: str, empty: str) -> dict:
    noun = "candidate" if source == "automl" else "trial"
    stopped = sum(1 for r in rows if r.status == "early_terminated")
    summary = f"{len(rows)} {noun}{'s' if len(rows) != 1 else ''}" + (f", {stopped} early terminated" if stopped else "")
    shown = rows[:BOARD_ROWS_SHOWN] + [r for r in rows[BOARD_ROWS_SHOWN:] if r.winner]  # the winner is never folded
    folded = [r for r in rows if r not in shown]
    return {
        "source": source,
        "title": title,
        "summary": summary,
        "empty": empty,
        "rows": [_board_row(r) for r in shown],
        "folded": [_board_row(r) for r in folded],
        "folded_label": f"the other {len(folded)} {noun}{'s' if len(folded) != 1 else ''}",
    }


def _board_row(r: BoardRow) -> dict:
    return {
        "rank": "-" if r.rank is None else str(r.rank),
        "name": r.name,
        "family": r.family,
        "run_id": r.run_id[:8],
        "winner": r.winner,
        "status": r.status.replace("_", " "),
        "status_class": r.status,
        "value": _number(r.value),
        "duration": _duration(r.duration_s),
        "params": _shorten(_params(r.params), PARAMS_WIDTH),
        "params_full": _params(r.params),
    }


def _runs_section(figures: list[Figure]) -> dict:
    return {
        "key": "runs",
        "title": "Runs",
        "figures": [_figure(f) for f in figures],
        "empty": "" if figures else "No run reported the primary metric.",
    }


def _evaluation_section(evaluation: Evaluation | None, figures: list[Figure], problem: str | None) -> dict:
    section = {"key": "validation", "title": "Validation on held-out rows", "badge": None, "text": [], "scores": [],
               "scores_rows": "", "per_class": [], "training_fit": None, "figures": [_figure(f) for f in figures], "empty": ""}
    if evaluation is None:
        section["empty"] = f"Not drawn: {problem}" if problem else "Not drawn."
        return section
    section["text"] = [evaluation.how, *evaluation.notes]
    if not evaluation.held_out:
        # Only a secondary line: training rows measure fit, and nothing here may read as validation.
        section["badge"] = {"kind": "trained-on", "text": "no held-out rows"}
        section["training_fit"] = {
            "uses": evaluation.uses,
            "scores": "; ".join(f"{name} {_number(value)}" for name, value in evaluation.scores.items()),
        }
        return section
    section["badge"] = {"kind": "held-out", "text": "held-out rows"}
    scores = [{"name": f"{evaluation.primary[0]} (primary metric)", "value": _number(evaluation.primary[1])}] if evaluation.primary else []
    section["scores"] = scores + [{"name": name, "value": _number(value)} for name, value in _other_scores(evaluation).items()]
    section["scores_rows"] = evaluation.uses
    section["per_class"] = [
        {"label": str(c["class"]), "rows": f"{c['rows']:,}", "predicted": f"{c['predicted']:,}",
         "precision": _number(c["precision"]), "recall": _number(c["recall"])}
        for c in evaluation.per_class
    ]
    return section


def _other_scores(evaluation: Evaluation) -> dict[str, float]:
    """The measures beside the primary metric (accuracy is often both)."""
    primary = evaluation.primary[0] if evaluation.primary else None
    return {name: value for name, value in evaluation.scores.items() if name != primary}


def _figure(f: Figure) -> dict:
    return {"title": f.title, "svg": Markup(f.svg), "caption": f.caption, "uses": f.uses}


def _spec_label(data: ReportData) -> str:
    if data.spec_path is not None:
        return f"{data.spec_path}: its sha256 is the model's spec sha256, so this is the spec the model was trained from."
    return ("The compiled jobs below, from the job folder, are the record of what ran (no spec file in specs/ or the "
            "working directory has the model's spec sha256, as after a submit with --set).")


def _params(params: dict) -> str:
    return ", ".join(f"{k}={_param_value(v)}" for k, v in params.items())


def _param_value(text: str) -> str:
    """Long float spellings (0.09999999999999995) shortened; everything else as logged."""
    try:
        value = float(text)
    except (TypeError, ValueError):
        return str(text)
    if "." in str(text) and len(str(text)) > 8 and math.isfinite(value):
        return f"{value:.4g}"
    return str(text)


def _shorten(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _number(value) -> str:
    if value is None:
        return "-"
    value = float(value)
    if math.isnan(value):
        return "-"
    # Metrics and shares keep four decimals; errors in the target's own units (dollars, counts) are whole numbers.
    return f"{value:.4f}" if abs(value) < 1e3 else f"{value:,.0f}"


def _duration(seconds) -> str:
    if seconds is None:
        return "-"
    return f"{seconds:.1f}s" if seconds < 120 else f"{seconds / 60:.1f}m"
