"""Job folder stage: an MLTable folder written by hand (an Azure ML `type: mltable` input) read into pandas as
Azure's `mltable.load(folder).to_pandas_dataframe()` reads it.

Taken: `paths` (file, folder, pattern; relative to the folder) and the transformations tabular jobs use:
read_delimited (delimiter, header, encoding, empty_as_string, include_path_column), read_parquet, drop_columns,
keep_columns, convert_column_types (int, float, string, boolean with true/false values, datetime with formats),
take, skip and take_random_sample. A path on Azure, or a transformation the local reader does not run (filter,
read_delta_lake, extract_columns_from_partition_format, ...), is a CapcError naming it: a table read differently
from Azure would train a different model without saying so.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from capc.errors import CapcError
from capc.data_location import is_remote

MLTABLE_FILE = "MLTable"
READERS = ("read_delimited", "read_parquet")
# Azure's encoding names -> Python's.
ENCODINGS = {"utf8": "utf-8", "iso88591": "latin-1", "latin1": "latin-1", "ascii": "ascii", "utf16": "utf-16",
             "utf32": "utf-32", "utf8bom": "utf-8-sig", "windows1252": "cp1252"}
HEADERS = {"all_files_same_headers": 0, "from_first_file": 0, "all_files_different_headers": 0, "no_header": None}


def read_table(folder: Path, role: str = "data"):
    """The table of the MLTable folder `folder` as a DataFrame; `role` (training_data, test_data, ...) names it
    in errors."""
    import pandas as pd

    folder = Path(folder)
    table = _table_file(folder, role)
    steps = [s for s in table.get("transformations") or [] if isinstance(s, (dict, str))]
    reader = next((s for s in steps if _name(s) in READERS), {"read_delimited": {}})
    files = _data_files(folder, table, role)
    frames = [_read_file(path, _name(reader), _args(reader), role) for path in files]
    frame = frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)
    for step in steps:
        name = _name(step)
        if name in READERS:
            continue
        frame = _transform(frame, name, _args(step), folder, role)
    if frame.empty:
        raise CapcError(f"{role} {folder}: the MLTable gives no rows.")
    return frame.reset_index(drop=True)


def _table_file(folder: Path, role: str) -> dict:
    path = folder / MLTABLE_FILE
    if not folder.is_dir():
        raise CapcError(f"{role}: {folder} is not a folder; an mltable input names a folder holding an MLTable file.")
    try:
        table = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CapcError(f"{role}: no MLTable file in {folder}.", "an mltable input is a folder with a file named MLTable next to its data") from None
    except (OSError, yaml.YAMLError) as exc:
        raise CapcError(f"{role}: cannot read {path}: {exc}") from None
    if not isinstance(table, dict):
        raise CapcError(f"{role}: {path} is not a mapping of keys (paths:, transformations:).")
    return table


def _data_files(folder: Path, table: dict, role: str) -> list[Path]:
    files: list[Path] = []
    for entry in table.get("paths") or []:
        kind, value = next(((k, v) for k, v in (entry or {}).items() if k in ("file", "folder", "pattern")), (None, None))
        if kind is None:
            raise CapcError(f"{role}: {folder / MLTABLE_FILE}: each entry of `paths` names a file, folder or pattern.")
        text = str(value)
        if is_remote(text):
            raise CapcError(f"{role}: {folder / MLTABLE_FILE} reads {text}, which is on Azure or the web; capc never downloads data.",
                            "copy the file next to the MLTable and name it by its relative path")
        text = text.removeprefix("file://")
        if kind == "file":
            found = [folder / text]
        elif kind == "folder":
            found = sorted(p for p in (folder / text).rglob("*") if p.is_file() and not p.name.startswith("."))
        else:
            found = sorted(p for p in folder.glob(text.lstrip("/")) if p.is_file())
        missing = [p for p in found if not p.is_file()]
        if missing or not found:
            raise CapcError(f"{role}: {folder / MLTABLE_FILE} names {text}, which holds no file here ({(missing or [folder / text])[0]}).")
        files += [p for p in found if p.name != MLTABLE_FILE]
    if not files:
        raise CapcError(f"{role}: {folder / MLTABLE_FILE} has no `paths`.")
    return files


def _name(step) -> str:
    return step if isinstance(step, str) else next(iter(step), "")


def _args(step):
    return {} if isinstance(step, str) else (step.get(_name(step)) if step.get(_name(step)) is not None else {})


def _read_file(path: Path, reader: str, args: dict, role: str):
    import pandas as pd

    try:
        if reader == "read_parquet":
            frame = pd.read_parquet(path)
        else:
            encoding = str(args.get("encoding", "utf8")).replace("-", "").replace("_", "").lower()
            header = str(args.get("header", "all_files_same_headers"))
            frame = pd.read_csv(
                path, sep=str(args.get("delimiter", ",")), encoding=ENCODINGS.get(encoding, encoding),
                header=HEADERS.get(header, 0), keep_default_na=not args.get("empty_as_string", False),
            )
            if header == "no_header":
                frame.columns = [f"Column{i + 1}" for i in range(frame.shape[1])]
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise CapcError(f"{role}: cannot read {path}: {exc}") from None
    if args.get("include_path_column"):
        frame["Path"] = str(path)
    return frame


def _columns(args, key: str = "columns") -> list[str]:
    value = args.get(key, args) if isinstance(args, dict) else args
    return [value] if isinstance(value, str) else [str(c) for c in value or []]


def _transform(frame, name: str, args, folder: Path, role: str):
    where = f"{role}: {folder / MLTABLE_FILE}"
    if name in ("drop_columns", "keep_columns"):
        columns = _columns(args)
        absent = [c for c in columns if c not in frame.columns]
        if absent:
            raise CapcError(f"{where}: {name} names {', '.join(absent)}, not a column of the table.",
                            f"columns: {', '.join(map(str, frame.columns[:30]))}")
        return frame.drop(columns=columns) if name == "drop_columns" else frame[columns]
    if name == "take":
        return frame.head(int(args if not isinstance(args, dict) else args.get("count", 0)))
    if name == "skip":
        return frame.iloc[int(args if not isinstance(args, dict) else args.get("count", 0)):]
    if name == "take_random_sample":
        import numpy as np

        keep = np.random.default_rng(args.get("seed")).random(len(frame)) < float(args.get("probability", 1.0))
        return frame[keep]
    if name == "convert_column_types":
        for conversion in args or []:
            frame = _convert(frame, conversion, where)
        return frame
    raise CapcError(f"{where}: the transformation `{name}` is not one the local MLTable reader runs.",
                    "it reads " + ", ".join(READERS) + ", drop_columns, keep_columns, convert_column_types, take, skip, take_random_sample")


def _convert(frame, conversion: dict, where: str):
    import pandas as pd

    columns = _columns(conversion)
    kind = conversion.get("column_type")
    kind_name = kind if isinstance(kind, str) else next(iter(kind or {}), "")
    options = kind.get(kind_name) or {} if isinstance(kind, dict) else {}
    frame = frame.copy()
    for column in columns:
        if column not in frame.columns:
            raise CapcError(f"{where}: convert_column_types names {column}, not a column of the table.")
        values = frame[column]
        if kind_name in ("int", "float"):
            converted = pd.to_numeric(values, errors="coerce")
            # Whole numbers stay integers unless a cell is missing (pandas has no missing int in a plain column).
            whole = kind_name == "int" and not converted.isna().any()
            frame[column] = converted.round().astype("int64") if whole else converted.astype(float)
        elif kind_name == "string":
            frame[column] = values.map(lambda v: v if v is None or v != v else str(v)).astype(object)
        elif kind_name == "boolean":
            true = {str(v) for v in options.get("true_values", ["true", "True", "TRUE", "1"])}
            false = {str(v) for v in options.get("false_values", ["false", "False", "FALSE", "0"])}
            frame[column] = values.map(lambda v: True if str(v) in true else False if str(v) in false else None).astype(object)
        elif kind_name == "datetime":
            formats = options.get("formats") or [None]
            frame[column] = pd.to_datetime(values, format=formats[0], errors="coerce")
        else:
            raise CapcError(f"{where}: convert_column_types to `{kind_name or kind}` is not one the local reader runs.",
                            "it converts to int, float, string, boolean and datetime")
    return frame
