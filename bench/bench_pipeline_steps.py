"""Per-step overhead of capc's local pipeline runner: a pipeline of trivial command steps, against the same commands
run one after the other with nothing around them.

The pipeline is a hand-written `type: pipeline` job of N steps, each `python step.py ${{inputs.previous}}
${{outputs.out}}` (a script that writes one file), run through capc.local.pipeline.run_pipeline_yaml exactly as
`capc submit PIPELINE.yml` runs it (poll interval, MLflow run per step, code snapshot, resume state, fork server).
  chain  each step reads the previous step's output: N steps one after the other (every scheduling delay counts)
  fan    N independent steps, side by side
The store is created by a warm-up run first (a first submit on a new $CAPC_HOME migrates it once).
overhead per step = (pipeline wall time - the bare commands' time) / N. Prints a table; no assertions.

    python bench/bench_pipeline_steps.py [--steps 10] [--shapes chain,fan] [--repeats 2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

STEP_SCRIPT = """\
import pathlib, sys
pathlib.Path(sys.argv[-1], "done.txt").write_text("ok")
"""


def pipeline_yaml(steps: int, shape: str) -> str:
    lines = ["$schema: https://azuremlschemas.azureedge.net/latest/pipelineJob.schema.json", "type: pipeline",
             f"experiment_name: bench-{shape}", "jobs:"]
    for i in range(steps):
        previous = f"${{{{parent.jobs.step{i - 1}.outputs.out}}}}" if shape == "chain" and i else "./step.py"
        lines += [f"  step{i}:", "    type: command", "    code: .",
                  "    command: python step.py ${{inputs.previous}} ${{outputs.out}}",
                  "    inputs:", f"      previous: {{type: uri_folder, path: '{previous}'}}" if not previous.startswith("$")
                  else f"      previous: '{previous}'",
                  "    outputs:", "      out: {type: uri_folder}"]
    return "\n".join(lines) + "\n"


def bare_commands(folder: Path, steps: int) -> float:
    """The steps' own work: the same command, spawned one after the other."""
    started = time.perf_counter()
    for i in range(steps):
        out = folder / "bare" / str(i)
        out.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "step.py", "step.py", str(out)], cwd=folder, check=True)
    return time.perf_counter() - started


def run_once(folder: Path, steps: int, shape: str) -> tuple[float, list]:
    from capc.jobfolder.job_yaml import load_job_yaml
    from capc.local.pipeline import run_pipeline_yaml

    path = folder / f"{shape}.yml"
    path.write_text(pipeline_yaml(steps, shape))
    started = time.perf_counter()
    result = run_pipeline_yaml(load_job_yaml(path))
    wall = time.perf_counter() - started
    assert all(s.status == "completed" for s in result.steps), [(s.name, s.status, s.detail) for s in result.steps]
    return wall, result.steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--shapes", default="chain,fan")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="capc-bench-pipeline-") as root:
        os.environ["CAPC_HOME"] = str(Path(root) / "home")
        os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
        folder = Path(root) / "job"
        folder.mkdir()
        (folder / "step.py").write_text(STEP_SCRIPT)
        run_once(folder, 1, "warmup")
        bare = statistics.median(bare_commands(folder, args.steps) for _ in range(args.repeats))
        print(f"{args.steps} steps of `python step.py IN OUT` on {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}")
        print(f"bare commands, one after the other: {bare:6.2f} s ({bare / args.steps:.3f} s a step)")
        print(f"{'shape':6}  {'pipeline wall':>13}  {'step median':>11}  {'gap median':>10}  {'overhead/step':>13}")
        for shape in args.shapes.split(","):
            walls, medians, gaps = [], [], []
            for _ in range(args.repeats):
                wall, steps = run_once(folder, args.steps, shape)
                walls.append(wall)
                medians.append(statistics.median(s.duration_s for s in steps))
                # From a step's end to the next one's start: what the runner adds between two dependent steps.
                gaps += [b.started_at - (a.started_at + a.duration_s) for a, b in zip(steps, steps[1:])] if shape == "chain" else [0.0]
            wall = statistics.median(walls)
            # chain: everything beyond the bare commands is the runner's; fan: the steps overlap, so the wall
            # time spread over the steps is the runner's cost per step.
            overhead = (wall - bare) / args.steps if shape == "chain" else wall / args.steps
            print(f"{shape:6}  {wall:11.2f} s  {statistics.median(medians):9.3f} s  {statistics.median(gaps):8.3f} s  {overhead:11.3f} s")


if __name__ == "__main__":
    main()
