"""Shared rule: a sweep's early-termination policies, with Azure ML's semantics. Pure: no I/O, no clock.

The local sweep runner applies them; the job-folder checks read a hand-written job's early_termination with them.

A history is the list of primary-metric values one trial has reported, oldest first; interval k is its k-th
report (1-based), as Azure counts "each time the training script logs the primary metric".

When a trial is judged (the rules every policy shares):
- at interval k only when k is a multiple of `evaluation_interval` and k >= `delay_evaluation` (Azure: "the
  policy applies every multiple of evaluation_interval that is greater than or equal to delay_evaluation");
- the runner polls, so a trial may have reported several values since it was last seen: it is judged at the
  latest such interval it has reached, and compared only with what the trials that reached that interval had
  reported up to it (Azure: "only compared with the performance of other runs up to interval N, even if they
  reported metrics for intervals greater than N"). Finished and stopped trials count as peers;
- the trial with the best value so far is never stopped, and a trial is never stopped twice (the policy
  remembers whom it stopped);
- a NaN report counts as the worst possible value.

Defaults: evaluation_interval 1 and delay_evaluation 0, as the YAML reference and SDK v1 write them (SDK v2
defaults to 0 for bandit and truncation, which Azure treats as "every interval": 0 is read as 1 here).

The rules per policy (Azure's documentation; where it is silent, the choice is said):
- bandit: stop a trial whose best value up to interval k is outside the slack of the best value any trial had
  up to k. Maximising: below best / (1 + slack_factor) or below best - slack_amount (docs: best 0.8, factor
  0.2 -> stop below 0.8 / 1.2 = 0.667). Minimising is not documented: mirrored, above best * (1 +
  slack_factor) or above best + slack_amount. slack_factor assumes a positive metric, as Azure's formula does.
- median_stopping: stop a trial whose best value up to interval k is worse than the median of the running
  averages (mean of intervals 1..k) of all trials that reached k, the trial itself included.
- truncation_selection: rank the trials that reached interval k by their value at k; the lowest
  floor(n * truncation_percentage / 100) are stopped, except those tied with the first trial kept.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Collection, Mapping

from capc.azure_names import MAXIMIZE, MINIMIZE
from capc.errors import CapcError
from capc.goal import Goal
from capc.spec.search_space import POLICY_KEYS



def _worst(goal: str) -> float:
    return Goal(goal).worst


def _clean(values: list[float], goal: str) -> list[float]:
    """NaN (or a value that is not a number) -> the worst value for `goal`."""
    out = []
    for value in values:
        try:
            number = float(value)
        except (TypeError, ValueError):
            number = math.nan
        out.append(_worst(goal) if math.isnan(number) else number)
    return out


def _best(values: list[float], goal: str) -> float:
    return min(values, key=Goal(goal).sort_key)


def _worse(value: float, than: float, goal: str) -> bool:
    return Goal(goal).better(than, value)  # values are cleaned: a number, or the goal's worst (never better)


class EarlyTerminationPolicy:
    """What every policy shares: when it applies, whom it never stops. Subclasses say who is worse."""

    def __init__(self, evaluation_interval: int = 1, delay_evaluation: int = 0):
        if isinstance(evaluation_interval, bool) or not isinstance(evaluation_interval, int) or evaluation_interval < 0:
            raise CapcError(f"early_termination.evaluation_interval must be a whole number >= 1, not {evaluation_interval!r}.")
        if isinstance(delay_evaluation, bool) or not isinstance(delay_evaluation, int) or delay_evaluation < 0:
            raise CapcError(f"early_termination.delay_evaluation must be a whole number >= 0, not {delay_evaluation!r}.")
        self.evaluation_interval = max(evaluation_interval, 1)  # SDK v2 writes 0 for "every interval"
        self.delay_evaluation = delay_evaluation
        self.stopped: set[str] = set()  # whom this policy has stopped: never twice

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if k != "stopped")
        return f"{type(self).__name__}({fields})"

    def evaluation_point(self, reports: int) -> int | None:
        """The latest interval <= `reports` at which the policy applies; None before the first one."""
        k = reports - reports % self.evaluation_interval
        return k if k >= 1 and k >= self.delay_evaluation else None

    def trials_to_stop(
        self, histories: Mapping[str, list[float]], goal: str, running: Collection[str] | None = None
    ) -> set[str]:
        """Trials to stop now. `histories` holds every trial's reports (finished ones too: they are peers);
        `running` names the trials that may be stopped (default: every trial in `histories`)."""
        if goal not in (MAXIMIZE, MINIMIZE):
            raise ValueError(f"goal must be {MAXIMIZE!r} or {MINIMIZE!r}, not {goal!r}")
        clean = {trial: _clean(list(values), goal) for trial, values in histories.items()}
        bests = [_best(values, goal) for values in clean.values() if values]
        leader_value = _best(bests, goal) if bests else None
        to_stop = set()
        for trial in sorted(histories if running is None else running):
            values = clean.get(trial)
            if not values or trial in self.stopped or _best(values, goal) == leader_value:
                continue
            k = self.evaluation_point(len(values))
            if k is None:
                continue
            peers = {other: v[:k] for other, v in clean.items() if len(v) >= k}
            if self._is_worse(trial, peers, goal):
                to_stop.add(trial)
        self.stopped |= to_stop
        return to_stop

    def _is_worse(self, trial: str, peers: dict[str, list[float]], goal: str) -> bool:
        """Whether `trial` is to be stopped, given every peer's reports up to the interval judged."""
        raise NotImplementedError


class BanditPolicy(EarlyTerminationPolicy):
    def __init__(self, slack_factor: float | None = None, slack_amount: float | None = None, evaluation_interval: int = 1, delay_evaluation: int = 0):
        super().__init__(evaluation_interval, delay_evaluation)
        if (slack_factor is None) == (slack_amount is None):
            raise CapcError("a bandit policy takes exactly one of slack_factor and slack_amount.", "e.g. slack_factor: 0.1")
        name, slack = ("slack_factor", slack_factor) if slack_factor is not None else ("slack_amount", slack_amount)
        if isinstance(slack, bool) or not isinstance(slack, (int, float)) or not math.isfinite(slack) or slack <= 0:
            raise CapcError(f"bandit {name} must be a positive number, not {slack!r}.")
        self.slack_factor = slack_factor
        self.slack_amount = slack_amount

    def threshold(self, best: float, goal: str) -> float:
        """The worst value a trial may have and still be kept, given the best one."""
        if self.slack_factor is not None:
            return best / (1 + self.slack_factor) if goal == MAXIMIZE else best * (1 + self.slack_factor)
        return best - self.slack_amount if goal == MAXIMIZE else best + self.slack_amount

    def _is_worse(self, trial, peers, goal) -> bool:
        best = _best([_best(values, goal) for values in peers.values()], goal)
        if math.isinf(best):
            return False  # no trial has a number at this interval yet
        return _worse(_best(peers[trial], goal), self.threshold(best, goal), goal)


class MedianStoppingPolicy(EarlyTerminationPolicy):
    def _is_worse(self, trial, peers, goal) -> bool:
        median = statistics.median(statistics.fmean(values) for values in peers.values())
        return _worse(_best(peers[trial], goal), median, goal)


class TruncationSelectionPolicy(EarlyTerminationPolicy):
    def __init__(self, truncation_percentage: int, evaluation_interval: int = 1, delay_evaluation: int = 0):
        super().__init__(evaluation_interval, delay_evaluation)
        pct = truncation_percentage
        if isinstance(pct, bool) or not isinstance(pct, int) or not 1 <= pct <= 99:
            raise CapcError(f"truncation_percentage must be a whole number from 1 to 99, not {pct!r}.")
        self.truncation_percentage = pct

    def _is_worse(self, trial, peers, goal) -> bool:
        cut = len(peers) * self.truncation_percentage // 100
        if cut == 0:
            return False
        at_k = {other: values[-1] for other, values in peers.items()}
        worst_first = sorted(at_k.values(), reverse=goal == MINIMIZE)
        # Strictly worse than the first trial kept: trials tied with it are kept, their value cannot tell them apart.
        return _worse(at_k[trial], worst_first[cut], goal)


# sweep_job.yml `early_termination.type` -> the policy and the keys it takes besides `type` (POLICY_KEYS).
POLICY_CLASSES: dict[str, type[EarlyTerminationPolicy]] = {
    "bandit": BanditPolicy,
    "median_stopping": MedianStoppingPolicy,
    "truncation_selection": TruncationSelectionPolicy,
}
POLICIES: dict[str, tuple[type[EarlyTerminationPolicy], tuple[str, ...]]] = {
    kind: (POLICY_CLASSES[kind], keys) for kind, keys in POLICY_KEYS.items()
}


def _snake(name: str) -> str:
    """`MedianStopping` (the REST spelling) -> `median_stopping` (the YAML one)."""
    out = "".join(f"_{c.lower()}" if c.isupper() else c for c in name).lstrip("_")
    return out.replace("__", "_")


def policy_from_mapping(mapping: Mapping | None) -> EarlyTerminationPolicy | None:
    """The policy a sweep_job.yml `early_termination` mapping describes; None (or no mapping) -> None."""
    if mapping is None:
        return None
    if not isinstance(mapping, Mapping) or "type" not in mapping:
        raise CapcError(f"early_termination must be a mapping with a `type` ({', '.join(POLICIES)}), not {mapping!r}.")
    kind = _snake(str(mapping["type"]))
    if kind not in POLICIES:
        raise CapcError(f"early_termination type `{mapping['type']}` is not one of {', '.join(POLICIES)}.")
    cls, keys = POLICIES[kind]
    unknown = sorted(set(mapping) - set(keys) - {"type"})
    if unknown:
        raise CapcError(f"early_termination of type {kind} does not take {', '.join(unknown)}.", f"it takes {', '.join(keys)}")
    if kind == "truncation_selection" and "truncation_percentage" not in mapping:
        raise CapcError("a truncation_selection policy needs truncation_percentage (1-99).")
    arguments = {key: mapping[key] for key in keys if mapping.get(key) is not None}
    return cls(**arguments)
