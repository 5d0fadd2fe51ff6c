"""Backend, local batch forecasts: `capc predict` of a forecasting model - a horizon per series, through the endpoint's
own score.py (templates/score_forecast.py.j2), loaded in this process as azmlinfsrv loads it.

Which rows to forecast:
- `--horizon N`: the next N steps of every series, right after its last row in the job's training data (the history
  the model was fitted on; the frequency is the model's, else inferred from that data);
- `--input FILE.csv`: the rows of a file naming the time column and id columns (and any known feature). A row whose
  target column holds a value is context (recent actuals to forecast from), as "y_query" is in Azure's request.
The rows go to score.py's run() as the `{"Inputs": {"data": [...]}, "GlobalParameters": {"quantiles": [...]}}` body an
endpoint would be sent, so every forecast is the one the endpoint gives. The output CSV holds, per forecast row, the
time and id columns, `forecast`, and `q<quantile>` per asked quantile; it is written to a temp file and renamed.
"""

from __future__ import annotations

import csv
import io
import json
import re
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from capc import forecast_requests
from capc.artifacts import atomic_write_bytes, output_mode
from capc.errors import CapcError
from capc.jobfolder.data import mltable_source, read_frame
from capc.serve.batch import loaded_scoring_script

FORECAST_COLUMN = "forecast"
REQUEST_ROW = re.compile(r'"Inputs\.data"\[(\d+)\]')  # score.py names a row by its place in the request


@dataclass(frozen=True)
class ForecastResult:
    model: str
    source: str  # the input file, or "the next N steps of every series"
    output: str
    rows: int
    series: int
    quantiles: list[float]
    columns: list[str]
    seconds: float

    def to_dict(self) -> dict:
        return asdict(self)

    def summary(self) -> str:
        return (f"forecast {self.rows} rows of {self.series} series ({self.source}) with {self.model} in {self.seconds:.1f}s: "
                f"{self.output} (columns: {', '.join(self.columns)})")


def forecast_csv(model_dir: Path, job_dir: Path, output_path: Path, *, input_path: Path | None = None,
                 horizon: int | None = None, quantiles=(), model_ref: str | None = None) -> ForecastResult:
    """Forecast the rows of `input_path`, or `horizon` steps of every series; write `output_path` atomically."""
    if (input_path is None) == (horizon is None):
        raise CapcError("a forecast needs either --input FILE.csv (the rows to forecast) or --horizon N (steps after each series' history), not both.")
    if horizon is not None and horizon < 1:
        raise CapcError(f"--horizon must be at least 1, got {horizon}.")
    output_path = Path(output_path)
    if output_path.is_dir():
        raise CapcError(f"--output {output_path} is a folder.", "name the CSV file to write, e.g. --output forecast.csv")
    if input_path is not None and not Path(input_path).is_file():  # said before the model takes seconds to load
        raise CapcError(f"input file {input_path} {'is a folder' if Path(input_path).is_dir() else 'does not exist'}.",
                        "pass a CSV file of the rows to forecast: the time column and the id columns")
    started = time.perf_counter()
    with loaded_scoring_script(Path(job_dir), Path(model_dir)) as script:
        settings = getattr(script.module, "MODEL_SETTINGS", None)
        if not isinstance(settings, dict):
            raise CapcError(f"{script.path} is not a forecasting score.py.", "run `capc build SPEC` to generate it again")
        if horizon is not None:
            records = _horizon_records(Path(job_dir), settings, horizon)
            source = f"the next {horizon} step{'s' if horizon != 1 else ''} of every series"
        else:
            records = _file_records(Path(input_path), settings)
            source = str(input_path)
        body = forecast_requests.request_body(records, quantiles)
        results = _answer(script, body, source)
    table = _table(results, settings)
    atomic_write_bytes(output_path, table, mode=output_mode())
    index = results["index"]
    series = {tuple(row[name] for name in settings["series_ids"]) for row in index}
    return ForecastResult(
        model=model_ref or Path(model_dir).name, source=source, output=str(output_path), rows=len(index),
        series=len(series), quantiles=[float(q) for q in quantiles], columns=_header(settings, results),
        seconds=round(time.perf_counter() - started, 3),
    )


def parse_quantiles(text: str | None) -> list[float]:
    """`0.1,0.9` -> [0.1, 0.9]; each strictly between 0 and 1."""
    if not text:
        return []
    out = []
    for part in text.split(","):
        try:
            value = float(part)
        except ValueError:
            value = None
        if value is None or not 0 < value < 1:
            raise CapcError(f"--quantiles: {part.strip()!r} is not a number strictly between 0 and 1.", "e.g. --quantiles 0.1,0.5,0.9")
        out.append(value)
    return sorted(set(out))


def _horizon_records(job_dir: Path, settings: dict, horizon: int) -> list[dict]:
    data_file, fmt, drop = mltable_source(job_dir / "data")
    history = read_frame(data_file, fmt, drop)
    try:
        rows = forecast_requests.horizon_rows(history, settings["time_column"], settings["series_ids"], horizon, settings["frequency"])
    except forecast_requests.HorizonError as exc:
        raise CapcError(f"cannot find where the next horizon starts in {data_file}: {exc}.") from None
    return forecast_requests.request_records(rows, settings["time_column"])


def _file_records(input_path: Path, settings: dict) -> list[dict]:
    """The file's rows as request records: the time column as its text, empty cells null, numbers as numbers."""
    import pandas as pd

    try:
        frame = pd.read_csv(input_path, dtype={settings["time_column"]: str})
    except pd.errors.EmptyDataError:
        raise CapcError(f"{input_path} is empty: no header row, no rows.") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise CapcError(f"cannot read {input_path}: {exc}") from None
    if frame.empty:
        raise CapcError(f"{input_path} has a header but no rows to forecast.")
    missing = [name for name in (settings["time_column"], *settings["series_ids"]) if name not in frame.columns]
    if missing:
        raise CapcError(f"{input_path} has no column `{missing[0]}`, which the model needs.",
                        f"each row names {', '.join(f'`{c}`' for c in (settings['time_column'], *settings['series_ids']))}")
    frame = frame.astype(object).where(frame.notna(), None)
    return [{name: forecast_requests.plain_value(value) for name, value in row.items()} for row in frame.to_dict(orient="records")]


def _answer(script, body: dict, source: str) -> dict:
    try:
        reply = script.module.run(**body)
    except Exception as exc:  # a score.py that raises; the server would answer 500
        raise CapcError(f"{script.path.name} failed on {source}: {type(exc).__name__}: {exc}") from None
    status = getattr(reply, "status_code", 200)
    if status != 200:
        message = json.loads(reply.get_data(as_text=True)).get("message", "")
        message = REQUEST_ROW.sub(lambda m: f"row {int(m.group(1)) + 1}", message)  # the file's data rows count from 1
        raise CapcError(f"{source}: {message}", f"the endpoint answers these rows with HTTP {status} too")
    return reply["Results"]


def _header(settings: dict, results: dict) -> list[str]:
    keys = [settings["time_column"], *settings["series_ids"]]
    return keys + [FORECAST_COLUMN] + [f"q{q}" for q in results.get("quantiles", {})]


def _table(results: dict, settings: dict) -> bytes:
    header = _header(settings, results)
    columns = [results["forecast"], *results.get("quantiles", {}).values()]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    for i, index in enumerate(results["index"]):
        keys = [index[settings["time_column"]], *(index[name] for name in settings["series_ids"])]
        writer.writerow(keys + ["" if column[i] is None else repr(column[i]) for column in columns])
    return out.getvalue().encode("utf-8")
