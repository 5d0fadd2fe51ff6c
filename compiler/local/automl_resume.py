"""Backend, local: `capc submit JOB.yml --resume` of an interrupted hand-written AutoML job.

FLAML's search lives in memory, so an interrupted search cannot continue where it stopped. What the interrupted
run recorded can: each candidate's configuration and learner (tags of its child run). The resumed search starts
from the best configuration each learner reached (FLAML's warm start, `starting_points`), with what the
interrupted run left of the job's budget: its timeout less the time it searched (at least MIN_BUDGET_SHARE of it)
and its max_trials less the candidates it finished (at least one). The interrupted run's candidates stay
recorded; the resumed run is a new submit run of the same job version.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace

from capc.goal import Goal
from capc.state import tracking
from capc.state.tracking import COMPLETED, INTERRUPTED, KIND_TAG, PARENT_TAG

CONFIG_TAG = "capc.config"  # a candidate's configuration, as FLAML takes it (JSON)
ENGINE_TAG = "capc.engine_estimator"  # its FLAML learner
MIN_BUDGET_SHARE = 0.1


@dataclass(frozen=True)
class Resumed:
    submit_run_id: str
    warm_start: dict  # FLAML estimator -> the configuration to start from
    finished: int  # candidates the interrupted run finished
    searched_s: float


def candidate_tags(candidate) -> dict:
    """What a resumed search needs of a candidate, stored with its child run."""
    return {ENGINE_TAG: candidate.engine_estimator, CONFIG_TAG: json.dumps(candidate.params, sort_keys=True, default=str)[:5000]}


def interrupted_run(mlflow_client, exp_id: str, job_sha256: str, metric: str, goal: str) -> Resumed | None:
    """The latest submit of this job version, when it was interrupted: its candidates' best configuration per learner."""
    submits = mlflow_client.search_runs([exp_id], f"tags.`capc.job_sha256` = '{job_sha256}' and tags.`{KIND_TAG}` = 'submit'",
                                        order_by=["attributes.start_time DESC"], max_results=1)
    if not submits or tracking.status_of(submits[0]) != INTERRUPTED:
        return None
    submit = submits[0].info.run_id
    automl = mlflow_client.search_runs([exp_id], f"tags.`{PARENT_TAG}` = '{submit}' and tags.`{KIND_TAG}` = 'automl'", max_results=1)
    if not automl:
        return None
    info = automl[0].info
    candidates = mlflow_client.search_runs([exp_id], f"tags.`{PARENT_TAG}` = '{info.run_id}' and tags.`{KIND_TAG}` = 'candidate'",
                                           max_results=50000)
    best: dict = {}
    for run in candidates:
        tags, value = run.data.tags, run.data.metrics.get(metric)
        if tracking.status_of(run) != COMPLETED or ENGINE_TAG not in tags or value is None:
            continue
        engine = tags[ENGINE_TAG]
        if engine not in best or Goal(goal).better(value, best[engine][0]):
            best[engine] = (value, json.loads(tags[CONFIG_TAG]))
    ended = info.end_time or info.start_time
    return Resumed(submit, {engine: config for engine, (_, config) in best.items()},
                   sum(1 for r in candidates if tracking.status_of(r) == COMPLETED), max(0.0, (ended - info.start_time) / 1000))


def resumed_settings(settings, resumed: Resumed):
    """The job's settings with what the interrupted run left of its budget."""
    timeout = max(settings.timeout_minutes - resumed.searched_s / 60, MIN_BUDGET_SHARE * settings.timeout_minutes)
    return replace(settings, timeout_minutes=timeout, max_trials=max(1, settings.max_trials - resumed.finished))
