"""Spec stage (service rules): each of Azure's submit-time rules refuses (or warns about) a spec at FILE:LINE:COL.

One bad spec per rule of capc.spec.service_rules.SERVICE_RULES, with the exact message; then the warning path
through `capc validate` (exit 0, `--strict` exit 1).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from capc.cli import cli
from capc.errors import SpecInvalid
from capc.spec import load_spec
from capc.spec.service_rules import ERROR, ONLINE_ENDPOINT_SIZES, RETIRED_SIZES, SERVICE_RULES, WARNING, is_gpu_size
from repo import REFERENCE_SPECS
from repo import write_spec as write

# Seven lines; sections added by the tests start on line 8. data/bank.csv comes with the spec stage's workdir.
BASE = """\
name: rules-demo
dataset:
  path: data/bank.csv
  format: csv
  target: y
task: classification
metric: accuracy
"""
LIGHTGBM_SWEEP = """\
sweep:
  model: lightgbm
  sampling: {sampling}
  search_space:
    n_estimators: choice(100, 200)
    learning_rate: {learning_rate}
"""


def the_problem(path: Path) -> str:
    with pytest.raises(SpecInvalid) as caught:
        load_spec(path)
    assert len(caught.value.problems) == 1, caught.value.problems
    return str(caught.value.problems[0])


def test_every_rule_cites_its_documentation_page():
    assert len({rule.name for rule in SERVICE_RULES}) == len(SERVICE_RULES)
    for rule in SERVICE_RULES:
        assert rule.severity in (ERROR, WARNING)
        assert rule.doc.startswith("https://learn.microsoft.com/"), rule.name


def test_bayesian_sampling_with_an_early_termination_policy(workdir):
    path = write(workdir, BASE + LIGHTGBM_SWEEP.format(sampling="bayesian", learning_rate="uniform(0.05, 0.2)")
                 + "  early_termination:\n    type: bandit\n    slack_factor: 0.1\n")
    assert the_problem(path) == (
        f"{path}:15:5: sweep.early_termination: Azure ML refuses an early-termination policy with bayesian sampling "
        "(remove early_termination, or use `sampling: random` to keep the policy)"
    )


def test_bayesian_sampling_takes_only_choice_uniform_quniform(workdir):
    path = write(workdir, BASE + LIGHTGBM_SWEEP.format(sampling="bayesian", learning_rate="loguniform(-6, -1)"))
    assert the_problem(path) == (
        f"{path}:13:20: sweep.search_space.learning_rate: `bayesian` sampling does not accept `loguniform` "
        "(it accepts choice, quniform, uniform)"
    )


def test_grid_sampling_takes_only_choice_in_the_image_sweep_too(workdir):
    path = write(workdir, BASE + "automl:\n  image:\n    sampling: grid\n    learning_rate: uniform(0.001, 0.01)\n")
    assert the_problem(path) == (
        f"{path}:11:20: automl.image.learning_rate: `grid` sampling does not accept `uniform` (it accepts choice)"
    )


def test_sweep_limits_above_the_documented_maximum(workdir):
    path = write(workdir, BASE + LIGHTGBM_SWEEP.format(sampling="random", learning_rate="uniform(0.05, 0.2)")
                 + "  limits:\n    max_total_trials: 1001\n")
    assert the_problem(path) == (
        f"{path}:15:23: sweep.limits.max_total_trials: 1001 is above Azure ML's maximum of 1000 (use at most 1000)"
    )


def test_image_automl_on_a_cpu_cluster(workdir):
    for label in ("yes", "no"):
        (workdir / "data" / "images" / label).mkdir(parents=True)
        (workdir / "data" / "images" / label / "a.png").write_bytes(b"\x89PNG")
    image_spec = BASE.replace("  path: data/bank.csv\n  format: csv\n  target: y\n", "  path: data/images\n  format: image_folder\n")
    image_spec = image_spec.replace("task: classification", "task: image_classification")
    path = write(workdir, image_spec + "compute:\n  name: gpu-cluster\n  size: Standard_DS3_v2\n")
    assert the_problem(path) == (
        f"{path}:9:9: compute.size: AutoML image tasks need a GPU cluster; `Standard_DS3_v2` has no GPU "
        "(use a GPU size such as Standard_NC4as_T4_v3 (T4) or Standard_NC24ads_A100_v4 (A100))"
    )
    path.write_text(path.read_text().replace("Standard_DS3_v2", "Standard_NC4as_T4_v3"))
    assert load_spec(path).data["compute"]["size"] == "Standard_NC4as_T4_v3"


def test_endpoint_instance_type_that_online_endpoints_do_not_offer(workdir):
    path = write(workdir, BASE + "deployment:\n  instance_type: Standard_DS3_v3\n")
    assert the_problem(path) == (
        f"{path}:9:18: deployment.instance_type: `Standard_DS3_v3` is not a size managed online endpoints offer "
        "(did you mean `Standard_DS3_v2`?)"
    )


def test_endpoint_sizes_match_without_case_as_azure_does(workdir):
    path = write(workdir, BASE + "deployment:\n  instance_type: STANDARD_F4S_V2\n")
    assert load_spec(path).warnings == ()


def test_a_retired_cluster_size_is_refused_with_its_date_page_and_a_current_size(workdir):
    # The NCv3 (V100) sizes were retired on 2025-09-30; the MRI spec named one until this rule caught it.
    path = write(workdir, BASE + "compute:\n  name: gpu-cluster\n  size: standard_nc6s_v3\n")
    assert the_problem(path) == (
        f"{path}:10:9: compute.size: `standard_nc6s_v3` (NCv3 series) was retired by Azure on 2025-09-30 "
        "(use a current size such as Standard_NC4as_T4_v3 (T4) or Standard_NC24ads_A100_v4 (A100); "
        "see https://learn.microsoft.com/azure/virtual-machines/ncv3-nc6s-nc12s-nc24s-retirement)"
    )


def test_a_retired_endpoint_size_is_refused(workdir):
    path = write(workdir, BASE + "deployment:\n  instance_type: Standard_NC6s_v2\n")
    assert the_problem(path).startswith(
        f"{path}:9:18: deployment.instance_type: `Standard_NC6s_v2` (NCv2 series) was retired by Azure on 2023-09-06 "
        "(use a current size such as Standard_NC4as_T4_v3"
    )
    path = write(workdir, BASE + "compute:\n  size: Basic_A2\n")
    assert "`Basic_A2` (Av1 series) was retired by Azure on 2024-08-31 (use a current size such as Standard_D4as_v4" in the_problem(path)


def test_the_retired_table_holds_only_past_retirements_and_no_size_capc_suggests():
    assert all(date <= "2026-11-30" for _, date, _ in RETIRED_SIZES.values())
    assert all(page.startswith("https://learn.microsoft.com/") for _, _, page in RETIRED_SIZES.values())
    for suggested in ("Standard_NC4as_T4_v3", "Standard_NC24ads_A100_v4", "Standard_D4as_v4", "Standard_DS3_v2"):
        assert suggested.lower() not in RETIRED_SIZES


def test_concurrency_above_the_cluster_is_a_warning_with_its_location(workdir):
    path = write(workdir, BASE + "automl:\n  max_concurrent_trials: 6\ncompute:\n  max_instances: 3\n")
    spec = load_spec(path)  # Azure accepts it: the trials queue
    assert [str(w) for w in spec.warnings] == [
        f"{path}:9:26: automl.max_concurrent_trials: 6 concurrent AutoML trials on cluster `cpu-cluster` of at most 3 nodes: "
        "the rest queue (lower it to 3 or raise compute.max_instances)"
    ]


def test_sweep_concurrency_above_the_cluster(workdir):
    path = write(workdir, BASE + LIGHTGBM_SWEEP.format(sampling="random", learning_rate="uniform(0.05, 0.2)")
                 + "  limits:\n    max_concurrent_trials: 5\nautoml:\n  max_concurrent_trials: 2\ncompute:\n  max_instances: 2\n")
    assert [str(w) for w in load_spec(path).warnings] == [
        f"{path}:15:28: sweep.limits.max_concurrent_trials: 5 concurrent trials on cluster `cpu-cluster` of at most 2 nodes: "
        "the rest queue (lower it to 2 or raise compute.max_instances)"
    ]


def test_validate_prints_warnings_and_exits_0_unless_strict(workdir):
    path = write(workdir, BASE + "automl:\n  max_concurrent_trials: 6\ncompute:\n  max_instances: 3\n")
    result = CliRunner().invoke(cli, ["validate", str(path)])
    assert result.exit_code == 0, result.output
    assert "warning: " in result.output and "automl.max_concurrent_trials: 6 concurrent AutoML trials" in result.output
    strict = CliRunner().invoke(cli, ["validate", "--strict", str(path)])
    assert strict.exit_code == 1
    assert f"{path}:9:26: automl.max_concurrent_trials:" in strict.output
    assert "1 problem found." in strict.output


def test_the_reference_specs_pass_every_rule_strictly():
    result = CliRunner().invoke(cli, ["validate", "--strict", *map(str, REFERENCE_SPECS)])
    assert result.exit_code == 0, result.output
    assert "warning" not in result.output


def test_gpu_sizes_and_the_endpoint_table_agree():
    gpu_endpoint_sizes = {name for name, (_, _, gpus) in ONLINE_ENDPOINT_SIZES.items() if gpus}
    assert gpu_endpoint_sizes == {name for name in ONLINE_ENDPOINT_SIZES if is_gpu_size(name)}
    assert ONLINE_ENDPOINT_SIZES["Standard_DS3_v2"] == ("standardDSv2Family", 4, 0)
