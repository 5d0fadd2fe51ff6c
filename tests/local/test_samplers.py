"""Search-space sampling (capc.local.samplers): Azure's meaning of each distribution, algorithms, seeding."""

import math
import statistics

import optuna
import pytest

from capc.errors import CapcError
from capc.local import samplers

optuna.logging.set_verbosity(optuna.logging.WARNING)


def draw(search_space, n, algorithm="random", options=None, trials_so_far=0):
    """n values from a fresh in-memory study, as the sweep runner draws them (ask, map raw -> value, tell)."""
    study = optuna.create_study(sampler=samplers.make_sampler(algorithm, options or {}, search_space, trials_so_far))
    dists = samplers.distributions(search_space)
    out = []
    for _ in range(n):
        trial = study.ask(dists)
        out.append(samplers.values_from_raw(search_space, trial.params))
        study.tell(trial, 0.0)
    return out


def test_randint_is_zero_to_upper_exclusive():
    values = {v["r"] for v in draw({"r": {"type": "randint", "upper": 4}}, 200)}
    assert values == {0, 1, 2, 3}


def test_loguniform_bounds_are_logarithms():
    values = [v["lr"] for v in draw({"lr": {"type": "loguniform", "min_value": -6, "max_value": -1}}, 400)]
    assert math.exp(-6) <= min(values) and max(values) <= math.exp(-1)
    # log-uniform: the logs are spread evenly, their mean is about -3.5
    assert statistics.fmean(math.log(v) for v in values) == pytest.approx(-3.5, abs=0.3)


def test_quniform_rounds_to_multiples_of_q():
    values = {v["x"] for v in draw({"x": {"type": "quniform", "min_value": 0, "max_value": 1, "q": 0.25}}, 300)}
    assert values == {0.0, 0.25, 0.5, 0.75, 1.0}
    whole = {v["n"] for v in draw({"n": {"type": "quniform", "min_value": 10, "max_value": 100, "q": 10}}, 200)}
    assert all(isinstance(v, int) and v % 10 == 0 for v in whole)  # whole-number q -> ints


def test_qloguniform_quantises_the_exponential():
    values = [v["x"] for v in draw({"x": {"type": "qloguniform", "min_value": 0, "max_value": 3, "q": 2}}, 200)]
    assert all(v % 2 == 0 and 0 <= v <= round(math.exp(3) / 2) * 2 for v in values)


def test_normal_family_has_azure_meaning():
    normal = [v["x"] for v in draw({"x": {"type": "normal", "mu": 10, "sigma": 2}}, 1500)]
    assert statistics.fmean(normal) == pytest.approx(10, abs=0.2)
    assert statistics.stdev(normal) == pytest.approx(2, abs=0.2)
    lognormal = [v["x"] for v in draw({"x": {"type": "lognormal", "mu": 0, "sigma": 1}}, 1500)]
    assert min(lognormal) > 0 and statistics.median(lognormal) == pytest.approx(1, abs=0.15)
    qnormal = [v["x"] for v in draw({"x": {"type": "qnormal", "mu": 100, "sigma": 20, "q": 5}}, 200)]
    assert all(isinstance(v, int) and v % 5 == 0 for v in qnormal)


def test_seeded_draws_are_reproducible_and_resume_moves_on():
    space = {"C": {"type": "uniform", "min_value": 0.1, "max_value": 10}, "k": {"type": "choice", "values": [1, 2, 3]}}
    assert draw(space, 5) == draw(space, 5)
    assert draw(space, 5, options={"seed": 7}) != draw(space, 5)
    assert draw(space, 5, trials_so_far=5) != draw(space, 5)  # a resumed sweep does not repeat the first draws


def test_grid_enumerates_every_combination_once():
    space = {"a": {"type": "choice", "values": [1, 2, 3]}, "b": {"type": "choice", "values": ["x", "y"]}}
    assert samplers.grid_size(space) == 6
    combos = [(v["a"], v["b"]) for v in draw(space, 6, "grid")]
    assert sorted(combos) == [(a, b) for a in (1, 2, 3) for b in ("x", "y")]


def test_bayesian_samples_choice_uniform_quniform():
    space = {"C": {"type": "uniform", "min_value": 0.1, "max_value": 10}, "n": {"type": "quniform", "min_value": 1, "max_value": 9, "q": 1}}
    values = draw(space, 12, "bayesian")
    assert all(0.1 <= v["C"] <= 10 and isinstance(v["n"], int) for v in values)


@pytest.mark.parametrize(
    "algorithm, space, message",
    [
        ("grid", {"C": {"type": "uniform", "min_value": 0, "max_value": 1}}, "grid sampling does not take uniform"),
        ("bayesian", {"x": {"type": "normal", "mu": 0, "sigma": 1}}, "bayesian sampling does not take normal"),
        ("random", {"x": {"type": "gaussian", "mu": 0}}, "unknown distribution 'gaussian'"),
        ("random", {"x": {"type": "uniform", "min_value": 0}}, "uniform needs max_value"),
    ],
)
def test_search_space_problems(algorithm, space, message):
    with pytest.raises(CapcError, match=message):
        samplers.check_search_space(space, algorithm)


def test_sampling_algorithm_forms():
    assert samplers.algorithm_of("random") == ("random", {})
    assert samplers.algorithm_of({"type": "random", "seed": 3, "rule": "sobol"}) == ("random", {"seed": 3, "rule": "sobol"})
    with pytest.raises(CapcError, match="not one of"):
        samplers.algorithm_of("hyperband")


def test_format_value_round_trips_floats():
    assert samplers.format_value(0.1) == "0.1"
    assert float(samplers.format_value(1 / 3)) == 1 / 3
    assert samplers.format_value(50) == "50"
