"""Benchmark: requests/s of a generated score.py served by azmlinfsrv on 127.0.0.1 (prints figures, asserts nothing).

    python bench/bench_score.py --job-dir generated/bankmarketing --model-dir DIR [--workers 2] [--clients 8]
                                [--seconds 10] [--rows 1]

DIR holds an MLflow model (e.g. a sweep trial's outputs/model or a registry version's model/). Without
--model-dir, a LightGBM trial is trained first with the job's own src/train.py on 2,000 rows of its data.
The clients are threads of this process, so on a 2-core machine they take CPU from the server: the figure is
a floor, not a ceiling.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def train_model(job_dir: Path, work: Path) -> Path:
    import pandas as pd
    import yaml

    job = yaml.safe_load((job_dir / "sweep_job.yml").read_text())
    data = (job_dir / job["inputs"]["training_data"]["path"]).resolve()
    sample = work / "sample.csv"
    pd.read_csv(data).head(2000).to_csv(sample, index=False)
    command = job["trial"]["command"].split()
    target = command[command.index("--target") + 1]
    metric = command[command.index("--metric") + 1]
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{work / 'mlflow.db'}"}
    subprocess.run([sys.executable, str(job_dir / "src" / "train.py"), "--data", str(sample), "--target", target, "--metric", metric],
                   cwd=work, env=env, check=True, capture_output=True)
    return work / "outputs"


def wait_healthy(port: int, timeout: float) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/")
            if conn.getresponse().status == 200:
                return
        except OSError:
            time.sleep(0.5)
    raise SystemExit("azmlinfsrv did not become healthy")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--job-dir", type=Path, required=True)
    parser.add_argument("--model-dir", type=Path)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rows", type=int, default=1, help="rows per request (taken from sample_request.json)")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="capc-bench-score-"))
    model_dir = args.model_dir or train_model(args.job_dir.resolve(), work)
    rows = json.loads((args.job_dir / "sample_request.json").read_text())["data"]
    body = json.dumps({"data": (rows * args.rows)[: args.rows]}).encode()
    port = free_port()
    server = subprocess.Popen(
        ["azmlinfsrv", "--entry_script", str((args.job_dir / "score.py").resolve()), "--model_dir", str(Path(model_dir).resolve()),
         "--port", str(port), "--worker_count", str(args.workers)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=work,
    )
    try:
        wait_healthy(port, 120)
        latencies: list[float] = []
        errors = [0]
        lock = threading.Lock()
        stop_at = time.time() + args.seconds

        def client() -> None:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            mine = []
            while time.time() < stop_at:
                started = time.perf_counter()
                conn.request("POST", "/score", body=body, headers={"Content-Type": "application/json"})
                response = conn.getresponse()
                response.read()
                mine.append(time.perf_counter() - started)
                if response.status != 200:
                    with lock:
                        errors[0] += 1
            with lock:
                latencies.extend(mine)

        threads = [threading.Thread(target=client) for _ in range(args.clients)]
        began = time.time()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.time() - began
        latencies.sort()
        print(json.dumps({
            "job": args.job_dir.name, "workers": args.workers, "clients": args.clients, "rows_per_request": args.rows,
            "requests": len(latencies), "errors": errors[0], "requests_per_s": round(len(latencies) / elapsed, 1),
            "p50_ms": round(statistics.median(latencies) * 1000, 2),
            "p99_ms": round(latencies[int(len(latencies) * 0.99) - 1] * 1000, 2),
            "cpus": os.cpu_count(), "load_average_1m": round(os.getloadavg()[0], 2),
        }, indent=2))
    finally:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()


if __name__ == "__main__":
    main()
