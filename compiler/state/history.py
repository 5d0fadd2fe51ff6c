"""Shared state: how long the last local submit of a spec took, read straight from the tracking store.

`capc plan` shows it beside its bounds and must stay well under half a second, so this reads MLflow's sqlite tables
(runs, tags) with the standard library instead of importing MLflow (~2 s). It only reads, and any surprise in the
store (absent, locked, another schema) means "no earlier run", never an error.
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from dataclasses import asdict, dataclass

from capc.state.home import capc_home
from capc.state.tracking import KIND_TAG, PARENT_TAG, STATUS_TAG

SPEC_HASH_TAG = "capc.spec_sha256"


@dataclass(frozen=True)
class LocalRun:
    run_id: str
    started: float  # epoch seconds
    duration_s: float
    status: str
    jobs: dict  # child kind (automl, sweep, or a pipeline step) -> seconds

    def to_dict(self) -> dict:
        return asdict(self)


LAST_SUBMIT = f"""
SELECT r.run_uuid, r.start_time, r.end_time, r.status, s.value FROM runs r
JOIN tags h ON h.run_uuid = r.run_uuid AND h.key = '{SPEC_HASH_TAG}' AND h.value = ?
JOIN tags k ON k.run_uuid = r.run_uuid AND k.key = '{KIND_TAG}' AND k.value = 'submit'
LEFT JOIN tags s ON s.run_uuid = r.run_uuid AND s.key = '{STATUS_TAG}'
WHERE r.end_time IS NOT NULL AND r.lifecycle_stage = 'active'
ORDER BY r.start_time DESC LIMIT 1
"""
CHILDREN = f"""
SELECT k.value, r.start_time, r.end_time FROM runs r
JOIN tags p ON p.run_uuid = r.run_uuid AND p.key = '{PARENT_TAG}' AND p.value = ?
JOIN tags k ON k.run_uuid = r.run_uuid AND k.key = '{KIND_TAG}'
WHERE r.end_time IS NOT NULL AND k.value IN ('automl', 'sweep')
"""


def last_local_run(spec_sha256: str) -> LocalRun | None:
    """The latest finished local submit (or pipeline run) of exactly this spec (same hash, same --set), if any."""
    store = capc_home() / "mlflow.db"
    if not store.is_file():
        return None
    try:
        with closing(sqlite3.connect(f"{store.as_uri()}?mode=ro", uri=True, timeout=0.2)) as db:
            row = db.execute(LAST_SUBMIT, (spec_sha256,)).fetchone()
            if row is None:
                return None
            run_id, start, end, mlflow_status, status = row
            jobs = {kind: (child_end - child_start) / 1000 for kind, child_start, child_end in db.execute(CHILDREN, (run_id,))}
    except sqlite3.Error:
        return None
    return LocalRun(run_id, start / 1000, (end - start) / 1000, status or str(mlflow_status).lower(), jobs)
