import doctest

import pytest

from miaflow.rl import executor_reward, majority_vote_scores, planner_reward
from miaflow.rl import rewards as rewards_mod
from miaflow.rl.buffer import ExperienceGroup


def test_doctests():
    res = doctest.testmod(rewards_mod)
    assert res.attempted > 5 and res.failed == 0


def test_planner_reward_weights_on_a_hand_made_group():
    plans = ["1. Search A\n2. Read", "1. Search B", "The answer is: Paris", "1. Search C"]
    # right after replan & first right & no replan; right only after replan; wrong + bad format; wrong, replanned
    r = planner_reward(plans, accuracy=[1, 1, 0, 0], first_accuracy=[1, 0, 0, 0], replanned=[False, True, True, False])
    assert r == pytest.approx([0.7 + 0.2 + 0.05 + 0.05, 0.7 + 0.05 + 0.05, 0.05, 0.05])


def test_planner_reward_partial_credit_and_trl_style_completions():
    comps = [[{"role": "assistant", "content": "1. look it up"}]] * 2
    r = planner_reward(comps, accuracy=[0.5, 2.0])  # F1-style credit; out-of-range clipped
    # first_accuracy defaults to accuracy; no replan with first<0.5 is a wrong decision
    assert r == pytest.approx([0.35 + 0.1 + 0.05 + 0.05, 0.7 + 0.2 + 0.05 + 0.05])


def test_planner_reward_rejects_misaligned_columns():
    with pytest.raises(ValueError):
        planner_reward(["1. a", "1. b"], accuracy=[1.0])


def test_executor_reward():
    r = executor_reward(["Paris [doc1]", "Paris", "", "Lyon [d2]"], accuracy=[1, 1, 0, 0], tool_calls=[3, 0, 0, 1],
                        citations=[1, 0, 0, 1])
    assert r == pytest.approx([1.0, 0.7, 0.0, 0.3])


def test_vote_and_zero_variance():
    assert majority_vote_scores(["", "", ""]) == [0.0, 0.0, 0.0]
    assert majority_vote_scores(["Xu", "Yo", "Yo", "xu"]) == [1.0, 0.0, 0.0, 1.0]
    g = ExperienceGroup(group_id="g", prompt=[], completions=["a", "b"], rewards=[0.1, 0.1])
    assert not g.has_signal
