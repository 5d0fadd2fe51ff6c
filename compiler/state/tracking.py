"""Shared state: the MLflow tracking store under $CAPC_HOME (sqlite), where every run and child run lives.

`mlflow ui --backend-store-uri sqlite:///.capc/mlflow.db` browses what capc records here.
"""

from __future__ import annotations

import functools
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

from capc import stopping
from capc.state.home import capc_home

KIND_TAG = "capc.kind"  # submit | automl | candidate | sweep | trial | step
STATUS_TAG = "capc.status"  # one of STATUSES: finer than MLflow's
PARENT_TAG = "mlflow.parentRunId"
MAX_LATENCY_TAG = "capc.max_latency_ms"  # on a submit or pipeline run: the serving budget its selection applied
# On an AutoML or sweep run (capc.local.search_end): the limit that ended its search (time, trials, exit_score,
# early_termination, interrupted) and the same in words, the allowed algorithms it skipped and why, and every
# such line as MLflow's own run note (the description `mlflow ui` shows).
STOP_LIMIT_TAG = "capc.stop_limit"
STOP_REASON_TAG = "capc.stop_reason"
SKIPPED_TAG = "capc.skipped_algorithms"
NOTE_TAG = "mlflow.note.content"

# The one status vocabulary of every run, trial, candidate and step: in MLflow tags, `capc runs`, the leaderboard,
# --json output, the sweep's study records and the pipeline table. (Pipeline steps add waiting and skipped.)
RUNNING, COMPLETED, FAILED, EARLY_TERMINATED, INTERRUPTED = "running", "completed", "failed", "early_terminated", "interrupted"
STATUSES = (RUNNING, COMPLETED, FAILED, EARLY_TERMINATED, INTERRUPTED)
ENDED = (COMPLETED, FAILED, EARLY_TERMINATED)  # final: --resume keeps these and runs only the rest
_TO_MLFLOW = {COMPLETED: "FINISHED", FAILED: "FAILED", EARLY_TERMINATED: "KILLED", INTERRUPTED: "KILLED"}
# A run capc did not end itself (a trial script's own mlflow.end_run, or capc killed before it could tag it).
_FROM_MLFLOW = {"FINISHED": COMPLETED, "FAILED": FAILED, "KILLED": INTERRUPTED, "RUNNING": RUNNING, "SCHEDULED": RUNNING}


def tracking_uri(home: Path | None = None) -> str:
    home = home or capc_home()
    return f"sqlite:///{home / 'mlflow.db'}"


def artifact_root(home: Path | None = None) -> str:
    return (home or capc_home()).joinpath("mlartifacts").as_uri()


def client(uri: str | None = None):
    """An MlflowClient on capc's store, or on `uri` (mlflow imported here only: it costs ~2 s). A stop signal never
    interrupts one of its calls half-way (capc.stopping.deferred): it is raised when the call returns."""
    import logging
    import os

    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")  # no outbound attempts, no 2 s wait at exit
    client_class = _stop_safe_client_class()  # imports mlflow, which sets its loggers' levels: ours come after
    # The store's schema migrations and mlflow.sklearn's pickle notice are noise in a CLI.
    logging.getLogger("alembic").setLevel(logging.WARNING)
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    logging.getLogger("mlflow.sklearn").setLevel(logging.ERROR)
    if uri is None:
        home = capc_home()
        home.mkdir(parents=True, exist_ok=True)
        uri = tracking_uri(home)
    with stopping.deferred():  # the first client on a new store runs its schema migrations
        return client_class(tracking_uri=uri)


@functools.cache
def _stop_safe_client_class():
    from mlflow import MlflowClient

    class StopSafeClient(MlflowClient):
        def __getattribute__(self, name):
            attr = super().__getattribute__(name)
            if name.startswith("_") or not callable(attr):
                return attr

            @functools.wraps(attr)
            def call(*args, **kwargs):
                with stopping.deferred():
                    return attr(*args, **kwargs)

            return call

    return StopSafeClient


def experiment_id(mlflow_client, name: str) -> str:
    found = mlflow_client.get_experiment_by_name(name)
    if found:
        return found.experiment_id
    try:
        return mlflow_client.create_experiment(name, artifact_location=f"{artifact_root()}/{name}")
    except Exception:  # another submit created it between our two calls
        return mlflow_client.get_experiment_by_name(name).experiment_id


def start_run(mlflow_client, exp_id: str, name: str, kind: str, parent: str | None = None, tags: dict | None = None) -> str:
    all_tags = {KIND_TAG: kind, "mlflow.runName": name, **(tags or {})}
    if parent:
        all_tags[PARENT_TAG] = parent
    return mlflow_client.create_run(exp_id, tags=all_tags, run_name=name).info.run_id


def finish_run(mlflow_client, run_id: str, status: str) -> None:
    """status: completed | failed | early_terminated | interrupted (MLflow knows FINISHED/FAILED/KILLED)."""
    mlflow_client.set_tag(run_id, STATUS_TAG, status)
    mlflow_client.set_terminated(run_id, _TO_MLFLOW[status])


def status_of(run) -> str:
    """A run's status in capc's vocabulary: its capc.status tag, else MLflow's status translated."""
    tagged = run.data.tags.get(STATUS_TAG)
    if tagged in STATUSES:
        return tagged
    return _FROM_MLFLOW.get(run.info.status, run.info.status.lower())


def close_abandoned_runs(mlflow_client, exp_id: str, spec_sha256: str) -> int:
    """Mark interrupted the runs of this spec version that a dead capc left running (killed before it could end
    them), with their running child runs. Called while holding the spec's lock, so none of them is live."""
    running = "attributes.status = 'RUNNING'"
    stale = list(mlflow_client.search_runs([exp_id], f"tags.`capc.spec_sha256` = '{spec_sha256}' and {running}", max_results=1000))
    closed = 0
    while stale:
        run_id = stale.pop().info.run_id
        finish_run(mlflow_client, run_id, INTERRUPTED)
        closed += 1
        stale.extend(mlflow_client.search_runs([exp_id], f"tags.`{PARENT_TAG}` = '{run_id}' and {running}", max_results=50000))
    return closed


def log_child(mlflow_client, exp_id: str, parent: str, name: str, kind: str, params: dict, metrics: dict, status: str, duration_s: float, tags: dict | None = None) -> str:
    """Record one finished candidate as a child run with its params and metrics, in one batch."""
    from mlflow.entities import Metric, Param

    run_id = start_run(mlflow_client, exp_id, name, kind, parent, tags)
    now = int(time.time() * 1000)
    mlflow_client.log_batch(
        run_id,
        metrics=[Metric(k, float(v), now, 0) for k, v in sorted(metrics.items()) if _finite(v)],
        params=[Param(k, _param(v)) for k, v in sorted(params.items())],
        tags=[],
    )
    mlflow_client.set_tag(run_id, "capc.duration_s", f"{duration_s:.3f}")
    finish_run(mlflow_client, run_id, status)
    return run_id


def _finite(value) -> bool:
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def _param(value) -> str:
    text = str(value)
    return text if len(text) <= 6000 else text[:5997] + "..."


@dataclass
class RunRow:
    """One row of `capc runs` / `capc leaderboard`."""

    run_id: str
    name: str
    kind: str
    status: str
    parent: str | None
    start: float
    duration_s: float | None
    params: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    experiment: str = ""
    record: dict = field(default_factory=dict)  # a submit run's record (capc.state.run_record): hashes, data, seed, versions
    # An AutoML or sweep run's search: stop_limit, stop_reason, skipped_algorithms (its tags, where recorded).
    search: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return self.__dict__.copy()

    def search_lines(self) -> list[str]:
        """Why this run's search ended and what it skipped, one line each (`capc runs`, the report)."""
        lines = []
        if "stop_limit" in self.search:
            lines.append(f"{self.name}: ended by {self.search['stop_limit']}: {self.search.get('stop_reason', '')}")
        if self.search.get("skipped_algorithms"):
            lines.append(f"{self.name}: skipped {self.search['skipped_algorithms']}")
        return lines


_SEARCH_TAGS = {STOP_LIMIT_TAG: "stop_limit", STOP_REASON_TAG: "stop_reason", SKIPPED_TAG: "skipped_algorithms"}


def list_runs(experiment: str | None = None) -> list[RunRow]:
    from capc.state.run_record import record_of

    c = client()
    experiments = [c.get_experiment_by_name(experiment)] if experiment else c.search_experiments()
    experiments = [e for e in experiments if e is not None]
    if not experiments:
        return []
    names = {e.experiment_id: e.name for e in experiments}
    rows = []
    for run in c.search_runs(list(names), max_results=50000, order_by=["attributes.start_time DESC"]):
        tags = run.data.tags
        end = run.info.end_time
        duration = float(tags["capc.duration_s"]) if "capc.duration_s" in tags else ((end - run.info.start_time) / 1000 if end else None)
        rows.append(
            RunRow(
                run_id=run.info.run_id,
                name=tags.get("mlflow.runName", run.info.run_name or ""),
                kind=tags.get(KIND_TAG, ""),
                status=status_of(run),
                parent=tags.get(PARENT_TAG),
                start=run.info.start_time / 1000,
                duration_s=duration,
                params=dict(run.data.params),
                metrics=dict(run.data.metrics),
                experiment=names[run.info.experiment_id],
                record=record_of(tags),
                search={key: tags[tag] for tag, key in _SEARCH_TAGS.items() if tag in tags},
            )
        )
    return rows


def submit_objective(run_id: str) -> tuple[str, str]:
    """The primary metric and its goal that a submit run recorded (its capc.metric and capc.goal tags)."""
    tags = client().get_run(run_id).data.tags
    return tags["capc.metric"], tags["capc.goal"]
