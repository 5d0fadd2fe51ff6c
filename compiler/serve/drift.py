"""Backend, local endpoints: the input-drift headers the generated score.py answers with, read back.

score.py (templates/score.py.j2, self-contained: it runs on Azure too) counts, per column, the rows of a request with
a column the model does not take or a text value it never saw in training, and says so in two list headers,
`job=2, month=1` (names percent-encoded). The front end logs them with the request; `capc predict` sums them.
"""

from __future__ import annotations

from urllib.parse import unquote

# drift kind (as the request log names it) -> score.py's header
DRIFT_HEADERS = {"unknown_columns": "x-capc-unknown-columns", "unseen_categories": "x-capc-unseen-categories"}


def counts_of(header: str | None) -> dict[str, int]:
    """`job=2, month=1` -> {"job": 2, "month": 1}; items that do not parse are left out (never fail a request)."""
    counts: dict[str, int] = {}
    for item in (header or "").split(","):
        name, _, rows = item.strip().rpartition("=")
        if name and rows.isdigit():
            counts[unquote(name)] = counts.get(unquote(name), 0) + int(rows)
    return counts
