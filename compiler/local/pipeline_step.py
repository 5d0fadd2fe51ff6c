"""Backend, local: one engine step of a local pipeline run, as its own process (`python -m capc.local.pipeline_step`).

    python -m capc.local.pipeline_step automl|sweep --job-dir DIR --output DIR --parent-run ID [--resume] [--node NAME]

Runs the local AutoML or a sweep job of the job folder, read through capc.jobfolder (the spec is not needed: the
folder holds everything), under the pipeline's run, and leaves the step's best model in OUTPUT/model with
OUTPUT/metrics.json (metric, value, run) for the selecting step. A sweep step runs the sweep job of its node's name
(sweep_job.yml for `sweep`, sweep_<family>.yml for `sweep_<family>`).
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
from capc.local.pipeline import STEP_SUMMARY
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m capc.local.pipeline_step")
    parser.add_argument("kind", choices=["automl", "sweep"])
    parser.add_argument("--job-dir", type=Path, required=True)
    parser.add_argument("--output", type=Path, required=True)
    parser.add_argument("--parent-run", required=True)
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--node", help="the pipeline step: a sweep step runs the sweep job of the same name (sweep_<family>.yml)")
    args = parser.parse_args(argv)
    try:
        with stopping.stopping_on_signals():
            return run_step(args.kind, args.job_dir, args.output, args.parent_run, args.resume, args.node)
    except KeyboardInterrupt as exc:
        print(f"{args.kind}: interrupted", file=sys.stderr)
        return stopping.exit_status_of(exc)
    except CapcError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
