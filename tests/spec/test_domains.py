"""Hyperparameter domains: every distribution's values checked against the family table's domain, per family.

The table (capc.families) gives each hyperparameter its kind, legal range and allowed strings; validation refuses a
distribution that can draw outside them, at FILE:LINE:COL, naming the legal range.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from capc.errors import SpecInvalid
from capc.families import FAMILIES, Hyperparameter
from capc.spec import domains, load_spec
from capc.spec.search_space import parse_compact

from repo import write_spec as write

BASE = """\
name: bank-demo
dataset:
  path: data/bank.csv
  format: csv
  target: y
task: classification
metric: accuracy
"""

PARAMETERS = [(f.name, h) for f in FAMILIES.values() for h in f.hyperparameters]


def outside(h: Hyperparameter) -> list:
    """Values just outside each side of a hyperparameter's domain (or a string it does not allow)."""
    if h.kind == "str":
        return ["not-" + h.allowed[0], 1]
    step = 1 if h.kind == "int" else 0.5
    out = []
    if h.low is not None:
        out.append(h.low if h.open_low else h.low - step)
    if h.high is not None:
        out.append(h.high if h.open_high else h.high + step)
    return out


@pytest.mark.parametrize("family,h", PARAMETERS, ids=[f"{f}.{h.name}" for f, h in PARAMETERS])
def test_every_hyperparameter_has_a_domain_that_holds_its_default(family, h):
    assert h.kind in ("int", "float", "str")
    assert h.admits(h.default), f"{family}.{h.name}: default {h.default!r} is outside {h.domain}"
    if h.kind == "str":
        assert h.allowed and h.low is None and h.high is None
    else:
        assert not h.allowed and h.low is not None  # every numeric hyperparameter of a built-in family is bounded below
    assert domains.check(h, {"type": "choice", "values": [h.default]}) is None


@pytest.mark.parametrize("family,h", PARAMETERS, ids=[f"{f}.{h.name}" for f, h in PARAMETERS])
def test_choices_outside_the_domain_are_refused_naming_it(family, h):
    for value in outside(h):
        found = domains.check(h, {"type": "choice", "values": [h.default, value]})
        assert found, f"{family}.{h.name}: choice of {value!r} passed"
        message, _ = found
        assert message.startswith(f"`{h.name}` takes ") and h.domain in message and repr(value) in message or str(value) in message


@pytest.mark.parametrize("family,h", [(f, h) for f, h in PARAMETERS if h.kind != "str"], ids=lambda v: getattr(v, "name", v))
def test_numeric_distributions_are_checked_by_their_support(family, h):
    low = h.low if not h.open_low else h.low + (1 if h.kind == "int" else 0.01)
    high = (h.high - (0.01 if h.open_high else 0)) if h.high is not None else low + 10
    assert domains.check(h, parse_compact(f"uniform({low}, {high})")) is None
    below = domains.check(h, parse_compact(f"uniform({h.low - 5}, {high})"))
    assert below and f"takes {'an' if h.kind == 'int' else 'a'} {h.domain}, but uniform(" in below[0]
    assert domains.check(h, parse_compact("normal(0, 1)"))[1] == "normal is unbounded; for a bounded range use uniform or quniform"


def test_supports_follow_azures_semantics():
    assert domains.support(parse_compact("randint(10)")) == domains.Support(0, 9)
    assert domains.support(parse_compact("loguniform(0, 1)")) == domains.Support(1.0, math.e)
    assert domains.support(parse_compact("quniform(0.4, 10.6, 1)")) == domains.Support(0, 11)
    assert domains.support(parse_compact("qloguniform(-5, 2, 1)")).low == 0  # exp(-5) rounds to 0
    assert domains.support(parse_compact("lognormal(0, 1)")) == domains.Support(0.0, math.inf, False, False)


def test_string_hyperparameter_takes_only_a_choice_of_its_strings():
    kernel = FAMILIES["svc"].hyperparameter("kernel")
    assert domains.check(kernel, parse_compact('choice("rbf", "poly")')) is None
    message, hint = domains.check(kernel, parse_compact("uniform(0, 1)"))
    assert message == '`kernel` takes one of "rbf", "poly", "sigmoid", "linear", but uniform draws numbers'
    assert hint == 'use choice("rbf", ...)'


def test_unquoted_strings_in_a_choice_get_the_quoted_expression_as_hint(workdir: Path):
    path = write(workdir, BASE + "sweep:\n  model: logistic_regression\n  search_space:\n    penalty: choice(l2, l1)\n")
    with pytest.raises(SpecInvalid) as caught:
        load_spec(path)
    assert [str(p) for p in caught.value.problems] == [
        f"{path}:11:14: sweep.search_space.penalty: cannot read the arguments of `choice(l2, l1)` "
        '(quote each string: choice("l2", "l1"))'
    ]


@pytest.mark.parametrize(
    "family,entry,message",
    [
        ("lightgbm", "max_depth: uniform(-5, 0.5)",
         "`max_depth` takes an integer >= -1, but uniform(-5, 0.5) can give it values in [-5, 0] (draws rounded to whole numbers)"),
        ("random_forest", "max_depth: uniform(-5, 0.5)",
         "`max_depth` takes an integer >= 0, but uniform(-5, 0.5) can give it values in [-5, 0] (draws rounded to whole numbers)"),
        ("lightgbm", "subsample: uniform(0, 1)", "`subsample` takes a real in (0, 1], but uniform(0, 1) can give it values in [0, 1]"),
        ("lightgbm", "num_leaves: choice(1, 31)", "`num_leaves` takes an integer in [2, 131072], but choice lists 1"),
        ("logistic_regression", 'penalty: choice("l2", "L1")',
         "`penalty` takes one of \"l2\", \"l1\", \"elasticnet\", \"none\", but choice lists 'L1' (quote each string: choice(\"a\", \"b\"))"),
        ("svc", "C: loguniform(-3, 800)", "`C` takes a real > 0, but loguniform(-3, 800) can give it values in [0.0497871, inf] "
         "(loguniform's bounds are natural logarithms: loguniform(a, b) draws exp(a)..exp(b), e.g. loguniform(-7, -2) draws 0.0009..0.14)"),
        ("logistic_regression", "max_iter: randint(100)",
         "`max_iter` takes an integer >= 1, but randint(100) can give it values in [0, 99] "
         "(randint(upper) draws 0..upper-1; for another range use quniform(low, high, 1))"),
        ("lightgbm", "learning_rate: loguniform(0.001, 0.3)", None),  # legal (exp(0.001)..exp(0.3)) though surely not meant
        ("lightgbm", "learning_rate: lognormal(-3, 1)", None),
    ],
)
def test_domain_problems_are_located(workdir: Path, family, entry, message):
    path = write(workdir, BASE + f"sweep:\n  model: {family}\n  search_space:\n    {entry}\n")
    if message is None:
        load_spec(path)
        return
    with pytest.raises(SpecInvalid) as caught:
        load_spec(path)
    key = entry.split(":")[0]
    assert [str(p) for p in caught.value.problems] == [f"{path}:11:{len(key) + 7}: sweep.search_space.{key}: {message}"]


def test_conditional_sweeps_check_each_familys_domains(workdir: Path):
    path = write(workdir, BASE + """\
sweep:
  sampling: grid
  families:
    logistic_regression:
      search_space: {l1_ratio: "choice(0.5, 2)"}
    svc:
      search_space: {degree: "choice(0, 3)", kernel: "choice('poly')"}
""")
    with pytest.raises(SpecInvalid) as caught:
        load_spec(path)
    assert [str(p) for p in caught.value.problems] == [
        f"{path}:12:32: sweep.families.logistic_regression.search_space.l1_ratio: `l1_ratio` takes a real in [0, 1], but choice lists 2",
        f"{path}:14:30: sweep.families.svc.search_space.degree: `degree` takes an integer >= 1, but choice lists 0",
    ]


def test_a_users_script_has_no_domain(workdir: Path):
    (workdir / "mine.py").write_text("print('trial')\n")
    path = write(workdir, BASE + "sweep:\n  script: mine.py\n  search_space:\n    max_depth: uniform(-5, 0.5)\n")
    assert load_spec(path).data["sweep"]["search_space"]["max_depth"]["min_value"] == -5
