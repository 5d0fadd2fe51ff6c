"""Search-space expressions: the compact HyperDrive form `uniform(0.1, 10)` -> Azure's mapping form; and the
sweep vocabulary as data (distributions, sampling algorithms, early-termination policies) that the schema's enums,
validation and the local engine all read.

Azure's sweep YAML is the canonical form inside capc; the compact form is parsed once, at validation.
"""

from __future__ import annotations

import ast
import json
import math
from collections.abc import Mapping

from capc.errors import CapcError
from capc.spec.hints import did_you_mean as _did_you_mean

# Distribution -> its parameters in Azure's YAML, in the positional order of the compact form.
DISTRIBUTIONS: dict[str, tuple[str, ...]] = {
    "choice": ("values",),
    "randint": ("upper",),
    "uniform": ("min_value", "max_value"),
    "loguniform": ("min_value", "max_value"),
    "quniform": ("min_value", "max_value", "q"),
    "qloguniform": ("min_value", "max_value", "q"),
    "normal": ("mu", "sigma"),
    "lognormal": ("mu", "sigma"),
    "qnormal": ("mu", "sigma", "q"),
    "qlognormal": ("mu", "sigma", "q"),
}

# Which distributions each sampling algorithm accepts (Azure's rules).
SAMPLING_ALLOWS: dict[str, frozenset[str]] = {
    "random": frozenset(DISTRIBUTIONS),
    "grid": frozenset({"choice"}),
    "bayesian": frozenset({"choice", "uniform", "quniform"}),
}

# Early-termination policy (sweep_job.yml `early_termination.type`) -> the keys it takes besides `type`.
POLICY_KEYS: dict[str, tuple[str, ...]] = {
    "bandit": ("slack_factor", "slack_amount", "evaluation_interval", "delay_evaluation"),
    "median_stopping": ("evaluation_interval", "delay_evaluation"),
    "truncation_selection": ("truncation_percentage", "evaluation_interval", "delay_evaluation"),
}


def algorithm_of(sampling_algorithm) -> tuple[str, dict]:
    """`random` or `{type: random, seed: 7, rule: sobol}` -> ("random", {"seed": 7, "rule": "sobol"})."""
    if isinstance(sampling_algorithm, Mapping):
        options = {k: v for k, v in sampling_algorithm.items() if k != "type"}
        name = sampling_algorithm.get("type")
    else:
        name, options = sampling_algorithm, {}
    name = str(name or "random").lower()
    if name not in SAMPLING_ALLOWS:
        raise CapcError(f"sampling_algorithm `{name}` is not one of {', '.join(SAMPLING_ALLOWS)}.")
    return name, options


class SearchSpaceError(ValueError):
    """A distribution that cannot be parsed or whose parameters are wrong; the message says which."""

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.hint = hint


def parse_compact(text: str) -> dict:
    """`choice(50, 100)` -> {"type": "choice", "values": [50, 100]}; also `choice([50, 100])`."""
    text = text.strip()
    head, _, rest = text.partition("(")
    kind = head.strip()
    if kind not in DISTRIBUTIONS:
        raise SearchSpaceError(f"unknown distribution `{kind}`", _did_you_mean(kind, DISTRIBUTIONS))
    if not rest.endswith(")"):
        raise SearchSpaceError(f"`{text}` is missing its closing parenthesis")
    try:
        args = ast.literal_eval(f"[{rest[:-1]}]")
    except (ValueError, SyntaxError):
        raise SearchSpaceError(f"cannot read the arguments of `{text}`", _quoting_hint(kind, rest[:-1])) from None
    names = DISTRIBUTIONS[kind]
    if kind == "choice":
        values = args[0] if len(args) == 1 and isinstance(args[0], (list, tuple)) else args
        return normalise({"type": "choice", "values": list(values)})
    if len(args) != len(names):
        raise SearchSpaceError(f"`{kind}` takes {len(names)} argument(s) ({', '.join(names)}), got {len(args)}")
    return normalise({"type": kind, **dict(zip(names, args))})


def _quoting_hint(kind: str, arguments: str) -> str:
    """Unquoted words in a choice are the usual reason: show the expression with each word quoted."""
    if kind != "choice":
        return "arguments must be numbers or quoted strings"
    words = [a.strip() for a in arguments.split(",")]
    quoted = [w if _is_number_text(w) or w[:1] in "\"'" else json.dumps(w) for w in words]
    return f"quote each string: choice({', '.join(quoted)})"


def _is_number_text(word: str) -> bool:
    try:
        float(word)
    except ValueError:
        return False
    return True


def normalise(mapping: dict) -> dict:
    """Check a mapping-form distribution and return it with keys in Azure's order."""
    kind = mapping.get("type")
    if kind not in DISTRIBUTIONS:
        raise SearchSpaceError(f"unknown distribution type `{kind}`", _did_you_mean(str(kind), DISTRIBUTIONS))
    names = DISTRIBUTIONS[kind]
    missing = [n for n in names if n not in mapping]
    if missing:
        raise SearchSpaceError(f"`{kind}` needs {', '.join(missing)}")
    extra = sorted(set(mapping) - set(names) - {"type"})
    if extra:
        raise SearchSpaceError(f"`{kind}` does not take {', '.join(extra)}", f"it takes {', '.join(names)}")
    out = {"type": kind, **{n: mapping[n] for n in names}}
    if kind == "choice":
        values = out["values"]
        if not isinstance(values, list) or not values:
            raise SearchSpaceError("`choice` needs at least one value")
        if len({repr(v) for v in values}) != len(values):
            raise SearchSpaceError("`choice` lists a value twice")
        for v in values:
            if not isinstance(v, (str, int, float, bool)) or isinstance(v, float) and not math.isfinite(v):
                raise SearchSpaceError(f"`choice` values must be numbers or strings, not {v!r}")
        return out
    for n in names:
        v = out[n]
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise SearchSpaceError(f"`{kind}` parameter {n} must be a number, not {v!r}")
    if kind == "randint":
        if not isinstance(out["upper"], int) or out["upper"] < 1:
            raise SearchSpaceError("`randint` upper must be a whole number of at least 1 (values are 0..upper-1)")
    if "min_value" in out and out["min_value"] >= out["max_value"]:
        raise SearchSpaceError(
            f"`{kind}` bounds are not ordered: min_value {out['min_value']} >= max_value {out['max_value']}",
            "write the lower bound first",
        )
    if "sigma" in out and out["sigma"] <= 0:
        raise SearchSpaceError(f"`{kind}` sigma must be positive")
    if "q" in out and out["q"] <= 0:
        raise SearchSpaceError(f"`{kind}` q must be positive")
    return out
