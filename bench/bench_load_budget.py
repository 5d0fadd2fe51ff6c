"""Benchmark of the load budget end to end (issue 27): the bank spec's main job at small settings, the model it
registers deployed with `capc deploy` and loaded with `capc bench -n 10000 -c 4` (one row per request, keep-alive),
against the spec's own load budget (>= 300 requests/s, p99 < 25 ms) and the accuracy target on held-back rows.

Each run is bench_submit.py's case (20% of the bank rows held back, split seed N, a copy of the spec on the other
80%, `capc submit --set automl.timeout_minutes=M --set sweep.limits.max_total_trials=T` with a throw-away
$CAPC_HOME), then deploy, bench, delete. It prints what the selection measured under load (and how), the better
candidates it passed over, the endpoint's figures and the held-back accuracy, one line per run and the means.

    python bench/bench_load_budget.py [--seeds 0 1 2] [--automl-minutes 1] [--sweep-trials 2] [--requests 10000] [--ab] [--set K=V ...]

`--ab` loads the endpoint with ApacheBench instead, exactly as the issue measured it
(`ab -k -c 4 -n N -p sample_request.json -T application/json -H "Authorization: Bearer KEY" URI`); ab prints
whole milliseconds for its percentiles.

The machine is shared: the load average at the start and the end of each run is printed beside its figures.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_submit import REPO, run_case  # noqa: E402

TARGET_RPS, TARGET_P99_MS, TARGET_ACCURACY = 300.0, 25.0, 0.915


def _capc(home: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["capc", *args], env={**os.environ, "CAPC_HOME": str(home)}, capture_output=True, text=True)


def _ab(home: Path, folder: Path, requests: int) -> dict:
    """ApacheBench against the deployed endpoint: requests/s, p99 ms (whole ms, as ab prints it) and failures."""
    shown = json.loads(_capc(home, "endpoints", "show", "bankmarketing", "--json").stdout)
    key = json.loads(_capc(home, "endpoints", "keys", "bankmarketing").stdout)["primaryKey"]
    # The run's own build when it left one, else the committed build of the same spec (same columns, one row).
    sample = next(folder.rglob("sample_request.json"), REPO / "generated" / "bankmarketing" / "sample_request.json")
    done = subprocess.run(["ab", "-q", "-k", "-c", "4", "-n", str(requests), "-p", str(sample), "-T", "application/json",
                           "-H", f"Authorization: Bearer {key}", shown["scoring_uri"]], capture_output=True, text=True)
    lines = done.stdout.splitlines()
    field = lambda prefix: next(line.split(":", 1)[1].split()[0] for line in lines if line.startswith(prefix))  # noqa: E731
    p99 = next(line.split()[1] for line in lines if line.strip().startswith("99%"))
    return {"requests_per_s": float(field("Requests per second")), "p99": float(p99),
            "errors": int(field("Failed requests")) + int(field("Non-2xx responses") if any(l.startswith("Non-2xx") for l in lines) else 0)}


def run(seed: int, minutes: int, trials: int, requests: int, work: Path, extra: list[str], use_ab: bool = False) -> dict:
    load_before = os.getloadavg()[0]
    case = run_case("bankmarketing", seed, minutes, trials, work, extra)
    home = work / f"bankmarketing-{seed}" / "home"
    row = {"seed": seed, "accuracy": case["value"], "winner": case["winner"], "rps": float("nan"), "p99": float("nan"),
           "selected_rps": float("nan"), "load_before": load_before}
    if not case["ok"] and case["winner"] == "-":
        row["load_after"] = os.getloadavg()[0]
        return row
    shown = json.loads(_capc(home, "models", "show", "bankmarketing", "--json").stdout)
    load = (shown.get("selection") or {}).get("load") or {}
    row["selected_rps"] = load.get("requests_per_s", float("nan"))
    if load:
        print(f"   selection under load: {load['requests_per_s']:,.0f} requests/s, p99 {load['p99_ms']:.1f} ms ({load['server']}, "
              f"{load['workers']} workers on {load['cores']} cores, concurrency {load['concurrency']}, {load['requests']} requests "
              f"in {load['seconds']:.1f} s, measured in {load['measure_s']:.1f} s)")
    deployed = _capc(home, "deploy", "bankmarketing")
    if deployed.returncode != 0:
        print(deployed.stderr[-2000:])
        return row
    try:
        if use_ab:
            figures = _ab(home, work / f"bankmarketing-{seed}" / "generated", requests)
            row["rps"], row["p99"], row["errors"] = figures["requests_per_s"], figures["p99"], figures["errors"]
        else:
            bench = _capc(home, "bench", "bankmarketing", "-n", str(requests), "-c", "4", "--json")
            figures = json.loads(bench.stdout)
            row["rps"], row["p99"], row["errors"] = figures["requests_per_s"], figures["latency_ms"]["p99"], figures["errors"]
    finally:
        _capc(home, "endpoints", "delete", "bankmarketing")
    row["load_after"] = os.getloadavg()[0]
    print(f"   endpoint: {row['rps']:,.0f} requests/s, p99 {row['p99']:.1f} ms, {row.get('errors')} errors in {requests:,} "
          f"(load average {load_before:.1f} -> {row['load_after']:.1f})", flush=True)
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--automl-minutes", type=int, default=1)
    parser.add_argument("--sweep-trials", type=int, default=2)
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--ab", action="store_true", help="load the endpoint with ApacheBench (ab -k -c 4), not capc bench")
    parser.add_argument("--set", dest="extra", action="append", default=[], metavar="KEY.PATH=VALUE",
                        help="one more override, e.g. deployment.min_requests_per_s=1 to compare the selection's figure with the endpoint's")
    args = parser.parse_args(argv)
    print(f"cores: {len(os.sched_getaffinity(0))}, load average at start: {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory() as tmp:
        rows = [run(seed, args.automl_minutes, args.sweep_trials, args.requests, Path(tmp), args.extra, args.ab) for seed in args.seeds]
    print("\nseed winner  held-back acc  selected rps  endpoint rps  p99 ms  load avg")
    for r in rows:
        print(f"{r['seed']:>4} {r['winner']:<7} {r['accuracy']:>13.4f} {r['selected_rps']:>13,.0f} {r['rps']:>13,.0f} {r['p99']:>7.1f}"
              f"  {r['load_before']:.1f}->{r.get('load_after', float('nan')):.1f}")
    ok = [r["rps"] >= TARGET_RPS and r["p99"] < TARGET_P99_MS and r["accuracy"] >= TARGET_ACCURACY for r in rows]
    print(f"targets (>= {TARGET_RPS:g} requests/s, p99 < {TARGET_P99_MS:g} ms, held-back accuracy >= {TARGET_ACCURACY}): "
          f"{sum(ok)} of {len(rows)} runs meet all three")
    return 0 if all(ok) else 1


if __name__ == "__main__":
    sys.exit(main())
