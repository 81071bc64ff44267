"""One turn of the learning loop, in one place: run a group of plans for a question, judge it, score the planner
and the executor, put the group in the experience buffer for GRPO, and write every run back into memory.

Sessions (:mod:`miaflow.workflows.session`), consolidation replays (:mod:`miaflow.rl.consolidation`) and offline
training all call :func:`run_group`, which returns a typed :class:`GroupRollout`. The planner rewards in it are the
ones TRL optimises (:func:`~miaflow.rl.rewards.planner_reward` on the same columns), so what is logged is what is
trained on.

Judging: with ``judge_mode="gold"`` the workflow judges each plan against the gold answer; ``"llm"`` uses the
workflow's judgement without gold; ``"vote"`` scores each plan by agreement with the group's majority answer. The
research workflow's group graph already votes when it has no gold answer, and that vote is reused as is, so the
vote runs once per question; only a workflow that did not vote (a plain function, a fake) is voted on here.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from .._text import normalize_answer
from ..errors import InvalidInputError
from .buffer import ExperienceBuffer, ExperienceGroup
from .rewards import executor_reward, has_signal, plan_format_ok, planner_reward

__all__ = [
    "JUDGE_MODES",
    "GroupRollout",
    "planner_completion",
    "judge_scores",
    "rollout_from_results",
    "run_group",
    "plan_task_id",
    "buffer_rollout",
    "remember_rollout",
    "forget_runs",
]

JUDGE_MODES = ("gold", "llm", "vote")
"""'gold' (EM/F1 against the gold answer), 'llm' (the workflow's judge without gold) or 'vote' (majority)."""


def planner_completion(result: Any) -> str:
    """The text the planner model generated for a result: its raw output when the workflow keeps it
    (``plan_raw``), else the parsed numbered plan. GRPO must train on what the model sampled."""
    raw = getattr(result, "plan_raw", None)
    return raw if isinstance(raw, str) and raw.strip() else str(result.plan)


def plan_task_id(task_id: str, k: int) -> str:
    """Task id of plan ``k`` of a group: each plan is its own use of the recalled memories, so each utility
    update counts once per (plan, memory) and a redo of the same plan counts nothing twice.

    >>> plan_task_id("e0-q1", 2)
    'e0-q1/p2'
    """
    return f"{task_id}/p{k}"


@dataclass(kw_only=True, frozen=True, slots=True)
class GroupRollout:
    """A judged and rewarded group of plans for one question (all lists are aligned, one item per plan)."""

    task_id: str
    question: str
    gold: Any
    """Gold answer when known (kept for reports even when the judge does not use it)."""
    judge_mode: str
    prompt: list[dict[str, str]]
    """Chat messages the planner was given (the GRPO prompt)."""
    plans: list[str]
    """Parsed numbered plans."""
    completions: list[str]
    """What the planner model generated for each plan (the GRPO completions)."""
    answers: list[str]
    """Final answer of each plan (after any replan)."""
    first_answers: list[str]
    scores: list[float]
    """Judged accuracy of each final answer, in [0, 1]."""
    first_scores: list[float]
    judgements: list[str]
    """'correct', 'incorrect' or 'unknown' per plan, as stored with the memory."""
    replanned: list[bool]
    format_ok: list[bool]
    planner_rewards: list[float]
    executor_rewards: list[float]
    adapter_version: str | None
    """Planner adapter version serving when the group was sampled."""
    seconds: float
    """Wall time of the whole group."""
    used_memory_ids: list[str] = field(default_factory=list)
    """Memories recalled for the planner (shared by the group)."""
    results: tuple[Any, ...] = field(default=(), repr=False, compare=False)
    """The workflow's per-plan results (for memory write-back)."""

    @property
    def n(self) -> int:
        return len(self.answers)

    @property
    def accuracy(self) -> float:
        """Mean score over the group (what a user asking once would get on average)."""
        return sum(self.scores) / len(self.scores) if self.scores else 0.0

    @property
    def has_signal(self) -> bool:
        """Whether the planner rewards differ (a zero-variance group carries no GRPO signal)."""
        return has_signal(self.planner_rewards)

    def planner_group(self, group_id: str | None = None, metadata: dict[str, Any] | None = None) -> ExperienceGroup:
        """The group as the planner's GRPO trainer takes it."""
        return ExperienceGroup(
            group_id=group_id or self.task_id, role="planner", prompt=list(self.prompt),
            completions=list(self.completions), rewards=list(self.planner_rewards),
            columns={"accuracy": list(self.scores), "first_accuracy": list(self.first_scores),
                     "replanned": list(self.replanned), "format_ok": list(self.format_ok)},
            metadata={"question": self.question, "task_id": self.task_id, "adapter_version": self.adapter_version,
                      "judge": self.judge_mode, **(metadata or {})},
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields (without the raw results)."""
        return {k: v for k, v in asdict(self).items() if k != "results"}


def _check_mode(judge_mode: str) -> None:
    if judge_mode not in JUDGE_MODES:
        raise InvalidInputError(f"judge_mode must be one of {', '.join(JUDGE_MODES)}, got {judge_mode!r}")


def judge_scores(results: Sequence[Any], judge_mode: str) -> tuple[list[float], list[float]]:
    """(final-answer scores, first-answer scores) of a group's results under ``judge_mode``.

    In vote mode a first answer scores 1 when it agrees with the majority *final* answer (the same rule the
    research workflow's vote node applies).
    """
    _check_mode(judge_mode)
    if judge_mode == "vote" and not all(getattr(r, "judge_method", None) == "vote" for r in results):
        from ..agents.judge import majority_vote

        majority, js = majority_vote([r.answer or "" for r in results])
        key = normalize_answer(majority)
        firsts = [float(bool(key) and normalize_answer(r.first_answer or "") == key) for r in results]
        return [float(j.score) for j in js], firsts
    return [float(r.score) for r in results], [float(r.first_score) for r in results]


def rollout_from_results(results: Sequence[Any], *, judge_mode: str = "gold", gold: Any = None,
                         task_id: str | None = None, adapter_version: str | None = None,
                         seconds: float = 0.0) -> GroupRollout:
    """Judge and reward a group of results (ResearchResult-like objects, one per plan)."""
    if not results:
        raise InvalidInputError("a group needs at least one result")
    scores, firsts = judge_scores(results, judge_mode)
    completions = [planner_completion(r) for r in results]
    fmt = [bool(not getattr(r, "plan_fallback", False) and plan_format_ok(c)) for r, c in
           zip(results, completions, strict=True)]
    replanned = [bool(r.replan_decision) for r in results]
    answers = [str(r.answer or "") for r in results]
    labels = [("correct" if s >= 0.5 else "incorrect") if judge_mode == "vote" or r.judgement == "unknown"
              else str(r.judgement) for r, s in zip(results, scores, strict=True)]
    return GroupRollout(
        task_id=task_id or str(results[0].task_id), question=str(results[0].question), gold=gold,
        judge_mode=judge_mode, prompt=list(results[0].planner_messages), plans=[str(r.plan) for r in results],
        completions=completions, answers=answers, first_answers=[str(r.first_answer or "") for r in results],
        scores=scores, first_scores=firsts, judgements=labels, replanned=replanned, format_ok=fmt,
        planner_rewards=planner_reward(completions, accuracy=scores, first_accuracy=firsts, replanned=replanned,
                                       format_ok=fmt),
        executor_rewards=executor_reward(answers, accuracy=scores,
                                         tool_calls=[len(getattr(r, "steps", []) or []) for r in results],
                                         citations=[len(getattr(r, "citations", []) or []) for r in results]),
        adapter_version=adapter_version, seconds=seconds,
        used_memory_ids=list(getattr(results[0], "used_memory_ids", []) or []), results=tuple(results),
    )


def run_group(workflow: Any, question: str, n: int, gold: Any = None, judge_mode: str = "gold", *,
              task_id: str | None = None, adapter_version: str | None = None) -> GroupRollout:
    """Sample ``n`` plans for ``question`` with ``workflow.run_group``, run, judge and reward them.

    The gold answer reaches the workflow only under the 'gold' judge (the others must not see it); it is kept in
    the rollout either way. Nothing is remembered or buffered here: see :func:`remember_rollout` and
    :func:`buffer_rollout`.
    """
    _check_mode(judge_mode)
    if n < 1:
        raise InvalidInputError(f"n must be >= 1, got {n}")
    t0 = time.perf_counter()
    results = workflow.run_group(question, n=n, gold=gold if judge_mode == "gold" else None, task_id=task_id)
    seconds = time.perf_counter() - t0
    if not results:
        raise InvalidInputError(f"the workflow returned no results for {question!r}")
    return rollout_from_results(results, judge_mode=judge_mode, gold=gold, task_id=task_id,
                                adapter_version=adapter_version, seconds=seconds)


def buffer_rollout(buffer: ExperienceBuffer, rollout: GroupRollout, *, group_id: str | None = None,
                   metadata: dict[str, Any] | None = None) -> bool:
    """Add the planner group to the durable buffer (a group of one plan or without a prompt cannot train).
    Returns whether it was added (False also when the buffer already holds that group id)."""
    if rollout.n < 2 or not rollout.prompt:
        return False
    return bool(buffer.add(rollout.planner_group(group_id, metadata)))


def remember_rollout(workflow: Any, rollout: GroupRollout) -> list[str | None]:
    """Write every plan's run into memory through ``workflow.remember`` (trajectory + utility updates), each
    under its own task id (:func:`plan_task_id`). Under the vote judge, and where the workflow could not judge,
    the stored label is the rollout's score. Returns the memory ids kept."""
    remember = getattr(workflow, "remember", None)
    if remember is None:
        return []
    ids: list[str | None] = []
    for k, (r, s, label) in enumerate(zip(rollout.results, rollout.scores, rollout.judgements, strict=True)):
        if label != r.judgement:
            r = replace(r, judgement=label, score=s)
        ids.append(remember(replace(r, task_id=plan_task_id(rollout.task_id, k))))
    return ids


def forget_runs(workflow: Any, task_id: str, n: int) -> int:
    """Delete the memories written for plans ``0..n-1`` of ``task_id`` (an attempt that was cut short), so that
    its redo does not recall them. Returns how many records went."""
    store = getattr(workflow, "store", None)
    if store is None or not hasattr(store, "delete"):
        return 0
    return sum(int(store.delete(task_id=plan_task_id(task_id, k)) or 0) for k in range(n))
