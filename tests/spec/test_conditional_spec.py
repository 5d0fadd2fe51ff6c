"""Spec stage, conditional sweeps (sweep.families): the errors of the new form with the exact message each promises,
the defaults it fills, the grid of valid combinations and the split of the trial budget.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from capc.errors import SpecInvalid
from capc.families import FAMILIES
from capc.spec import load_spec
from capc.spec.conditional import Combination, SweepBranch, branches, grid_combinations, split_limit
from capc.spec.reference import rows

# Eight lines; the sweep starts at line 9.
BASE = """\
name: digits-demo
dataset:
  path: data/digits.csv
  format: csv
  target: label
task: classification
metric: accuracy
sweep:
"""


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "digits.csv").write_text("pixel0,pixel1,label\n0,1,0\n1,0,1\n0,0,0\n1,1,1\n")
    (tmp_path / "my_trial.py").write_text("print('a trial')\n")
    return tmp_path


def spec_file(workdir: Path, sweep: str) -> Path:
    path = workdir / "spec.yaml"
    path.write_text(BASE + textwrap.indent(textwrap.dedent(sweep), "  "), encoding="utf-8")
    return path


def problems(path: Path) -> list[str]:
    with pytest.raises(SpecInvalid) as caught:
        load_spec(path)
    return [str(p) for p in caught.value.problems]


TWO_FAMILIES = """\
sampling: random
families:
  logistic_regression:
    search_space:
      C: loguniform(-3, 3)
      max_iter: choice(200, 500)
  svc:
    weight: 3
    search_space:
      C: loguniform(-2, 4)
      gamma: loguniform(-8, -2)
limits: {max_total_trials: 20, max_concurrent_trials: 2}
"""


def test_two_families_validate_with_their_own_spaces_and_weights(workdir):
    spec = load_spec(spec_file(workdir, TWO_FAMILIES))
    families = spec.data["sweep"]["families"]
    assert families["logistic_regression"]["weight"] == 1  # the schema's default, filled
    assert families["svc"]["search_space"]["gamma"] == {"type": "loguniform", "min_value": -8, "max_value": -2}
    assert [(b.name, b.family, b.weight, list(b.search_space)) for b in branches(spec.data["sweep"])] == [
        ("logistic_regression", "logistic_regression", 1.0, ["C", "max_iter"]),
        ("svc", "svc", 3.0, ["C", "gamma"]),
    ]


def test_the_one_family_form_is_one_branch(workdir):
    spec = load_spec(spec_file(workdir, "model: svc\nsearch_space:\n  C: uniform(0.1, 10)\n"))
    assert [(b.name, b.family, b.script) for b in branches(spec.data["sweep"])] == [("svc", "svc", None)]


def test_a_users_script_is_a_branch_of_its_own(workdir):
    path = spec_file(workdir, """\
        families:
          svc:
            search_space: {C: "uniform(1, 2)"}
          mine:
            script: my_trial.py
            search_space: {depth: "choice(2, 4)"}
        """)
    assert [(b.name, b.family, b.script, b.script_name) for b in branches(load_spec(path).data["sweep"])] == [
        ("svc", "svc", None, "train_svc.py"), ("mine", None, "my_trial.py", "train_mine.py"),
    ]


def test_unknown_family(workdir):
    path = spec_file(workdir, "families:\n  svm:\n    search_space:\n      C: uniform(1, 2)\n")
    assert problems(path) == [f"{path}:10:5: sweep.families.svm: unknown trial family `svm` (did you mean `svc`?)"]


def test_parameter_of_another_family(workdir):
    path = spec_file(workdir, """\
        families:
          logistic_regression:
            search_space:
              gamma: loguniform(-8, -2)
          svc:
            search_space:
              C: uniform(1, 2)
        """)
    assert problems(path) == [
        f"{path}:12:16: sweep.families.logistic_regression.search_space.gamma: `gamma` is a hyperparameter of `svc`, "
        "not of `logistic_regression` (move it under sweep.families.svc.search_space)"
    ]


def test_parameter_of_no_family_gets_a_did_you_mean(workdir):
    path = spec_file(workdir, "families:\n  svc:\n    search_space:\n      gama: uniform(1, 2)\n")
    assert problems(path) == [f"{path}:12:15: sweep.families.svc.search_space.gama: `svc` has no hyperparameter `gama` (did you mean `gamma`?)"]


def test_family_that_does_not_fit_the_task(workdir):
    path = spec_file(workdir, "families:\n  keras_cnn:\n    search_space:\n      depth: choice(2, 3)\n")
    assert problems(path) == [
        f"{path}:10:5: sweep.families.keras_cnn: trial family `keras_cnn` does not serve task `classification` "
        f"(for classification use one of: {', '.join(f.name for f in FAMILIES.values() if 'classification' in f.tasks)})"
    ]


def test_grid_over_a_non_choice(workdir):
    path = spec_file(workdir, "sampling: grid\nfamilies:\n  svc:\n    search_space:\n      C: uniform(1, 2)\n")
    assert problems(path) == [f"{path}:13:12: sweep.families.svc.search_space.C: `grid` sampling does not accept `uniform` (it accepts choice)"]


def test_a_weight_means_nothing_to_a_grid(workdir):
    path = spec_file(workdir, "sampling: grid\nfamilies:\n  svc:\n    weight: 2\n    search_space:\n      C: choice(1, 2)\n")
    assert problems(path) == [
        f"{path}:12:15: sweep.families.svc.weight: grid sampling runs every combination, so a family's weight has no effect "
        "(remove weight, or use random or bayesian sampling)"
    ]


def test_budget_too_small_to_split(workdir):
    path = spec_file(workdir, TWO_FAMILIES.replace("{max_total_trials: 20, max_concurrent_trials: 2}", "{max_total_trials: 1, max_concurrent_trials: 1}"))
    assert problems(path) == [
        f"{path}:20:30: sweep.limits.max_total_trials: max_total_trials 1 cannot be split between 2 families (one sweep each) "
        "(raise it to at least 2, or use grid sampling)",
        f"{path}:20:56: sweep.limits.max_concurrent_trials: max_concurrent_trials 1 cannot be split between 2 families "
        "(one sweep each) (raise it to at least 2, or use grid sampling)",
    ]


def test_families_with_model_or_search_space(workdir):
    path = spec_file(workdir, "search_space:\n  C: choice(1)\nfamilies:\n  svc:\n    search_space:\n      C: choice(1)\n")
    assert problems(path) == [
        f"{path}:10:5: sweep.search_space: `search_space` does not go with `families` "
        "(give each family its own search_space (and script) under sweep.families)"
    ]
    path = spec_file(workdir, "model: svc\nsearch_space:\n  C: choice(1)\nfamilies:\n  svc:\n    search_space:\n      C: choice(1)\n")
    assert problems(path) == [f"{path}:9:3: sweep: give only one of `model`, `families`, not both"]


def test_users_script_branch_problems(workdir):
    path = spec_file(workdir, """\
        families:
          svc:
            script: my_trial.py
            search_space: {C: "choice(1)"}
          mine:
            script: missing.py
            search_space: {C: "choice(1)"}
          trial_x:
            script: my_trial.py
            search_space: {C: "choice(1)"}
        limits: {max_concurrent_trials: 3}
        """)
    assert problems(path) == [
        f"{path}:11:15: sweep.families.svc.script: `svc` is a built-in trial family; a branch with its own script needs another name (e.g. my_svc)",
        f"{path}:14:15: sweep.families.mine.script: trial script `missing.py` not found next to the spec (paths are relative to the spec file)",
        f"{path}:16:5: sweep.families.trial_x: `trial_x` cannot name a family (the build's sweep_trial_x.yml is another file) (e.g. my_trial_x)",
    ]


def test_schema_shapes_of_a_family(workdir):
    path = spec_file(workdir, "families:\n  svc:\n    wieght: 2\n    search_space:\n      C: choice(1)\n  Bad-Name:\n    search_space: {C: 'choice(1)'}\n")
    found = problems(path)
    assert found == [
        f"{path}:11:7: sweep.families.svc.wieght: unknown key `wieght` (did you mean `weight`?)",
        f"{path}:14:5: sweep.families.Bad-Name: `Bad-Name` cannot name an entry here (names must match ^[a-z][a-z0-9_]{{0,31}}$)",
    ]
    path = spec_file(workdir, "families:\n  svc:\n    weight: 0\n    search_space:\n      C: choice(1)\n")
    assert [p.split(": ", 2)[1] for p in problems(path)] == ["sweep.families.svc.weight"]


# ---------------------------------------------------------------- the grid and the split


def _branch(name: str, **space) -> SweepBranch:
    return SweepBranch(name, name, None, {p: {"type": "choice", "values": list(v)} for p, v in space.items()})


def test_grid_enumerates_only_valid_combinations_exactly():
    lr = _branch("logistic_regression", C=(0.1, 1, 10), max_iter=(100, 200))
    svc = _branch("svc", C=(1, 10), gamma=(0.01, 0.1), kernel=("rbf", "poly"))
    combos = grid_combinations([lr, svc])
    assert len(combos) == 3 * 2 + 2 * 2 * 2  # a sum over families of products, never the product of all
    assert [c.index for c in combos] == list(range(len(combos)))
    for combo in combos:
        assert set(combo.params) == set({"logistic_regression": lr, "svc": svc}[combo.branch].search_space)
    assert combos[0] == Combination(0, "logistic_regression", {"C": 0.1, "max_iter": 100})
    assert combos[-1] == Combination(13, "svc", {"C": 10, "gamma": 0.1, "kernel": "poly"})
    assert len({(c.branch, tuple(sorted(c.params.items()))) for c in combos}) == len(combos)  # each once


@pytest.mark.parametrize("total, weights, expected", [
    (20, [1, 1], [10, 10]),
    (7, [1, 1], [4, 3]),
    (6, [1, 2], [2, 4]),
    (2, [1, 2], [1, 1]),
    (3, [1, 100, 1], [1, 1, 1]),
    (10, [1, 1, 1], [4, 3, 3]),
])
def test_split_limit(total, weights, expected):
    assert split_limit(total, weights) == expected
    assert sum(split_limit(total, weights)) == total


def test_key_reference_covers_the_families():
    keys = [row[0] for row in rows()]
    for key in ("sweep.families", "sweep.families.<family>", "sweep.families.<family>.weight",
                "sweep.families.<family>.script", "sweep.families.<family>.search_space.<param>"):
        assert key in keys
