"""Benchmark: `capc predict` rows per second on a grown bank-marketing file (prints figures, asserts nothing).

    python bench/bench_predict.py [--rows 1000000] [--model-dir DIR] [--chunk-rows N] [--profile]

The input is specs/data/bankmarketing's training file grown to --rows rows (bench/grown_data.py: resampled rows,
small numeric jitter) in a temp folder. The model is --model-dir (an MLflow model, e.g. a registry version's
model/) or, without it, a LightGBM trial trained with generated/bankmarketing/src/train.py on 2,000 rows. Scoring is
`capc predict`'s own function (capc.serve.batch.score_csv) with generated/bankmarketing/score.py. Also checks that
every input column came back byte for byte. The machine may be shared: the load average and the CPU seconds it got are printed beside the figure.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import tempfile
import time
from pathlib import Path

from bench_score import train_model
from grown_data import grow

REPO = Path(__file__).resolve().parent.parent
JOB = REPO / "generated" / "bankmarketing"
DATA = REPO / "specs" / "data" / "bankmarketing" / "bankmarketing_train.csv"


def input_columns_unchanged(source: Path, scored: Path, added: int) -> bool:
    """Every line of the output starts with the input's line, then only the added columns follow."""
    with open(source, "rb") as given, open(scored, "rb") as written:
        for before, after in zip(given, written):
            before = before.rstrip(b"\r\n")
            if not after.startswith(before + b",") or after[len(before) + 1 :].count(b",") != added - 1:
                return False
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--model-dir", type=Path)
    parser.add_argument("--chunk-rows", type=int)
    parser.add_argument("--profile", action="store_true", help="print the 25 costliest functions")
    args = parser.parse_args()

    from capc.serve.batch import score_csv

    with tempfile.TemporaryDirectory(prefix="capc-bench-predict-") as folder:
        work = Path(folder)
        started = time.perf_counter()
        source = grow(DATA, args.rows, work / "input.csv", target="y")
        grown_s = time.perf_counter() - started
        model_dir = args.model_dir or train_model(JOB, work) / "model"
        profile = cProfile.Profile() if args.profile else None
        load_before, cpu_before = os.getloadavg(), time.process_time()
        if profile:
            profile.enable()
        result = score_csv(model_dir, JOB, source, work / "output.csv", chunk_rows=args.chunk_rows)
        if profile:
            profile.disable()
        load_after, cpu_s = os.getloadavg(), time.process_time() - cpu_before
        unchanged = input_columns_unchanged(source, work / "output.csv", len(result.added_columns))
        print(json.dumps({
            "rows": result.rows, "input_mb": round(source.stat().st_size / 2**20, 1), "grow_s": round(grown_s, 1),
            "predict_s": result.seconds, "rows_per_s": round(result.rows / result.seconds), "target_rows_per_s": 50_000,
            # CPU seconds of this process (all its threads, model load included): the figure a busy machine moves least
            "cpu_s": round(cpu_s, 1), "rows_per_cpu_s": round(result.rows / cpu_s),
            "input_columns_unchanged": unchanged, "chunk_rows": result.chunk_rows, "cpus": len(os.sched_getaffinity(0)),
            "load_average_1m_before_after": [round(load_before[0], 2), round(load_after[0], 2)],
        }, indent=2))
        if profile:
            pstats.Stats(profile).sort_stats("tottime").print_stats(25)


if __name__ == "__main__":
    main()
