"""Test fixture: a score.py of the generated-score contract, for the bank-marketing columns.

Stands in for generated/<name>/score.py in the endpoint tests: loads the MLflow model found under
$AZUREML_MODEL_DIR, accepts {"data": [records]} and {"input_data": {"columns": [...], "data": [[...]]}},
answers {"result": [...], "probabilities": [...]}, and turns bad input into a 400 AMLResponse naming the problem.
"""

import json
import math
import os

import pandas as pd
from azureml_inference_server_http.api.aml_response import AMLResponse
from inference_schema.parameter_types.standard_py_parameter_type import StandardPythonParameterType
from inference_schema.schema_decorators import input_schema, output_schema

# column -> "number" | "string", in the training order
COLUMNS = {
    "age": "number", "job": "string", "marital": "string", "education": "string", "default": "string",
    "housing": "string", "loan": "string", "contact": "string", "month": "string", "day_of_week": "string",
    "duration": "number", "campaign": "number", "pdays": "number", "previous": "number", "poutcome": "string",
    "emp.var.rate": "number", "cons.price.idx": "number", "cons.conf.idx": "number", "euribor3m": "number",
    "nr.employed": "number",
}
SAMPLE_RECORD = {
    "age": 26, "job": "blue-collar", "marital": "married", "education": "basic.9y", "default": "no", "housing": "yes",
    "loan": "yes", "contact": "cellular", "month": "jul", "day_of_week": "fri", "duration": 300, "campaign": 3,
    "pdays": 999, "previous": 0, "poutcome": "nonexistent", "emp.var.rate": 1.4, "cons.price.idx": 93.918,
    "cons.conf.idx": -42.7, "euribor3m": 4.957, "nr.employed": 5228.1,
}
MAX_ROWS = 10_000
PROBABILITIES = True

model = None


def _model_folder(root):
    for folder, _dirs, files in sorted(os.walk(root)):
        if "MLmodel" in files:
            return folder
    raise FileNotFoundError(f"no MLmodel file under {root}")


def init():
    global model
    import mlflow.sklearn

    model = mlflow.sklearn.load_model(_model_folder(os.environ["AZUREML_MODEL_DIR"]))


class BadRequest(Exception):
    pass


def _check_value(column, value, row):
    kind = COLUMNS[column]
    if value is None:
        return
    if kind == "number":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise BadRequest(f"row {row}: column {column!r} must be a number, got {type(value).__name__} {value!r}")
        if isinstance(value, float) and math.isinf(value):
            raise BadRequest(f"row {row}: column {column!r} must be finite")
    elif not isinstance(value, str):
        raise BadRequest(f"row {row}: column {column!r} must be a string, got {type(value).__name__} {value!r}")


def _frame(data, input_data):
    if data is not None:
        if not isinstance(data, list):
            raise BadRequest("'data' must be a list of records ({column: value} objects)")
        records = data
        if not records:
            raise BadRequest("'data' is an empty list: send at least one record")
        for i, record in enumerate(records):
            if not isinstance(record, dict):
                raise BadRequest(f"row {i}: each record must be an object of column: value")
            missing = [c for c in COLUMNS if c not in record]
            if missing:
                raise BadRequest(f"row {i}: missing column(s) {', '.join(map(repr, missing))}")
        rows = [[record[c] for c in COLUMNS] for record in records]
    elif input_data is not None:
        if not isinstance(input_data, dict) or not isinstance(input_data.get("data"), list):
            raise BadRequest("'input_data' must be an object with 'columns' and 'data' (a list of rows)")
        columns = input_data.get("columns")
        if not isinstance(columns, list):
            raise BadRequest("'input_data.columns' must be a list of column names")
        missing = [c for c in COLUMNS if c not in columns]
        if missing:
            raise BadRequest(f"missing column(s) {', '.join(map(repr, missing))}")
        if not input_data["data"]:
            raise BadRequest("'input_data.data' is an empty list: send at least one row")
        index = [columns.index(c) for c in COLUMNS]
        rows = []
        for i, row in enumerate(input_data["data"]):
            if not isinstance(row, list) or len(row) != len(columns):
                raise BadRequest(f"row {i}: expected a list of {len(columns)} values")
            rows.append([row[j] for j in index])
    else:
        raise BadRequest("the body needs 'data' (a list of records) or 'input_data' ({columns, data})")
    if len(rows) > MAX_ROWS:
        raise BadRequest(f"{len(rows)} rows is over the limit of {MAX_ROWS} per request")
    names = list(COLUMNS)
    for i, row in enumerate(rows):
        for column, value in zip(names, row):
            _check_value(column, value, i)
    return pd.DataFrame(rows, columns=names)


@input_schema("data", StandardPythonParameterType([SAMPLE_RECORD]), convert_to_provided_type=False, optional=True)
@input_schema(
    "input_data",
    StandardPythonParameterType({"columns": list(COLUMNS), "data": [list(SAMPLE_RECORD.values())]}),
    convert_to_provided_type=False,
    optional=True,
)
@output_schema(StandardPythonParameterType({"result": ["no"], "probabilities": [{"no": 0.9, "yes": 0.1}]}))
def run(data=None, input_data=None):
    try:
        frame = _frame(data, input_data)
    except BadRequest as exc:
        return AMLResponse(json.dumps({"message": str(exc)}), 400, {"Content-Type": "application/json"})
    result = {"result": model.predict(frame).tolist()}
    if PROBABILITIES:
        classes = [str(c) for c in model.classes_]
        result["probabilities"] = [dict(zip(classes, map(float, p))) for p in model.predict_proba(frame)]
    return result
