"""Backend, local: what an engine (AutoML, the sweep, AutoML for images) hands the submit to compare and register."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from capc.local.search_end import SearchReport


@dataclass
class Outcome:
    """The best run of one engine (automl or sweep), ready to be compared and registered."""

    source: str
    run_id: str
    value: float
    model_dir: Path
    params: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    label: str = ""
    candidate_run_id: str = ""  # the candidate's own run when run_id is its engine's (AutoML registers from its run)
    # The engine's other models that could be registered (AutoML's other learners and ensembles, the sweep's
    # other completed trials): the selection weighs them too when the best does not fit the serving budget.
    alternatives: list[Outcome] = field(default_factory=list)
    search: SearchReport | None = None  # AutoML's: why its search ended, what it skipped
