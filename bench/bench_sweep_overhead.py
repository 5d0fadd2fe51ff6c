"""Per-trial overhead of capc's local sweep engine: process start + imports + MLflow logging + exit.

The trial does nothing else: `import mlflow; mlflow.start_run(); mlflow.log_metric(...)`, then exits.
Measured three ways, each with spawned processes (Popen of the command) and forked ones (capc's fork server):
  launch->exit   one trial at a time through capc.local.launch, against a real sqlite MLflow store
  sweep          run_sweep with max_concurrent_trials 1: time between consecutive trial starts (everything the
                 runner does per trial: MLflow run creation, trial folder, sampling, polling, recording)
Prints a table; no assertions (numbers depend on the machine and its load, printed alongside).

    python bench/bench_sweep_overhead.py [--trials 5] [--modes spawn,fork]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

TRIVIAL_TRIAL = """\
import sys
import mlflow

with mlflow.start_run():
    mlflow.log_metric("accuracy", float(sys.argv[2]), step=1)
"""


def stats(values: list[float]) -> str:
    if not values:
        return "-"
    return f"median {statistics.median(values):6.3f} s  min {min(values):6.3f} s  max {max(values):6.3f} s"


def launch_to_exit(mode: str, trials: int, root: Path, uri: str, client, experiment_id: str) -> tuple[list[float], float | None, float | None]:
    from capc.local.launch import Launcher

    work = root / f"launch-{mode}"
    work.mkdir()
    (work / "trial.py").write_text(TRIVIAL_TRIAL)
    base_env = dict(os.environ, MLFLOW_TRACKING_URI=uri, MLFLOW_EXPERIMENT_ID=experiment_id, MLFLOW_DISABLE_TELEMETRY="true")
    launcher = Launcher(mode, env=base_env, server_log=work / "server.log")
    ready_s = None
    if launcher.server:
        launcher.server.ready.wait(300)
        ready_s = launcher.server.ready_after_s
    walls = []
    cpu_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    for i in range(trials):
        run_id = client.create_run(experiment_id).info.run_id
        env = dict(base_env, MLFLOW_RUN_ID=run_id)
        log = work / f"trial{i}.log"
        started = time.perf_counter()
        process = launcher.start([sys.executable, "trial.py", "--value", "0.5"], work, env, log)
        while process.poll() is None:
            time.sleep(0.002)
        walls.append(time.perf_counter() - started)
        if process.poll() != 0 or not client.get_metric_history(run_id, "accuracy"):
            raise SystemExit(f"trial failed ({mode}):\n{log.read_text()}")
    cpu_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    launcher.close()
    cpu = None
    if mode == "spawn":  # forked trials are the server's children, not ours: their CPU is not counted here
        cpu = ((cpu_after.ru_utime - cpu_before.ru_utime) + (cpu_after.ru_stime - cpu_before.ru_stime)) / trials
    return walls, cpu, ready_s


def sweep_overhead(mode: str, trials: int, root: Path, uri: str, client, experiment_id: str) -> tuple[list[float], float]:
    from capc.local.sweep import run_sweep

    job_dir = root / f"sweep-{mode}"
    (job_dir / "src").mkdir(parents=True)
    (job_dir / "src" / "trial.py").write_text(TRIVIAL_TRIAL)
    job = {
        "type": "sweep",
        "trial": {"code": "./src", "command": "python trial.py --value ${{search_space.value}}"},
        "sampling_algorithm": "random",
        "search_space": {"value": {"type": "uniform", "min_value": 0, "max_value": 1}},
        "objective": {"goal": "maximize", "primary_metric": "accuracy"},
        "limits": {"max_total_trials": trials, "max_concurrent_trials": 1},
    }
    starts = []
    parent = client.create_run(experiment_id).info.run_id
    began = time.perf_counter()
    result = run_sweep(
        job, job_dir, job_dir / "trials", uri, experiment_id, parent, launch_mode=mode,
        on_event=lambda kind, trial: starts.append(time.perf_counter()) if kind == "started" else None,
    )
    total = time.perf_counter() - began
    if any(t.status != "completed" for t in result.trials):
        raise SystemExit(f"sweep trials failed ({mode}): {[(t.trial_id, t.status, t.output_tail) for t in result.trials]}")
    return [b - a for a, b in zip(starts, starts[1:])], total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--modes", default="spawn,fork")
    args = parser.parse_args()
    modes = args.modes.split(",")

    import logging

    from mlflow import MlflowClient

    logging.getLogger("alembic").setLevel(logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="capc-bench-sweep-") as tmp:
        root = Path(tmp)
        uri = f"sqlite:///{root / 'mlflow.db'}"
        client = MlflowClient(tracking_uri=uri)
        experiment_id = client.create_experiment("bench")
        print(f"machine: {os.cpu_count()} cores, load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        print(f"trivial trial (import mlflow, start_run, log one metric, exit), {args.trials} trials per row\n")
        for mode in modes:
            walls, cpu, ready_s = launch_to_exit(mode, args.trials, root, uri, client, experiment_id)
            extra = f"  child CPU {cpu:.3f} s/trial" if cpu is not None else ""
            extra += f"  (fork server ready after {ready_s:.2f} s, once per sweep)" if ready_s is not None else ""
            print(f"launch->exit  {mode:5s}  {stats(walls)}{extra}")
        for mode in modes:
            gaps, total = sweep_overhead(mode, args.trials, root, uri, client, experiment_id)
            print(f"sweep         {mode:5s}  between trial starts: {stats(gaps)}  whole sweep {total:.2f} s")
        print(f"\nload average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
