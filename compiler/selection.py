"""Stage: selection - the model a submit registers, for both backends: the best candidate by the primary metric
that the spec's deployment.model lets win and the serving budget lets through.

The rule itself is capc.serving_cost's, the one the pipeline's select step runs: measured best first through the
job folder's score.py, with rows of the job folder's training data (capc.jobfolder.data), until one fits. The
backends bring the candidates (locally every model an engine kept; on Azure each job's best run, downloaded
when its turn comes) and record the measured costs where they keep runs. Image models are not measured.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from capc import azure_names, serving_cost, serving_load
from capc import load_budget as load_rules
from capc.errors import CapcError
from capc.jobfolder.data import request_rows
from capc.jobfolder.folder import ENTRY_SCRIPT

IMAGE_TASK = azure_names.IMAGE_TASK
is_measured = serving_cost.is_measured  # image and forecasting models are not measured


@dataclass
class Selection:
    """How the registered model was chosen, locally and on Azure alike. The winner and the
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


def budget_of(deployment: dict) -> serving_cost.Budget:
    """The spec's deployment.max_latency_ms / max_model_mb."""
    return serving_cost.Budget(deployment.get("max_latency_ms"), deployment.get("max_model_mb"))


def request_records(job_dir: Path, task: str) -> tuple[list | None, str]:
    """Rows of the job folder's training data to measure with; or None and why not."""
    if not is_measured(task):
        return None, f"{task} models are not measured (their score.py takes no rows of the training table)"
    try:
        return request_rows(job_dir, limit=serving_cost.BATCH_ROWS), ""
    except CapcError as exc:
        return None, f"no request rows to measure with: {exc.message}"
    except (OSError, ValueError, KeyError) as exc:  # e.g. a dataset that lives in Azure, not beside the job folder
        return None, f"no request rows to measure with: {exc}"


def select(contenders: list[serving_cost.Contender], *, goal: str, budget: serving_cost.Budget, job_dir: Path, task: str,
           describe: Callable[[object], dict], fetch: Callable[[serving_cost.Contender], None] | None = None,
           on_measured: Callable[[serving_cost.Contender], None] | None = None, hint: str = "",
           deployment: dict | None = None) -> Selection | None:
    """The contender to register (None when there is none), measured through the job folder's score.py; raises
    CapcError when none fits the budget. `fetch` readies a contender's model_dir before it is measured (Azure
    downloads it); `describe` names a contender's payload as the result's JSON shows it. `deployment` (capc.json's
    section) brings the load budget: a contender within the serving budget is then served by azmlinfsrv under
    concurrent clients (capc.serving_load) and must fit that too; the winner's figure and the estimate on the
    instance join the result."""
    if not contenders:
        return None
    records, no_records = request_records(job_dir, task)

    def measure_one(contender: serving_cost.Contender) -> serving_cost.ServingCost:
        if records is None:
            raise serving_cost.MeasureError(no_records)
        if fetch is not None:
            fetch(contender)
        return serving_cost.measure(str(job_dir / ENTRY_SCRIPT), contender.model_dir, records, app_root=str(job_dir))

    deployment = deployment or {}
    load_budget = load_rules.load_budget_of(deployment)
    within = load_rules.within_load(load_budget, job_dir / ENTRY_SCRIPT, records, job_dir, no_records) if is_measured(task) else None
    try:
        choice = serving_cost.choose(contenders, goal, budget, measure_one, on_measured=on_measured, also_within=within)
    except serving_cost.NoCandidateFits as exc:
        raise CapcError(str(exc), hint or None) from None
    estimate = load_rules.estimate(choice.chosen.load, deployment, job_dir) if choice.chosen.load else None
    return Selection.of(choice, budget, describe, measured=is_measured(task)).with_load(load_budget, estimate)
