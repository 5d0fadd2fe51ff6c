"""Stage 2, validated model: a distribution's values against the domain of the hyperparameter it drives.

Each built-in family's hyperparameters carry their domain in capc.families (integer or real, legal range, allowed
strings). A distribution is legal when every value it can draw, as the trial script casts it (an integer
hyperparameter rounds to the nearest whole number), lies inside that domain: `max_depth: uniform(-5, 0.5)` can
draw -5, and is refused with the legal range. Azure's semantics decide the support: loguniform's bounds are
natural logarithms (it draws exp(min)..exp(max)), the q-forms round to multiples of q, the normal family is
unbounded (lognormal: above 0).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from capc.families import Hyperparameter


@dataclass(frozen=True)
class Support:
    """The values a numeric distribution can draw: an interval, each end closed (reachable) or open."""

    low: float
    high: float
    low_closed: bool = True
    high_closed: bool = True

    def text(self) -> str:
        low = "-inf" if self.low == -math.inf else f"{self.low:g}"
        high = "inf" if self.high == math.inf else f"{self.high:g}"
        return f"{'[' if self.low_closed else '('}{low}, {high}{']' if self.high_closed else ')'}"


def _exp(x: float) -> float:
    try:
        return math.exp(x)
    except OverflowError:
        return math.inf


def _quantised(x: float, q: float) -> float:
    return round(x / q) * q if math.isfinite(x) else x


def support(dist: dict) -> Support:
    """The draws of a numeric distribution in Azure's mapping form (not `choice`)."""
    kind = dist["type"]
    if kind == "randint":
        return Support(0, dist["upper"] - 1)
    if kind == "uniform":
        return Support(dist["min_value"], dist["max_value"])
    if kind == "loguniform":
        return Support(_exp(dist["min_value"]), _exp(dist["max_value"]))
    if kind == "quniform":
        return Support(_quantised(dist["min_value"], dist["q"]), _quantised(dist["max_value"], dist["q"]))
    if kind == "qloguniform":
        return Support(_quantised(_exp(dist["min_value"]), dist["q"]), _quantised(_exp(dist["max_value"]), dist["q"]))
    if kind in ("normal", "qnormal"):
        return Support(-math.inf, math.inf, False, False)
    if kind == "lognormal":
        return Support(0.0, math.inf, False, False)
    if kind == "qlognormal":
        return Support(0.0, math.inf, True, False)  # exp(x) near 0 rounds to 0
    raise ValueError(f"no support known for `{kind}`")


def _rounded(s: Support) -> Support:
    """What an integer hyperparameter receives: each draw rounded to the nearest whole number."""
    low = round(s.low) if math.isfinite(s.low) else s.low
    high = round(s.high) if math.isfinite(s.high) else s.high
    return Support(low, high, s.low_closed or math.isfinite(s.low), s.high_closed or math.isfinite(s.high))


def _inside(s: Support, h: Hyperparameter) -> bool:
    if (s.high == math.inf and s.high_closed) or (s.low == -math.inf and s.low_closed):
        return False  # exp() overflowed: the trial would receive inf
    if h.low is not None:
        if s.low < h.low or (s.low == h.low and s.low_closed and h.open_low):
            return False
    if h.high is not None:
        if s.high > h.high or (s.high == h.high and s.high_closed and h.open_high):
            return False
    return True


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _cast(value, h: Hyperparameter):
    """A choice value as the trial script casts it, or None when it cannot be cast to the domain's kind."""
    if h.kind == "str":
        return value if isinstance(value, str) else None
    if not _is_number(value):
        return None
    return round(value) if h.kind == "int" else value


def check(h: Hyperparameter, dist: dict) -> tuple[str, str | None] | None:
    """(message, hint) when `dist` can draw a value outside `h`'s domain; None when every draw is legal."""
    legal = f"`{h.name}` takes {_with_article(h.domain)}"
    if dist["type"] == "choice":
        bad = [v for v in dist["values"] if _cast(v, h) is None or not h.admits(_cast(v, h))]
        if not bad:
            return None
        listed = ", ".join(repr(v) if isinstance(v, str) else str(v) for v in bad)
        hint = 'quote each string: choice("a", "b")' if h.kind == "str" else None
        if h.kind == "int" and any(_is_number(v) and v != round(v) for v in bad):
            hint = "choices are rounded to whole numbers"
        return f"{legal}, but choice lists {listed}", hint
    if h.kind == "str":
        return f"{legal}, but {dist['type']} draws numbers", f'use choice("{h.allowed[0]}", ...)'
    drawn = support(dist)
    received = _rounded(drawn) if h.kind == "int" else drawn
    if _inside(received, h):
        return None
    rounded = " (draws rounded to whole numbers)" if h.kind == "int" and received != drawn else ""
    message = f"{legal}, but {_compact(dist)} can give it values in {received.text()}{rounded}"
    return message, _hint(dist, h)


def _with_article(domain: str) -> str:
    return f"an {domain}" if domain.startswith("integer") else f"a {domain}" if domain.startswith("real") else domain


def _compact(dist: dict) -> str:
    from capc.spec.search_space import DISTRIBUTIONS

    return f"{dist['type']}({', '.join(f'{dist[n]:g}' if _is_number(dist[n]) else str(dist[n]) for n in DISTRIBUTIONS[dist['type']])})"


def _hint(dist: dict, h: Hyperparameter) -> str | None:
    kind = dist["type"]
    if kind in ("loguniform", "qloguniform"):
        return f"{kind}'s bounds are natural logarithms: {kind}(a, b) draws exp(a)..exp(b), e.g. loguniform(-7, -2) draws 0.0009..0.14"
    if kind in ("normal", "qnormal", "lognormal", "qlognormal"):
        return f"{kind} is unbounded; for a bounded range use uniform or quniform"
    if kind == "randint":
        return "randint(upper) draws 0..upper-1; for another range use quniform(low, high, 1)"
    return None
