"""Bench helper: a reference CSV grown to any number of rows (resampled rows, small numeric jitter), written at
bench time into a folder the caller owns (a temp folder; never committed).

    python bench/grown_data.py specs/data/bankmarketing/bankmarketing_train.csv 1000000 /tmp/bank-1m.csv

Each output row is a source row drawn with replacement; number columns move by a little noise (integers by at most
+-2% of their spread, rounded back to integers; decimals by 1% of their spread, rounded to the decimals the source
column shows), so rows are not exact copies and the file keeps the source's spellings (`4.858`, not
`4.8580000000000005`). The label and text columns are copied as they are.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

JITTER = 0.01  # share of a column's standard deviation


def decimals(text_values: pd.Series) -> int:
    """How many digits after the point the column's values show at most (4.858 -> 3)."""
    fractions = text_values.dropna().astype(str).str.partition(".")[2]
    return int(fractions.str.len().max() or 0)


def grow(source: Path, rows: int, out: Path, *, target: str | None = None, seed: int = 0, block: int = 200_000) -> Path:
    """Write `rows` resampled, jittered rows of `source` to `out` (in blocks: memory holds one block)."""
    text = pd.read_csv(source, dtype=str, keep_default_na=False)
    frame = pd.read_csv(source)
    rng = np.random.default_rng(seed)
    numbers = [c for c in frame.columns if c != target and pd.api.types.is_numeric_dtype(frame[c])]
    places = {c: decimals(text[c]) for c in numbers}
    spread = {c: float(frame[c].std() or 0.0) for c in numbers}
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", encoding="utf-8", newline="") as handle:
        written = 0
        while written < rows:
            size = min(block, rows - written)
            part = frame.iloc[rng.integers(0, len(frame), size)].reset_index(drop=True)
            for c in numbers:
                noise = rng.normal(0.0, JITTER * spread[c], size)
                if pd.api.types.is_integer_dtype(frame[c]):
                    part[c] = (part[c] + np.round(noise * 2)).astype(frame[c].dtype)
                else:
                    part[c] = np.round(part[c] + noise, places[c])
            part.to_csv(handle, header=written == 0, index=False, lineterminator="\n")
            written += size
    return out


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    print(grow(Path(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3]), target="y"))
