"""Write statsmodels' bundled US macro data (macrodata, public domain) as the forecasting reference spec's data.

Long format `quarter,series,value`: one row per quarter and series, `quarter` the first day of the quarter
(1959-01-01 .. 2009-07-01, frequency QS). macro_train.csv holds every series except its last HELD_BACK quarters (3
forecast horizons of 4), which the bench and the tests rebuild from statsmodels with `full_series()` to score
forecasts on; no network is needed.

    python specs/data/macro/make_macro.py
"""

from __future__ import annotations

from pathlib import Path

# The level series: real activity, prices, money and population, all trending and seasonally adjusted. The rate
# columns (tbilrate, unemp, infl, realint) are left out: they are not levels, and realint and infl are computed from
# cpi and tbilrate, so they would add no series of their own.
SERIES = ("realgdp", "realcons", "realinv", "realgovt", "realdpi", "cpi", "m1", "pop")
HORIZON = 4
HELD_BACK = 3 * HORIZON
TRAIN_CSV = Path(__file__).with_name("macro_train.csv")


def full_series():
    """Every quarter of every series, long format, sorted by series then quarter."""
    import pandas as pd
    from statsmodels.datasets import macrodata

    wide = macrodata.load_pandas().data
    quarters = pd.PeriodIndex.from_fields(year=wide["year"].astype(int), quarter=wide["quarter"].astype(int), freq="Q")
    wide = wide.assign(quarter=quarters.start_time)
    long = wide.melt(id_vars="quarter", value_vars=list(SERIES), var_name="series", value_name="value")
    return long.sort_values(["series", "quarter"], kind="stable").reset_index(drop=True)


def training_rows(full, held_back: int = HELD_BACK):
    """Each series without its last `held_back` quarters."""
    last = full["quarter"].sort_values().unique()[-held_back]
    return full[full["quarter"] < last].reset_index(drop=True)


def main() -> None:
    train = training_rows(full_series())
    text = train.to_csv(index=False, date_format="%Y-%m-%d", float_format="%.3f")
    partial = TRAIN_CSV.with_suffix(".csv.partial")
    partial.write_text(text)
    partial.replace(TRAIN_CSV)
    print(f"{TRAIN_CSV.name}: {len(train)} rows, {train['series'].nunique()} series, "
          f"{train['quarter'].min():%Y-%m-%d} .. {train['quarter'].max():%Y-%m-%d}")


if __name__ == "__main__":
    main()
