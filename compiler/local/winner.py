"""Backend, local: the model `capc submit` registers - every model an engine kept (AutoML's best model of each
learner and its ensembles, each completed sweep trial's model) weighed by capc.selection, the rule both backends
and the pipeline's select step share. Each measured candidate's serving cost is logged as metrics of its run
(serving_p99_ms, ...), so `capc runs`, `capc leaderboard` and the report show it.
"""

from __future__ import annotations

from pathlib import Path

from capc import selection, serving_cost
from capc.local.outcome import Outcome
from capc.selection import Selection


def _describe(outcome: Outcome) -> dict:
    return {"source": outcome.source, "label": outcome.label, "run_id": outcome.run_id, "value": outcome.value}


def select(outcomes: list[Outcome], *, name: str, deployment_model: str, goal: str, budget: serving_cost.Budget,
           job_dir: Path, task: str, mlflow_client=None, on_measured=None, deployment: dict | None = None) -> Selection | None:
    """The outcome to register (None when deployment.model lets none win); raises CapcError when none fits the budget."""
    pool = [o for o in outcomes if serving_cost.may_serve(deployment_model, o.source)]
    contenders = [serving_cost.Contender(o.label or o.source, o.value, str(o.model_dir), payload=o) for o in pool]

    def measured(contender: serving_cost.Contender) -> None:
        outcome: Outcome = contender.payload
        figures = {**contender.cost.metrics(), **(contender.load.metrics() if contender.load else {})}
        outcome.metrics.update(figures)
        if mlflow_client is not None:
            for run_id in dict.fromkeys(r for r in (outcome.run_id, outcome.candidate_run_id) if r):
                _log_cost(mlflow_client, run_id, figures)
        if on_measured is not None:
            on_measured(outcome, contender.cost)
            if contender.load is not None:
                on_measured(outcome, contender.load)

    return selection.select(contenders, goal=goal, budget=budget, job_dir=job_dir, task=task, describe=_describe,
                            on_measured=measured, hint=f"Every measured candidate's figures: `capc leaderboard {name}`.",
                            deployment=deployment)


def _log_cost(mlflow_client, run_id: str, figures: dict[str, float]) -> None:
    import time

    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    mlflow_client.log_batch(run_id, metrics=[Metric(k, v, now, 0) for k, v in sorted(figures.items())])
