"""Report stage, collect: what is recorded about one registered model version -> ReportData (plain values).

Reads the local registry entry, the MLflow store (the runs of the submit that registered the model, and the
metric history of each sweep trial), the job folder the model was built from (manifest.json and the compiled
jobs), and looks for the spec file whose sha256 the model carries. Writes nothing.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from pathlib import Path

from capc.errors import CapcError
from capc.goal import Goal
from capc.jobfolder.folder import AUTOML_FILE, manifest_file, read_manifest, sweep_jobs
from capc.state import registry, tracking
from capc.state.registry import ModelVersion
from capc.report.figures import RunCurve, ServingPoint, TrialPoint
from capc.spec.conditional import COMBINATION_PARAMETER

SPEC_SUFFIXES = (".yaml", ".yml")
MAX_SPEC_CANDIDATES = 500  # files hashed while looking for the spec
NOT_HYPERPARAMETERS = ("family", COMBINATION_PARAMETER)  # trial parameters that name a family or a grid row


@dataclass(frozen=True)
class BoardRow:
    """One AutoML candidate or sweep trial on the leaderboard; rank is across both, None without a metric."""

    rank: int | None
    source: str  # automl | sweep
    name: str
    run_id: str
    status: str
    value: float | None
    duration_s: float | None
    params: dict[str, str]
    winner: bool
    family: str | None = None  # a sweep trial's family (its `family` parameter); None for AutoML candidates


@dataclass
class ReportData:
    model: ModelVersion
    submit_name: str | None  # the run that registered the model (None when it is not in the store)
    submit_sha256: str | None  # its capc.spec_sha256 tag
    manifest: dict | None
    spec_path: Path | None  # a spec file whose bytes hash to the model's spec_sha256
    spec_text: str | None
    compiled: dict[str, str]  # compiled job file -> text
    automl_board: list[BoardRow]
    sweep_board: list[BoardRow]
    curves: list[RunCurve]
    parameters: list[str]  # swept parameters, in sweep_job.yml's order
    trial_points: list[TrialPoint]
    notes: list[str] = field(default_factory=list)
    searches: list[str] = field(default_factory=list)  # why AutoML and each sweep ended, what they skipped
    serving_points: list[ServingPoint] = field(default_factory=list)  # candidates whose serving cost was measured
    max_latency_ms: float | None = None  # the serving budget the selection applied


def collect(model: ModelVersion) -> ReportData:
    """Everything the report shows except the validation figures; a CapcError when no run is recorded."""
    store = registry.capc_home() / "mlflow.db"
    rows = tracking.list_runs(_experiment_of(model)) if store.is_file() else []  # a report creates no store
    if not rows:
        raise CapcError(
            f"no runs recorded for `{model.name}` in {tracking.tracking_uri()}, so there is nothing to report on.",
            f"the report reads the runs of the submit that registered {model.ref}; run `capc submit SPEC` with the same $CAPC_HOME",
        )
    notes: list[str] = []
    scope, root = _runs_of_registration(rows, model.run_id)
    if root is None:
        notes.append(f"the run that registered {model.ref} ({model.run_id[:12]}) is not in the store; every run of {model.name} is shown.")
    mlflow_client = tracking.client()
    winner_id = _winning_leaf(mlflow_client, model, scope)
    if winner_id is None:
        notes.append("the registered model's own candidate or trial was not found among the runs, so none is highlighted.")
    board = _board(scope, model.metric, model.goal, winner_id)
    origin = root.start if root else min(r.start for r in scope)
    job_dir = Path(model.job_dir)
    sweeps = sweep_jobs(job_dir)  # read through the job-folder reader, as every backend reads them
    sweep_job = sweeps[0].data if [s.kind for s in sweeps] == ["sweep"] else None
    # A conditional sweep's parameters are its families' (a grid's one search-space parameter is only an index).
    parameters = [p for p in (sweep_job or {}).get("search_space") or {} if p != COMBINATION_PARAMETER] or sorted(
        {k for r in scope if r.kind == "trial" for k in r.params if k not in NOT_HYPERPARAMETERS}
    )
    trials = [r for r in scope if r.kind == "trial"]
    manifest, spec_path, spec_text = _build_record(job_dir, model, notes)
    root_tags = mlflow_client.get_run(root.run_id).data.tags if root else {}
    submit_sha = root_tags.get("capc.spec_sha256")
    budget = root_tags.get(tracking.MAX_LATENCY_TAG)
    return ReportData(
        model=model,
        submit_name=root.name if root else None,
        submit_sha256=submit_sha,
        manifest=manifest,
        spec_path=spec_path,
        spec_text=spec_text,
        compiled={
            path.name: path.read_text(encoding="utf-8")
            for path in [job_dir / AUTOML_FILE, *(s.path for s in sweeps)] if path.is_file()
        },
        automl_board=[b for b in board if b.source == "automl"],
        sweep_board=[b for b in board if b.source == "sweep"],
        curves=_curves(mlflow_client, scope, model.metric, origin, winner_id),
        parameters=parameters,
        trial_points=[
            TrialPoint(dict(r.params), r.metrics.get(model.metric, math.nan), r.status, r.run_id == winner_id)
            for r in trials
        ],
        notes=notes,
        searches=[line for r in sorted(scope, key=lambda r: r.start) if r.kind in ("automl", "sweep") for line in r.search_lines()],
        serving_points=_serving_points(scope, model, winner_id),
        max_latency_ms=float(budget) if budget else None,
    )


def _serving_points(scope, model: ModelVersion, winner_id: str | None) -> list[ServingPoint]:
    """Every AutoML candidate and sweep trial of the submit whose serving cost was measured, and its metric."""
    points = []
    for r in scope:
        if r.kind in ("candidate", "trial") and "serving_p99_ms" in r.metrics and model.metric in r.metrics:
            source = "sweep" if r.kind == "trial" else "automl"
            winner = r.run_id == winner_id
            points.append(ServingPoint(r.name, source, r.metrics[model.metric], r.metrics["serving_p99_ms"], winner))
    return points


# ---------------------------------------------------------------- runs


def _experiment_of(model: ModelVersion) -> str:
    """The experiment of the run that registered `model`: a spec's is its name; a hand-written job's, its
    experiment_name (`capc submit JOB.yml --register NAME`)."""
    from mlflow.exceptions import MlflowException

    mlflow_client = tracking.client()
    try:
        return mlflow_client.get_experiment(mlflow_client.get_run(model.run_id).info.experiment_id).name
    except MlflowException:  # the run is gone from the store: the spec's experiment, by its name
        return model.name


def _runs_of_registration(rows, run_id: str):
    """(the runs under the top-level run that holds `run_id`, that top-level run); (all rows, None) if absent."""
    by_id = {r.run_id: r for r in rows}
    if run_id not in by_id:
        return rows, None
    root = by_id[run_id]
    while root.parent in by_id:
        root = by_id[root.parent]
    children: dict[str, list] = {}
    for r in rows:
        children.setdefault(r.parent, []).append(r)
    scope, pending = [root], [root.run_id]
    while pending:
        for child in children.get(pending.pop(), []):
            scope.append(child)
            pending.append(child.run_id)
    return scope, root


def _winning_leaf(mlflow_client, model: ModelVersion, scope) -> str | None:
    """The candidate or trial the registered model is: a sweep registers its trial's run; AutoML registers its
    parent run, tagged with the best candidate's algorithm, whose candidate carries the registered value."""
    by_id = {r.run_id: r for r in scope}
    registered = by_id.get(model.run_id)
    if registered is None:
        return None
    if registered.kind in ("trial", "candidate"):
        return registered.run_id
    best_estimator = mlflow_client.get_run(model.run_id).data.tags.get("capc.best_estimator", "")
    candidates = [r for r in scope if r.kind == "candidate" and r.parent == model.run_id]
    same_value = [r for r in candidates if _close(r.metrics.get(model.metric), model.value)]
    named = [r for r in same_value if best_estimator and r.name.startswith(f"{best_estimator}-")]
    chosen = (named or same_value)[:1]
    return chosen[0].run_id if chosen else None


def _close(a, b) -> bool:
    return a is not None and b is not None and math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-12)


def _board(scope, metric: str, goal: str, winner_id: str | None) -> list[BoardRow]:
    """AutoML candidates and sweep trials, best first by the metric (runs without it last, unranked)."""
    leaves = [r for r in scope if r.kind in ("candidate", "trial")]
    scored = Goal(goal).ranked(leaves, lambda r: r.metrics.get(metric), tiebreak=lambda r: r.start)
    ranked = [(i, r) for i, r in enumerate(scored, start=1)] + [(None, r) for r in leaves if r not in scored]
    return [
        BoardRow(
            rank=rank, source="automl" if r.kind == "candidate" else "sweep", name=r.name, run_id=r.run_id,
            status=r.status, value=r.metrics.get(metric), duration_s=r.duration_s,
            family=r.params.get("family") if r.kind == "trial" else None,
            params={k: v for k, v in sorted(r.params.items()) if k not in NOT_HYPERPARAMETERS}, winner=r.run_id == winner_id,
        )
        for rank, r in ranked
    ]


def _curves(mlflow_client, scope, metric: str, origin: float, winner_id: str | None) -> list[RunCurve]:
    """Sweep trials: every report of the metric at the time it was logged; AutoML candidates: their one value
    when they were recorded (a candidate's run is created as it finishes)."""
    curves = []
    for r in sorted(scope, key=lambda r: r.start):
        if r.kind == "trial":
            history = sorted(mlflow_client.get_metric_history(r.run_id, metric), key=lambda m: (m.timestamp, m.step))
            steps = [m.step for m in history]
            seconds = [m.timestamp / 1000 - origin for m in history]
            values = [m.value for m in history]
            curves.append(RunCurve(r.name, "sweep", r.status, steps, seconds, values, r.run_id == winner_id))
        elif r.kind == "candidate" and metric in r.metrics:
            curves.append(RunCurve(r.name, "automl", r.status, [0], [r.start - origin], [r.metrics[metric]], r.run_id == winner_id))
    return curves


# ---------------------------------------------------------------- the build and the spec


def _build_record(job_dir: Path, model: ModelVersion, notes: list[str]):
    """(manifest.json of the job folder, spec file, spec text); what is missing becomes a note."""
    manifest = None
    try:
        manifest = read_manifest(job_dir)
    except FileNotFoundError:
        notes.append(f"{manifest_file(job_dir)} is gone: the build the model came from is not on disk any more.")
    except (OSError, ValueError) as exc:
        notes.append(f"{manifest_file(job_dir)} cannot be read: {exc}")
    if manifest and manifest.get("spec_sha256") != model.spec_sha256:
        notes.append(
            f"{job_dir} was rebuilt from another version of the spec since {model.ref} was registered "
            "(its manifest's spec sha256 differs); the compiled jobs shown are the current ones."
        )
    spec_path = find_spec_file(model.spec_sha256, [Path.cwd() / "specs", Path.cwd(), job_dir.parent.parent / "specs", job_dir.parent.parent])
    # Without the spec file the job folder's compiled jobs are the record; the Spec section says so, once.
    spec_text = spec_path.read_bytes().decode("utf-8", errors="replace") if spec_path is not None else None
    return manifest, spec_path, spec_text


def find_spec_file(sha256: str, folders: list[Path]) -> Path | None:
    """The first *.yaml / *.yml file in `folders` whose bytes hash to `sha256` (the spec a model was trained from)."""
    seen: set[Path] = set()
    checked = 0
    for folder in folders:
        try:
            files = sorted(p for p in folder.iterdir() if p.suffix in SPEC_SUFFIXES and p.is_file())
        except OSError:
            continue
        for path in files:
            resolved = path.resolve()
            if resolved in seen:
                continue
            seen.add(resolved)
            checked += 1
            if checked > MAX_SPEC_CANDIDATES:
                return None
            try:
                if hashlib.sha256(path.read_bytes()).hexdigest() == sha256:
                    return path
            except OSError:
                continue
    return None
