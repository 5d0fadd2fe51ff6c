"""Benchmark, A/B: what each part of a deployed endpoint's serving path costs under `ab -k -c 4`, with the arms
interleaved round by round so a shared machine's load falls on all of them alike (prints figures, asserts nothing).

    python bench/bench_serving_path.py [--model-dir DIR] [--rounds 5] [--requests 2000] [--workers 4 2]
                                       [--before-tree DIR] [--json]

One AutoML model (--model-dir, e.g. $CAPC_HOME/registry/bankmarketing/<v>/model; without it a LightGBM is trained
on 2,000 bank rows, as bench_automl_predict.py does) is deployed with `capc deploy`'s code once per worker count,
in a throw-away $CAPC_HOME, with this tree's generated/bankmarketing/score.py. The arms:
- `front end, W workers`: the endpoint as users call it (key check, request log), through this tree's proxy;
- `azmlinfsrv alone, W workers`: the same inference server without the front end: the difference is the front
  end's cost per request;
- with --before-tree DIR (a checkout of another commit, e.g. `git worktree add /tmp/before HEAD~3`): `front end
  (before)`, that tree's proxy in front of the same server, and `score.py (before)`, a server running that tree's
  generated/bankmarketing/score.py behind this tree's front end.
Each round runs `ab -q -k -c 4 -n N -p sample_request.json` against every arm, in a rotated order. The table shows
each arm's median over the rounds (ab prints whole milliseconds for its percentiles), the CPU time the front end
and the inference server (gunicorn and its workers) spent per request (from /proc: the figure a loaded machine
disturbs least), and the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
JOB = REPO / "generated" / "bankmarketing"
sys.path.insert(0, str(Path(__file__).resolve().parent))


def ab(url: str, body: Path, requests: int, key: str | None) -> dict:
    """One ApacheBench run: requests/s, p50 / p99 ms (whole ms) and failures."""
    argv = ["ab", "-q", "-k", "-c", "4", "-n", str(requests), "-p", str(body), "-T", "application/json"]
    if key:
        argv += ["-H", f"Authorization: Bearer {key}"]
    lines = subprocess.run([*argv, url], capture_output=True, text=True, check=True).stdout.splitlines()

    def field(prefix: str) -> str:
        return next((line.split(":", 1)[1].split()[0] for line in lines if line.startswith(prefix)), "0")

    def percentile(q: str) -> float:
        return float(next(line.split()[1] for line in lines if line.strip().startswith(q)))

    return {"requests_per_s": float(field("Requests per second")), "p50_ms": percentile("50%"),
            "p99_ms": percentile("99%"), "failed": int(field("Failed requests")) + int(field("Non-2xx responses"))}


def cpu_ms(pid: int | None) -> float:
    """CPU time (user + system) of `pid` and its children so far, in ms (Linux /proc; 0 without a pid)."""
    if not pid:
        return 0.0
    total, tick = 0.0, os.sysconf("SC_CLK_TCK")
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / tick
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return 0.0
    return total * 1000 + sum(cpu_ms(int(child)) for child in children)


def trained_model(work: Path) -> Path:
    from bench_automl_predict import train_models

    return train_models(work)["LightGBM"]


def start_proxy(tree: Path, folder: Path, port: int, log: Path) -> subprocess.Popen:
    """Another front end (from `tree`'s capc) in front of the endpoint in `folder`, on `port`."""
    env = {**os.environ, "PYTHONPATH": str(tree / ".shim")}  # the brief's shim: `capc` is that tree's compiler/
    argv = [sys.executable, "-m", "capc.serve.proxy", str(folder) + os.sep, str(port)]
    process = subprocess.Popen(argv, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT, cwd=folder)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if b"capc endpoint" in log.read_bytes():
            return process
        if process.poll() is not None:
            raise SystemExit(f"the front end from {tree} exited: {log.read_text()[-2000:]}")
        time.sleep(0.1)
    raise SystemExit(f"the front end from {tree} did not start")


def deploy_arms(home: Path, model_dir: Path, workers: list[int], before: Path | None, started: list) -> dict:
    """{arm name: (url, key, front end pid, server pid)}; every process started is appended to `started` (endpoint
    names and Popens)."""
    from capc.serve import endpoints
    from capc.serve.processes import LOOPBACK, free_port
    from capc.serve.state import endpoint_dir, read_state

    arms = {}
    for count in workers:
        name = f"bench-w{count}"
        info = endpoints.deploy(name, model_dir, JOB, home=home, worker_count=count)
        started.append(name)
        key = endpoints.keys(name, home=home)["primaryKey"]
        folder = endpoint_dir(name, home)
        state = read_state(folder)
        arms[f"front end, {count} workers"] = (info.scoring_uri, key, state.proxy.pid, state.server.pid)
        arms[f"azmlinfsrv alone, {count} workers"] = (f"http://{LOOPBACK}:{state.server.port}/score", None, None, state.server.pid)
        if before is not None and count == workers[0]:
            port = free_port()
            started.append(start_proxy(before, folder, port, home / f"proxy-before-{count}.log"))
            arms[f"front end (before), {count} workers"] = (f"http://{LOOPBACK}:{port}/score", key, started[-1].pid, state.server.pid)
    if before is not None:
        name = "bench-before-score"
        info = endpoints.deploy(name, model_dir, before / "generated" / "bankmarketing", home=home, worker_count=workers[0])
        started.append(name)
        state = read_state(endpoint_dir(name, home))
        arms[f"score.py (before), {workers[0]} workers"] = (info.scoring_uri, endpoints.keys(name, home=home)["primaryKey"],
                                                            state.proxy.pid, state.server.pid)
    return arms


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path, help="an AutoML MLflow model (default: train a small LightGBM)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--requests", type=int, default=2000, help="requests per arm per round")
    parser.add_argument("--workers", type=int, nargs="+", default=[4], help="azmlinfsrv worker counts to compare")
    parser.add_argument("--before-tree", type=Path, help="another checkout, for its front end and score.py")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if shutil.which("ab") is None:
        raise SystemExit("ab (ApacheBench) is not installed")

    from capc.serve import endpoints

    work = Path(tempfile.mkdtemp(prefix="capc-bench-serving-path-"))
    home, started = work / "home", []
    try:
        model_dir = args.model_dir or trained_model(work / "models")
        arms = deploy_arms(home, model_dir, args.workers, args.before_tree, started)
        body = work / "request.json"
        body.write_text((JOB / "sample_request.json").read_text())
        names = list(arms)
        figures = {name: [] for name in names}
        loads = [os.getloadavg()[0]]
        for round_ in range(args.rounds):
            order = names[round_ % len(names):] + names[:round_ % len(names)]
            for name in order:
                url, key, front_pid, server_pid = arms[name]
                before = cpu_ms(front_pid), cpu_ms(server_pid)
                row = ab(url, body, args.requests, key)
                row["front_end_cpu_ms"] = (cpu_ms(front_pid) - before[0]) / args.requests
                row["server_cpu_ms"] = (cpu_ms(server_pid) - before[1]) / args.requests
                figures[name].append(row)
            loads.append(os.getloadavg()[0])
            print(f"round {round_ + 1}/{args.rounds} done (load {loads[-1]:.1f})", file=sys.stderr, flush=True)
    finally:
        for item in started:
            if isinstance(item, str):
                endpoints.delete(item, home=home)
            else:
                item.terminate()
                item.wait(10)
        shutil.rmtree(work, ignore_errors=True)
    measures = ("requests_per_s", "p50_ms", "p99_ms", "front_end_cpu_ms", "server_cpu_ms")
    summary = {name: {k: statistics.median(r[k] for r in rows) for k in measures}
               | {"failed": sum(r["failed"] for r in rows), "rounds": rows} for name, rows in figures.items()}
    if args.json:
        print(json.dumps({"arms": summary, "load_average_1m": loads, "cpus": os.cpu_count(),
                          "requests": args.requests, "rounds": args.rounds}, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"ab -k -c 4 -n {args.requests}, {args.rounds} interleaved rounds, medians "
                        f"({os.cpu_count()} CPUs, load {min(loads):.1f}-{max(loads):.1f})")
    columns = ("arm", "requests/s", "p50 ms", "p99 ms", "front end CPU ms/req", "server CPU ms/req", "failed",
               "requests/s per round")
    for column in columns:
        table.add_column(column, justify="left" if column == "arm" else "right")
    for name, row in summary.items():
        table.add_row(name, f"{row['requests_per_s']:,.0f}", f"{row['p50_ms']:g}", f"{row['p99_ms']:g}",
                      f"{row['front_end_cpu_ms']:.3f}", f"{row['server_cpu_ms']:.3f}", str(row["failed"]),
                      " ".join(f"{r['requests_per_s']:.0f}" for r in row["rounds"]))
    Console().print(table)


if __name__ == "__main__":
    main()
