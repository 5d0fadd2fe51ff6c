"""`capc plan` of the reference specs (local target): wall and CPU time of the whole command (target: < 0.5 s).

Runs the real console command in a fresh interpreter each time (imports included), after one warm-up run, with a
throw-away $CAPC_HOME (so no tracking store is read; `--with-history` points it at ./.capc instead). Prints the
median and the best of N runs, then which azure / mlflow modules one run imported (the target: none).

    python bench/bench_plan.py [N] [--with-history]
"""

from __future__ import annotations

import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SPECS = sorted(str(p) for p in (ROOT / "specs").glob("*.yaml"))
IMPORTS = (
    "import runpy, sys\n"
    "sys.argv = ['capc', 'plan', *sys.argv[1:]]\n"
    "try:\n"
    "    runpy.run_module('capc', run_name='__main__')\n"
    "except SystemExit:\n"
    "    pass\n"
    "print('heavy modules:', sorted(m for m in sys.modules if m.split('.')[0] in ('azure', 'mlflow', 'jinja2')), file=sys.stderr)\n"
)


def one_run(env: dict) -> tuple[float, float]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "capc", "plan", *SPECS], check=True, stdout=subprocess.DEVNULL, env=env)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    runs = int(args[0]) if args else 10
    with tempfile.TemporaryDirectory(prefix="capc-bench-plan-") as home:
        env = dict(os.environ)
        if "--with-history" not in sys.argv:
            env["CAPC_HOME"] = home
        one_run(env)  # warm-up: bytecode and OS file caches
        walls, cpus = zip(*(one_run(env) for _ in range(runs)))
        imported = subprocess.run([sys.executable, "-c", IMPORTS, *SPECS], env=env, capture_output=True, text=True, check=True)
    print(f"capc plan of {len(SPECS)} specs, {runs} runs, load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    print(f"  wall: median {statistics.median(walls):.3f} s, best {min(walls):.3f} s (target < 0.5 s)")
    print(f"  cpu:  median {statistics.median(cpus):.3f} s, best {min(cpus):.3f} s")
    print(f"  {imported.stderr.strip().splitlines()[-1]}")
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", "pass"], check=True)
    print(f"  bare interpreter start: {time.perf_counter() - start:.3f} s")


if __name__ == "__main__":
    main()
