"""Backend, local: a sweep_job.yml search space and sampling algorithm -> Optuna distributions and samplers.

Every Azure distribution is sampled as an Optuna distribution of a "raw" value, then turned into the value the
trial gets, with Azure's meaning (sdk/ml/azure-ai-ml `sweep/search_space.py`, HyperDrive's parameter expressions):
- choice, randint ([0, upper)), uniform: native.
- loguniform(min, max): the bounds are logarithms, value = exp(uniform(min, max)); that is the log-uniform law on
  [e^min, e^max], which Optuna samples natively (log=True), so TPE models it on the log scale too.
- quniform / qloguniform: round(x / q) * q of the uniform / log-uniform x. The raw x is what Optuna samples and
  what TPE models; the value is an int when q is a whole number (so an `int` argument parser accepts it).
- normal-family (normal, lognormal, qnormal, qlognormal): Optuna has no normal law. The raw value is a uniform
  quantile u in (0, 1) and value = mu + sigma * Phi^-1(u) (inverse-CDF sampling, exact for the normal law;
  quantiles beyond 1e-12 of either tail are not drawn). It lives in Optuna's storage like any other parameter,
  so it is seeded, reproducible and restored on --resume. Azure allows these only with random sampling.

Sampling algorithms: random -> RandomSampler (`rule: sobol` -> QMCSampler, Azure's quasi-random variant),
grid -> GridSampler over every combination of the choice values (grid takes choice only), bayesian ->
TPESampler (choice, uniform and quniform only). Which distributions each algorithm takes is the spec stage's
table (capc.spec.search_space.SAMPLING_ALLOWS), so the two stages cannot disagree.
"""

from __future__ import annotations

import decimal
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import reduce
from statistics import NormalDist
from typing import Any

from capc.errors import CapcError
from capc.spec.search_space import DISTRIBUTIONS as PARAMETER_NAMES
from capc.spec.search_space import SAMPLING_ALLOWS, algorithm_of  # noqa: F401 - the runner reads it here

DEFAULT_SEED = 42  # sweep_job.yml `sampling_algorithm: {type: random, seed: N}` overrides it
QUANTILE_EPSILON = 1e-12  # normal-family quantiles are drawn from (eps, 1 - eps): Phi^-1 is infinite at 0 and 1


def _quantise(x: float, q: float) -> int | float:
    """round(x / q) * q, without float noise (0.30000000000000004 -> 0.3); an int when q is a whole number."""
    steps = round(x / q)
    if float(q).is_integer():
        return int(steps * int(q))
    decimals = max(0, -decimal.Decimal(repr(float(q))).normalize().as_tuple().exponent)
    return round(steps * q, decimals)


def _normal(p: Mapping, u: float) -> float:
    return NormalDist(p["mu"], p["sigma"]).inv_cdf(u)


def _exp(x: float) -> float:
    try:
        return math.exp(x)
    except OverflowError:
        raise CapcError(f"exp({x}) overflows: loguniform/lognormal parameters are logarithms of the values.") from None


def _float(low: float, high: float, log: bool = False):
    from optuna.distributions import FloatDistribution

    return FloatDistribution(float(low), float(high), log=log)


def _quantile():
    return _float(QUANTILE_EPSILON, 1 - QUANTILE_EPSILON)


def _categorical(values):
    from optuna.distributions import CategoricalDistribution

    return CategoricalDistribution(list(values))


def _integer(low: int, high: int):
    from optuna.distributions import IntDistribution

    return IntDistribution(low, high)


@dataclass(frozen=True)
class Sampling:
    """How one Azure distribution is sampled: Optuna's law of the raw value, then raw -> trial value."""

    raw: Callable[[Mapping], Any]
    value: Callable[[Mapping, Any], Any]


# Azure distribution type -> how capc samples it (the module docstring says why each is right).
SAMPLINGS: dict[str, Sampling] = {
    "choice": Sampling(lambda p: _categorical(p["values"]), lambda p, raw: raw),
    "randint": Sampling(lambda p: _integer(0, int(p["upper"]) - 1), lambda p, raw: int(raw)),
    "uniform": Sampling(lambda p: _float(p["min_value"], p["max_value"]), lambda p, raw: raw),
    "loguniform": Sampling(lambda p: _float(_exp(p["min_value"]), _exp(p["max_value"]), log=True), lambda p, raw: raw),
    "quniform": Sampling(lambda p: _float(p["min_value"], p["max_value"]), lambda p, raw: _quantise(raw, p["q"])),
    "qloguniform": Sampling(
        lambda p: _float(_exp(p["min_value"]), _exp(p["max_value"]), log=True), lambda p, raw: _quantise(raw, p["q"])
    ),
    "normal": Sampling(lambda p: _quantile(), _normal),
    "lognormal": Sampling(lambda p: _quantile(), lambda p, u: _exp(_normal(p, u))),
    "qnormal": Sampling(lambda p: _quantile(), lambda p, u: _quantise(_normal(p, u), p["q"])),
    "qlognormal": Sampling(lambda p: _quantile(), lambda p, u: _quantise(_exp(_normal(p, u)), p["q"])),
}


def check_search_space(search_space: Mapping, algorithm: str) -> None:
    """Every distribution known, complete, and allowed by `algorithm`; else one CapcError listing the problems."""
    if not isinstance(search_space, Mapping) or not search_space:
        raise CapcError("the sweep job has no search_space.")
    problems = []
    for name, spec in search_space.items():
        kind = spec.get("type") if isinstance(spec, Mapping) else None
        if kind not in SAMPLINGS:
            problems.append(f"{name}: unknown distribution {kind!r} (one of {', '.join(SAMPLINGS)})")
            continue
        missing = [p for p in PARAMETER_NAMES[kind] if p not in spec]
        if missing:
            problems.append(f"{name}: {kind} needs {', '.join(missing)}")
        elif kind not in SAMPLING_ALLOWS[algorithm]:
            allowed = ", ".join(sorted(SAMPLING_ALLOWS[algorithm]))
            problems.append(f"{name}: {algorithm} sampling does not take {kind} (it takes {allowed})")
    if problems:
        raise CapcError("the sweep's search space cannot be sampled: " + "; ".join(problems) + ".")


def distributions(search_space: Mapping) -> dict[str, Any]:
    """Parameter -> Optuna distribution of its raw value (what `study.ask(fixed_distributions=...)` takes)."""
    out = {}
    for name, spec in search_space.items():
        try:
            out[name] = SAMPLINGS[spec["type"]].raw(spec)
        except CapcError:
            raise
        except (ValueError, TypeError) as exc:
            raise CapcError(f"search_space.{name}: {spec} cannot be sampled: {exc}") from None
    return out


def values_from_raw(search_space: Mapping, raw: Mapping[str, Any]) -> dict[str, Any]:
    """Optuna's raw parameters -> the values the trial gets (Azure's meaning of each distribution)."""
    return {name: SAMPLINGS[spec["type"]].value(spec, raw[name]) for name, spec in search_space.items()}


def grid_size(search_space: Mapping) -> int:
    return reduce(lambda n, spec: n * len(spec["values"]), search_space.values(), 1)


def make_sampler(algorithm: str, options: Mapping, search_space: Mapping, trials_so_far: int = 0):
    """The Optuna sampler for `algorithm`, seeded. `trials_so_far` (on --resume) moves the random and TPE
    seeds on, so a resumed sweep does not draw the first trials' values again; grid and sobol keep theirs:
    they continue their own sequence from the trials in storage."""
    import optuna

    seed = int(options.get("seed", DEFAULT_SEED))
    if algorithm == "grid":
        return _grid_sampler_class()({name: list(spec["values"]) for name, spec in search_space.items()}, seed=seed)
    if algorithm == "bayesian":
        return optuna.samplers.TPESampler(seed=seed + trials_so_far)
    if str(options.get("rule", "random")).lower() == "sobol":
        return optuna.samplers.QMCSampler(
            qmc_type="sobol", scramble=True, seed=seed, warn_independent_sampling=False, warn_asynchronous_seeding=False,
            independent_sampler=optuna.samplers.RandomSampler(seed=seed + trials_so_far),
        )
    return optuna.samplers.RandomSampler(seed=seed + trials_so_far)


def _grid_sampler_class():
    import optuna

    class CapcGridSampler(optuna.samplers.GridSampler):
        """GridSampler without its after_trial, which only stops study.optimize() (capc counts trials itself) and
        assumes every trial has a grid id - a trial re-run on --resume with its earlier parameters has none."""

        def after_trial(self, study, trial, state, values) -> None:
            return None

    return CapcGridSampler


def format_value(value: Any) -> str:
    """A parameter value as it goes on the command line and into MLflow params (floats: shortest round-trip)."""
    if isinstance(value, float):
        return repr(value)
    return str(value)
