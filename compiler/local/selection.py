"""Backend, local: the model `capc submit` registers - the best candidate by the primary metric within the serving budget.

Candidates are every model an engine kept (AutoML's best model of each learner and its ensembles, each completed
sweep trial's model). The rule itself is capc.serving_cost's, the one the pipeline's select step runs: measured
best first through the job folder's score.py, with rows of the training data, until one fits. Each measured
candidate's serving cost is logged as metrics of its run (serving_p99_ms, ...), so `capc runs`, `capc
leaderboard` and the report show it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from capc import load_budget as load_rules
from capc import serving_cost, serving_load
from capc.errors import CapcError
from capc.local.outcome import Outcome
from capc.serve.inference_server import ENTRY_SCRIPT

IMAGE_TASK = "image_classification"  # its score.py takes images, not table rows: not measured


@dataclass
class Selection:
    """How the registered model was chosen, locally and on Azure (capc.azure.selection) alike. The winner and the
    better candidates the budget passed over are the caller's own records (an Outcome here, a SubmittedJob on
    Azure); `describe` names one as the result's JSON shows it."""

    winner: object
    cost: serving_cost.ServingCost | None
    budget: serving_cost.Budget
    passed_over: list[tuple[object, list[str]]]
    notes: list[str]  # why the winner has no cost, the ties it won
    describe: Callable[[object], dict]
    explanation: list[str] = field(default_factory=list)  # the winner's cost and each pass-over, as lines
    load_budget: serving_load.LoadBudget | None = None
    load: serving_load.LoadFigure | None = None  # the winner under load, and how that was measured
    estimate: serving_load.InstanceEstimate | None = None  # its throughput expected on the deployment's instance

    @classmethod
    def of(cls, choice: serving_cost.Choice, budget: serving_cost.Budget, describe: Callable[[object], dict],
           measured: bool = True) -> Selection:
        """From serving_cost.choose's Choice; `measured` False (images): no cost lines or notes."""
        ties = choice.tie_notes()
        notes = ([choice.chosen.note] if choice.chosen.note and measured else []) + ties
        explanation = [line for line in choice.explanation() if line not in ties] if measured else []
        return cls(choice.chosen.payload, choice.chosen.cost, budget, [(c.payload, c.passed_over) for c in choice.passed_over],
                   notes, describe, explanation, load=choice.chosen.load)

    def with_load(self, load_budget: serving_load.LoadBudget, estimate: serving_load.InstanceEstimate | None) -> Selection:
        """The load budget it was held to, and the estimate on the instance (whose lines join the explanation)."""
        self.load_budget, self.estimate = load_budget, estimate
        if estimate is not None and self.load is not None:
            self.explanation = self.explanation + estimate.lines()
        return self

    def to_dict(self) -> dict:
        return {
            "budget": self.budget.describe(),
            "serving": self.cost.metrics() if self.cost else None,
            "passed_over": [{**self.describe(c), "reasons": r} for c, r in self.passed_over],
            "notes": self.notes,
            "explanation": self.explanation,
            "load_budget": self.load_budget.describe() if self.load_budget and self.load_budget.any else None,
            "load": self.load.record() if self.load else None,
            "instance_estimate": self.estimate.to_dict() if self.estimate else None,
        }


def _describe(outcome: Outcome) -> dict:
    return {"source": outcome.source, "label": outcome.label, "run_id": outcome.run_id, "value": outcome.value}


def budget_of(deployment: dict) -> serving_cost.Budget:
    """The spec's deployment.max_latency_ms / max_model_mb."""
    return serving_cost.Budget(deployment.get("max_latency_ms"), deployment.get("max_model_mb"))


def select(outcomes: list[Outcome], *, name: str, which: str, goal: str, budget: serving_cost.Budget, job_dir: Path,
           task: str, mlflow_client=None, on_measured=None, deployment: dict | None = None) -> Selection | None:
    """The outcome to register (None when there is none); raises CapcError when none fits the budget (the serving
    budget, then the load budget of `deployment`, capc.json's section, measured through azmlinfsrv).

    which: the spec's deployment.model (best | automl | sweep); an engine that left nothing falls back to all."""
    pool = [o for o in outcomes if which == "best" or o.source == which] or outcomes
    if not pool:
        return None
    contenders = [serving_cost.Contender(o.label or o.source, o.value, str(o.model_dir), payload=o) for o in pool]
    records = _request_records(job_dir) if task != IMAGE_TASK else None

    def measure_one(contender: serving_cost.Contender) -> serving_cost.ServingCost:
        if records is None:
            raise serving_cost.MeasureError("image models are not measured")
        return serving_cost.measure(str(job_dir / ENTRY_SCRIPT), contender.model_dir, records, app_root=str(job_dir))

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

    deployment = deployment or {}
    load_budget = load_rules.load_budget_of(deployment)
    within = load_rules.within_load(load_budget, job_dir / ENTRY_SCRIPT, records, job_dir) if task != IMAGE_TASK else None
    try:
        choice = serving_cost.choose(contenders, goal, budget, measure_one, on_measured=measured, also_within=within)
    except serving_cost.NoCandidateFits as exc:
        raise CapcError(str(exc), f"Every measured candidate's figures: `capc leaderboard {name}`.") from None
    selection = Selection.of(choice, budget, _describe, measured=task != IMAGE_TASK)
    estimate = load_rules.estimate(choice.chosen.load, deployment, job_dir) if load_budget.any and choice.chosen.load else None
    return selection.with_load(load_budget, estimate)


def _request_records(job_dir: Path) -> list[dict]:
    from capc.local.data import request_rows

    return request_rows(job_dir, limit=serving_cost.BATCH_ROWS)


def _log_cost(mlflow_client, run_id: str, figures: dict[str, float]) -> None:
    import time

    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    mlflow_client.log_batch(run_id, metrics=[Metric(k, v, now, 0) for k, v in sorted(figures.items())])
