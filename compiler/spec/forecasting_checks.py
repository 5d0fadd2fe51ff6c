"""Stage 2, validate (forecasting): the semantic checks of `task: forecasting` and its `forecasting:` block.

The schema gives the block's shape; these checks need more than one field or a look at the data: the block goes
with task forecasting only, validation rolls forward over dataset.cross_validations folds, the time and id columns
are columns of the table, the time column parses as dates, the frequency is one pandas can read, and the folds fit
the shortest series. capc.spec.validate registers FORECASTING_CHECKS among its own; Azure's submit-time rules of
the block are in capc.spec.service_rules.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from capc import azure_names
from capc.data_location import is_remote
from capc.spec.hints import did_you_mean

if TYPE_CHECKING:
    from capc.spec.validate import CheckContext

TASK = "forecasting"
BLOCK = "forecasting"
AUTO = "auto"
# Shown when a problem names a series: more would bury the message.
SHOWN_SERIES = 3


def id_columns(block: dict) -> list[str]:
    """time_series_id_column_names as a list (Azure takes one name or a list)."""
    ids = block.get("time_series_id_column_names") or []
    return [ids] if isinstance(ids, str) else list(ids)


def step_size(block: dict) -> int:
    """Periods between two fold origins: cv_step_size, `auto` (or left out) meaning the horizon."""
    step = block.get("cv_step_size", AUTO)
    return block["forecast_horizon"] if step == AUTO else step


def first_training_periods(block: dict) -> int:
    """The fewest periods a series trains on before its first fold's origin: capc.forecasting.min_training_length,
    written again here so validation does not import pandas (a test holds the two equal)."""
    return block["forecast_horizon"] + 2


def periods_needed(block: dict, folds: int) -> int:
    """The fewest periods a series needs for `folds` rolling-origin folds: the last fold validates on the final
    horizon, each earlier origin lies cv_step_size periods before the next, and the first still trains on
    first_training_periods."""
    return block["forecast_horizon"] + (folds - 1) * step_size(block) + first_training_periods(block)


def block_fits_task(ctx: CheckContext) -> None:
    """The forecasting block is required for task forecasting and refused for the others."""
    task, given = ctx.data["task"], BLOCK in ctx.loaded.data
    if task == TASK and not given:
        ctx.report(("task",), "task forecasting needs a `forecasting:` block",
                   "give at least forecasting.time_column_name and forecasting.forecast_horizon")
    elif task != TASK and given and task in azure_names.AUTOML_METRICS:  # an unknown task is the schema's to report
        ctx.report(("forecasting",), f"`forecasting:` settings go with task forecasting, not {task}",
                   "remove the block, or set `task: forecasting`")


def validation_rolls_forward(ctx: CheckContext) -> None:
    """Forecasting validates on rolling-origin folds, never on a shuffled share of the rows."""
    if ctx.data["task"] != TASK:
        return
    dataset = ctx.loaded.data["dataset"]
    if "validation_fraction" in dataset:
        ctx.report(("dataset", "validation_fraction"), "forecasting validates on rolling-origin folds, not on a share of the rows",
                   "use cross_validations: N (each fold validates on the horizon after its origin)")
    elif "cross_validations" not in dataset:
        ctx.report(("dataset",), "forecasting needs `cross_validations`: the number of rolling-origin folds",
                   "e.g. cross_validations: 3")


def frequency_is_readable(ctx: CheckContext) -> None:
    """A frequency must be a pandas offset alias (D, W-SUN, MS, QS, h ...)."""
    block = ctx.data.get(BLOCK)
    if not isinstance(block, dict) or not isinstance(block.get("frequency"), str):
        return
    problem = unreadable_frequency(block["frequency"])
    if problem:
        ctx.report((BLOCK, "frequency"), problem, "use a pandas offset alias such as D, W-SUN, MS, QS or h")


# Offset aliases pandas reads, matched without importing pandas (a test feeds every form to pandas); any other
# text is pandas' to judge.
_MONTHS = "JAN|FEB|MAR|APR|MAY|JUN|JUL|AUG|SEP|OCT|NOV|DEC"
COMMON_FREQUENCY = re.compile(
    rf"^([1-9][0-9]*)?(D|B|h|min|s|ms|us|ns|W(-(MON|TUE|WED|THU|FRI|SAT|SUN))?|MS|ME|SMS|SME|BMS|BME|(QS|QE|BQS|BQE|YS|YE|BYS|BYE)(-({_MONTHS}))?)$")


def unreadable_frequency(alias: str) -> str | None:
    """Why pandas cannot read `alias` as a frequency (None: it can), in pandas' own words where it has some."""
    if COMMON_FREQUENCY.match(alias):
        return None
    import warnings

    from pandas.tseries.frequencies import to_offset

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # deprecated aliases still read
            to_offset(alias)
    except ValueError as exc:
        said = re.search(r"error message: \w+\([\"'](.*)[\"']\)$", str(exc))
        reason = said.group(1) if said and "Invalid frequency" not in said.group(1) else None
        return f"`{alias}` is not a frequency pandas can read" + (f": {reason}" if reason else "")
    return None


def columns_fit_data(ctx: CheckContext) -> None:
    """The time and id columns are columns of the table, other than the target, and kept (not dropped)."""
    block, dataset = ctx.data.get(BLOCK), ctx.data["dataset"]
    if ctx.data["task"] != TASK or not isinstance(block, dict) or "time_column_name" not in block:
        return
    header = _header(ctx)
    named = [((BLOCK, "time_column_name"), block["time_column_name"])]
    ids = block.get("time_series_id_column_names")
    named += [((BLOCK, "time_series_id_column_names"), ids)] if isinstance(ids, str) else [
        ((BLOCK, "time_series_id_column_names", i), name) for i, name in enumerate(ids or [])]
    for where, column in named:
        if header is not None and column not in header:
            ctx.report(where, f"column `{column}` is not in {Path(dataset['path']).name}", did_you_mean(column, header))
        elif column == dataset.get("target"):
            ctx.report(where, f"`{column}` is the target; it cannot also be the {_role(where)}")
        elif column in dataset["drop"]:
            ctx.report(where, f"`{column}` is in dataset.drop; the {_role(where)} must be kept", "remove it from dataset.drop")
    if block["time_column_name"] in id_columns(block):
        ctx.report((BLOCK, "time_series_id_column_names"), f"`{block['time_column_name']}` is the time column; it cannot also tell series apart")


def _role(where: tuple) -> str:
    return "time column" if where[1] == "time_column_name" else "series id column"


def _header(ctx: CheckContext) -> list[str] | None:
    """The table's columns, or None when the data is remote or unreadable (dataset_is_readable says why)."""
    from capc.spec.validate import read_header

    dataset = ctx.data["dataset"]
    path = ctx.spec_dir / dataset["path"]
    if is_remote(dataset["path"]) or not path.is_file():
        return None
    try:
        return read_header(path, dataset["format"])
    except (OSError, ValueError, UnicodeDecodeError):
        return None


@dataclass(frozen=True)
class SeriesLengths:
    """What the data says about the series: where the time column holds something that is not a date, and the
    number of distinct periods of each series."""

    bad_time: tuple[str, str] | None  # ("line 7" of a csv or "row 6" of a parquet file, the value)
    lengths: dict[tuple, int]


def read_series_lengths(path: Path, fmt: str, time_column: str, ids: list[str]) -> SeriesLengths:
    """Only the time and id columns are read; a series' length counts distinct timestamps (Azure aggregates or
    refuses duplicates, capc.forecasting the same). Empty time cells are missing values, not wrong ones.

    A csv of ISO 8601 times (most data) is read with the standard library: `capc plan` and `validate` do not pay
    for importing pandas; any other file or time form goes through pandas' own parser."""
    if fmt == "csv":
        found = _iso_csv_series_lengths(path, time_column, ids)
        if found is not None:
            return found
    return _pandas_series_lengths(path, fmt, time_column, ids)


def _iso_csv_series_lengths(path: Path, time_column: str, ids: list[str]) -> SeriesLengths | None:
    """None when a time cell is not ISO 8601 text (pandas then decides)."""
    import csv
    from datetime import datetime

    periods: dict[tuple, set] = {}
    numbers = filled = 0
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        header = next(reader)
        at, id_at = header.index(time_column), [header.index(c) for c in ids]
        for row in reader:
            cell = row[at].strip() if at < len(row) else ""
            if not cell:
                continue
            filled += 1
            numbers += _is_number(cell)
            try:
                moment = datetime.fromisoformat(cell)
            except ValueError:
                if not _is_number(cell):
                    return None
                continue
            periods.setdefault(tuple(row[i] if i < len(row) else "" for i in id_at), set()).add(moment)
    if filled and numbers == filled:
        return SeriesLengths(("every line", "a number"), {})  # see _pandas_series_lengths
    if numbers:
        return None
    return SeriesLengths(None, {key: len(times) for key, times in sorted(periods.items())})


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _pandas_series_lengths(path: Path, fmt: str, time_column: str, ids: list[str]) -> SeriesLengths:
    import warnings

    import pandas as pd

    columns = [time_column, *ids]
    if fmt == "parquet":
        frame = pd.read_parquet(path, columns=columns)
    else:
        frame = pd.read_csv(path, usecols=columns, dtype=str, keep_default_na=False)
    times = frame[time_column]
    if not pd.api.types.is_datetime64_any_dtype(times):
        text = times.astype(str).str.strip()
        if pd.to_numeric(text[text != ""], errors="coerce").notna().all():
            # pandas reads such a column as numbers, and capc.forecasting refuses numbers for time (2001 is no date)
            return SeriesLengths(("every line" if fmt == "csv" else "every row", "a number"), {})
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pandas warns of forms it still reads (2024Q1)
            times = pd.to_datetime(text, errors="coerce", format="mixed")
        bad = (times.isna() & (text != "")).to_numpy().nonzero()[0]
        if len(bad):
            where = f"line {bad[0] + 2}" if fmt == "csv" else f"row {bad[0] + 1}"  # a csv's line 1 is its header
            return SeriesLengths((where, str(frame[time_column].iloc[bad[0]])), {})
    frame = frame.assign(**{time_column: times}).dropna(subset=[time_column])
    if not ids:
        return SeriesLengths(None, {(): int(frame[time_column].nunique())})
    counts = frame.groupby(ids, sort=True)[time_column].nunique()
    return SeriesLengths(None, {key if isinstance(key, tuple) else (key,): int(n) for key, n in counts.items()})


def data_fits_folds(ctx: CheckContext) -> None:
    """The time column parses as dates, and the rolling-origin folds fit the series."""
    block, dataset = ctx.data.get(BLOCK), ctx.data["dataset"]
    if ctx.data["task"] != TASK or not isinstance(block, dict) or not isinstance(block.get("forecast_horizon"), int):
        return
    header = _header(ctx)
    columns = [block.get("time_column_name"), *id_columns(block)]
    kept = [c for c in header or () if c != dataset.get("target") and c not in dataset["drop"]]
    if not all(isinstance(c, str) and c in kept for c in columns):
        return  # remote or unreadable data, or a column columns_fit_data reports
    path = ctx.spec_dir / dataset["path"]
    try:
        found = read_series_lengths(path, dataset["format"], columns[0], columns[1:])
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        ctx.report(("dataset", "path"), f"cannot read the time column of `{dataset['path']}`: {exc}")
        return
    if found.bad_time:
        where, value = found.bad_time
        holds = value if value == "a number" else f"`{value}`"
        ctx.report((BLOCK, "time_column_name"), f"`{columns[0]}` is not a date or time column: {where} of {path.name} holds {holds}",
                   "every value must parse as a date (2024-01-31, 2024-01-31 12:00, 2024Q1 ...)")
        return
    folds = dataset.get("cross_validations")
    if isinstance(folds, int):
        _folds_fit(ctx, block, folds, found.lengths)


def _folds_fit(ctx: CheckContext, block: dict, folds: int, lengths: dict[tuple, int]) -> None:
    """periods_needed in the shortest series; with short-series handling (auto, pad, drop)
    Azure pads or drops the short ones, so then only the longest must fit (and the rest are a warning)."""
    if not lengths:
        return
    needed = periods_needed(block, folds)
    short = {key: n for key, n in sorted(lengths.items()) if n < needed}
    handling = block.get("short_series_handling_config", AUTO)
    if not short:
        return
    how = (f"{folds} folds of forecast_horizon {block['forecast_horizon']}, cv_step_size {step_size(block)} apart, after "
           f"{first_training_periods(block)} training periods need {needed}")
    named = ", ".join(_series_name(key, n) for key, n in list(short.items())[:SHOWN_SERIES])
    more = f" and {len(short) - SHOWN_SERIES} more" if len(short) > SHOWN_SERIES else ""
    fix = "lower dataset.cross_validations, forecasting.cv_step_size or forecasting.forecast_horizon"
    if handling == "none" or len(short) == len(lengths):
        ctx.report(("dataset", "cross_validations"), f"the folds do not fit the series: {how}, but {named}{more}", fix)
    else:
        from capc.spec.schema_errors import problem_at

        where = (BLOCK, "short_series_handling_config") if "short_series_handling_config" in block else (BLOCK,)
        message = f"{named}{more}, fewer than the folds need ({how}): short_series_handling_config {handling} pads or drops {'it' if len(short) == 1 else 'them'}"
        ctx.warnings.append(problem_at(ctx.loaded, where, message, fix, key_mark=where == (BLOCK,)))


def _series_name(key: tuple, periods: int) -> str:
    return f"the series has {periods}" if not key else f"series {'/'.join(map(str, key))} has {periods}"


FORECASTING_CHECKS: tuple[Callable[[CheckContext], None], ...] = (
    block_fits_task, validation_rolls_forward, frequency_is_readable, columns_fit_data, data_fits_folds,
)
