"""Rewards for GRPO groups, as plain callables ``(completions, **kwargs) -> list[float]`` (the form TRL's
``reward_funcs`` take: the completions plus dataset / rollout columns as keyword lists, one value per completion).

Planner reward (MIA): ``0.7 * accuracy after replan + 0.2 * first-answer accuracy + 0.05 * format
+ 0.05 * correct replan decision``. Executor reward: ``0.7 * accuracy + 0.2 * tool use + 0.1 * format``.
Accuracies come from the judge (gold exact match / F1, an LLM judge, or the group's majority vote) as numbers in
[0, 1]. Simplifications: "format" is a cheap text check (a numbered plan with no final answer in it; an executor
answer that is non-empty and cites a document), not a parser of MIA's exact tags.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

__all__ = [
    "PLANNER_WEIGHTS",
    "EXECUTOR_WEIGHTS",
    "completion_text",
    "plan_format_ok",
    "replan_decision_correct",
    "planner_reward",
    "executor_reward",
    "majority_vote_scores",
    "has_signal",
]

PLANNER_WEIGHTS = {"accuracy": 0.7, "first_accuracy": 0.2, "format": 0.05, "replan": 0.05}
"""MIA's planner reward weights."""
EXECUTOR_WEIGHTS = {"accuracy": 0.7, "tool_use": 0.2, "format": 0.1}
"""Executor reward weights."""

_STEP = re.compile(r"^\s*(?:step\s*)?\d+\s*[.):-]", re.IGNORECASE | re.MULTILINE)
_ANSWER_IN_PLAN = re.compile(r"(?:final answer|the answer is)\s*[:=]", re.IGNORECASE)


def completion_text(completion: Any) -> str:
    """Text of a completion as TRL passes it: a string, or a conversational list of messages.

    >>> completion_text([{"role": "assistant", "content": "1. search"}])
    '1. search'
    """
    if isinstance(completion, str):
        return completion
    if isinstance(completion, list):
        return "".join(str(m.get("content", "")) for m in completion if isinstance(m, dict))
    if isinstance(completion, dict):
        return str(completion.get("content", ""))
    return str(completion)


def plan_format_ok(plan: str) -> bool:
    """A plan is well formed when it has at least one numbered step and does not state a final answer.

    >>> plan_format_ok("1. Search for the author\\n2. Open the best hit")
    True
    >>> plan_format_ok("The answer is: Paris")
    False
    """
    return bool(_STEP.search(plan or "")) and not _ANSWER_IN_PLAN.search(plan or "")


def replan_decision_correct(replanned: bool, first_accuracy: float, threshold: float = 0.5) -> bool:
    """Replanning is the right call exactly when the first answer was wrong.

    >>> replan_decision_correct(True, 0.0), replan_decision_correct(True, 1.0), replan_decision_correct(False, 1.0)
    (True, False, True)
    """
    return bool(replanned) == (first_accuracy < threshold)


def _col(kwargs: dict, name: str, n: int, default: Any) -> list:
    values = kwargs.get(name)
    if values is None:
        return [default] * n
    if not isinstance(values, list | tuple):
        return [values] * n
    if len(values) != n:
        raise ValueError(f"reward column {name!r} has {len(values)} values for {n} completions")
    return list(values)


def _acc(x: Any) -> float:
    v = float(x) if x is not None else 0.0
    if not math.isfinite(v):
        return 0.0
    return min(1.0, max(0.0, v))


def planner_reward(completions: Sequence[Any], **kwargs: Any) -> list[float]:
    """MIA planner reward per completion (a plan).

    Keyword columns (lists aligned with ``completions``): ``accuracy`` (final answer, after any replan),
    ``first_accuracy`` (answer before the replan; defaults to ``accuracy``), ``replanned`` (bool; default False).
    Format is checked on the completion text unless a ``format_ok`` column is given.

    >>> plans = ["1. search X\\n2. read", "1. search Y", "just guess", "1. search Z"]
    >>> planner_reward(plans, accuracy=[1, 1, 0, 0], first_accuracy=[1, 0, 0, 0],
    ...                replanned=[False, True, False, True])
    [1.0, 0.8, 0.0, 0.1]
    """
    n = len(completions)
    acc = [_acc(a) for a in _col(kwargs, "accuracy", n, 0.0)]
    first = [_acc(a) if a is not None else acc[i] for i, a in enumerate(_col(kwargs, "first_accuracy", n, None))]
    replanned = _col(kwargs, "replanned", n, False)
    fmt = kwargs.get("format_ok")
    fmt_ok = _col(kwargs, "format_ok", n, True) if fmt is not None else [
        plan_format_ok(completion_text(c)) for c in completions
    ]
    w = PLANNER_WEIGHTS
    return [
        round(
            w["accuracy"] * acc[i]
            + w["first_accuracy"] * first[i]
            + w["format"] * float(bool(fmt_ok[i]))
            + w["replan"] * float(replan_decision_correct(bool(replanned[i]), first[i])),
            6,
        )
        for i in range(n)
    ]


def executor_reward(completions: Sequence[Any], **kwargs: Any) -> list[float]:
    """Executor reward per completion (an executor's final answer).

    Columns: ``accuracy``; ``tool_calls`` (number of tool calls made; tool use scores 1 when > 0);
    ``citations`` (number of documents cited; format scores 1 for a non-empty answer that cites one).

    >>> executor_reward(["Paris [doc1]", "", "Lyon"], accuracy=[1, 0, 0], tool_calls=[2, 0, 1], citations=[1, 0, 0])
    [1.0, 0.0, 0.2]
    """
    n = len(completions)
    acc = [_acc(a) for a in _col(kwargs, "accuracy", n, 0.0)]
    tools = _col(kwargs, "tool_calls", n, 0)
    cites = _col(kwargs, "citations", n, 0)
    w = EXECUTOR_WEIGHTS
    out = []
    for i, c in enumerate(completions):
        text = completion_text(c).strip()
        fmt = float(bool(text) and int(cites[i] or 0) > 0)
        out.append(round(w["accuracy"] * acc[i] + w["tool_use"] * float(int(tools[i] or 0) > 0) + w["format"] * fmt, 6))
    return out


def majority_vote_scores(answers: Sequence[str]) -> list[float]:
    """Accuracy without gold answers (test-time RL by voting): 1 for answers equal to the group's majority answer.

    The vote itself is :func:`miaflow.agents.judge.majority_vote` (empty answers never win; ties go to the answer
    seen first); this gives its agreement scores as the reward column.

    >>> majority_vote_scores(["Paris", "paris.", "Lyon", ""])
    [1.0, 1.0, 0.0, 0.0]
    """
    from ..agents.judge import majority_vote

    return [float(j.score) for j in majority_vote([a or "" for a in answers])[1]]


def has_signal(rewards: Sequence[float], eps: float = 1e-9) -> bool:
    """False when all rewards of a group are equal: GRPO's advantages (and TRL's loss) are then zero.

    >>> has_signal([0.5, 0.5, 0.5, 0.5]), has_signal([1.0, 0.0, 0.0, 0.0])
    (False, True)
    """
    return len(rewards) > 1 and (max(rewards) - min(rewards)) > eps
