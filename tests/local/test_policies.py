"""Early-termination policies (capc.policies): Azure's rules, the documented example, interval and delay."""

import math

import pytest

from capc.errors import CapcError
from capc.policies import (
    BanditPolicy,
    MedianStoppingPolicy,
    TruncationSelectionPolicy,
    policy_from_mapping,
)

MAX, MIN = "maximize", "minimize"


# ---------------------------------------------------------------- bandit


def test_bandit_docs_example_best_08_factor_02_stops_below_0667():
    # Azure's docs: best 0.8, slack_factor 0.2 -> trials below 0.8 / 1.2 = 0.667 are stopped.
    policy = BanditPolicy(slack_factor=0.2)
    histories = {"best": [0.8], "below": [0.66], "above": [0.67], "equal": [0.8 / 1.2]}
    assert policy.trials_to_stop(histories, MAX) == {"below"}
    assert policy.threshold(0.8, MAX) == pytest.approx(0.6667, abs=1e-4)


def test_bandit_slack_amount_is_absolute():
    policy = BanditPolicy(slack_amount=0.1)
    assert policy.trials_to_stop({"best": [0.8], "a": [0.69], "b": [0.71]}, MAX) == {"a"}


def test_bandit_factor_and_amount_differ_for_the_same_values():
    histories = {"best": [0.8], "x": [0.68]}
    assert BanditPolicy(slack_factor=0.2).trials_to_stop(histories, MAX) == set()  # 0.68 > 0.667
    assert BanditPolicy(slack_amount=0.1).trials_to_stop(histories, MAX) == {"x"}  # 0.68 < 0.7


def test_bandit_minimize_is_the_mirror():
    # best 0.5: factor 0.2 keeps up to 0.5 * 1.2 = 0.6; amount 0.05 keeps up to 0.55.
    histories = {"best": [0.5], "a": [0.59], "b": [0.61]}
    assert BanditPolicy(slack_factor=0.2).trials_to_stop(histories, MIN) == {"b"}
    assert BanditPolicy(slack_amount=0.05).trials_to_stop(histories, MIN) == {"a", "b"}
    assert BanditPolicy(slack_factor=0.2).threshold(0.5, MIN) == pytest.approx(0.6)


def test_bandit_uses_a_trials_best_value_so_far():
    # x fell to 0.1 at interval 2 but reached 0.79 at interval 1: its best is within the slack.
    policy = BanditPolicy(slack_factor=0.2)
    assert policy.trials_to_stop({"best": [0.8, 0.8], "x": [0.79, 0.1]}, MAX) == set()


def test_bandit_compares_only_up_to_the_interval_judged():
    # At interval 1 the leader had 0.55 (its later 0.95 does not count): 0.5 is within 0.55 / 1.2.
    policy = BanditPolicy(slack_factor=0.2)
    assert policy.trials_to_stop({"leader": [0.55, 0.95], "young": [0.5]}, MAX) == set()
    # Once the young trial reaches interval 2, it is compared with 0.95 and stopped.
    assert policy.trials_to_stop({"leader": [0.55, 0.95], "young": [0.5, 0.5]}, MAX) == {"young"}


def test_bandit_keeps_a_trial_alone_at_its_interval():
    policy = BanditPolicy(slack_factor=0.2)
    assert policy.trials_to_stop({"solo": [0.1]}, MAX) == set()


def test_never_stops_the_current_best_nor_a_trial_twice():
    policy = BanditPolicy(slack_amount=0.01)
    histories = {"leader": [0.1, 0.9], "other": [0.5, 0.5]}
    # Judged at interval 2: "other" (0.5) is far below the leader's 0.9 -> stopped once.
    assert policy.trials_to_stop(histories, MAX) == {"other"}
    assert policy.trials_to_stop(histories, MAX) == set()
    # The leader is never stopped, even judged at an interval where it was behind.
    policy = BanditPolicy(slack_amount=0.01, evaluation_interval=1)
    assert "leader" not in policy.trials_to_stop({"leader": [0.1, 0.9], "other": [0.5]}, MAX)


def test_running_limits_who_may_be_stopped():
    policy = BanditPolicy(slack_factor=0.2)
    histories = {"best": [0.8], "finished_bad": [0.1], "running_bad": [0.2]}
    assert policy.trials_to_stop(histories, MAX, running=["running_bad", "best"]) == {"running_bad"}


def test_nan_counts_as_the_worst_value():
    assert BanditPolicy(slack_factor=0.5).trials_to_stop({"best": [0.8], "broken": [math.nan]}, MAX) == {"broken"}
    assert BanditPolicy(slack_factor=0.5).trials_to_stop({"best": [0.2], "broken": [math.nan]}, MIN) == {"broken"}
    assert MedianStoppingPolicy().trials_to_stop({"a": [0.5], "b": [0.4], "broken": [math.nan]}, MAX) == {"broken"}


# ---------------------------------------------------------------- interval and delay


def test_evaluation_point_is_the_latest_multiple_at_or_after_the_delay():
    policy = BanditPolicy(slack_factor=0.1, evaluation_interval=2, delay_evaluation=3)
    assert [policy.evaluation_point(n) for n in range(1, 8)] == [None, None, None, 4, 4, 6, 6]
    assert BanditPolicy(slack_factor=0.1).evaluation_point(1) == 1  # defaults: every interval, no delay


def test_no_stop_before_the_delay_then_stop():
    policy = BanditPolicy(slack_factor=0.2, evaluation_interval=2, delay_evaluation=3)
    best = [0.9] * 6
    assert policy.trials_to_stop({"best": best, "bad": [0.1] * 3}, MAX) == set()  # interval 3 is not evaluated
    assert policy.trials_to_stop({"best": best, "bad": [0.1] * 4}, MAX) == {"bad"}


def test_interval_judged_uses_values_up_to_it_only():
    # evaluation_interval 2: a trial with 3 reports is judged at interval 2 (its third report is ignored).
    policy = BanditPolicy(slack_factor=0.2, evaluation_interval=2)
    assert policy.trials_to_stop({"best": [0.9, 0.9, 0.9], "x": [0.8, 0.8, 0.1]}, MAX) == set()
    assert policy.trials_to_stop({"best": [0.9, 0.9, 0.9], "x": [0.5, 0.5, 0.95]}, MAX) == set()  # now the leader


def test_sdk_v2_interval_zero_means_every_interval():
    assert MedianStoppingPolicy(evaluation_interval=0).evaluation_interval == 1


# ---------------------------------------------------------------- median stopping


def test_median_stopping_against_the_median_of_running_averages():
    # Running averages over intervals 1..2: 0.9, 0.8, 0.25 -> median 0.8.
    policy = MedianStoppingPolicy()
    histories = {"a": [0.9, 0.9], "b": [0.8, 0.8], "c": [0.2, 0.3]}
    assert policy.trials_to_stop(histories, MAX) == {"c"}


def test_median_stopping_uses_best_so_far_against_averages():
    # d's average (0.45) is below the median, but its best (0.8) is not: kept.
    policy = MedianStoppingPolicy()
    histories = {"a": [0.7, 0.7], "b": [0.6, 0.6], "d": [0.1, 0.8]}
    assert policy.trials_to_stop(histories, MAX) == set()


def test_median_stopping_minimize():
    policy = MedianStoppingPolicy()
    histories = {"a": [0.1, 0.1], "b": [0.2, 0.2], "c": [0.9, 0.7]}
    assert policy.trials_to_stop(histories, MIN) == {"c"}


def test_median_stopping_respects_the_delay():
    policy = MedianStoppingPolicy(delay_evaluation=5)
    histories = {"a": [0.9] * 4, "b": [0.8] * 4, "c": [0.1] * 4}
    assert policy.trials_to_stop(histories, MAX) == set()
    histories = {k: v + v[-1:] for k, v in histories.items()}
    assert policy.trials_to_stop(histories, MAX) == {"c"}


# ---------------------------------------------------------------- truncation selection


def test_truncation_cuts_the_lowest_share():
    histories = {f"t{i}": [i / 10] for i in range(1, 6)}  # 0.1 .. 0.5
    assert TruncationSelectionPolicy(20).trials_to_stop(histories, MAX) == {"t1"}
    assert TruncationSelectionPolicy(40).trials_to_stop(histories, MAX) == {"t1", "t2"}
    assert TruncationSelectionPolicy(40).trials_to_stop(histories, MIN) == {"t5", "t4"}


def test_truncation_rounds_down_and_keeps_ties():
    four = {f"t{i}": [i / 10] for i in range(1, 5)}
    assert TruncationSelectionPolicy(20).trials_to_stop(four, MAX) == set()  # 20% of 4 trials is 0.8 -> 0
    assert TruncationSelectionPolicy(50).trials_to_stop({f"t{i}": [0.5] for i in range(4)}, MAX) == set()


def test_truncation_ranks_by_the_value_at_the_interval():
    # At interval 2: a 0.9, b 0.2, c 0.6, d 0.7, e 0.8 -> b is the lowest, though its interval 1 was high.
    histories = {"a": [0.99, 0.9], "b": [0.95, 0.2], "c": [0.3, 0.6], "d": [0.2, 0.7], "e": [0.2, 0.8]}
    assert TruncationSelectionPolicy(20).trials_to_stop(histories, MAX, running=["b", "c", "d", "e"]) == {"b"}


# ---------------------------------------------------------------- from sweep_job.yml


def test_policy_from_mapping_builds_each_type():
    assert policy_from_mapping(None) is None
    bandit = policy_from_mapping({"type": "bandit", "slack_factor": 0.1, "evaluation_interval": 2, "delay_evaluation": 4})
    assert isinstance(bandit, BanditPolicy) and bandit.slack_factor == 0.1
    assert (bandit.evaluation_interval, bandit.delay_evaluation) == (2, 4)
    median = policy_from_mapping({"type": "median_stopping", "evaluation_interval": 1, "delay_evaluation": 5})
    assert isinstance(median, MedianStoppingPolicy) and median.delay_evaluation == 5
    assert policy_from_mapping({"type": "MedianStopping"}).evaluation_interval == 1  # REST spelling, defaults
    truncation = policy_from_mapping({"type": "truncation_selection", "truncation_percentage": 20})
    assert isinstance(truncation, TruncationSelectionPolicy) and truncation.truncation_percentage == 20


@pytest.mark.parametrize(
    "mapping, message",
    [
        ({"type": "hyperband"}, "is not one of bandit, median_stopping, truncation_selection"),
        ({"type": "bandit"}, "exactly one of slack_factor and slack_amount"),
        ({"type": "bandit", "slack_factor": 0.1, "slack_amount": 0.1}, "exactly one of slack_factor and slack_amount"),
        ({"type": "bandit", "slack_factor": -1}, "slack_factor must be a positive number"),
        ({"type": "median_stopping", "slack_factor": 0.1}, "does not take slack_factor"),
        ({"type": "truncation_selection"}, "needs truncation_percentage"),
        ({"type": "truncation_selection", "truncation_percentage": 100}, "from 1 to 99"),
        ({"type": "median_stopping", "delay_evaluation": -1}, "delay_evaluation must be a whole number >= 0"),
        ({"slack_factor": 0.1}, "with a `type`"),
    ],
)
def test_policy_from_mapping_errors(mapping, message):
    with pytest.raises(CapcError, match=message.replace("(", r"\(")):
        policy_from_mapping(mapping)
