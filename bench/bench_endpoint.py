"""Benchmark of the local online endpoint (capc deploy + capc bench), printing ab-style figures.

Targets (issue: local endpoint), on the 2-core machine:
  bank-marketing model, 1 row per request, concurrency 4: >= 300 requests/s, p99 < 25 ms, 0 errors in 10,000
  one batch of 1,000 rows: < 100 ms

What it does: deploys a bank-marketing model with the generated score.py to a throw-away $CAPC_HOME - the
registered `bankmarketing` model when there is one, else one sweep trial of the generated train.py (LightGBM),
else the test fixture - sends real rows of the dataset, and prints where the CPU went (front end, azmlinfsrv
workers, load generator) and what score.py's run() costs in-process, so a miss can be placed. `--stack` also
measures the serving stack alone, with a score.py that does no model work.

    python bench/bench_endpoint.py [--requests 10000] [--concurrency 4] [--batch-rows 1000] [--stack] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "tests" / "serve")]  # serve_fixtures and the repo module it imports

from capc import serve  # noqa: E402
from capc.serve.state import read_state  # noqa: E402

DATA = ROOT / "specs" / "data" / "bankmarketing" / "bankmarketing_train.csv"
TARGET_RPS, TARGET_P99_MS, TARGET_BATCH_MS = 300.0, 25.0, 100.0

STACK_SCORE = '''
from inference_schema.parameter_types.standard_py_parameter_type import StandardPythonParameterType
from inference_schema.schema_decorators import input_schema, output_schema

def init():
    pass

@input_schema("data", StandardPythonParameterType([{"age": 30}]), convert_to_provided_type=False, optional=True)
@output_schema(StandardPythonParameterType({"result": ["no"]}))
def run(data=None):
    return {"result": ["no"] * len(data or [])}
'''


def rows_of_dataset() -> list[dict]:
    import pandas as pd

    frame = pd.read_csv(DATA)
    return frame.drop(columns="y").sample(frac=1.0, random_state=0).to_dict("records")


def build_generated(home: Path) -> Path | None:
    """generated/bankmarketing/ (built into `home` when the repository has no generated/ yet)."""
    if (ROOT / "generated" / "bankmarketing" / "score.py").is_file():
        return ROOT / "generated" / "bankmarketing"
    from serve_fixtures import generated_job_dir

    return generated_job_dir(home / "generated")


def train_trial_model(job: Path, home: Path) -> Path:
    """One sweep trial of the generated train.py (LightGBM, fixed parameters), as `capc submit` would run it."""
    trial = home / "trial"
    trial.mkdir()
    command = [sys.executable, str(job / "src" / "train.py"), "--data", str(DATA), "--target", "y", "--metric", "accuracy",
               "--n_estimators", "200", "--learning_rate", "0.1", "--num_leaves", "31", "--min_child_samples", "20",
               "--colsample_bytree", "0.8"]
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{trial / 'mlflow.db'}"}
    subprocess.run(command, cwd=trial, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return trial / "outputs" / "model"


def pick_model(home: Path, args) -> tuple[Path, Path, str]:
    """(model dir, job dir, description), the most real one available:
    the registered `bankmarketing` model, else a trial of the generated train.py, else the test fixture."""
    if args.model_dir and args.job_dir:
        return Path(args.model_dir), Path(args.job_dir), f"{args.model_dir} + {args.job_dir}/score.py"
    job = build_generated(home)
    if job is not None:
        try:
            from capc.state import registry

            model = registry.get("bankmarketing")
            return model.model_dir, job, f"registered {model.ref} ({model.source}) + generated score.py"
        except Exception:  # nothing registered yet
            pass
        if (job / "src" / "train.py").is_file():
            print("training one sweep trial with the generated train.py (LightGBM, 200 trees) ...", flush=True)
            return train_trial_model(job, home), job, "sweep trial of the generated train.py (LightGBM, 200 trees) + generated score.py"
    from serve_fixtures import job_dir, registered_model

    model_dir = registered_model(home, "bankmarketing", 1, rows=5000)
    return model_dir, job_dir(home / "job"), "fixture: OneHotEncoder+StandardScaler+LogisticRegression, tests/serve/serve_assets/score.py"


def in_process_ms(model_dir: Path, job: Path, rows: list[dict]) -> dict:
    """score.py's run() called directly, no server: the floor under every request's latency."""
    import importlib.util

    os.environ["AZUREML_MODEL_DIR"] = str(model_dir)
    spec = importlib.util.spec_from_file_location("bench_score", job / "score.py")
    script = importlib.util.module_from_spec(spec)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        spec.loader.exec_module(script)
        script.init()
        out = {}
        for n, repeat in ((1, 200), (1000, 10)):
            script.run(data=rows[:n])
            start = time.perf_counter()
            for i in range(repeat):
                script.run(data=rows[i * n % len(rows):][:n])
            out[f"run_{n}_rows_ms"] = (time.perf_counter() - start) / repeat * 1000
    return out


def cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def worker_pids(master: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == master:
                found.append(int(stat.parent.name))
        except (OSError, IndexError, ValueError):
            continue
    return found


class CpuMeter:
    """CPU seconds used by the front end, azmlinfsrv (master + workers) and this process during a run."""

    def __init__(self, home: Path, name: str):
        state = read_state(home / "endpoints" / name)
        self.proxy, self.master = state.proxy.pid, state.server.pid
        self.workers = worker_pids(self.master)

    def sample(self) -> dict:
        own = os.times()
        return {
            "front_end": cpu_seconds(self.proxy),
            "azmlinfsrv": cpu_seconds(self.master) + sum(cpu_seconds(p) for p in self.workers),
            "load_generator": own.user + own.system,
        }

    @staticmethod
    def per_request_ms(before: dict, after: dict, requests: int) -> dict:
        return {k: round((after[k] - before[k]) / max(requests, 1) * 1000, 3) for k in before}


def run_scenario(label, home, name, model_dir, job_dir, rows, args) -> dict:
    started = time.perf_counter()
    info = serve.deploy(name, model_dir, job_dir, home=home, worker_count=args.workers)
    print(f"\n=== {label}\ndeployed {info.scoring_uri} ({info.worker_count} workers) in {time.perf_counter() - started:.1f} s")
    serve.bench(name, rows, requests=min(200, args.requests), concurrency=args.concurrency, home=home)  # warm-up
    meter = CpuMeter(home, name)
    before = meter.sample()
    single = serve.bench(name, rows, requests=args.requests, concurrency=args.concurrency, rows_per_request=1, home=home)
    cpu = CpuMeter.per_request_ms(before, meter.sample(), single.complete)
    print(single.report())
    print(f"CPU per request (ms): {cpu}")
    batch = serve.bench(name, rows, requests=args.batch_requests, concurrency=1, rows_per_request=args.batch_rows, home=home)
    print(f"\nbatch of {args.batch_rows} rows, {args.batch_requests} requests one at a time: "
          f"p50 {batch.latency_ms['p50']:.1f} ms, max {batch.latency_ms['max']:.1f} ms, errors {batch.errors}")
    serve.delete(name, home)
    return {"label": label, "single": single.to_dict(), "cpu_ms_per_request": cpu, "batch": batch.to_dict()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--batch-rows", type=int, default=1000)
    parser.add_argument("--batch-requests", type=int, default=20)
    parser.add_argument("--workers", type=int, default=None, help="azmlinfsrv workers (default: capc's)")
    parser.add_argument("--stack", action="store_true", help="also measure the stack alone (a score.py with no model work)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON at the end")
    parser.add_argument("--model-dir", help="an MLflow model folder to serve (with --job-dir)")
    parser.add_argument("--job-dir", help="a folder with the score.py (and sample_request.json) to serve it with")
    args = parser.parse_args()

    home = Path(tempfile.mkdtemp(prefix="capc-bench-"))
    try:
        rows = rows_of_dataset()
        model_dir, job_dir, description = pick_model(home, args)
        print(f"model: {description}")
        floor = in_process_ms(model_dir, job_dir, rows)
        print("score.py run() in-process (no server): " + ", ".join(f"{k} {v:.2f}" for k, v in floor.items()))
        figures = {"model": description, "in_process": floor, "scenarios": []}
        figures["scenarios"].append(run_scenario("bank-marketing model", home, "bench-bank", model_dir, job_dir, rows, args))
        if args.stack:
            stack_job = home / "stack-job"
            stack_job.mkdir()
            (stack_job / "score.py").write_text(STACK_SCORE)
            figures["scenarios"].append(run_scenario("serving stack alone (score.py without model work)", home,
                                                     "bench-stack", model_dir, stack_job, rows, args))
        main_run = figures["scenarios"][0]
        single, batch = main_run["single"], main_run["batch"]
        verdicts = [
            ("requests/s >= 300", single["requests_per_s"] >= TARGET_RPS, f"{single['requests_per_s']:.1f}"),
            ("p99 < 25 ms", single["latency_ms"]["p99"] < TARGET_P99_MS, f"{single['latency_ms']['p99']:.1f} ms"),
            (f"0 errors in {args.requests}", single["errors"] == 0 and single["complete"] == args.requests, str(single["errors"])),
            (f"batch of {args.batch_rows} rows < 100 ms (p50)", batch["latency_ms"]["p50"] < TARGET_BATCH_MS,
             f"{batch['latency_ms']['p50']:.1f} ms"),
        ]
        print("\n=== targets")
        for label, met, value in verdicts:
            print(f"  {'met ' if met else 'MISS'}  {label:32s} {value}")
        figures["targets"] = {label: {"met": met, "value": value} for label, met, value in verdicts}
        if args.json:
            print(json.dumps(figures, indent=2, default=str))
        return 0
    finally:
        for endpoint in serve.list_endpoints(home):
            serve.delete(endpoint.name, home)
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
