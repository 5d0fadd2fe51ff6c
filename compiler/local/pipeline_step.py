"""Backend, local: one engine step of a local pipeline run, as its own process (`python -m capc.local.pipeline_step`).

    python -m capc.local.pipeline_step automl|sweep --job-dir DIR --output DIR --parent-run ID [--resume] [--node NAME]
    python -m capc.local.pipeline_step node --request NODE.json

capc's compiled pipeline (automl|sweep): runs the local AutoML or a sweep job of the job folder, read through
capc.jobfolder (the spec is not needed: the folder holds everything), under the pipeline's run, and leaves the
step's best model in OUTPUT/model with OUTPUT/metrics.json (metric, value, run) for the selecting step. A sweep step
runs the sweep job of its node's name (sweep_job.yml for `sweep`, sweep_<family>.yml for `sweep_<family>`).

A hand-written node (node): the sweep or AutoML node of the request (capc.local.pipeline_nodes writes it, inputs
bound), run under the step's run. A sweep's outputs are its best trial's (each declared output copied from that
trial's folder); an AutoML node's `best_model` is the best model, an MLflow model, as Azure writes it. What the step
reached goes to metrics.json beside the request.
Exit status: 0 done, 1 failed (the reason on stderr), 130 stopped by SIGINT (how the pipeline runner stops a step),
143 by SIGTERM or SIGHUP.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

from capc import stopping
from capc.errors import CapcError
from capc.jobfolder import read_job_folder
from capc.jobfolder.pipeline_graph import AUTOML_DATA
from capc.local.pipeline_winner import STEP_SUMMARY
from capc.state import registry, tracking


def run_step(kind: str, job_dir: Path, output: Path, parent_run: str, resume: bool, node: str | None = None) -> int:
    from capc.local.submit import run_automl_job, run_sweep_job

    folder = read_job_folder(job_dir, only=kind)
    mlflow_client = tracking.client()
    exp_id = tracking.experiment_id(mlflow_client, folder.name)
    work_dir = registry.capc_home() / "runs" / parent_run
    work_dir.mkdir(parents=True, exist_ok=True)
    if kind == "automl":
        outcome = run_automl_job(folder, folder.job("automl"), mlflow_client, exp_id, parent_run, work_dir, None, alternatives=False)
        interrupted = False
    else:
        sweeps = [s for s in folder.sweeps if node is None or s.kind == node]
        if not sweeps:
            raise CapcError(f"{job_dir} holds no sweep job for the pipeline step `{node}`.", "run `capc build` again")
        outcome, interrupted = run_sweep_job(folder, sweeps, mlflow_client, exp_id, parent_run, work_dir, resume, None)
    if interrupted:
        print(f"{kind}: interrupted; finished work is recorded", file=sys.stderr)
        return stopping.exit_status()
    if outcome is None:
        raise CapcError(f"the {kind} step produced no model: no trial finished with a {folder.metric}.")
    target = output / "model"  # the select step compares each engine's best, as Azure's AutoML outputs only that
    if target.exists():
        shutil.rmtree(target)
    output.mkdir(parents=True, exist_ok=True)
    shutil.copytree(outcome.model_dir, target)
    summary = {"metric": folder.metric, "value": outcome.value, "run_id": outcome.run_id, "label": outcome.label, "params": outcome.params,
               "candidate_run_id": outcome.candidate_run_id}
    (output / STEP_SUMMARY).write_text(json.dumps(summary, indent=2, sort_keys=True, default=str) + "\n")
    print(f"{kind}: best {folder.metric} {outcome.value:.6g} ({outcome.label}, run {outcome.run_id})")
    return 0


def run_node(request_file: Path) -> int:
    """A hand-written sweep or AutoML node of a pipeline, as the request describes it."""
    request = json.loads(Path(request_file).read_text())
    outcome = _run_sweep_node(request) if request["type"] == "sweep" else _run_automl_node(request)
    if outcome is None:
        print(f"{request['type']}: interrupted; finished work is recorded", file=sys.stderr)
        return stopping.exit_status()
    summary = {key: outcome[key] for key in ("metric", "value", "run_id", "label", "params", "notes", "test_metrics") if key in outcome}
    mlflow_client = tracking.client()
    if outcome["value"] is not None:
        mlflow_client.log_metric(request["run_id"], outcome["metric"], float(outcome["value"]))
    temp = Path(request["work_dir"]) / (STEP_SUMMARY + ".tmp")
    temp.write_text(json.dumps(summary, indent=2, sort_keys=True, default=str) + "\n")
    temp.replace(Path(request["work_dir"]) / STEP_SUMMARY)
    print(f"{request['type']}: best {outcome['metric']} {outcome['value']} ({outcome['label']}, run {outcome['run_id']})")
    return 0


def _run_sweep_node(request: dict) -> dict | None:
    """The node on the local sweep engine; its outputs are its best trial's. None when stopped."""
    from capc.local.bindings import NAMED_OUTPUTS
    from capc.local.sweep import run_sweep_interruptibly

    trials_dir = Path(request["trials_dir"])
    if not request["resume"] and trials_dir.exists():
        shutil.rmtree(trials_dir)
    result, interrupted = run_sweep_interruptibly(
        job=request["node"], job_dir=Path(request["base_dir"]), trials_dir=trials_dir, tracking_uri=tracking.tracking_uri(),
        experiment_id=request["experiment_id"], parent_run_id=request["run_id"], resume=request["resume"], launch_mode="auto",
        python=request.get("python"),  # the trial environment capc built (capc.local.pipeline_envs); None: capc's own
        on_event=lambda kind, trial: print(f"trial {trial.trial_id} {kind}" + (f": {trial.value}" if trial.value is not None else ""), flush=True),
    )
    if interrupted:
        return None
    best = result.best
    if best is None:
        raise CapcError(f"the sweep step {request['step']} has no completed trial with a {result.metric}.")
    for name, folder in request["outputs"].items():
        _replace_folder(Path(best.trial_dir) / NAMED_OUTPUTS / name, Path(folder))
    return {"metric": result.metric, "value": best.value, "run_id": best.run_id, "label": f"trial {best.trial_id}", "params": best.params}


def _run_automl_node(request: dict) -> dict | None:
    """The node on the local AutoML engine as a hand-written AutoML job runs (capc.local.automl_job.run_automl_node:
    the same keys, notes, test run and best model): its data inputs are the MLTable folders bound to them, its
    best_model the MLflow model, written to the step's output folder. None when stopped."""
    from capc.local.automl_job import run_automl_node

    node = request["node"]
    tables = {role: node[role]["path"] for role in AUTOML_DATA if isinstance(node.get(role), dict) and node[role].get("path")}
    best_model_dir = Path(request["outputs"].get("best_model") or Path(request["work_dir"]) / "outputs" / "best_model")
    try:
        result = run_automl_node(node, Path(request["base_dir"]), tables, best_model_dir, experiment_id=request["experiment_id"],
                                 parent_run_id=request["run_id"], say=lambda text: print(text, flush=True), name=request["step"])
    except KeyboardInterrupt:
        return None
    if result.value is None:
        raise CapcError(f"the AutoML step {request['step']} produced no model: no candidate finished with a {result.metric}.")
    return {"metric": result.metric, "value": result.value, "run_id": result.best_run_id or result.automl_run_id,
            "label": result.best, "params": {}, "notes": list(dict.fromkeys(result.notes)),
            "test_metrics": result.test_metrics}


def _replace_folder(source: Path, target: Path) -> None:
    """`target` becomes a copy of `source` (empty when the source left nothing)."""
    if target.exists():
        shutil.rmtree(target)
    if source.is_dir():
        shutil.copytree(source, target)
    else:
        target.mkdir(parents=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m capc.local.pipeline_step")
    parser.add_argument("kind", choices=["automl", "sweep", "node"])
    parser.add_argument("--request", type=Path, help="node: the hand-written node to run (pipeline_nodes.write_node_request)")
    parser.add_argument("--job-dir", type=Path)
    parser.add_argument("--output", type=Path)
    parser.add_argument("--parent-run")
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--node", help="the pipeline step: a sweep step runs the sweep job of the same name (sweep_<family>.yml)")
    args = parser.parse_args(argv)
    try:
        with stopping.stopping_on_signals():
            if args.kind == "node":
                return run_node(args.request)
            return run_step(args.kind, args.job_dir, args.output, args.parent_run, args.resume, args.node)
    except KeyboardInterrupt as exc:
        print(f"{args.kind}: interrupted", file=sys.stderr)
        return stopping.exit_status_of(exc)
    except CapcError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
