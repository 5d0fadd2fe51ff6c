"""Benchmark: the report's feature importance of a registered model (prints figures, asserts nothing).

    python bench/bench_importance.py [--model bankmarketing[:VERSION]] [--rows 2000] [--repeats 5]

Needs a registered tabular model in $CAPC_HOME (the main job: `capc submit specs/bankmarketing.yaml --set
automl.timeout_minutes=2 --set sweep.limits.max_total_trials=6`). Times capc.report.importance as `capc report`
and `capc models show --json` run it (the held-out predictions read from the store, the rows from the job folder's
training table, the model loaded, every column shuffled --repeats times and scored), once cold and once again, and
prints the rows, columns, predictions made and the top features. The machine may be shared: the load average and
the CPU seconds it got are printed beside the figure.
"""

from __future__ import annotations

import argparse
import os
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="bankmarketing", help="NAME[:VERSION] in the registry")
    parser.add_argument("--rows", type=int, default=None, help="row cap (default: the report's, MAX_ROWS)")
    parser.add_argument("--repeats", type=int, default=None, help="shuffles per column (default: the report's, REPEATS)")
    args = parser.parse_args()

    from capc.report import importance
    from capc.state import held_out, registry, tracking

    model = registry.get(args.model)
    rows = args.rows or importance.MAX_ROWS
    repeats = args.repeats or importance.REPEATS
    for attempt in ("first (imports, model load)", "again"):
        load_before, cpu_before, started = os.getloadavg(), time.process_time(), time.perf_counter()
        stored = held_out.load(tracking.client(), model.run_id)
        found = importance.importance(model, stored, rows, repeats)
        wall = time.perf_counter() - started
        cpu = time.process_time() - cpu_before
        columns = len(found.features)
        print(f"{model.ref} ({model.source}, {model.task}, {model.metric}), {attempt}: {wall:.2f} s wall, {cpu:.2f} s CPU "
              f"(load average {load_before[0]:.2f}); {found.rows:,} of {found.validation_rows:,} validation rows x "
              f"{columns} columns x {found.repeats} repeats = {found.rows * columns * found.repeats:,} rows predicted")
    print(f"baseline {found.metric} {found.baseline:.4f}; top features:")
    for feature in found.features[:5]:
        print(f"  {feature['feature']:<20} {feature['importance']:+.4f} (std {feature['std']:.4f})")


if __name__ == "__main__":
    main()
