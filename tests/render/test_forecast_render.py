"""`capc build` of a forecasting spec: score.py is the forecasting one (Azure AutoML's forecasting request shape) and
sample_request.json a real forecast request: the next horizon of the first series, right after its last row."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from capc.cli import cli
from forecast_models import HORIZON, SERIES, TIME, macro_frame, split_last_horizon
from repo import write_spec

SPEC = """\
    name: macro
    description: US quarterly macro series, forecast
    dataset: {path: data/macro_train.csv, format: csv, target: value, cross_validations: 3}
    task: forecasting
    metric: normalized_mean_absolute_error
    forecasting:
      time_column_name: quarter
      time_series_id_column_names: %s
      forecast_horizon: 4
"""


@pytest.mark.parametrize("ids", ["series", "[series]"])  # Azure takes one name or a list
def test_a_forecasting_build_serves_forecasts(workdir, ids):
    (workdir / "data").mkdir()
    history, _ = split_last_horizon(macro_frame())
    history.to_csv(workdir / "data" / "macro_train.csv", index=False)
    spec = write_spec(workdir, SPEC % ids)  # no frequency: inferred from the data (quarter starts)
    result = CliRunner().invoke(cli, ["build", str(spec), "--out", str(workdir / "generated")])
    assert result.exit_code == 0, result.output
    job = workdir / "generated" / "macro"
    score = (job / "score.py").read_text(encoding="utf-8")
    assert "def run(Inputs=None, GlobalParameters=None):" in score
    compile(score, "score.py", "exec")
    sample = json.loads((job / "sample_request.json").read_text(encoding="utf-8"))
    assert sample["Inputs"]["data"] == [{TIME: day, SERIES: "realcons"} for day in ("2008-10-01", "2009-01-01", "2009-04-01", "2009-07-01")]
    assert len(sample["Inputs"]["data"]) == HORIZON
    assert sample["GlobalParameters"] == {"quantiles": [0.1, 0.9]}


def test_other_tasks_keep_the_tabular_score_py(workdir):
    from capc.build import compile_spec
    from capc.spec import load_spec
    from repo import SPECS

    files = compile_spec(load_spec(SPECS / "housing.yaml"), workdir / "generated")
    assert b"def run(data=None, input_data=None):" in files["score.py"]
    assert json.loads(files["sample_request.json"])["data"]



def test_column_names_enter_score_py_quoted(workdir):
    """A time column named with quotes and a triple quote still gives a valid score.py holding the literal name."""
    (workdir / "data").mkdir()
    hostile = "q\"\"\"t' {{x}}"
    history, _ = split_last_horizon(macro_frame())
    history.rename(columns={TIME: hostile}).to_csv(workdir / "data" / "macro_train.csv", index=False)
    spec = write_spec(workdir, (SPEC % "series").replace("time_column_name: quarter", "time_column_name: " + json.dumps(hostile)))
    result = CliRunner().invoke(cli, ["build", str(spec), "--out", str(workdir / "generated")])
    assert result.exit_code == 0, result.output
    job = workdir / "generated" / "macro"
    namespace: dict = {}
    exec(compile((job / "score.py").read_text(encoding="utf-8").split("\nlogger = ")[0], "score.py", "exec"), namespace)
    assert hostile in namespace["SAMPLE_INPUTS"]["data"][0]
    assert json.loads((job / "sample_request.json").read_text())["Inputs"]["data"][0][hostile] == "2008-10-01"
