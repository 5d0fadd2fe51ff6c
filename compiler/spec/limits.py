"""Stage 2, validate (limits that never bind): settings that are legal but can never take effect.

A trial timeout at or above the whole job's timeout, more trials at once than trials in all, a grid with fewer
combinations than max_total_trials, an early-termination policy that no trial reports often enough to act on: each
says something the spec's author expects and will never see. One table, LIMIT_RULES, each rule a small function
reading the checked mapping (defaults filled, distributions as written) and yielding Findings. Their findings are
warnings (Spec.warnings): `capc validate` and `capc plan` print them and `--strict` makes them errors.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from capc.families import FAMILIES, INTERVALS
from capc.spec.search_space import SearchSpaceError, normalise, parse_compact
from capc.spec.service_rules import Finding


def _automl_trial_timeout(data: dict) -> Iterator[Finding]:
    automl = data["automl"]
    if automl["enabled"] and automl["trial_timeout_minutes"] >= automl["timeout_minutes"]:
        yield Finding(
            ("automl", "trial_timeout_minutes"),
            f"trial_timeout_minutes {automl['trial_timeout_minutes']} can never bind: the whole AutoML job stops at "
            f"timeout_minutes {automl['timeout_minutes']}",
            "set trial_timeout_minutes below timeout_minutes, so one slow candidate cannot take the whole budget",
        )


def _sweep_trial_timeout(data: dict) -> Iterator[Finding]:
    limits = _sweep_limits(data)
    if limits and limits["trial_timeout_minutes"] >= limits["timeout_minutes"]:
        yield Finding(
            ("sweep", "limits", "trial_timeout_minutes"),
            f"trial_timeout_minutes {limits['trial_timeout_minutes']} can never bind: the whole sweep stops at "
            f"timeout_minutes {limits['timeout_minutes']}",
            "set trial_timeout_minutes below timeout_minutes, so one slow trial cannot take the whole budget",
        )


def _automl_concurrency(data: dict) -> Iterator[Finding]:
    automl = data["automl"]
    if automl["enabled"] and automl["max_concurrent_trials"] > automl["max_trials"]:
        yield Finding(
            ("automl", "max_concurrent_trials"),
            f"max_concurrent_trials {automl['max_concurrent_trials']} can never bind: AutoML tries at most "
            f"max_trials {automl['max_trials']} candidates",
            f"lower it to {automl['max_trials']} or fewer",
        )


# Azure AutoML's early termination "determines whether or not AutoMLJob will terminate early if there is no score
# improvement in last 20 iterations" (TableVerticalLimitSettings.enableEarlyTermination,
# https://learn.microsoft.com/javascript/api/@azure/arm-machinelearning/tableverticallimitsettings).
AUTOML_EARLY_TERMINATION_WINDOW = 20


def _automl_early_termination(data: dict) -> Iterator[Finding]:
    automl = data["automl"]
    tabular = data["task"] != "image_classification"  # image jobs have no enable_early_termination of this kind
    if automl["enabled"] and tabular and automl["enable_early_termination"] and automl["max_trials"] <= AUTOML_EARLY_TERMINATION_WINDOW:
        yield Finding(
            ("automl", "enable_early_termination"),
            f"enable_early_termination can never bind on Azure: it stops a job after {AUTOML_EARLY_TERMINATION_WINDOW} "
            f"trials without improvement, and max_trials is {automl['max_trials']}",
            f"raise max_trials above {AUTOML_EARLY_TERMINATION_WINDOW}, or set enable_early_termination: false",
        )


def _sweep_concurrency(data: dict) -> Iterator[Finding]:
    limits = _sweep_limits(data)
    if limits and limits["max_concurrent_trials"] > limits["max_total_trials"]:
        yield Finding(
            ("sweep", "limits", "max_concurrent_trials"),
            f"max_concurrent_trials {limits['max_concurrent_trials']} can never bind: the sweep runs at most "
            f"max_total_trials {limits['max_total_trials']} trials",
            f"lower it to {limits['max_total_trials']} or fewer",
        )


def _grid_trials(data: dict) -> Iterator[Finding]:
    limits = _sweep_limits(data)
    if not limits or data["sweep"]["sampling"] != "grid":
        return
    combinations = 0
    for _, space in _spaces(data["sweep"]):
        size = 1
        for dist in space.values():
            if dist is None or dist["type"] != "choice":
                return  # the service rules report a grid over a non-choice
            size *= len(dist["values"])
        combinations += size
    if limits["max_total_trials"] > combinations:
        yield Finding(
            ("sweep", "limits", "max_total_trials"),
            f"max_total_trials {limits['max_total_trials']} can never bind: the grid has {combinations} combination(s), "
            "and grid sampling runs each once",
            f"lower it to {combinations}, or add choices",
        )


def _policy_can_act(data: dict) -> Iterator[Finding]:
    """A policy stops a trial at an interval k < its last report, k >= delay_evaluation, k a multiple of
    evaluation_interval (capc.local.policies, after Azure): none such for any family, and it never acts."""
    sweep = data.get("sweep")
    policy = (sweep or {}).get("early_termination")
    if not _sweep_limits(data) or not policy:
        return
    reports = {}
    for name, space in _spaces(sweep):
        family = FAMILIES.get(name)
        if family is None:
            return  # a user's script: how often it reports is unknown
        # A forecasting trial reports once per rolling-origin fold (train_forecast.py.j2), whatever its family.
        folds = (data.get("dataset") or {}).get("cross_validations")
        reports[name] = folds if data.get("task") == "forecasting" and isinstance(folds, int) else _reports(family, space)
    interval = max(1, policy.get("evaluation_interval", 1))
    first = max(interval, -(-policy.get("delay_evaluation", 0) // interval) * interval)  # first k the policy applies at
    if any(first < count for count in reports.values()):
        return
    once = [name for name, count in reports.items() if count == 1]
    if len(once) == len(reports):
        why = f"{' and '.join(once)} report{'s' if len(once) == 1 else ''} the metric once per trial (one fit)"
        hint = "remove early_termination, or sweep a family that reports as it trains (`capc families`)"
    else:
        counted = ", ".join(f"{name} at most {count}" for name, count in reports.items())
        why = f"it first applies at report {first} (delay_evaluation, evaluation_interval), and trials report {counted} times"
        hint = "lower delay_evaluation or evaluation_interval"
    yield Finding(("sweep", "early_termination"), f"the {policy['type']} policy can never stop a trial early: {why}", hint)


def _reports(family, space: dict) -> int:
    """The most metric reports a trial of `family` makes with this search space."""
    if family.reports == "once":
        return 1
    if family.reports == "intervals":
        return INTERVALS
    epochs = space.get("epochs")
    if epochs is None:
        return int(family.hyperparameter("epochs").default)
    if epochs["type"] == "choice":
        return int(max(v for v in epochs["values"] if isinstance(v, (int, float))))
    return 10**6  # a continuous epochs distribution: as many as it may draw; the policy can act


def _sweep_limits(data: dict) -> dict | None:
    sweep = data.get("sweep")
    return sweep["limits"] if sweep and sweep["enabled"] else None


def _spaces(sweep: dict) -> list[tuple[str, dict]]:
    """(built-in family or script branch name, parameter -> mapping form or None when unreadable) per branch."""
    if "families" in sweep:
        branches = [("script" if "script" in e else n, e["search_space"]) for n, e in sweep["families"].items()]
    else:
        branches = [(sweep.get("model") or "script", sweep["search_space"])]
    return [(name, {p: _parsed(d) for p, d in space.items()}) for name, space in branches]


def _parsed(raw) -> dict | None:
    try:
        return parse_compact(raw) if isinstance(raw, str) else normalise(raw)
    except SearchSpaceError:
        return None


LIMIT_RULES: tuple[Callable[[dict], Iterator[Finding]], ...] = (
    _automl_trial_timeout,
    _sweep_trial_timeout,
    _automl_concurrency,
    _automl_early_termination,
    _sweep_concurrency,
    _grid_trials,
    _policy_can_act,
)


def findings(data: dict) -> Iterator[Finding]:
    for rule in LIMIT_RULES:
        yield from rule(data)
