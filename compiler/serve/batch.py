"""Backend, local batch scoring: `capc predict` - a CSV file of any size through the endpoint's own score.py.

The generated score.py is loaded into this process the way azmlinfsrv loads it (AZUREML_MODEL_DIR set as the
local endpoint sets it, the job folder on sys.path), init() runs once, and run() takes each chunk of rows as the
`{"input_data": {"columns": [...], "data": [[...]]}}` body the server would hand it. So every row gets the answer
the endpoint gives it, with no HTTP, body limit or request timeout in between.

Memory holds one chunk: the input's records are read as raw bytes (a quoted newline stays inside its record),
parsed by pandas for scoring, and written out again as they were, each followed by the added cells, to a temp file
beside OUT, which replaces OUT (os.replace) only once every chunk scored. A failure leaves any previous OUT as it was.

Output: each input line exactly as it was (`4.858`, `4.80`, `1e3`, empty cells and quoting untouched), then
`prediction` (label or value), then `probability_<class>` per class when score.py answers with probabilities (the
spec's deployment.probabilities). Lines end as the input's header line ends.
"""

from __future__ import annotations

import io
import itertools
import json
import math
import os
import re
import tempfile
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterator

from capc import serving_cost
from capc.artifacts import output_mode
from capc.azure_names import IMAGE_TASK
from capc.errors import CapcError
from capc.serve.drift import DRIFT_HEADERS, counts_of
from capc.serve.endpoints import azureml_model_dir
from capc.serve.inference_server import ENTRY_SCRIPT

DEFAULT_CHUNK_ROWS = 10_000
PREDICTION_COLUMN = "prediction"
PROBABILITY_PREFIX = "probability_"
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")  # as score.py names them
NUMBER_KINDS = ("integer", "number")  # score.py's FEATURES kinds that JSON carries as numbers
# score.py names a bad cell by its row in the request; the file's row is the chunk's first row plus that.
REQUEST_ROW = re.compile(r"\brow (\d+)\b")

Progress = Callable[[int, int, int], None]  # (bytes read, total bytes, rows scored)


@dataclass(frozen=True)
class BatchResult:
    model: str
    input: str
    output: str
    rows: int
    chunks: int
    chunk_rows: int
    added_columns: list[str]
    seconds: float
    # Rows per text column holding a value the model never saw in training (score.py's x-capc-unseen-categories).
    unseen_categories: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)

    def summary(self) -> str:
        text = (
            f"scored {self.rows} rows of {self.input} with {self.model} in {self.chunks} chunk(s) of up to "
            f"{self.chunk_rows} rows ({self.seconds:.1f}s): {self.output} (added: {', '.join(self.added_columns)})"
        )
        if self.unseen_categories:
            counts = ", ".join(f"{column} {rows:,}" for column, rows in sorted(self.unseen_categories.items()))
            text += f"\nrows with a category the model never saw in training: {counts}"
        return text


def score_csv(
    model_dir: Path,
    job_dir: Path,
    input_path: Path,
    output_path: Path,
    *,
    chunk_rows: int | None = None,
    model_ref: str | None = None,
    task: str | None = None,
    progress: Progress | None = None,
) -> BatchResult:
    """Score every row of `input_path` with the model and its job folder's score.py; write `output_path` atomically."""
    input_path, output_path = Path(input_path), Path(output_path)
    chunk_rows = chunk_rows or DEFAULT_CHUNK_ROWS
    model_ref = model_ref or Path(model_dir).name
    if chunk_rows < 1:
        raise CapcError(f"--chunk-rows must be at least 1, got {chunk_rows}.")
    if task == IMAGE_TASK:
        raise CapcError(
            f"`{model_ref}` classifies images; `capc predict` scores the rows of a CSV file.",
            "send images to its endpoint one by one with `capc invoke NAME --data IMAGE`",
        )
    _check_paths(input_path, output_path)
    header = _read_header(input_path)
    started = time.perf_counter()
    rows = chunks = 0
    with loaded_scoring_script(Path(job_dir), Path(model_dir)) as script:
        _check_columns(header, script, input_path)
        added: list[str] = []
        with _replaced_atomically(output_path) as out, open(input_path, "rb") as source:
            total = os.fstat(source.fileno()).st_size
            if progress:
                progress(0, total, 0)  # the model is loaded: reading starts
            text_columns = script.text_columns(header)
            header_line = _next_record(source)
            ending = b"\r\n" if header_line.endswith(b"\r\n") else b"\n"
            parsed = ((records, _parsed(header_line, records, input_path, text_columns)) for records in _record_chunks(source, chunk_rows))
            for records, chunk in _read_ahead(parsed):
                scored = script.score(chunk, first_row=rows + 1, input_path=input_path)
                if chunks == 0:
                    added = list(scored)
                    _check_no_clash(header, added, input_path)
                    out.write(_with_cells(header_line, ",".join(map(_csv_cell, added)), ending))
                out.write(b"".join(map(_with_cells, records, _added_cells([scored[c] for c in added]), itertools.repeat(ending))))
                rows += len(chunk)
                chunks += 1
                if progress:
                    progress(source.tell(), total, rows)
            if not chunks:
                raise _no_rows(input_path)
            if progress:
                progress(total, total, rows)
    return BatchResult(
        model=model_ref, input=str(input_path), output=str(output_path), rows=rows, chunks=chunks,
        chunk_rows=chunk_rows, added_columns=added, seconds=round(time.perf_counter() - started, 3),
        unseen_categories=dict(script.unseen_categories),
    )


# ---------------------------------------------------------------------------------------------- the input file


def _check_paths(input_path: Path, output_path: Path) -> None:
    if not input_path.is_file():
        what = "is a folder" if input_path.is_dir() else "does not exist"
        raise CapcError(f"input file {input_path} {what}.", "pass a CSV file with a header row: --input FILE.csv")
    if output_path.is_dir():
        raise CapcError(f"--output {output_path} is a folder.", "name the CSV file to write, e.g. --output predictions.csv")
    if output_path.exists() and output_path.resolve() == input_path.resolve():
        raise CapcError(f"--output {output_path} is the input file.", "write the predictions to another file")


def _read_header(input_path: Path) -> list[str]:
    """The column names, once the file proved to hold a header and a row (before the model takes seconds to load)."""
    import pandas as pd

    try:
        first = pd.read_csv(input_path, nrows=1)
    except pd.errors.EmptyDataError:
        raise CapcError(f"{input_path} is empty: no header row, no rows.", "a CSV file with a header row, then one row per prediction") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise CapcError(f"cannot read {input_path}: {exc}") from None
    if first.empty:
        raise _no_rows(input_path)
    return [str(c) for c in first.columns]


def _no_rows(input_path: Path) -> CapcError:
    return CapcError(f"{input_path} has a header but no rows to score.")


def _check_columns(header: list[str], script: "ScoringScript", input_path: Path) -> None:
    if script.features is None:
        return
    missing = [name for name in script.features if name not in header]
    if missing:
        shown = ", ".join(f"`{name}`" for name in missing[:10]) + (", ..." if len(missing) > 10 else "")
        noun = "column" if len(missing) == 1 else f"{len(missing)} columns"
        raise CapcError(
            f"{input_path} has no {noun} {shown}, which the model needs.",
            f"the model takes {len(script.features)} columns: {', '.join(script.features[:30])}{', ...' if len(script.features) > 30 else ''}",
        )


def _check_no_clash(header: list[str], added: list[str], input_path: Path) -> None:
    clash = [name for name in added if name in header]
    if clash:
        raise CapcError(
            f"{input_path} already has a column `{clash[0]}`, which `capc predict` writes.",
            "rename or drop that column first (is the input an earlier output?)",
        )


def _next_record(source) -> bytes:
    """One CSV record as raw bytes, line ending kept: lines are joined while a quoted field is still open."""
    record = source.readline()
    while record.count(b'"') % 2 and (more := source.readline()):
        record += more
    return record


def _record_chunks(source, chunk_rows: int) -> Iterator[list[bytes]]:
    """Lists of up to chunk_rows raw records; blank lines are dropped, as pandas skips them."""
    while True:
        lines = list(itertools.islice(source, chunk_rows))
        if not lines:
            return
        if b'"' in b"".join(lines):  # a quoted field may hold a line break: join its lines into one record
            lines = _joined_records(lines, source)
        records = [line for line in lines if line.strip(b"\r\n")]
        if records:
            yield records


def _joined_records(lines: list[bytes], source) -> list[bytes]:
    records, open_record = [], b""
    for line in lines:
        open_record += line
        if open_record.count(b'"') % 2 == 0:
            records.append(open_record)
            open_record = b""
    while open_record and open_record.count(b'"') % 2 and (more := source.readline()):
        open_record += more  # the chunk ended inside a quoted field: finish that record
    if open_record:
        records.append(open_record)
    return records


def _read_ahead(items: Iterator) -> Iterator:
    """The items of an iterator, the next one read in a thread while the caller works on this one.

    Reading and parsing a chunk (pandas' tokenizer) and scoring one (LightGBM, numpy) run largely outside the GIL,
    so they overlap on two or more cores."""
    from concurrent.futures import ThreadPoolExecutor

    done = object()
    with ThreadPoolExecutor(1, thread_name_prefix="capc-predict-read") as reader:
        pending = reader.submit(next, items, done)
        while (item := pending.result()) is not done:
            pending = reader.submit(next, items, done)
            yield item


def _parsed(header_line: bytes, records: list[bytes], input_path: Path, text_columns: list[str]):
    """A chunk's records as a DataFrame, one row per record. Text columns stay text, as training read them."""
    import pandas as pd

    try:
        # round_trip: each number exactly as Python's float() (the endpoint's JSON parser) reads its digits.
        chunk = pd.read_csv(
            io.BytesIO(header_line + b"".join(records)), dtype={name: str for name in text_columns},
            float_precision="round_trip", skip_blank_lines=False,
        )
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
        raise CapcError(f"cannot read {input_path}: {exc}", "every row needs the header's columns, comma-separated") from None
    if len(chunk) != len(records):  # e.g. a stray carriage return read as a line break
        raise CapcError(f"cannot read {input_path}: {len(records)} lines read as {len(chunk)} rows.", "end every row with a line break (\\n or \\r\\n)")
    return chunk


# ---------------------------------------------------------------------------------------------- the output file


@contextmanager
def _replaced_atomically(output_path: Path):
    """A binary file beside output_path that becomes output_path on success; removed, with OUT untouched, on failure."""
    folder = output_path.parent if str(output_path.parent) else Path(".")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        handle = tempfile.NamedTemporaryFile("wb", dir=folder, prefix=f".{output_path.name}.", suffix=".partial", delete=False)
    except OSError as exc:
        raise CapcError(f"cannot write {output_path}: {exc.strerror or exc}") from None
    temp = Path(handle.name)
    try:
        with handle:
            yield handle
            handle.flush()
            os.fchmod(handle.fileno(), output_mode())  # the temp file's 0600 would survive the rename
            os.fsync(handle.fileno())
        os.replace(temp, output_path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def _with_cells(record: bytes, cells: str, ending: bytes) -> bytes:
    """The input record as it was, then the added cells."""
    return record.rstrip(b"\r\n") + b"," + cells.encode() + ending


def _added_cells(columns: list[list]) -> Iterator[str]:
    """Each row's added cells as CSV text: numbers as Python writes them (shortest round trip), None empty."""
    return map(",".join, zip(*map(_csv_column, columns)))


def _csv_column(values: list) -> list[str]:
    types = set(map(type, values))
    if types == {float} and not any(map(math.isnan, values)):  # probabilities, regression values: no gaps
        return list(map(repr, values))
    if types <= {str, int, bool, type(None)}:  # labels: few distinct ones, each written once
        cells = {value: _csv_cell(value) for value in set(values)}
        return list(map(cells.__getitem__, values))
    return list(map(_csv_cell, values))


def _csv_cell(value) -> str:
    if value is None:
        return ""
    if type(value) is float:
        return repr(value) if value == value else ""
    text = str(value)
    if any(mark in text for mark in ',"\r\n'):  # the csv module's minimal quoting
        return '"' + text.replace('"', '""') + '"'
    return text


# ---------------------------------------------------------------------------------------------- score.py in-process


class ScoringScript:
    """A job folder's score.py after init(): run() per chunk, as azmlinfsrv calls it (keyword arguments of the body)."""

    def __init__(self, module, path: Path):
        self.module = module
        self.path = path
        kinds = getattr(module, "FEATURES", None)
        self.kinds = dict((name, kind) for name, kind in kinds) if kinds is not None else None
        self.probability_classes: list[str] | None = None
        self.unseen_categories: dict[str, int] = {}  # summed over the chunks' answers

    @property
    def features(self) -> list[str] | None:
        """The columns the model takes, in training order; None when score.py does not know them."""
        return list(self.kinds) if self.kinds is not None else None

    def text_columns(self, header: list[str]) -> list[str]:
        return [name for name, kind in (self.kinds or {}).items() if kind == "string" and name in header]

    def score(self, chunk, *, first_row: int, input_path: Path) -> dict[str, list]:
        """One chunk -> {output column: values}; any answer but a 200 is a CapcError naming the file's rows."""
        columns = self.features if self.features is not None else [str(c) for c in chunk.columns]
        values = [_json_values(chunk[name], (self.kinds or {}).get(name)) for name in columns]
        body = {"columns": columns, "data": list(map(list, zip(*values)))}
        where = f"rows {first_row}-{first_row + len(chunk) - 1} of {input_path}"
        try:
            reply = self.module.run(input_data=body)
        except Exception as exc:  # a score.py that raises; the server would answer 500
            raise CapcError(f"{self.path.name} failed on {where}: {type(exc).__name__}: {exc}") from None
        status = getattr(reply, "status_code", 200)
        if status != 200:
            text = _renumbered(_error_text(reply), first_row).rstrip()
            raise CapcError(f"{where}: {text}{'' if text.endswith('.') else '.'}", f"the endpoint answers these rows with HTTP {status} too")
        return self._columns(reply, len(chunk), where)

    def _columns(self, reply, rows: int, where: str) -> dict[str, list]:
        if hasattr(reply, "get_data"):  # an answer with headers (score.py's input-drift counts): its JSON body
            for column, count in counts_of(", ".join(reply.headers.getlist(DRIFT_HEADERS["unseen_categories"]))).items():
                self.unseen_categories[column] = self.unseen_categories.get(column, 0) + count
            reply = reply.get_data(as_text=True)
        if isinstance(reply, str):  # a score.py that answers JSON text, as the server would send it
            reply = json.loads(reply)
        result = reply.get("result") if isinstance(reply, dict) else None
        if not isinstance(result, list) or len(result) != rows:
            raise CapcError(f"{self.path.name} answered {where} without one result per row.", "its run() must return {\"result\": [...]}")
        out = {PREDICTION_COLUMN: result}
        probabilities = reply.get("probabilities")
        if isinstance(probabilities, list) and len(probabilities) == rows:
            if self.probability_classes is None:  # fixed by the first chunk: every chunk writes the same columns
                self.probability_classes = list(probabilities[0]) if probabilities else []
            for name in self.probability_classes:
                out[PROBABILITY_PREFIX + name] = [p.get(name) for p in probabilities]
        return out


@contextmanager
def loaded_scoring_script(job_dir: Path, model_dir: Path):
    """job_dir/score.py imported and init()-ed against model_dir (serving_cost's loader, the one the selection
    measures candidates with); the environment and sys.path restored afterwards."""
    script = job_dir / ENTRY_SCRIPT
    if not script.is_file():
        raise CapcError(f"no {ENTRY_SCRIPT} in {job_dir}, the job folder the model was trained from.", "run `capc build SPEC` to generate it again")
    if not model_dir.is_dir():
        raise CapcError(f"model folder {model_dir} does not exist.")
    # score.py pins one thread per request for the endpoint's workers; a batch is one worker with big requests,
    # so the model's thread pools take every core this process may use (LightGBM scores each row alone: same answers).
    threads = {variable: str(len(os.sched_getaffinity(0))) for variable in THREAD_VARIABLES}
    try:
        with serving_cost.loaded_score_module(str(script), str(azureml_model_dir(model_dir.absolute())), str(job_dir.absolute()),
                                              environment=threads) as (module, _):
            yield ScoringScript(module, script)
    except serving_cost.MeasureError as exc:
        hint = "the endpoint would not start either; fix score.py or the model" if "init()" in str(exc) else "run `capc build SPEC` to generate it again"
        raise CapcError(str(exc), hint) from None


def _json_values(series, kind: str | None) -> list:
    """A column as the JSON values a client sends for those cells: plain Python scalars, missing cells as null.

    pandas types a column per chunk: one bad cell turns a number column's whole chunk into text. Each cell of a
    number column is read on its own, so the good ones stay numbers and score.py names the bad one.
    """
    import pandas as pd

    values = series.tolist()
    if kind in NUMBER_KINDS and not pd.api.types.is_numeric_dtype(series):
        values = [_number(value) for value in values]
    if not series.hasnans:
        return values
    missing = series.isna().tolist()
    return [None if gap else value for value, gap in zip(values, missing)]


def _number(text):
    if not isinstance(text, str) or "_" in text:  # Python reads 1_000 as a number; CSV readers do not
        return text
    for parse in (int, float):
        try:
            return parse(text)
        except ValueError:
            pass
    return text


def _error_text(reply) -> str:
    data = reply.get_data(as_text=True) if hasattr(reply, "get_data") else str(reply)
    try:
        body = json.loads(data)
    except ValueError:
        return data
    return str(body.get("message") or body.get("error") or data) if isinstance(body, dict) else data


def _renumbered(message: str, first_row: int) -> str:
    """score.py's request row numbers (from 0) as the file's data rows (from 1, the header not counted)."""
    return REQUEST_ROW.sub(lambda m: f"row {first_row + int(m.group(1))}", message)


# ---------------------------------------------------------------------------------------------- the live display


class BatchProgress:
    """`capc predict`'s progress bar on stderr: bytes of the input read, rows scored, time left (off when piped)."""

    def __init__(self, input_path: Path, console=None):
        from rich.console import Console
        from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        self.console = console or Console(stderr=True)
        self.progress = Progress(
            TextColumn("[bold]predict[/] {task.description}"),
            BarColumn(bar_width=28),
            DownloadColumn(),
            TextColumn("{task.fields[rows]} rows"),
            TimeElapsedColumn(),
            TextColumn("left"),
            TimeRemainingColumn(),
            console=self.console,
            transient=False,
            disable=not self.console.is_terminal and not self.console.is_jupyter,
        )
        self.label = Path(input_path).name
        self.task = self.progress.add_task("(loading the model)", total=None, rows=0)

    def __enter__(self) -> "BatchProgress":
        self.progress.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.progress.__exit__(*exc)

    def __call__(self, bytes_read: int, total_bytes: int, rows: int) -> None:
        self.progress.update(self.task, description=self.label, completed=bytes_read, total=total_bytes, rows=f"{rows:,}")
