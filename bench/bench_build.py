"""`capc build` of the four reference specs: wall and CPU time of the whole command (target: under 0.5 s wall).

Runs the real console command in a fresh interpreter each time (imports included), into a temporary folder,
after one warm-up run that fills the template bytecode cache. Prints the median and the best of N runs.

    python bench/bench_build.py [N]
"""

from __future__ import annotations

import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SPECS = sorted(str(p) for p in (ROOT / "specs").glob("*.yaml"))


def one_run(out: str) -> tuple[float, float]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "capc", "build", *SPECS, "--out", out], check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    out = tempfile.mkdtemp(prefix="capc-bench-build-")
    try:
        one_run(out)  # warm-up: template bytecode cache, OS file cache
        walls, cpus = zip(*(one_run(out if i % 2 else tempfile.mkdtemp(dir=out)) for i in range(runs)))
    finally:
        shutil.rmtree(out, ignore_errors=True)
    print(f"capc build of {len(SPECS)} specs, {runs} runs, load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    print(f"  wall: median {statistics.median(walls):.3f} s, best {min(walls):.3f} s (target < 0.5 s)")
    print(f"  cpu:  median {statistics.median(cpus):.3f} s, best {min(cpus):.3f} s")
    startup = []
    for _ in range(5):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        startup.append(time.perf_counter() - start)
    print(f"  bare interpreter start: {min(startup):.3f} s")


if __name__ == "__main__":
    main()
