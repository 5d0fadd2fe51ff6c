"""Plan stage: `capc plan` trial counts, time and cost bounds worked out by hand, prices, --max-cost, --json.

Specs are written inline next to a three-row csv; prices come from small --prices files so every figure below can
be checked with a pencil.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from capc.cli import cli
from capc.plan import load_prices
from capc.spec import load_spec, schema
from repo import REFERENCE_SPECS, SPECS

BASE = """\
name: plan-demo
dataset:
  path: data/table.csv
  format: csv
  target: y
task: classification
metric: accuracy
"""
# Hand-computed case: AutoML 10 trials x 5 min, 4 at once capped to the 3 nodes; a 7-trial sweep x 10 min, 2 at once.
ARITHMETIC = BASE + """\
automl:
  max_trials: 10
  max_concurrent_trials: 3
  trial_timeout_minutes: 5
  timeout_minutes: 60
sweep:
  model: lightgbm
  search_space:
    n_estimators: choice(100, 200)
  limits:
    max_total_trials: 7
    max_concurrent_trials: 2
    trial_timeout_minutes: 10
    timeout_minutes: 25
compute:
  size: Standard_DS3_v2
  max_instances: 3
  idle_time_before_scale_down: 120
deployment:
  instance_type: Standard_F4s_v2
  instance_count: 2
"""
GRID = BASE + """\
sweep:
  model: lightgbm
  sampling: grid
  search_space:
    n_estimators: choice(100, 200, 400)
    num_leaves: choice(15, 31)
  limits:
    max_total_trials: {max_total_trials}
"""


def write(folder: Path, text: str, name: str = "spec.yaml") -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def price_file(folder: Path, prices: dict, **fields) -> Path:
    data = {"currency": "EUR", "region": "westeurope", "as_of": "2026-11-01", "source": "test", "prices": prices, **fields}
    path = folder / "prices.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def plan(*args: str):
    return CliRunner().invoke(cli, ["plan", *map(str, args)])


def plan_json(*args: str) -> dict:
    result = plan(*args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)  # warnings go to stderr


# ---------------------------------------------------------------- trials


def test_grid_runs_every_combination(workdir):
    spec = write(workdir, GRID.format(max_total_trials=20))
    sweep = plan_json(spec, "--trials")["specs"][0]["trials"]["sweep"]
    assert (sweep["grid_size"], sweep["count"], sweep["max_total_trials"]) == (6, 6, 20)
    assert sweep["combinations"] == [
        {"n_estimators": n, "num_leaves": leaves} for n in (100, 200, 400) for leaves in (15, 31)
    ]


def test_grid_capped_by_max_total_trials(workdir):
    spec = write(workdir, GRID.format(max_total_trials=4))
    found = plan_json(spec, "--trials")["specs"][0]
    assert (found["trials"]["sweep"]["grid_size"], found["trials"]["sweep"]["count"]) == (6, 4)
    assert len(found["trials"]["sweep"]["combinations"]) == 6  # all listed; Azure runs 4 of them
    assert found["jobs"][-1]["trials"] == 4
    text = plan(spec, "--trials").output
    assert "grid combinations (Azure runs 4 of 6)" in text
    assert "grid: 6 combinations, capped at max_total_trials 4" in text


def test_random_sampling_runs_max_total_trials_and_shows_azure_distributions(workdir):
    spec = write(workdir, BASE + "sweep:\n  model: lightgbm\n  search_space:\n    learning_rate: loguniform(-6, -1)\n"
                 "    n_estimators: choice(100, 200)\n  limits:\n    max_total_trials: 9\n")
    sweep = plan_json(spec, "--trials")["specs"][0]["trials"]["sweep"]
    assert (sweep["sampling"], sweep["count"], sweep["grid_size"], sweep["conditional"]) == ("random", 9, None, False)
    assert "combinations" not in sweep
    assert sweep["families"] == [{"family": "lightgbm", "weight": 1.0, "search_space": {
        "learning_rate": "loguniform(min_value=-6, max_value=-1)", "n_estimators": "choice(100, 200)"}}]
    assert sweep["jobs"] == [{"job": "sweep", "trials": 9, "max_concurrent_trials": 2}]


CONDITIONAL = BASE + """\
sweep:
  sampling: {sampling}
  families:
    logistic_regression:
      search_space:
        C: choice(0.1, 1, 10)
        max_iter: choice(100, 200)
    random_forest:
      weight: 2
      search_space:
        n_estimators: choice(50, 100)
  limits:
    max_total_trials: {max_total_trials}
    max_concurrent_trials: 3
"""


def test_conditional_grid_counts_every_familys_own_combinations(workdir):
    spec = write(workdir, CONDITIONAL.format(sampling="grid", max_total_trials=100).replace("      weight: 2\n", ""))
    sweep = plan_json(spec, "--trials")["specs"][0]["trials"]["sweep"]
    assert (sweep["grid_size"], sweep["count"], sweep["conditional"]) == (3 * 2 + 2, 8, True)  # never mixes families
    assert sweep["combinations"][0] == {"family": "logistic_regression", "C": 0.1, "max_iter": 100}
    assert sweep["combinations"][-1] == {"family": "random_forest", "n_estimators": 100}
    assert sweep["jobs"] == [{"job": "sweep", "trials": 8, "max_concurrent_trials": 3}]


def test_conditional_random_sweep_is_one_job_per_family_split_by_weight(workdir):
    spec = write(workdir, CONDITIONAL.format(sampling="random", max_total_trials=9))
    found = plan_json(spec)["specs"][0]
    assert found["trials"]["sweep"]["jobs"] == [
        {"job": "sweep_logistic_regression", "trials": 3, "max_concurrent_trials": 1},
        {"job": "sweep_random_forest", "trials": 6, "max_concurrent_trials": 2},
    ]
    assert [job["job"] for job in found["jobs"]] == ["automl", "sweep_logistic_regression", "sweep_random_forest"]
    # each per-family sweep: ceil(trials / at once) x 20 min, within the 60-min timeout
    assert [job["wall_minutes"] for job in found["jobs"][1:]] == [60.0, 60.0]
    text = plan(spec).output
    assert "sweep_random_forest" in text and "this family's share of max_total_trials 9" in text


# ---------------------------------------------------------------- time and cost


def test_time_and_cost_bounds_by_hand(workdir):
    spec = write(workdir, ARITHMETIC)
    prices = price_file(workdir, {"Standard_DS3_v2": 1.2, "standard_f4s_v2": 0.5})  # sizes match without case
    found = plan_json(spec, "--prices", prices)["specs"][0]
    automl, sweep = found["jobs"]
    # AutoML: ceil(10 / 3) = 4 rounds x 5 min = 20 min < 60; node time min(10 x 5, 3 x 20) = 50 min.
    assert (automl["concurrency"], automl["wall_minutes"], automl["node_hours"]) == (3, 20.0, round(50 / 60, 4))
    # Sweep: ceil(7 / 2) x 10 = 40 min, cut by its 25-min timeout; node time min(7 x 10, 2 x 25) = 50 min.
    assert (sweep["concurrency"], sweep["wall_minutes"], sweep["node_hours"]) == (2, 25.0, round(50 / 60, 4))
    # 3 + 2 trials at once do not fit 3 nodes: they queue, at most 20 + 25 min (less than the longer timeout, 60).
    assert found["wall_minutes"] == 45.0
    lines = {line["what"]: line for line in found["cost"]["lines"]}
    assert lines["automl trials"]["amount"] == pytest.approx(1.0)
    assert lines["sweep trials"]["amount"] == pytest.approx(1.0)
    # idle: 3 nodes x 120 s = 0.1 node-hours at 1.2
    assert lines["idle before scale-down"]["hours"] == pytest.approx(0.1)
    assert found["cost"]["job_upper_bound"] == pytest.approx(2.12)
    # the endpoint is a standing cost: 2 instances x 730 h x 0.5
    assert lines["online endpoint"] == {"what": "online endpoint", "cluster": None, "size": "Standard_F4s_v2", "hours": 1460, "price_per_hour": 0.5,
                                        "amount": 730.0, "per_month": True}
    assert found["cost"]["currency"] == "EUR" and found["cost"]["unpriced_sizes"] == []


def test_jobs_that_fit_the_cluster_run_side_by_side(workdir):
    spec = write(workdir, ARITHMETIC.replace("max_instances: 3", "max_instances: 5"))
    found = plan_json(spec)["specs"][0]
    assert found["wall_minutes"] == 25.0  # the longer job: the sweep's timeout
    assert found["jobs"][0]["concurrency"] == 3


def test_nodes_kept_up_are_a_standing_cost(workdir):
    spec = write(workdir, ARITHMETIC.replace("  max_instances: 3\n", "  max_instances: 3\n  min_instances: 1\n"))
    lines = {line["what"]: line for line in plan_json(spec, "--prices", price_file(workdir, {"Standard_DS3_v2": 1.0, "Standard_F4s_v2": 1.0}))["specs"][0]["cost"]["lines"]}
    assert lines["nodes kept up"] == {"what": "nodes kept up", "cluster": "cpu-cluster", "size": "Standard_DS3_v2", "hours": 730, "price_per_hour": 1.0,
                                                  "amount": 730.0, "per_month": True}


def test_unknown_size_is_price_unknown_never_zero(workdir):
    spec = write(workdir, ARITHMETIC)
    prices = price_file(workdir, {"Standard_F4s_v2": 0.5})
    found = plan_json(spec, "--prices", prices)["specs"][0]
    assert found["cost"]["job_upper_bound"] is None
    assert found["cost"]["unpriced_sizes"] == ["Standard_DS3_v2"]
    assert {line["what"]: line["amount"] for line in found["cost"]["lines"]}["automl trials"] is None
    text = plan(spec, "--prices", prices).output
    assert "price unknown" in text and not re.search(r"(?<![\d.,])0\.00 EUR", text)


def test_prices_file_caption_and_bad_files(workdir):
    spec = write(workdir, ARITHMETIC)
    text = plan(spec, "--prices", price_file(workdir, {"Standard_DS3_v2": 1.2, "Standard_F4s_v2": 0.5})).output
    assert "list prices of westeurope in EUR per node-hour as of 2026-11-01" in text
    (workdir / "broken.json").write_text("{currency: EUR")
    broken = plan(spec, "--prices", workdir / "broken.json")
    assert broken.exit_code == 1
    assert broken.output.startswith(f"error: the price file {workdir / 'broken.json'} is not valid JSON (line 1:")
    negative = plan(spec, "--prices", price_file(workdir, {"Standard_DS3_v2": -1}))
    assert negative.exit_code == 1
    assert "the price of Standard_DS3_v2 must be a number of at least 0, not -1." in negative.output
    missing = plan(spec, "--prices", workdir / "nope.json")
    assert missing.exit_code == 1 and "does not exist." in missing.output


def test_max_cost_exit_codes(workdir):
    spec = write(workdir, ARITHMETIC)
    prices = price_file(workdir, {"Standard_DS3_v2": 1.2, "Standard_F4s_v2": 0.5})
    assert plan(spec, "--prices", prices, "--max-cost", "2.5").exit_code == 0  # 2.12 <= 2.5; the endpoint is monthly
    over = plan(spec, "--prices", prices, "--max-cost", "2")
    assert over.exit_code == 1
    assert f"error: {spec}: the submit may cost up to 2.12 EUR, above --max-cost 2 EUR." in over.output
    unknown = plan(spec, "--prices", price_file(workdir, {}), "--max-cost", "100")
    assert unknown.exit_code == 1
    assert "cannot hold the plan to --max-cost 100 EUR: price unknown for Standard_DS3_v2." in unknown.output


def test_set_overrides_change_the_plan(workdir):
    spec = write(workdir, ARITHMETIC)
    found = plan_json(spec, "--set", "automl.max_trials=3")["specs"][0]
    assert found["jobs"][0]["trials"] == 3 and found["jobs"][0]["wall_minutes"] == 5.0


def test_warnings_print_and_strict_fails(workdir):
    spec = write(workdir, ARITHMETIC.replace("max_concurrent_trials: 3", "max_concurrent_trials: 4"))
    result = plan(spec)
    assert result.exit_code == 0
    assert "warning: " in result.output and "4 concurrent AutoML trials on cluster `cpu-cluster`" in result.output
    strict = plan(spec, "--strict")
    assert strict.exit_code == 1 and f"{spec}:10:26: automl.max_concurrent_trials:" in strict.output


def test_json_shape(workdir):
    spec = write(workdir, ARITHMETIC)
    data = plan_json(spec)
    assert set(data) == {"prices", "specs"}
    assert set(data["prices"]) == {"currency", "region", "as_of", "source"}
    found = data["specs"][0]
    assert set(found) == {"name", "spec", "spec_sha256", "trials", "jobs", "wall_minutes", "node_hours", "cost", "warnings",
                          "last_local_run", "quota", "serving_load", "data_change"}
    assert set(found["trials"]["sweep"]) == {"sampling", "conditional", "count", "max_total_trials", "grid_size", "families", "jobs",
                                             "folds", "rolling_origin", "fits_per_trial", "fits"}
    assert set(found["trials"]["automl"]) == {"max_trials", "max_concurrent_trials", "timeout_minutes", "trial_timeout_minutes",
                                              "cross_validations", "rolling_origin", "fits_per_trial", "fits"}
    assert set(found["jobs"][0]) == {"job", "cluster", "size", "max_instances", "trials", "concurrency", "timeout_minutes",
                                     "trial_timeout_minutes", "wall_minutes", "node_hours"}
    assert found["spec_sha256"] == load_spec(spec).sha256
    assert found["last_local_run"] is None and found["quota"] == [] and found["serving_load"] is None  # no load budget


def test_cross_validation_folds_and_image_automl(workdir):
    spec = write(workdir, BASE.replace("  target: y\n", "  target: y\n  cross_validations: 5\n"))
    automl = plan_json(spec)["specs"][0]["trials"]["automl"]
    assert (automl["cross_validations"], automl["fits_per_trial"]) == (5, 5)
    mri = plan_json(SPECS / "mri.yaml")["specs"][0]
    job = mri["jobs"][0]
    assert (job["job"], job["trial_timeout_minutes"], job["wall_minutes"], job["node_hours"]) == ("automl", None, 60.0, 2.0)


FORECAST = """\
name: plan-forecast
dataset:
  path: data/series.csv
  format: csv
  target: y
  cross_validations: 3
task: forecasting
metric: normalized_mean_absolute_error
forecasting:
  time_column_name: month
  forecast_horizon: 2
automl:
  max_trials: 10
sweep:
  model: lightgbm
  search_space:
    n_estimators: choice(100, 200)
  limits:
    max_total_trials: 7
"""


def test_forecasting_plan_counts_the_rolling_origin_folds(workdir):
    rows = "".join(f"2020-{m:02d}-01,{m}\n" for m in range(1, 13))
    (workdir / "data" / "series.csv").write_text("month,y\n" + rows, encoding="utf-8")
    spec = write(workdir, FORECAST)
    trials = plan_json(spec)["specs"][0]["trials"]
    automl, sweep = trials["automl"], trials["sweep"]
    assert (automl["cross_validations"], automl["rolling_origin"], automl["fits_per_trial"], automl["fits"]) == (3, True, 3, 30)
    # A trial fits one model per fold, then refits on every row.
    assert (sweep["folds"], sweep["rolling_origin"], sweep["fits_per_trial"], sweep["fits"]) == (3, True, 4, 28)
    table = plan(spec).output
    assert re.search(r"│ automl │ 10 +│ 30 +│ .* │ 3 rolling-origin folds: 3 fits per trial", table)
    assert re.search(r"│ sweep +│ 7 +│ 28 +│ .* │ random sampling: max_total_trials", table)
    assert "3 rolling-origin folds and a refit: 4 fits per trial" in table


def test_invalid_specs_are_reported_together(workdir):
    good = write(workdir, ARITHMETIC)
    bad = write(workdir, BASE.replace("metric: accuracy", "metric: acuracy"), name="bad.yaml")
    result = plan(good, bad)
    assert result.exit_code == 1
    assert f"{bad}:7:9: metric:" in result.output


# ---------------------------------------------------------------- the shipped price list


def test_price_snapshot_covers_the_specs_and_the_schema_defaults():
    prices = load_prices()
    assert prices.currency == "USD" and prices.region == "eastus" and "2026-11-30" in prices.as_of
    assert "prices.azure.com" in prices.source and "RMRanjit/SUNA-UI" in prices.source
    sizes = {schema()["properties"]["compute"]["properties"]["size"]["default"],
             schema()["properties"]["deployment"]["properties"]["instance_type"]["default"]}
    for path in REFERENCE_SPECS:
        data = load_spec(path).data
        sizes |= {data["compute"]["size"], data["deployment"]["instance_type"]}
    assert sizes == {"Standard_DS3_v2", "Standard_NC4as_T4_v3"}
    for size in sizes:
        assert prices.hourly(size) and prices.hourly(size) > 0, size


def test_reference_specs_pass_plan_strict():
    result = plan(*REFERENCE_SPECS, "--strict")
    assert result.exit_code == 0, result.output
    assert "price unknown" not in result.output


# ---------------------------------------------------------------- history and imports


def test_last_local_run_of_the_same_spec_is_shown(workdir):
    from capc.state import tracking

    spec_path = write(workdir, ARITHMETIC)
    spec = load_spec(spec_path)
    client = tracking.client()
    exp = tracking.experiment_id(client, spec.name)
    other = tracking.start_run(client, exp, "submit-other", "submit", tags={"capc.spec_sha256": "0" * 64})
    tracking.finish_run(client, other, "completed")
    run = tracking.start_run(client, exp, "submit-1", "submit", tags={"capc.spec_sha256": spec.sha256})
    child = tracking.start_run(client, exp, "automl", "automl", parent=run)
    tracking.finish_run(client, child, "completed")
    tracking.finish_run(client, run, "completed")
    found = plan_json(spec_path)["specs"][0]["last_local_run"]
    assert found["run_id"] == run and found["status"] == "completed"
    assert 0 <= found["duration_s"] < 60 and set(found["jobs"]) == {"automl"}
    assert "last local run of this spec:" in plan(spec_path).output
    assert plan_json(spec_path, "--set", "automl.max_trials=3")["specs"][0]["last_local_run"] is None  # another hash


def test_plan_imports_no_azure_or_mlflow_module():
    code = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from capc.cli import cli\n"
        f"result = CliRunner().invoke(cli, ['plan', *{[str(p) for p in REFERENCE_SPECS]!r}])\n"
        "assert result.exit_code == 0, result.output\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('azure', 'mlflow', 'jinja2')))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_plan_says_how_the_data_differs_from_the_latest_registered_models(workdir):
    from capc.state import registry
    from capc.state.fingerprint import fingerprint_data

    spec = write(workdir, ARITHMETIC)
    assert plan_json(spec)["specs"][0]["data_change"] is None  # nothing registered yet
    model = workdir / "model"
    model.mkdir()
    (model / "MLmodel").write_text("flavors: {}\n")
    registered = fingerprint_data(workdir / "data" / "table.csv", "csv")
    registry.register(model, name="plan-demo", task="classification", metric="accuracy", value=0.9, goal="maximize", source="automl",
                      run_id="r", spec_sha256="s", job_dir=str(workdir), data=registered.to_dict(), seed=1)
    assert plan_json(spec)["specs"][0]["data_change"] is None  # the same data
    with open(workdir / "data" / "table.csv", "a", encoding="utf-8") as f:
        f.write("4.5,yes\n")
    change = plan_json(spec)["specs"][0]["data_change"]
    assert change.startswith("the training data differs from the data of plan-demo:1 (table.csv, 3 rows x 2 columns")
    assert change.endswith("rows added: 1 (3 -> 4); columns retyped: x (integer -> number)")
    assert "data changed: the training data differs from the data of plan-demo:1" in plan(spec).output
