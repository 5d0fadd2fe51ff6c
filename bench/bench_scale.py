"""Benchmark: the README main job on the bank data grown to ~260 thousand and 1 million rows (prints figures,
asserts nothing).

    python bench/bench_scale.py [--rows 260000 1000000] [--only automl|sweep] [--automl-minutes 2] [--sweep-trials 6]
                                [--set K=V ...] [--predict-rows 1000000]

For each size: the bank-marketing training file grown to that many rows (bench/grown_data.py: resampled rows with
small numeric jitter) and a copy of specs/bankmarketing.yaml pointing at it, in a temp folder (never committed);
then the real console command

    capc submit SPEC --set automl.timeout_minutes=2 --set sweep.limits.max_total_trials=6 --json

with a throw-away $CAPC_HOME. Printed: wall time against the AutoML budget, the AutoML run's own duration against
its budget, the peak resident memory of capc and every process under it (sampled every 0.5 s: summed, and the
largest single one), then `capc predict` of the registered model over a grown file of --predict-rows rows (rows per
second). The machine may be shared: the load average and the cores are printed with the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import yaml

from grown_data import grow

REPO = Path(__file__).resolve().parent.parent
SPEC = REPO / "specs" / "bankmarketing.yaml"
DATA = REPO / "specs" / "data" / "bankmarketing" / "bankmarketing_train.csv"
GIB = 2**30


class PeakMemory:
    """Peak resident memory of a process and all its descendants, sampled in a thread."""

    def __init__(self, pid: int, every_s: float = 0.5):
        import psutil

        self.root = psutil.Process(pid)
        self.every_s = every_s
        self.total = self.single = 0
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()

    def _sample(self) -> None:
        import psutil

        while not self.done.is_set():
            try:
                processes = [self.root, *self.root.children(recursive=True)]
            except psutil.Error:
                return
            sizes = []
            for process in processes:
                try:
                    sizes.append(process.memory_info().rss)
                except psutil.Error:
                    pass
            self.total = max(self.total, sum(sizes))
            self.single = max(self.single, max(sizes, default=0))
            self.done.wait(self.every_s)

    def stop(self) -> None:
        self.done.set()
        self.thread.join()


def run(argv: list[str], env: dict) -> tuple[subprocess.CompletedProcess, float, PeakMemory]:
    started = time.monotonic()
    process = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    memory = PeakMemory(process.pid)
    stdout, stderr = process.communicate()
    memory.stop()
    return subprocess.CompletedProcess(argv, process.returncode, stdout, stderr), time.monotonic() - started, memory


def automl_seconds(env: dict, name: str) -> float | None:
    done = subprocess.run(["capc", "runs", name, "--json"], env=env, capture_output=True, text=True)
    runs = json.loads(done.stdout or "[]")
    return next((r["duration_s"] for r in runs if r["kind"] == "automl"), None)


def case(rows: int, args, work: Path) -> None:
    folder = work / f"bank-{rows}"
    folder.mkdir()
    started = time.monotonic()
    grow(DATA, rows, folder / "train.csv", target="y", seed=rows)
    grow_s = time.monotonic() - started
    spec = yaml.safe_load(SPEC.read_text())
    spec["dataset"]["path"] = "train.csv"
    (folder / "spec.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    env = {**os.environ, "CAPC_HOME": str(folder / "home")}
    argv = ["capc", "submit", str(folder / "spec.yaml"), "--out", str(folder / "generated"), "--json",
            "--set", f"automl.timeout_minutes={args.automl_minutes}", "--set", f"sweep.limits.max_total_trials={args.sweep_trials}",
            *(word for override in args.extra for word in ("--set", override)), *(["--only", args.only] if args.only else [])]
    load = os.getloadavg()[0]
    print(f"\n== {rows:,} rows ({(folder / 'train.csv').stat().st_size / 2**20:.0f} MiB, grown in {grow_s:.0f}s); "
          f"load average {load:.1f} on {len(os.sched_getaffinity(0))} cores: {' '.join(argv[:3])} ...", flush=True)
    done, wall, memory = run(argv, env)
    budget = args.automl_minutes * 60
    automl = automl_seconds(env, spec["name"]) if args.only in (None, "automl") else None
    figures = {
        "rows": rows, "exit": done.returncode, "wall_s": round(wall), "automl_budget_s": budget,
        "automl_run_s": round(automl) if automl else None,
        "automl_vs_budget": round(automl / budget, 2) if automl else None,
        "peak_rss_gib_all_processes": round(memory.total / GIB, 2), "peak_rss_gib_largest_process": round(memory.single / GIB, 2),
        "load_average_1m_end": round(os.getloadavg()[0], 1),
    }
    if done.returncode != 0:
        print(done.stdout[-2000:], done.stderr[-3000:])
    else:
        result = json.loads(done.stdout[done.stdout.index("{"):])
        for side in result["results"]:
            print(f"   {side['source']:<6} best {result['metric']} {side['value']:.5f} ({side['label']})")
        figures["winner"] = result["winner"]
        if args.predict_rows:
            source = grow(DATA, args.predict_rows, folder / "predict.csv", target="y", seed=1)
            predicted, predict_wall, predict_memory = run(
                ["capc", "predict", spec["name"], "--input", str(source), "--output", str(folder / "scored.csv"), "--json"], env)
            if predicted.returncode == 0:
                report = json.loads(predicted.stdout)
                figures.update(predict_rows=report["rows"], predict_s=report["seconds"],
                               predict_rows_per_s=round(report["rows"] / report["seconds"]),
                               predict_peak_rss_gib=round(predict_memory.total / GIB, 2))
            else:
                print(predicted.stderr[-2000:])
    print(json.dumps(figures, indent=2), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[260_000, 1_000_000])
    parser.add_argument("--only", choices=["automl", "sweep"])
    parser.add_argument("--automl-minutes", type=int, default=2)
    parser.add_argument("--sweep-trials", type=int, default=6)
    parser.add_argument("--predict-rows", type=int, default=1_000_000, help="0: no predict figure")
    parser.add_argument("--set", dest="extra", action="append", default=[], metavar="KEY.PATH=VALUE")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="capc-bench-scale-") as folder:
        for rows in args.rows:
            case(rows, args, Path(folder))


if __name__ == "__main__":
    sys.exit(main())
