"""Backend, local: the rules capc's compiled pipeline adds to the pipeline runner (capc.local.pipeline).

When the selecting step leaves winner.json beside the model it chose, that model is registered in capc's registry
(with the engine step's run, parameters and serving figures) before any later step starts; the node tagged
`capc_step: deploy` (spec deployment.auto_deploy), which deploys the winner to the workspace's endpoint on Azure,
deploys it to the local endpoint here. A hand-written pipeline has no such rules: its steps are its own.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from capc.errors import CapcError
from capc.jobfolder import JobFolder
from capc.jobfolder.serving import named_endpoint
from capc.state import registry, tracking
from capc.winner_explanation import selection_record

WINNER_FILE = "winner.json"
STEP_SUMMARY = "metrics.json"  # what an engine step leaves beside its model; select_best.py reads it
DEPLOY_TAG = ("capc_step", "deploy")  # the node that deploys the winner: locally, to the local endpoint


class WinnerRules:
    def __init__(self, folder: JobFolder, mlflow_client, run_id: str, summaries: dict):
        self.folder, self.mlflow_client, self.run_id = folder, mlflow_client, run_id
        self.summaries = summaries  # engine step -> its metrics.json, filled by the runner
        self.winner: dict | None = None
        self.model: registry.ModelVersion | None = None

    def restore(self, winner: dict | None, model_ref: str) -> None:
        """--resume after the select step completed: its registered model stands."""
        self.winner, self.model = winner, registry.get(model_ref)

    def register_from(self, step) -> None:
        """A step that left winner.json and its model selected the pipeline's model: register it."""
        for output in step.outputs.values():
            folder = Path(output)
            if (folder / WINNER_FILE).is_file() and (folder / "model" / "MLmodel").is_file():
                self._register(step, folder)
                return

    def _register(self, step, folder: Path) -> None:
        self.winner = winner = json.loads((folder / WINNER_FILE).read_text())
        candidate = winner.get("candidate", winner.get("source"))
        summary = self.summaries.get(candidate) or next(
            (v for k, v in self.summaries.items() if k.split("_")[0] == winner.get("source")), {})
        spec = self.folder
        self.model = registry.register(
            folder / "model",
            name=spec.name, task=spec.task, metric=spec.metric, value=float(winner["value"]), goal=spec.goal,
            source=winner["source"], run_id=summary.get("run_id", self.run_id), spec_sha256=spec.spec_sha256,
            job_dir=str(spec.path.resolve()), metrics={spec.metric: float(winner["value"]), **(winner.get("serving") or {})},
            params=summary.get("params", {}), description=spec.description, selection=selection_record(winner),
        )
        self._log_serving_costs(winner.get("measured") or {})
        if winner.get("max_latency_ms") is not None:
            self.mlflow_client.set_tag(self.run_id, tracking.MAX_LATENCY_TAG, str(winner["max_latency_ms"]))
        self.mlflow_client.set_tag(self.run_id, "capc.registered_model", self.model.ref)
        self.mlflow_client.log_metric(self.run_id, spec.metric, float(winner["value"]))
        step.detail = f"winner: {winner.get('source')}, registered {self.model.ref}"
        step.value = float(winner["value"])

    def _log_serving_costs(self, measured: dict) -> None:
        """The select step measured each engine's model: its figures become metrics of that engine's best run."""
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        for candidate, metrics in measured.items():  # candidates are named after their steps
            summary = self.summaries.get(candidate, {})
            run_id = summary.get("candidate_run_id") or summary.get("run_id")  # the leaf run the leaderboard shows
            if run_id:
                self.mlflow_client.log_batch(run_id, metrics=[Metric(k, float(v), now, 0) for k, v in sorted(metrics.items())])

    def deploy_argv(self, step) -> list[str]:
        if self.model is None:
            raise CapcError(f"pipeline step `{step.name}` deploys the registered winner, but no step before it registered one.")
        step.detail = f"{self.model.ref} to the local endpoint `{named_endpoint(self.folder.path) or self.folder.name}`"
        return [sys.executable, "-m", "capc", "deploy", self.folder.name, "--model", self.model.ref]
