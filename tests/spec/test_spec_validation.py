"""Spec stage (load + validate): one test per error class with the exact message it promises.

Every problem reads `FILE:LINE:COL: key.path: message (hint)`. Specs are written inline into tmp_path next to a
small csv whose column names are awkward on purpose (`cons.conf.idx`, `two words`, `it's`).
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from capc.errors import CapcError, SpecInvalid, SpecProblem
from capc.spec import Spec, load_spec, schema
from capc.spec.conditional import branches
from capc.spec.search_space import DISTRIBUTIONS, parse_compact

from repo import REFERENCE_SPECS, REPO
from repo import write_spec as write

# Seven lines; tests that add sections start at line 8.
BASE = """\
name: bank-demo
dataset:
  path: data/bank.csv
  format: csv
  target: y
task: classification
metric: accuracy
"""


def problems(path: Path, overrides: list[str] | None = None) -> list[str]:
    """Every problem load_spec reports, as the CLI prints them."""
    with pytest.raises(SpecInvalid) as caught:
        load_spec(path, overrides)
    return [str(p) for p in caught.value.problems]


def only_problem(path: Path, overrides: list[str] | None = None) -> str:
    found = problems(path, overrides)
    assert len(found) == 1, found
    return found[0]


def sweep(space: str, sampling: str = "random", model: str = "lightgbm", extra: str = "") -> str:
    """BASE plus a sweep section; its first search-space entry is on line 12."""
    return BASE + f"sweep:\n  model: {model}\n  sampling: {sampling}\n  search_space:\n{textwrap.indent(space, '    ')}" + extra


# ---------------------------------------------------------------- reference specs


@pytest.mark.parametrize("path", REFERENCE_SPECS, ids=lambda p: p.stem)
def test_reference_specs_are_valid(path: Path) -> None:
    spec = load_spec(path)
    assert spec.name == path.stem
    assert spec.path == path
    assert spec.goal == ("maximize" if spec.metric == "accuracy" else "minimize")
    # Every search-space entry (of every family of a conditional sweep) comes out in Azure's mapping form.
    for branch in branches(spec.data["sweep"]):
        for name, dist in branch.search_space.items():
            assert isinstance(dist, dict) and dist["type"] in DISTRIBUTIONS, name


def test_reference_specs_cover_the_four_tasks() -> None:
    tasks = {load_spec(p).task for p in REFERENCE_SPECS}
    assert tasks == {"classification", "regression", "image_classification", "forecasting"}


def test_reference_spec_values() -> None:
    bank = load_spec(REPO / "specs" / "bankmarketing.yaml")
    assert bank.data["dataset"]["target"] == "y"
    assert bank.data["dataset"]["cross_validations"] == 5
    assert "validation_fraction" not in bank.data["dataset"]  # cross-validation wins over the default fraction
    assert bank.data["sweep"]["search_space"]["learning_rate"] == {"type": "uniform", "min_value": 0.02, "max_value": 0.2}
    assert bank.data["sweep"]["search_space"]["n_estimators"] == {"type": "choice", "values": [200, 400, 800]}
    housing = load_spec(REPO / "specs" / "housing.yaml")
    assert housing.goal == "minimize"
    assert housing.data["sweep"]["search_space"]["learning_rate"] == {"type": "loguniform", "min_value": -7, "max_value": -4}
    mri = load_spec(REPO / "specs" / "mri.yaml")
    assert "target" not in mri.data["dataset"]
    assert mri.path.parent / mri.data["dataset"]["path"] == REPO / "specs" / "data" / "mri"


# ---------------------------------------------------------------- loading (YAML level)


def test_yaml_syntax_error(workdir: Path) -> None:
    path = write(workdir, "name: bank-demo\ndataset: [data/bank.csv\ntask: classification\n")
    assert only_problem(path) == (
        f"{path}:3:5: YAML syntax error: expected ',' or ']', but got ':' (while parsing a flow sequence)"
    )


def test_yaml_syntax_error_points_at_the_bad_column(workdir: Path) -> None:
    path = write(workdir, "name: bank-demo\ntask: classification\n  metric: accuracy\n")
    assert only_problem(path) == f"{path}:3:9: YAML syntax error: mapping values are not allowed here"


@pytest.mark.parametrize("text", ["", "# only a comment\n", "---\n", "null\n"], ids=["empty", "comment", "bare-document", "null"])
def test_empty_file(workdir: Path, text: str) -> None:
    path = write(workdir, text)
    assert only_problem(path) == (
        f"{path}:1:1: the spec is empty "
        "(start with `name:`, `dataset:`, `task:` and `metric:`; `capc schema` prints every key)"
    )


@pytest.mark.parametrize(("text", "kind"), [("- name: a\n- name: b\n", "list"), ("just text\n", "single value")])
def test_root_must_be_a_mapping(workdir: Path, text: str, kind: str) -> None:
    path = write(workdir, text)
    assert only_problem(path) == (
        f"{path}:1:1: the spec must be a mapping of keys to values, not a {kind} (start with `name: my-use-case`)"
    )


def test_two_documents(workdir: Path) -> None:
    path = write(workdir, BASE + "---\nname: other\n")
    assert only_problem(path) == (
        f"{path}:9:1: one spec per file: found more than one YAML document (split them into separate files)"
    )


def test_duplicate_key(workdir: Path) -> None:
    path = write(workdir, BASE.replace("  target: y\n", "  target: y\n  format: parquet\n"))
    assert only_problem(path) == f"{path}:6:3: dataset.format: duplicate key (each key may appear once; remove one of them)"


def test_spec_file_not_found(tmp_path: Path) -> None:
    path = tmp_path / "missing.yaml"
    assert only_problem(path) == f"{path}:1:1: spec file not found (check the path)"


def test_spec_not_utf8(workdir: Path) -> None:
    path = workdir / "latin1.yaml"
    path.write_bytes(b"name: bank-demo\ndescription: caf\xe9\n")
    assert only_problem(path) == f"{path}:2:17: the spec is not UTF-8 text (byte 0xe9) (save it as UTF-8)"


def test_non_string_key(workdir: Path) -> None:
    path = write(workdir, BASE + "? [a, b]\n: 1\n")
    assert only_problem(path) == f"{path}:8:3: keys must be plain strings"


# ---------------------------------------------------------------- schema level


def test_unknown_top_level_key_with_did_you_mean(workdir: Path) -> None:
    path = write(workdir, BASE + "deploy:\n  instance_count: 2\n")
    assert only_problem(path) == f"{path}:8:1: deploy: unknown key `deploy` (did you mean `deployment`?)"


def test_unknown_nested_key_with_did_you_mean(workdir: Path) -> None:
    path = write(workdir, BASE + "automl:\n  timeout_minute: 5\n")
    assert only_problem(path) == (
        f"{path}:9:3: automl.timeout_minute: unknown key `timeout_minute` (did you mean `timeout_minutes`?)"
    )


def test_unknown_key_without_close_match_lists_the_keys(workdir: Path) -> None:
    path = write(workdir, BASE + "zzz: 1\n")
    assert only_problem(path) == (
        f"{path}:8:1: zzz: unknown key `zzz` (expected one of: `name`, `description`, `dataset`, `task`, `metric`, `forecasting`, "
        "`seed`, `automl`, `sweep`, `compute`, `environment`, `deployment`, `schedule`)"
    )


def test_wrong_type(workdir: Path) -> None:
    path = write(workdir, BASE + "automl:\n  timeout_minutes: ten\n")
    assert only_problem(path) == f"{path}:9:20: automl.timeout_minutes: expected a whole number, got string `'ten'`"


def test_null_section(workdir: Path) -> None:
    path = write(workdir, BASE + "automl:\n")
    assert only_problem(path) == f"{path}:8:8: automl: expected a mapping, got null"


def test_enum_typo_with_did_you_mean(workdir: Path) -> None:
    path = write(workdir, BASE.replace("task: classification", "task: clasification"))
    assert only_problem(path) == f"{path}:6:7: task: `clasification` is not allowed (did you mean `classification`?)"


def test_nested_enum_typo(workdir: Path) -> None:
    path = write(workdir, BASE.replace("format: csv", "format: cvs"))
    assert only_problem(path) == f"{path}:4:11: dataset.format: `cvs` is not allowed (did you mean `csv`?)"


def test_bad_name_pattern(workdir: Path) -> None:
    path = write(workdir, BASE.replace("name: bank-demo", "name: Bank_Demo"))
    assert only_problem(path) == (
        f"{path}:1:7: name: `Bank_Demo` has the wrong form (Lowercase letters, digits and dashes (2-32 characters); "
        "names the experiment, the model and the endpoint.)"
    )


def test_missing_required_top_level_key(workdir: Path) -> None:
    path = write(workdir, BASE.replace("metric: accuracy\n", ""))
    assert only_problem(path) == (
        f"{path}:1:1: missing required key `metric` (Azure ML primary metric, e.g. accuracy, AUC_weighted, "
        "normalized_root_mean_squared_error, normalized_mean_absolute_error, r2_score.)"
    )


def test_missing_required_nested_key(workdir: Path) -> None:
    path = write(workdir, BASE.replace("  path: data/bank.csv\n", ""))
    assert only_problem(path) == (
        f"{path}:3:3: dataset: missing required key `path` "
        "(Relative to the spec file, or azureml:NAME:VERSION for a registered data asset.)"
    )


def test_missing_keys_are_each_reported_once(workdir: Path) -> None:
    path = write(workdir, "name: bank-demo\n")
    assert [p.split(": ", 1)[1].split(" (")[0] for p in problems(path)] == [
        "missing required key `dataset`",
        "missing required key `metric`",
        "missing required key `task`",
    ]


def test_out_of_range_number(workdir: Path) -> None:
    path = write(workdir, BASE.replace("  target: y\n", "  target: y\n  validation_fraction: 0.9\n"))
    assert only_problem(path) == f"{path}:6:24: dataset.validation_fraction: 0.9 is greater than the maximum of 0.5"


def test_repeated_list_entry(workdir: Path) -> None:
    path = write(workdir, BASE + "automl:\n  allowed_models: [LightGBM, RandomForest, LightGBM]\n")
    assert only_problem(path) == (
        f"{path}:9:19: automl.allowed_models: lists `LightGBM` more than once (each entry may appear once)"
    )


def test_sweep_needs_model_or_script(workdir: Path) -> None:
    path = write(workdir, BASE + "sweep:\n  search_space:\n    C: uniform(0.1, 1)\n")
    assert only_problem(path) == f"{path}:9:3: sweep: needs one of `model`, `script`, `families`"


def test_sweep_takes_model_or_script_not_both(workdir: Path) -> None:
    (workdir / "train.py").write_text("print('trial')\n")
    path = write(workdir, BASE + "sweep:\n  model: lightgbm\n  script: train.py\n  search_space:\n    learning_rate: uniform(0.1, 1)\n")
    assert only_problem(path) == f"{path}:9:3: sweep: give only one of `model`, `script`, not both"


def test_schedule_needs_cron_or_recurrence(workdir: Path) -> None:
    path = write(workdir, BASE + "schedule:\n  time_zone: UTC\n")
    assert only_problem(path) == f"{path}:9:3: schedule: needs one of `cron`, `recurrence`"


# ---------------------------------------------------------------- task, metric, models


def test_metric_not_fitting_the_task(workdir: Path) -> None:
    path = write(workdir, BASE.replace("task: classification", "task: regression").replace("target: y", "target: age"))
    assert only_problem(path) == (
        f"{path}:7:9: metric: `accuracy` is not a primary metric for regression (expected one of: "
        "`spearman_correlation`, `normalized_root_mean_squared_error`, `r2_score`, `normalized_mean_absolute_error`)"
    )


def test_metric_typo_with_did_you_mean(workdir: Path) -> None:
    path = write(workdir, BASE.replace("metric: accuracy", "metric: auc_weighted"))
    assert only_problem(path) == (
        f"{path}:7:9: metric: `auc_weighted` is not a primary metric for classification (did you mean `AUC_weighted`?)"
    )


def test_allowed_models_typo(workdir: Path) -> None:
    path = write(workdir, BASE + "automl:\n  allowed_models: [RandomForest, LightGMB]\n")
    assert only_problem(path) == (
        f"{path}:9:34: automl.allowed_models[1]: `LightGMB` is not an Azure AutoML algorithm for classification "
        "(did you mean `LightGBM`?)"
    )


def test_model_both_allowed_and_blocked(workdir: Path) -> None:
    path = write(workdir, BASE + "automl:\n  allowed_models: [LightGBM]\n  blocked_models: [LightGBM]\n")
    assert only_problem(path) == (
        f"{path}:10:19: automl.blocked_models: LightGBM is both allowed and blocked (list it in one of them)"
    )


def test_regression_has_no_probabilities(workdir: Path) -> None:
    text = BASE.replace("task: classification", "task: regression").replace("metric: accuracy", "metric: r2_score")
    path = write(workdir, text.replace("target: y", "target: age") + "deployment:\n  probabilities: true\n")
    assert only_problem(path) == (
        f"{path}:9:18: deployment.probabilities: regression models have no class probabilities "
        "(remove it or set it to false)"
    )


def test_serving_budget_is_positive(workdir: Path) -> None:
    path = write(workdir, BASE + "deployment:\n  max_latency_ms: 25\n  max_model_mb: 0\n")
    assert "deployment.max_model_mb" in only_problem(path)
    assert load_spec(write(workdir, BASE + "deployment:\n  max_latency_ms: 12.5\n")).data["deployment"]["max_latency_ms"] == 12.5


def test_serving_budget_is_for_tabular_models(workdir: Path) -> None:
    text = "name: mri\ndataset:\n  path: data/imgs\n  format: image_folder\ntask: image_classification\nmetric: accuracy\n"
    (workdir / "data" / "imgs").mkdir(parents=True, exist_ok=True)
    path = write(workdir, text + "deployment:\n  max_latency_ms: 25\n")
    assert any(
        p.endswith("deployment.max_latency_ms: a serving budget is measured on tabular models; image_classification has none (remove max_latency_ms)")
        for p in problems(path)
    )


def test_deploying_the_sweep_needs_a_sweep(workdir: Path) -> None:
    path = write(workdir, BASE + "deployment:\n  model: sweep\n")
    assert only_problem(path) == (
        f"{path}:9:10: deployment.model: deploys the sweep's winner, but the spec has no sweep (use `best` or `automl`)"
    )


def test_min_instances_above_max(workdir: Path) -> None:
    path = write(workdir, BASE + "compute:\n  min_instances: 5\n  max_instances: 2\n")
    assert only_problem(path) == f"{path}:9:18: compute.min_instances: min_instances 5 is above max_instances 2"


# ---------------------------------------------------------------- sweep and search space


def test_grid_sampling_over_a_non_choice(workdir: Path) -> None:
    path = write(workdir, sweep("learning_rate: uniform(0.01, 0.1)\n", sampling="grid"))
    assert only_problem(path) == (
        f"{path}:12:20: sweep.search_space.learning_rate: `grid` sampling does not accept `uniform` (it accepts choice)"
    )


def test_bayesian_over_loguniform(workdir: Path) -> None:
    path = write(workdir, sweep("learning_rate: loguniform(-6, -1)\n", sampling="bayesian"))
    assert only_problem(path) == (
        f"{path}:12:20: sweep.search_space.learning_rate: `bayesian` sampling does not accept `loguniform` "
        "(it accepts choice, quniform, uniform)"
    )


def test_unordered_bounds(workdir: Path) -> None:
    path = write(workdir, sweep("learning_rate: uniform(0.1, 0.01)\n"))
    assert only_problem(path) == (
        f"{path}:12:20: sweep.search_space.learning_rate: `uniform` bounds are not ordered: "
        "min_value 0.1 >= max_value 0.01 (write the lower bound first)"
    )


def test_unknown_distribution_with_hint(workdir: Path) -> None:
    path = write(workdir, sweep("learning_rate: unifrom(0.01, 0.1)\n"))
    # Reported once, by the search-space check; the schema's pattern rule stays quiet about it.
    assert only_problem(path) == (
        f"{path}:12:20: sweep.search_space.learning_rate: unknown distribution `unifrom` (did you mean `uniform`?)"
    )


def test_unknown_distribution_in_mapping_form(workdir: Path) -> None:
    path = write(workdir, sweep("learning_rate: {type: logunifrom, min_value: -6, max_value: -1}\n"))
    assert only_problem(path) == (
        f"{path}:12:20: sweep.search_space.learning_rate: unknown distribution type `logunifrom` "
        "(did you mean `loguniform`?)"
    )


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("uniform(0.01)", "`uniform` takes 2 argument(s) (min_value, max_value), got 1"),
        ("uniform(0.01, 0.1", "`uniform(0.01, 0.1` is missing its closing parenthesis"),
        ("uniform(low, high)", "cannot read the arguments of `uniform(low, high)` (arguments must be numbers or quoted strings)"),
        ("choice()", "`choice` needs at least one value"),
        ("choice(1, 2, 1)", "`choice` lists a value twice"),
        ("randint(0)", "`randint` upper must be a whole number of at least 1 (values are 0..upper-1)"),
        ("normal(0, 0)", "`normal` sigma must be positive"),
        ("quniform(1, 10, 0)", "`quniform` q must be positive"),
        ("{type: uniform, min_value: 0.1}", "`uniform` needs max_value"),
        ("{type: uniform, min_value: 0.1, max_value: 1, q: 1}", "`uniform` does not take q (it takes min_value, max_value)"),
    ],
)
def test_malformed_distribution(workdir: Path, expression: str, message: str) -> None:
    path = write(workdir, sweep(f"learning_rate: {expression}\n"))
    assert only_problem(path) == f"{path}:12:20: sweep.search_space.learning_rate: {message}"


def test_distribution_of_the_wrong_type(workdir: Path) -> None:
    path = write(workdir, sweep("learning_rate: 0.1\n"))
    assert only_problem(path) == f"{path}:12:20: sweep.search_space.learning_rate: expected a string, got number `0.1`"


COMPACT_FORMS = [
    ("uniform(0.1, 10)", {"type": "uniform", "min_value": 0.1, "max_value": 10}),
    ("loguniform(-6, -1)", {"type": "loguniform", "min_value": -6, "max_value": -1}),
    ("quniform(1, 10, 1)", {"type": "quniform", "min_value": 1, "max_value": 10, "q": 1}),
    ("qloguniform(0, 5, 0.5)", {"type": "qloguniform", "min_value": 0, "max_value": 5, "q": 0.5}),
    ("normal(0, 1)", {"type": "normal", "mu": 0, "sigma": 1}),
    ("lognormal(1.5, 0.25)", {"type": "lognormal", "mu": 1.5, "sigma": 0.25}),
    ("qnormal(20, 5, 1)", {"type": "qnormal", "mu": 20, "sigma": 5, "q": 1}),
    ("qlognormal(1, 0.5, 2)", {"type": "qlognormal", "mu": 1, "sigma": 0.5, "q": 2}),
    ("randint(10)", {"type": "randint", "upper": 10}),
    ("choice(50, 100, 200)", {"type": "choice", "values": [50, 100, 200]}),
    ("choice([50, 100, 200])", {"type": "choice", "values": [50, 100, 200]}),
    ("choice('relu', 'tanh')", {"type": "choice", "values": ["relu", "tanh"]}),
    ("choice(7)", {"type": "choice", "values": [7]}),
    ("  uniform( 0.5 , 1.5 )  ", {"type": "uniform", "min_value": 0.5, "max_value": 1.5}),
]


def test_every_distribution_has_a_compact_case() -> None:
    assert {expected["type"] for _, expected in COMPACT_FORMS} == set(DISTRIBUTIONS)


@pytest.mark.parametrize(("expression", "expected"), COMPACT_FORMS, ids=[e for e, _ in COMPACT_FORMS])
def test_compact_form_parses_into_azure_mapping(workdir: Path, expression: str, expected: dict) -> None:
    assert parse_compact(expression) == expected
    # Through the whole stage too, with a user script so any parameter name is accepted.
    (workdir / "train.py").write_text("print('trial')\n")
    path = write(workdir, BASE + f"sweep:\n  script: train.py\n  search_space:\n    p: {json.dumps(expression)}\n")
    spec = load_spec(path)
    assert spec.data["sweep"]["search_space"]["p"] == expected
    assert list(spec.data["sweep"]["search_space"]["p"]) == list(expected)  # Azure's key order: type first


def test_mapping_form_is_accepted_and_ordered(workdir: Path) -> None:
    path = write(
        workdir,
        sweep(
            "learning_rate: {max_value: 0.2, type: uniform, min_value: 0.02}\n"
            "num_leaves:\n  type: choice\n  values: [15, 31]\n"
        ),
    )
    space = load_spec(path).data["sweep"]["search_space"]
    assert space == {
        "learning_rate": {"type": "uniform", "min_value": 0.02, "max_value": 0.2},
        "num_leaves": {"type": "choice", "values": [15, 31]},
    }
    assert list(space["learning_rate"]) == ["type", "min_value", "max_value"]


def test_parameter_not_accepted_by_the_family(workdir: Path) -> None:
    path = write(workdir, sweep("learning_rat: uniform(0.01, 0.1)\n"))
    assert only_problem(path) == (
        f"{path}:12:19: sweep.search_space.learning_rat: `lightgbm` has no hyperparameter `learning_rat` "
        "(did you mean `learning_rate`?)"
    )


def test_family_not_fitting_the_task(workdir: Path) -> None:
    text = BASE.replace("task: classification", "task: regression").replace("metric: accuracy", "metric: r2_score")
    text = text.replace("target: y", "target: age")
    path = write(workdir, text + "sweep:\n  model: logistic_regression\n  search_space:\n    C: uniform(0.1, 10)\n")
    assert only_problem(path) == (
        f"{path}:9:10: sweep.model: trial family `logistic_regression` does not serve task `regression` "
        "(for regression use one of: random_forest, lightgbm, keras_mlp)"
    )


def test_trial_script_not_found(workdir: Path) -> None:
    path = write(workdir, BASE + "sweep:\n  script: src/train.py\n  search_space:\n    alpha: uniform(0.1, 1)\n")
    assert only_problem(path) == (
        f"{path}:9:11: sweep.script: trial script `src/train.py` not found next to the spec "
        "(paths are relative to the spec file)"
    )


def test_bandit_without_slack(workdir: Path) -> None:
    path = write(workdir, sweep("learning_rate: uniform(0.01, 0.1)\n", extra="  early_termination:\n    type: bandit\n"))
    assert only_problem(path) == (
        f"{path}:14:5: sweep.early_termination: bandit needs exactly one of slack_factor and slack_amount "
        "(e.g. slack_factor: 0.1)"
    )


def test_truncation_selection_needs_its_percentage(workdir: Path) -> None:
    path = write(
        workdir, sweep("learning_rate: uniform(0.01, 0.1)\n", extra="  early_termination:\n    type: truncation_selection\n")
    )
    assert only_problem(path) == (
        f"{path}:14:5: sweep.early_termination: truncation_selection needs truncation_percentage "
        "(e.g. truncation_percentage: 20)"
    )


def test_median_stopping_takes_no_slack(workdir: Path) -> None:
    policy = "  early_termination:\n    type: median_stopping\n    slack_factor: 0.1\n"
    path = write(workdir, sweep("learning_rate: uniform(0.01, 0.1)\n", extra=policy))
    assert only_problem(path) == (
        f"{path}:14:5: sweep.early_termination: median_stopping takes no slack_factor or slack_amount "
        "(those belong to the bandit policy)"
    )


def test_image_learning_rate_is_checked(workdir: Path) -> None:
    path = write(workdir, BASE + "automl:\n  image:\n    learning_rate: unifrom(0.001, 0.01)\n")
    assert only_problem(path) == (
        f"{path}:10:20: automl.image.learning_rate: unknown distribution `unifrom` (did you mean `uniform`?)"
    )


# ---------------------------------------------------------------- dataset


def test_target_column_absent_with_did_you_mean(workdir: Path) -> None:
    path = write(workdir, BASE.replace("target: y", "target: cons.conf.ixd"))
    assert only_problem(path) == (
        f"{path}:5:11: dataset.target: column `cons.conf.ixd` is not in bank.csv (did you mean `cons.conf.idx`?)"
    )


def test_drop_columns_absent_with_did_you_mean(workdir: Path) -> None:
    path = write(workdir, BASE.replace("  target: y\n", "  target: y\n  drop: [cons_conf_idx, two word, \"it's\"]\n"))
    assert problems(path) == [
        f"{path}:6:10: dataset.drop[0]: column `cons_conf_idx` is not in bank.csv (did you mean `cons.conf.idx`?)",
        f"{path}:6:25: dataset.drop[1]: column `two word` is not in bank.csv (did you mean `two words`?)",
    ]


def test_awkward_column_names_are_accepted(workdir: Path) -> None:
    path = write(workdir, BASE.replace("target: y", "target: \"it's\"\n  drop: [cons.conf.idx, two words]"))
    spec = load_spec(path)
    assert spec.data["dataset"]["target"] == "it's"
    assert spec.data["dataset"]["drop"] == ["cons.conf.idx", "two words"]


def test_target_cannot_be_dropped(workdir: Path) -> None:
    path = write(workdir, BASE.replace("  target: y\n", "  target: y\n  drop: [y]\n"))
    assert only_problem(path) == f"{path}:6:10: dataset.drop[0]: the target column cannot be dropped"


def test_missing_data_file(workdir: Path) -> None:
    path = write(workdir, BASE.replace("data/bank.csv", "data/nope.csv"))
    assert only_problem(path) == (
        f"{path}:3:9: dataset.path: data file `data/nope.csv` not found (looked at {workdir / 'data' / 'nope.csv'}) "
        "(paths are relative to the spec file)"
    )


def test_data_asset_reference_form(workdir: Path) -> None:
    path = write(workdir, BASE.replace("data/bank.csv", "azureml:bank"))
    assert only_problem(path) == (
        f"{path}:3:9: dataset.path: `azureml:bank` is not a data asset reference (write azureml:NAME:VERSION)"
    )
    ok = write(workdir, BASE.replace("data/bank.csv", "azureml:bank:3"), name="asset.yaml")
    assert load_spec(ok).data["dataset"]["path"] == "azureml:bank:3"


def test_both_cross_validations_and_validation_fraction(workdir: Path) -> None:
    path = write(workdir, BASE.replace("  target: y\n", "  target: y\n  cross_validations: 5\n  validation_fraction: 0.1\n"))
    assert only_problem(path) == (
        f"{path}:7:24: dataset.validation_fraction: give either cross_validations or validation_fraction, not both"
    )


def image_spec(folder: str) -> str:
    return (
        BASE.replace("data/bank.csv", folder)
        .replace("format: csv", "format: image_folder")
        .replace("  target: y\n", "")
        .replace("task: classification", "task: image_classification")
    )


def make_images(root: Path, counts: dict[str, int]) -> None:
    for label, count in counts.items():
        (root / label).mkdir(parents=True)
        for i in range(count):
            (root / label / f"{i}.png").write_bytes(b"\x89PNG\r\n\x1a\n")


def test_image_folder_with_one_class(workdir: Path) -> None:
    make_images(workdir / "scans", {"yes": 2})
    path = write(workdir, image_spec("scans"))
    assert only_problem(path) == (
        f"{path}:3:9: dataset.path: image classification needs at least two class folders with images; found 1"
    )


def test_image_folder_with_an_empty_class(workdir: Path) -> None:
    make_images(workdir / "scans", {"yes": 2, "no": 1, "maybe": 0})
    path = write(workdir, image_spec("scans"))
    assert only_problem(path) == f"{path}:3:9: dataset.path: class folder `maybe` holds no images (add images or remove the folder)"


def test_image_folder_with_two_classes_is_valid(workdir: Path) -> None:
    make_images(workdir / "scans", {"yes": 2, "no": 1})
    spec = load_spec(write(workdir, image_spec("scans")))
    assert spec.task == "image_classification"
    assert spec.path.parent / spec.data["dataset"]["path"] == workdir / "scans"


def test_image_folder_not_found(workdir: Path) -> None:
    path = write(workdir, image_spec("scans"))
    assert only_problem(path) == (
        f"{path}:3:9: dataset.path: image folder `scans` not found (one sub-folder per class, relative to the spec file)"
    )


def test_csv_format_for_an_image_task(workdir: Path) -> None:
    path = write(workdir, BASE.replace("task: classification", "task: image_classification"))
    assert only_problem(path) == f"{path}:4:11: dataset.format: format `csv` does not fit task `image_classification` (use image_folder)"


def test_image_folder_format_for_a_tabular_task(workdir: Path) -> None:
    make_images(workdir / "scans", {"yes": 1, "no": 1})
    text = BASE.replace("data/bank.csv", "scans").replace("format: csv", "format: image_folder").replace("  target: y\n", "")
    path = write(workdir, text)
    assert only_problem(path) == (
        f"{path}:4:11: dataset.format: format `image_folder` does not fit task `classification` (use csv or parquet)"
    )


def test_table_without_target(workdir: Path) -> None:
    path = write(workdir, BASE.replace("  target: y\n", ""))
    assert only_problem(path) == f"{path}:3:3: dataset: missing required key `target` (the label column of the table)"


# ---------------------------------------------------------------- all at once, defaults, overrides, hash


def test_every_problem_is_reported_in_one_run(workdir: Path) -> None:
    text = (
        BASE.replace("name: bank-demo", "name: Bank")
        .replace("target: y", "target: yy")
        .replace("metric: accuracy", "metric: r2_score")
    )
    path = write(workdir, text + "automl:\n  timeout_minute: 3\nsweep:\n  model: lightgbm\n  sampling: grd\n  search_space:\n    learning_rate: unifrom(0.1, 1)\n")
    found = problems(path)
    assert [p.split(": ", 2)[1] for p in found] == [
        "name",
        "dataset.target",
        "metric",
        "automl.timeout_minute",
        "sweep.sampling",
        "sweep.search_space.learning_rate",
    ]
    assert found[1] == f"{path}:5:11: dataset.target: column `yy` is not in bank.csv (did you mean `y`?)"
    assert found[4] == f"{path}:12:13: sweep.sampling: `grd` is not allowed (did you mean `grid`?)"
    with pytest.raises(SpecInvalid) as caught:
        load_spec(path)
    assert caught.value.message.endswith("\n6 problems found.")
    assert caught.value.message.splitlines()[:6] == found


def test_unknown_task_does_not_hide_the_search_space(workdir: Path) -> None:
    text = BASE.replace("task: classification", "task: clasification")
    path = write(workdir, text + "sweep:\n  model: lightgbm\n  search_space:\n    learning_rate: uniform(1, 0.1)\n")
    assert [p.split(": ", 2)[1] for p in problems(path)] == ["task", "sweep.search_space.learning_rate"]


def test_defaults_are_filled(workdir: Path) -> None:
    path = write(workdir, sweep("learning_rate: uniform(0.01, 0.1)\n", extra="  early_termination:\n    type: median_stopping\n"))
    data = load_spec(path).data
    assert data["description"] == ""
    assert data["automl"]["timeout_minutes"] == 60
    assert data["automl"]["max_trials"] == 40
    assert data["automl"]["allowed_models"] == []
    assert data["automl"]["exit_score"] is None
    assert data["automl"]["image"]["model_names"] == ["resnet50", "seresnext", "vitb16r224"]
    assert data["dataset"]["validation_fraction"] == 0.2
    assert data["dataset"]["drop"] == []
    assert data["sweep"]["enabled"] is True
    assert data["sweep"]["limits"] == {
        "max_total_trials": 20,
        "max_concurrent_trials": 2,
        "timeout_minutes": 60,
        "trial_timeout_minutes": 20,
    }
    assert data["sweep"]["early_termination"] == {"type": "median_stopping", "evaluation_interval": 1, "delay_evaluation": 0}
    assert data["compute"]["name"] == "cpu-cluster"
    assert data["deployment"]["model"] == "best"
    assert "schedule" not in data  # optional sections without a default stay absent


def test_defaults_come_from_the_schema(workdir: Path) -> None:
    data = load_spec(write(workdir, BASE)).data
    for key, sub in schema()["properties"]["automl"]["properties"].items():
        if "default" in sub and key != "image":
            assert data["automl"][key] == sub["default"], key
    assert "sweep" not in data


def test_given_values_win_over_defaults(workdir: Path) -> None:
    path = write(workdir, BASE + "automl:\n  timeout_minutes: 5\n")
    assert load_spec(path).data["automl"]["timeout_minutes"] == 5


def test_set_override_changes_value_and_hash(workdir: Path) -> None:
    path = write(workdir, BASE)
    plain = load_spec(path)
    overridden = load_spec(path, overrides=["automl.timeout_minutes=2", "dataset.drop=[age, two words]"])
    assert overridden.data["automl"]["timeout_minutes"] == 2
    assert overridden.data["automl"]["max_trials"] == 40  # the rest of the section keeps its defaults
    assert overridden.data["dataset"]["drop"] == ["age", "two words"]
    assert overridden.overrides == (("automl.timeout_minutes", 2), ("dataset.drop", ["age", "two words"]))
    assert overridden.sha256 != plain.sha256
    assert load_spec(path, overrides=["automl.timeout_minutes=2", "dataset.drop=[age, two words]"]).sha256 == overridden.sha256
    assert plain.data["automl"]["timeout_minutes"] == 60


def test_set_override_of_a_value_in_the_file(workdir: Path) -> None:
    path = write(workdir, BASE + "automl:\n  timeout_minutes: 30\n")
    assert load_spec(path, overrides=["automl.timeout_minutes=3"]).data["automl"]["timeout_minutes"] == 3


def test_invalid_set_override_is_reported_at_its_position(workdir: Path) -> None:
    path = write(workdir, BASE + "automl:\n  timeout_minutes: 30\n")
    assert problems(path, overrides=["automl.max_trials=3", "automl.timeout_minutes=abc"]) == [
        "--set:2:1: automl.timeout_minutes: expected a whole number, got string `'abc'`"
    ]


def test_set_override_unknown_key(workdir: Path) -> None:
    path = write(workdir, BASE)
    assert problems(path, overrides=["automl.timeout_minute=2"]) == [
        "--set:1:1: automl.timeout_minute: unknown key `timeout_minute` (did you mean `timeout_minutes`?)"
    ]


def test_set_override_checked_against_the_data(workdir: Path) -> None:
    path = write(workdir, BASE)
    assert problems(path, overrides=["dataset.target=cons.conf.ixd"]) == [
        "--set:1:1: dataset.target: column `cons.conf.ixd` is not in bank.csv (did you mean `cons.conf.idx`?)"
    ]


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("automl", "--set:1:1: automl: cannot read override `automl` (write --set key.path=value, e.g. --set automl.timeout_minutes=2)"),
        ("=3", "--set:1:1: cannot read override `=3` (write --set key.path=value, e.g. --set automl.timeout_minutes=2)"),
        ("name.first=x", "--set:1:1: name: `name` is a value, not a section (override a key inside a section)"),
    ],
)
def test_unreadable_set_override(workdir: Path, expression: str, expected: str) -> None:
    assert problems(write(workdir, BASE), overrides=[expression]) == [expected]


def test_sha256_is_stable_and_follows_the_bytes(workdir: Path) -> None:
    path = write(workdir, BASE)
    first = load_spec(path).sha256
    assert load_spec(path).sha256 == first
    assert len(first) == 64 and int(first, 16) >= 0
    path.write_text(BASE + "# a comment changes the file, so the hash\n")
    assert load_spec(path).sha256 != first


def test_spec_is_a_value(workdir: Path) -> None:
    spec = load_spec(write(workdir, BASE))
    assert isinstance(spec, Spec)
    assert (spec.name, spec.task, spec.metric, spec.goal) == ("bank-demo", "classification", "accuracy", "maximize")
    assert spec.path.parent / spec.data["dataset"]["path"] == workdir / "data" / "bank.csv"


def test_spec_invalid_is_a_capc_error_with_sorted_problems() -> None:
    later = SpecProblem("b.yaml", 3, 1, "task", "bad")
    earlier = SpecProblem("a.yaml", 9, 2, "", "worse", "fix it")
    error = SpecInvalid([later, earlier, later])
    assert isinstance(error, CapcError)
    assert error.problems == [earlier, later]
    assert error.message == "a.yaml:9:2: worse (fix it)\nb.yaml:3:1: task: bad\n2 problems found."
