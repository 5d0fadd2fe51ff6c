"""Backend, local AutoML: what a run returns, the candidates (child runs) and the chosen model."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from capc.local.automl.model import AutoMLModel, save_mlflow_model
from capc.local.automl.settings import AutoMLSettings
from capc.local.search_end import SearchEnd, SearchReport
from capc.state.held_out import HeldOutPredictions


@dataclass(frozen=True)
class Candidate:
    """One model AutoML evaluated: a child run. `value` is the primary metric, in Azure's direction."""

    index: int
    estimator: str  # Azure algorithm name, or VotingEnsemble / StackEnsemble
    engine_estimator: str  # FLAML's name (lgbm, xgb_limitdepth, ...) or the ensemble name
    params: dict
    value: float
    metrics: dict  # every Azure metric of the task (primary included)
    duration_s: float
    status: str  # capc.state.tracking's COMPLETED | FAILED
    train_rows: int  # rows it trained on (FLAML starts large data on a sample)


@dataclass
class AutoMLResult:
    settings: AutoMLSettings
    best: Candidate
    candidates: list[Candidate]
    model: AutoMLModel
    skipped_algorithms: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    models: dict[int, AutoMLModel] = field(default_factory=dict)  # candidate index -> fitted model, where one is kept
    feature_sample: pd.DataFrame | None = None  # a few raw training rows: signature and smoke checks
    held_out: HeldOutPredictions | None = None  # the best's predictions on rows it did not train on (see search)
    end: SearchEnd | None = None  # the limit that ended the search
    skipped: dict[str, str] = field(default_factory=dict)  # allowed Azure algorithm that got no trial -> why

    def search_report(self) -> SearchReport:
        return SearchReport("automl", self.end, dict(self.skipped), list(self.notes))

    def save_mlflow_model(self, path: Path | str) -> Path:
        """Write the best model as an MLflow model directory (sklearn flavour, cloudpickle, no capc import needed)."""
        return save_mlflow_model(self.model, path, self.feature_sample)
