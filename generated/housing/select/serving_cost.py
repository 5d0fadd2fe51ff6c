"""Shared rule: what serving a candidate model costs, and which candidate a serving budget lets through.

Every stage that picks the model to register uses this one module: the local submit, the local pipeline's and
Azure's select step (`capc build` copies this file beside it as select/serving_cost.py, so the cluster node
measures its candidates with the very same code), and `capc submit --target azure` on what it downloads. So it
imports nothing from capc: the standard library only (pandas where a request is built from a data file).

A candidate is measured through the generated score.py, in this process, as the inference server calls it:
the module imported afresh with AZUREML_MODEL_DIR on the candidate's model, init() once (load time, resident
memory it added), then run(data=[row]) a few hundred times with one training row (p50, p99) and once with
1,000 rows (rows per second). The requests are built from the training data as sample_request.json is. Size is
the model folder on disk. A measurement stops after MEASURE_SECONDS of single-row calls, so a slow candidate
costs seconds, not minutes.

Selection: candidates best first by the primary metric; each is measured until one fits the budget (those
below it cannot win, so they are not measured); the ones passed over are returned with the reason. Without a
budget the best candidate wins as before, and only it is measured. "Best first" is capc.goal's order, spelled
out here again (goal "maximize" or "minimize") because this file runs where capc is not installed.
"""

from __future__ import annotations

import gc
import importlib.util
import itertools
import math
import os
import sys
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field

SINGLE_ROW_CALLS = 300  # most single-row calls per candidate
MIN_SINGLE_ROW_CALLS = 20  # a p99 needs some calls, even from a slow model
MEASURE_SECONDS = 2.0  # single-row calls stop after this, once MIN_SINGLE_ROW_CALLS are done
WARM_UP_CALLS = 3  # first calls pay lazy imports and caches, which a serving worker pays once
BATCH_ROWS = 1000
METRIC_PREFIX = "serving_"  # the run metrics: serving_p99_ms, serving_size_mb, ...
# Primary metric values this close (relative) are a tie, and the tie goes to the faster candidate: AutoML pools
# its out-of-fold rows where a trial script averages its folds, so one model's accuracy can differ from
# another's in the fifth decimal with the same rows right (digits: 0.98609 against 0.98608), which is arithmetic,
# not evidence. One row of 1,437 moves accuracy by 7e-4, well above this.
TIE_REL_TOL = 1e-4

_LOADS = itertools.count(1)


# The spec's deployment.model: which side's winner may be served. "best": any candidate; "automl": AutoML's;
# "sweep": any sweep's (one per family in a conditional sweep). Candidates of another side never win, even when
# the named side left none: then nothing is registered, rather than a model the spec did not ask for.
DEPLOYMENT_MODELS = ("best", "automl", "sweep")


def may_serve(deployment_model: str, source: str) -> bool:
    """Whether a candidate from `source` (automl, sweep, or sweep_<family>) may win under `deployment_model`."""
    if deployment_model == "best":
        return True
    if deployment_model == "sweep":
        return source == "sweep" or source.startswith("sweep_")
    return source == deployment_model


def is_measured(task: str) -> bool:
    """Whether a task's candidates are measured: an image model's score.py takes images, and a forecasting model's
    a horizon request (time and series of the rows to forecast), not rows of the training table."""
    return task not in ("image_classification", "forecasting")


class MeasureError(Exception):
    """A candidate's score.py could not load or answer; the message says what it said."""


class NoCandidateFits(Exception):
    """No candidate is within the serving budget; the message names the fastest one."""


@dataclass(frozen=True)
class ServingCost:
    load_s: float  # init() wall time
    size_mb: float  # the model folder on disk
    memory_mb: float  # resident memory init() added to the process
    p50_ms: float  # one-row run() latency
    p99_ms: float
    rows_per_s: float  # BATCH_ROWS rows in one run()
    calls: int  # single-row calls timed

    def metrics(self) -> dict[str, float]:
        """As run metrics: serving_load_s, serving_size_mb, ..."""
        return {METRIC_PREFIX + k: float(v) for k, v in asdict(self).items()}

    @classmethod
    def from_metrics(cls, metrics: dict) -> ServingCost | None:
        names = [METRIC_PREFIX + f for f in cls.__dataclass_fields__]
        if not all(n in metrics for n in names):
            return None
        return cls(**{n[len(METRIC_PREFIX):]: metrics[n] for n in names})

    def summary(self) -> str:
        return (f"p99 {self.p99_ms:.1f} ms (p50 {self.p50_ms:.1f}), {self.rows_per_s:,.0f} rows/s in a "
                f"{BATCH_ROWS:,}-row request, {self.size_mb:.3g} MB on disk, +{self.memory_mb:.0f} MB memory, "
                f"loads in {self.load_s:.2f}s")


@dataclass(frozen=True)
class Budget:
    """deployment.max_latency_ms (p99 of one row on the machine that selects) and deployment.max_model_mb."""

    max_latency_ms: float | None = None
    max_model_mb: float | None = None

    @property
    def any(self) -> bool:
        return self.max_latency_ms is not None or self.max_model_mb is not None

    def describe(self) -> str:
        parts = []
        if self.max_latency_ms is not None:
            parts.append(f"p99 latency <= {self.max_latency_ms:g} ms")
        if self.max_model_mb is not None:
            parts.append(f"model <= {self.max_model_mb:g} MB")
        return ", ".join(parts) or "no serving budget"

    def size_reason(self, size_mb: float) -> str | None:
        if self.max_model_mb is not None and size_mb > self.max_model_mb:
            return f"model {size_mb:.1f} MB > {self.max_model_mb:g} MB"
        return None

    def reasons(self, cost: ServingCost) -> list[str]:
        """Why `cost` is over budget (empty: within)."""
        out = [r for r in [self.size_reason(cost.size_mb)] if r]
        if self.max_latency_ms is not None and cost.p99_ms > self.max_latency_ms:
            out.append(f"p99 latency {cost.p99_ms:.1f} ms > {self.max_latency_ms:g} ms")
        return out


# ---------------------------------------------------------------------------------------------- requests


def request_records(frame, limit: int = BATCH_ROWS) -> list[dict]:
    """The first `limit` rows of a DataFrame of feature columns as a request's records, as sample_request.json
    holds them: plain JSON values, missing cells null."""
    rows = frame.head(limit).to_dict(orient="records")
    return [{str(k): _json_value(v) for k, v in row.items()} for row in rows]


def _json_value(value):
    if hasattr(value, "item"):  # numpy scalars
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is not None and not isinstance(value, (bool, int, float, str)):
        return None if _is_missing(value) else str(value)
    return value


def _is_missing(value) -> bool:
    try:
        return bool(value != value)
    except (TypeError, ValueError):
        return False


def records_from_file(path: str, target: str | None, limit: int = BATCH_ROWS) -> list[dict]:
    """Request records from a training file (csv or parquet), the target column left out."""
    import pandas as pd

    frame = pd.read_parquet(path) if str(path).endswith(".parquet") else pd.read_csv(path, nrows=limit)
    return request_records(frame.drop(columns=[target], errors="ignore"), limit)


# ---------------------------------------------------------------------------------------------- score.py in-process


@contextmanager
def loaded_score_module(score_py: str, model_dir: str, app_root: str | None = None, environment: dict | None = None):
    """score.py imported under a fresh name with AZUREML_MODEL_DIR=model_dir, as azmlinfsrv loads it, and init()-ed
    (with `environment`'s variables set too); yields (module, init seconds). The environment and sys.path are
    restored afterwards.

    Raises MeasureError when the script does not import, lacks init()/run(), or init() fails."""
    app_root = os.path.abspath(app_root or os.path.dirname(score_py) or ".")
    saved_environment, saved_path = dict(os.environ), list(sys.path)
    os.environ["AZUREML_MODEL_DIR"] = os.path.abspath(model_dir)
    os.environ["AML_APP_ROOT"] = app_root
    os.environ.update(environment or {})
    sys.path.append(app_root)  # as azmlinfsrv appends its app root: score.py's sibling modules import
    try:
        module = _import(score_py)
        started = time.perf_counter()
        try:
            module.init()
        except Exception as exc:
            raise MeasureError(f"{score_py}: init() failed: {type(exc).__name__}: {exc}") from None
        yield module, time.perf_counter() - started
    finally:
        _restore_environment(saved_environment)
        sys.path[:] = saved_path


def _import(score_py: str):
    # A module name of its own per load: inference-schema registers run()'s schema under it, once per process.
    name = f"capc_score_{os.getpid()}_{next(_LOADS)}"
    spec = importlib.util.spec_from_file_location(name, score_py)
    if spec is None:
        raise MeasureError(f"cannot load {score_py}: not a Python file")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        raise MeasureError(f"cannot load {score_py}: {type(exc).__name__}: {exc}") from None
    if not callable(getattr(module, "init", None)) or not callable(getattr(module, "run", None)):
        raise MeasureError(f"{score_py} has no init() and run()")
    return module


def _restore_environment(saved: dict) -> None:
    for key in set(os.environ) - set(saved):
        del os.environ[key]
    for key, value in saved.items():
        if os.environ.get(key) != value:
            os.environ[key] = value


def measure(score_py: str, model_dir: str, records: list[dict], app_root: str | None = None) -> ServingCost:
    """What serving the model in `model_dir` through `score_py` costs; `records`: request rows (the first is the
    single-row request; BATCH_ROWS of them, repeated when fewer, the batch request)."""
    if not records:
        raise MeasureError("no request rows to measure with")
    single = [records[0]]
    batch = [records[i % len(records)] for i in range(BATCH_ROWS)]
    gc.collect()
    before = _resident_mb()
    with loaded_score_module(score_py, model_dir, app_root) as (module, load_s):
        memory_mb = max(0.0, _resident_mb() - before)
        for _ in range(WARM_UP_CALLS):
            _answer(module, single)
        latencies = []
        deadline = time.perf_counter() + MEASURE_SECONDS
        while len(latencies) < SINGLE_ROW_CALLS and (len(latencies) < MIN_SINGLE_ROW_CALLS or time.perf_counter() < deadline):
            started = time.perf_counter()
            _answer(module, single)
            latencies.append((time.perf_counter() - started) * 1000)
        started = time.perf_counter()
        _answer(module, batch)
        batch_s = time.perf_counter() - started
    latencies.sort()
    return ServingCost(
        load_s=round(load_s, 4), size_mb=round(folder_mb(model_dir), 3), memory_mb=round(memory_mb, 1),
        p50_ms=round(_percentile(latencies, 50), 3), p99_ms=round(_percentile(latencies, 99), 3),
        rows_per_s=round(BATCH_ROWS / max(batch_s, 1e-9), 1), calls=len(latencies),
    )


def _answer(module, rows: list[dict]):
    reply = module.run(data=rows)
    status = getattr(reply, "status_code", 200)
    if status != 200:
        text = reply.get_data(as_text=True) if hasattr(reply, "get_data") else str(reply)
        raise MeasureError(f"score.py answered HTTP {status}: {text[:300]}")
    return reply


def _percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile, as load testers report it."""
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


def _resident_mb() -> float:
    try:
        with open("/proc/self/statm", encoding="ascii") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, AttributeError):  # not Linux: peak resident memory instead
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak / 2**20 if sys.platform == "darwin" else peak / 1024


def folder_mb(path: str) -> float:
    total = 0
    for folder, _, files in os.walk(path):
        for name in files:
            try:
                total += os.path.getsize(os.path.join(folder, name))
            except OSError:
                pass
    return total / 2**20


# ---------------------------------------------------------------------------------------------- selection


@dataclass
class Contender:
    """A model that could be registered: its name (as shown), primary metric value and model folder."""

    name: str
    value: float
    model_dir: str
    cost: ServingCost | None = None
    passed_over: list[str] = field(default_factory=list)  # why the budget let it pass; empty: not passed over
    note: str = ""  # why it has no cost
    payload: object = None  # the caller's own record of it
    load: object = None  # what it served under concurrent load (serving_load.LoadFigure), when a load budget measured it


@dataclass
class Choice:
    chosen: Contender
    budget: Budget
    measured: list[Contender]  # every contender measured, best first
    passed_over: list[Contender]  # better than the chosen one, over budget
    ties: list[Contender] = field(default_factory=list)  # as good as the chosen one (TIE_REL_TOL), slower to serve

    def explanation(self) -> list[str]:
        lines = []
        if self.chosen.cost is not None:
            lines.append(f"{self.chosen.name} serves with {self.chosen.cost.summary()}")
        elif self.chosen.note:
            lines.append(f"{self.chosen.name}: {self.chosen.note}")
        if self.chosen.load is not None:
            lines.append(f"{self.chosen.name} under load: {self.chosen.load.summary()} ({self.chosen.load.how()})")
        for c in self.passed_over:
            lines.append(f"passed over {c.name} ({c.value:.6g}): {'; '.join(c.passed_over)}")
        return lines + self.tie_notes()

    def tie_notes(self) -> list[str]:
        return [f"tied with {c.name} ({c.value:.6g}), which serves slower (p99 {c.cost.p99_ms:.1f} ms): the faster one wins"
                for c in self.ties]


def choose(contenders: list[Contender], goal: str, budget: Budget, measure_one, on_measured=None, also_within=None) -> Choice:
    """The best contender by the primary metric within `budget`; `measure_one(contender) -> ServingCost` (raising
    MeasureError for one that cannot serve). Measures best first and stops at the first that fits, then measures
    the contenders tied with it (TIE_REL_TOL) and keeps the fastest of those that fit. `also_within(contender) ->
    reasons` (serving_load's load budget) is asked only of a contender within `budget`: the costlier check last.
    Raises NoCandidateFits naming the fastest measured contender when none fits."""
    sign = -1.0 if goal == "maximize" else 1.0
    ranked = sorted((c for c in contenders if math.isfinite(c.value)), key=lambda c: sign * c.value)
    if not ranked:
        raise NoCandidateFits("no candidate has a finite primary metric to compare")
    measured, passed = [], []
    for contender in ranked:
        size_reason = budget.size_reason(folder_mb(contender.model_dir))
        if size_reason:  # too big to serve: no need to time it
            contender.passed_over = [size_reason]
            passed.append(contender)
            continue
        try:
            contender.cost = measure_one(contender)
        except MeasureError as exc:
            contender.note = f"could not be measured: {exc}"
            if not budget.any:  # selection as it was without a budget: the best wins, its cost unknown
                return Choice(contender, budget, measured, passed)
            contender.passed_over = [contender.note]
            passed.append(contender)
            continue
        measured.append(contender)
        contender.passed_over = _reasons(contender, budget, also_within)
        if on_measured is not None:
            on_measured(contender)
        if not contender.passed_over:
            return _fastest_of_ties(contender, ranked, budget, measure_one, on_measured, measured, passed, also_within)
        passed.append(contender)
    raise NoCandidateFits(_none_fits(budget, measured, passed))


def _reasons(contender: Contender, budget: Budget, also_within) -> list[str]:
    reasons = budget.reasons(contender.cost)
    return reasons if reasons or also_within is None else also_within(contender)


def _fastest_of_ties(first: Contender, ranked: list[Contender], budget: Budget, measure_one, on_measured,
                     measured: list[Contender], passed: list[Contender], also_within=None) -> Choice:
    """`first` fits the budget; of it and the contenders ranked after it with the same value, the fastest that fits."""
    fitting = [first]
    for contender in ranked[ranked.index(first) + 1:]:
        if not math.isclose(contender.value, first.value, rel_tol=TIE_REL_TOL):
            break
        if budget.size_reason(folder_mb(contender.model_dir)):
            continue
        try:
            contender.cost = measure_one(contender)
        except MeasureError as exc:
            contender.note = f"could not be measured: {exc}"
            continue
        measured.append(contender)
        reasons = _reasons(contender, budget, also_within)
        if on_measured is not None:
            on_measured(contender)
        if not reasons:
            fitting.append(contender)
    chosen = min(fitting, key=lambda c: c.cost.p99_ms)
    return Choice(chosen, budget, measured, passed, ties=[c for c in fitting if c is not chosen])


def _none_fits(budget: Budget, measured: list[Contender], passed: list[Contender]) -> str:
    message = f"no candidate fits the serving budget ({budget.describe()}) among {len(passed)}"
    under_load = [c for c in measured if c.load is not None]
    if under_load:
        busiest = max(under_load, key=lambda c: c.load.requests_per_s)
        return (f"{message}; {busiest.name} ({busiest.value:.6g}) served the most under load: {'; '.join(busiest.passed_over)} "
                f"({busiest.load.how()}). Relax deployment.min_requests_per_s / deployment.load.max_p99_ms, or search smaller models.")
    if measured:
        fastest = min(measured, key=lambda c: c.cost.p99_ms)
        return (f"{message}; the fastest is {fastest.name} ({fastest.value:.6g}) with p99 {fastest.cost.p99_ms:.1f} ms "
                f"and {fastest.cost.size_mb:.3g} MB. Raise deployment.max_latency_ms / deployment.max_model_mb, "
                f"or search smaller models.")
    return message + f"; none could be measured ({'; '.join(passed[0].passed_over) if passed else 'no candidates'})."
