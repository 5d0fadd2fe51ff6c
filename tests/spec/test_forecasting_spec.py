"""Spec stage, task forecasting: the forecasting block's schema, semantic and service-rule errors, each with its
FILE:LINE:COL. The data is a small long-format table of two quarterly series (`a`: 12 quarters, `b`: 8)."""

from __future__ import annotations

from pathlib import Path

import pytest

from capc.errors import SpecInvalid
from capc.spec import load_spec

from repo import write_spec as write


def _rows() -> list[str]:
    rows = ["quarter,series,value,note"]
    for series, quarters in (("a", 12), ("b", 8)):
        for q in range(quarters):
            rows.append(f"{2020 + q // 4}-{3 * (q % 4) + 1:02d}-01,{series},{10 + q},x")
    return rows


@pytest.fixture
def workdir(workdir: Path) -> Path:
    (workdir / "data").mkdir(exist_ok=True)
    (workdir / "data" / "macro.csv").write_text("\n".join(_rows()) + "\n", encoding="utf-8")
    return workdir


# Lines 1-14; the forecasting keys sit on lines 10-13 (time column, ids, horizon, frequency).
BASE = """\
name: macro-demo
dataset:
  path: data/macro.csv
  format: csv
  target: value
  cross_validations: 2
task: forecasting
metric: normalized_mean_absolute_error
forecasting:
  time_column_name: quarter
  time_series_id_column_names: [series]
  forecast_horizon: 2
  frequency: QS
"""


def problems(path: Path) -> list[str]:
    with pytest.raises(SpecInvalid) as caught:
        load_spec(path)
    return [str(p) for p in caught.value.problems]


def only_problem(path: Path) -> str:
    found = problems(path)
    assert len(found) == 1, found
    return found[0]


def test_a_forecasting_spec_validates_with_its_settings(workdir):
    spec = load_spec(write(workdir, BASE + "  target_lags: [1, 4]\n  cv_step_size: auto\n  use_stl: seasontrend\n"))
    assert spec.task == "forecasting" and spec.goal == "minimize"
    assert spec.data["forecasting"] == {"time_column_name": "quarter", "time_series_id_column_names": ["series"], "forecast_horizon": 2,
                                        "frequency": "QS", "target_lags": [1, 4], "cv_step_size": "auto", "use_stl": "seasontrend"}
    assert spec.warnings == ()


def test_the_block_is_required_for_task_forecasting(workdir):
    path = write(workdir, BASE.split("forecasting:\n")[0])
    assert only_problem(path) == (f"{path}:7:7: task: task forecasting needs a `forecasting:` block "
                                  "(give at least forecasting.time_column_name and forecasting.forecast_horizon)")


def test_the_block_is_refused_for_other_tasks(workdir):
    path = write(workdir, BASE.replace("task: forecasting", "task: regression").replace("metric: normalized_mean_absolute_error", "metric: r2_score")
                 .replace("  cross_validations: 2\n", "  cross_validations: 2\n"))
    assert only_problem(path) == f"{path}:10:3: forecasting: `forecasting:` settings go with task forecasting, not regression (remove the block, or set `task: forecasting`)"


def test_a_horizon_is_required(workdir):
    path = write(workdir, BASE.replace("  forecast_horizon: 2\n", ""))
    assert only_problem(path).startswith(f"{path}:10:3: forecasting: missing required key `forecast_horizon` (Periods to forecast")


def test_an_auto_horizon_is_refused(workdir):
    path = write(workdir, BASE.replace("forecast_horizon: 2", "forecast_horizon: auto"))
    assert only_problem(path) == f"{path}:12:21: forecasting.forecast_horizon: expected a whole number, got string `'auto'`"


def test_an_unknown_forecasting_key_gets_a_did_you_mean(workdir):
    path = write(workdir, BASE + "  target_lag: 2\n")
    assert only_problem(path) == f"{path}:14:3: forecasting.target_lag: unknown key `target_lag` (did you mean `target_lags`?)"


def test_values_outside_azures_enums_are_refused(workdir):
    path = write(workdir, BASE + "  use_stl: season_trend\n")
    assert only_problem(path) == f"{path}:14:12: forecasting.use_stl: `season_trend` is not allowed (did you mean `seasontrend`?)"


def test_a_keyword_or_number_key_says_what_it_takes(workdir):
    path = write(workdir, BASE + "  target_lags: two\n")
    assert only_problem(path) == (f"{path}:14:16: forecasting.target_lags: `two` is not allowed "
                                  "(expected `auto`, a whole number >= 1 or a list of whole numbers >= 1)")
    path = write(workdir, BASE + "  cv_step_size: 0\n")
    assert only_problem(path) == f"{path}:14:17: forecasting.cv_step_size: `0` is not allowed (expected `auto` or a whole number >= 1)"
    path = write(workdir, BASE + "  target_lags: [1, 0]\n")
    assert only_problem(path) == f"{path}:14:20: forecasting.target_lags[1]: 0 is less than the minimum of 1"


def test_the_time_column_must_be_a_column(workdir):
    path = write(workdir, BASE.replace("time_column_name: quarter", "time_column_name: quater"))
    assert only_problem(path) == f"{path}:10:21: forecasting.time_column_name: column `quater` is not in macro.csv (did you mean `quarter`?)"


def test_the_time_column_must_parse_as_dates(workdir):
    path = write(workdir, BASE.replace("time_column_name: quarter", "time_column_name: note"))
    assert only_problem(path) == (f"{path}:10:21: forecasting.time_column_name: `note` is not a date or time column: line 2 of macro.csv holds `x` "
                                  "(every value must parse as a date (2024-01-31, 2024-01-31 12:00, 2024Q1 ...))")


def test_a_time_column_of_numbers_is_refused(workdir):
    path = write(workdir, BASE.replace("time_column_name: quarter", "time_column_name: value").replace("target: value", "target: note"))
    found = problems(path)
    assert (f"{path}:10:21: forecasting.time_column_name: `value` is not a date or time column: every line of macro.csv holds a number "
            "(every value must parse as a date (2024-01-31, 2024-01-31 12:00, 2024Q1 ...))") in found


def test_ids_must_be_columns(workdir):
    path = write(workdir, BASE.replace("[series]", "[series, region]"))
    assert only_problem(path) == (f"{path}:11:41: forecasting.time_series_id_column_names[1]: column `region` is not in macro.csv "
                                  "(expected one of: `quarter`, `series`, `value`, `note`)")


def test_one_id_may_be_a_plain_name(workdir):
    path = write(workdir, BASE.replace("[series]", "serie"))
    assert only_problem(path) == f"{path}:11:32: forecasting.time_series_id_column_names: column `serie` is not in macro.csv (did you mean `series`?)"
    assert load_spec(write(workdir, BASE.replace("[series]", "series"))).data["forecasting"]["time_series_id_column_names"] == "series"


def test_the_target_cannot_be_an_id(workdir):
    path = write(workdir, BASE.replace("[series]", "[value]"))
    assert only_problem(path) == f"{path}:11:33: forecasting.time_series_id_column_names[0]: `value` is the target; it cannot also be the series id column"


def test_a_frequency_pandas_cannot_read_is_an_error(workdir):
    path = write(workdir, BASE.replace("frequency: QS", "frequency: quarterly"))
    assert only_problem(path) == (f"{path}:13:14: forecasting.frequency: `quarterly` is not a frequency pandas can read "
                                  "(use a pandas offset alias such as D, W-SUN, MS, QS or h)")


def test_folds_must_fit_the_shortest_series(workdir):
    # horizon 2 + (2 folds - 1) x step 2 + 4 first training periods (capc.forecasting) = 8: series b has exactly 8.
    assert load_spec(write(workdir, BASE + "  short_series_handling_config: none\n")).warnings == ()
    path = write(workdir, BASE.replace("cross_validations: 2", "cross_validations: 3") + "  short_series_handling_config: none\n")
    assert only_problem(path) == (f"{path}:6:22: dataset.cross_validations: the folds do not fit the series: 3 folds of forecast_horizon 2, "
                                  "cv_step_size 2 apart, after 4 training periods need 10, but series b has 8 (lower "
                                  "dataset.cross_validations, forecasting.cv_step_size or forecasting.forecast_horizon)")


def test_short_series_handling_lets_azure_drop_short_series_with_a_warning(workdir):
    spec = load_spec(write(workdir, BASE.replace("cross_validations: 2", "cross_validations: 3")))
    assert [str(w) for w in spec.warnings] == [
        f"{spec.path}:9:1: forecasting: series b has 8, fewer than the folds need (3 folds of forecast_horizon 2, cv_step_size 2 apart, "
        "after 4 training periods need 10): short_series_handling_config auto pads or drops it (lower dataset.cross_validations, "
        "forecasting.cv_step_size or forecasting.forecast_horizon)"]


def test_when_no_series_fits_the_folds_it_is_an_error_whatever_the_handling(workdir):
    path = write(workdir, BASE.replace("forecast_horizon: 2", "forecast_horizon: 6") + "  short_series_handling_config: drop\n")
    assert only_problem(path).startswith(f"{path}:6:22: dataset.cross_validations: the folds do not fit the series: 2 folds of forecast_horizon 6, "
                                         "cv_step_size 6 apart, after 8 training periods need 20, but series a has 12, series b has 8")


def test_one_series_without_ids(workdir):
    text = BASE.replace("  time_series_id_column_names: [series]\n", "").replace("forecast_horizon: 2", "forecast_horizon: 20")
    path = write(workdir, text)
    assert "but the series has 12" in only_problem(path)  # a and b share their first 8 quarters: 12 distinct periods


def test_forecasting_validates_on_folds_not_a_fraction(workdir):
    path = write(workdir, BASE.replace("  cross_validations: 2\n", "  validation_fraction: 0.2\n"))
    assert only_problem(path) == (f"{path}:6:24: dataset.validation_fraction: forecasting validates on rolling-origin folds, not on a share "
                                  "of the rows (use cross_validations: N (each fold validates on the horizon after its origin))")
    path = write(workdir, BASE.replace("  cross_validations: 2\n", ""))
    assert only_problem(path) == f"{path}:3:3: dataset: forecasting needs `cross_validations`: the number of rolling-origin folds (e.g. cross_validations: 3)"


def test_forecasting_models_are_azures_forecasting_models(workdir):
    path = write(workdir, BASE + "automl:\n  allowed_models: [Prophet, LightGBM, Arima]\n")
    assert only_problem(path) == (f"{path}:15:39: automl.allowed_models[2]: `Arima` is not an Azure AutoML algorithm for forecasting "
                                  "(did you mean `Arimax`?)")


def test_service_rule_aggregation_needs_a_frequency(workdir):
    path = write(workdir, BASE.replace("  frequency: QS\n", "  target_aggregate_function: sum\n"))
    assert only_problem(path) == (f"{path}:13:30: forecasting.target_aggregate_function: Azure ML refuses target_aggregate_function `sum` "
                                  "without a frequency to aggregate to (add forecasting.frequency (a pandas offset alias such as D, MS or QS))")


def test_service_rule_tcn_forecaster_is_a_warning(workdir):
    spec = load_spec(write(workdir, BASE + "automl:\n  allowed_models: [LightGBM, TCNForecaster]\n"))
    assert [str(w) for w in spec.warnings] == [
        f"{spec.path}:15:30: automl.allowed_models[1]: Azure trains TCNForecaster only with enable_dnn_training, which capc does not set "
        "(remove it; AutoML tries the other allowed models)"]


def test_the_lightgbm_family_serves_forecasting_and_the_others_do_not(workdir):
    sweep = "sweep:\n  model: {model}\n  search_space:\n    n_estimators: choice(50, 100)\n"
    assert load_spec(write(workdir, BASE + sweep.format(model="lightgbm")))
    path = write(workdir, BASE + sweep.format(model="random_forest"))
    assert only_problem(path) == f"{path}:15:10: sweep.model: trial family `random_forest` does not serve task `forecasting` (for forecasting use one of: lightgbm)"


def test_serving_and_load_budgets_are_refused_for_forecasting(workdir):
    # They are measured with one-row requests of the training table; a forecasting score.py takes a horizon request.
    path = write(workdir, BASE + "deployment:\n  max_latency_ms: 50\n  min_requests_per_s: 10\n")
    assert problems(path) == [
        f"{path}:15:19: deployment.max_latency_ms: a serving budget is measured with one-row requests of the training table, "
        "and a forecasting model answers a horizon request instead (remove max_latency_ms)",
        f"{path}:16:23: deployment.min_requests_per_s: a load budget is measured with one-row requests of the training table, "
        "and a forecasting model answers a horizon request instead (remove min_requests_per_s)"]


@pytest.mark.parametrize("horizon", [1, 4, 12])
def test_the_folds_rule_is_the_forecasters(horizon):
    from capc.forecasting import Settings, min_training_length
    from capc.spec.forecasting_checks import first_training_periods

    assert first_training_periods({"forecast_horizon": horizon}) == min_training_length(Settings("t", "y", horizon))


def test_times_in_other_forms_are_read_by_pandas(workdir):
    # 2020Q1 is no ISO 8601 text: pandas' parser reads it, and the lengths are the same.
    text = (workdir / "data" / "macro.csv").read_text(encoding="utf-8")
    iso = {f"{2020 + q // 4}-{3 * (q % 4) + 1:02d}-01": f"{2020 + q // 4}Q{q % 4 + 1}" for q in range(12)}
    for date, quarter in iso.items():
        text = text.replace(date, quarter)
    (workdir / "data" / "macro.csv").write_text(text, encoding="utf-8")
    path = write(workdir, BASE.replace("cross_validations: 2", "cross_validations: 3") + "  short_series_handling_config: none\n")
    assert only_problem(path).endswith("need 10, but series b has 8 (lower dataset.cross_validations, forecasting.cv_step_size or "
                                       "forecasting.forecast_horizon)")


def test_the_frequencies_read_without_pandas_are_ones_pandas_reads():
    from pandas.tseries.frequencies import to_offset

    from capc.spec.forecasting_checks import COMMON_FREQUENCY

    bases = ["D", "B", "h", "min", "s", "ms", "us", "ns", "W", "MS", "ME", "SMS", "SME", "BMS", "BME"]
    bases += [f"W-{day}" for day in ("MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN")]
    bases += [f"{q}{month}" for q in ("QS", "QE", "BQS", "BQE", "YS", "YE", "BYS", "BYE") for month in ("", "-JAN", "-JUN", "-DEC")]
    for alias in [*bases, *(f"{n}{b}" for n in (2, 15) for b in bases)]:
        assert COMMON_FREQUENCY.match(alias), alias
        to_offset(alias)  # raises if pandas cannot read it
    assert not COMMON_FREQUENCY.match("M") and not COMMON_FREQUENCY.match("0D")


def test_a_frequency_pandas_no_longer_reads_says_what_it_became(workdir):
    path = write(workdir, BASE.replace("frequency: QS", "frequency: Q"))
    assert only_problem(path) == (f"{path}:13:14: forecasting.frequency: `Q` is not a frequency pandas can read: 'Q' is no longer "
                                  "supported for offsets. Please use 'QE' instead. (use a pandas offset alias such as D, W-SUN, MS, QS or h)")


def test_a_policy_acts_on_the_reports_of_a_forecasting_trial_one_per_fold(workdir):
    sweep = ("sweep:\n  model: lightgbm\n  search_space:\n    n_estimators: choice(50, 100)\n"
             "  early_termination:\n    type: bandit\n    slack_factor: 0.1\n    delay_evaluation: {delay}\n")
    assert load_spec(write(workdir, BASE + sweep.format(delay=1))).warnings == ()
    spec = load_spec(write(workdir, BASE + sweep.format(delay=2)))
    assert [str(w) for w in spec.warnings] == [
        f"{spec.path}:19:5: sweep.early_termination: the bandit policy can never stop a trial early: it first applies at report 2 "
        "(delay_evaluation, evaluation_interval), and trials report lightgbm at most 2 times (lower delay_evaluation or evaluation_interval)"]
