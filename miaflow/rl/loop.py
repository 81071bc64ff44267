"""One turn of the learning loop, in one place: run a group of plans for a question, judge it, score the planner
and the executor, put the group in the experience buffer for GRPO, and write every run back into memory.

Sessions (:mod:`miaflow.workflows.session`), consolidation replays (:mod:`miaflow.rl.consolidation`) and offline
training all call :func:`run_group`, which returns a typed :class:`GroupRollout`. The planner rewards in it are the
ones TRL optimises (:func:`~miaflow.rl.rewards.planner_reward` on the same columns), so what is logged is what is
trained on.

Two kinds of group (``role``): a planner group samples n plans and runs the executor on each (what differs is
the plan); an executor group (:mod:`miaflow.rl.executor_group`) runs one plan's searches once and samples n answers
to the same evidence in one batched call (what differs is the answer). Each trains its own role's adapter.

Unjudged runs: a run the judge could not score (judgement ``unknown``, e.g. an unparseable evaluator reply under the
'llm' judge) keeps that label when stored (no positive or negative memory, no Q-value update) and earns no reward
for either role: its score and both rewards are 0, never a pass and never a format bonus.

On-policy bookkeeping: every rollout records the adapter version of its trained role that sampled it
(``adapter_version``); the buffered group carries it in ``metadata["adapter_version"]`` and the trainer drops
groups sampled too many versions ago (:class:`~miaflow.rl.worker.WorkerConfig` ``max_staleness``).

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
    "ROLES",
    "buffer_rollout",
    "remember_rollout",
    "forget_runs",
]

ROLES = ("planner", "executor")
"""The roles a group can train: 'planner' (n plans) or 'executor' (one plan, n sampled answers)."""

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
    """A judged and rewarded group for one question (all lists are aligned, one item per sample).

    For a planner group the samples are plans; for an executor group they are answers to one plan's evidence, and
    ``prompt`` / ``completions`` are the executor's answer prompt and its sampled replies (the GRPO prompt and
    completions of that role).
    """

    task_id: str
    question: str
    gold: Any
    """Gold answer when known (kept for reports even when the judge does not use it)."""
    judge_mode: str
    prompt: list[dict[str, str]]
    """Chat messages the trained role was given (the GRPO prompt)."""
    plans: list[str]
    """Parsed numbered plans (one plan repeated in an executor group)."""
    completions: list[str]
    """What the trained role's model generated for each sample (the GRPO completions)."""
    answers: list[str]
    """Final answer of each plan (after any replan)."""
    first_answers: list[str]
    scores: list[float]
    """Judged accuracy of each final answer, in [0, 1]."""
    first_scores: list[float]
    judgements: list[str]
    """'correct', 'incorrect' or 'unknown' (unjudged) per sample, as stored with the memory."""
    replanned: list[bool]
    format_ok: list[bool]
    planner_rewards: list[float]
    executor_rewards: list[float]
    adapter_version: str | None
    """Version of the trained role's adapter serving when the group was sampled (None: not versioned)."""
    seconds: float
    """Wall time of the whole group."""
    used_memory_ids: list[str] = field(default_factory=list)
    """Memories recalled for the planner (shared by the group)."""
    role: str = "planner"
    """Which role's samples differ within the group, and so which role it trains ('planner' or 'executor')."""
    tool_calls: list[int] = field(default_factory=list)
    """Tool calls of each sample's run (an executor reward input)."""
    citations: list[int] = field(default_factory=list)
    """Documents each sample's answer cites (an executor reward input)."""
    results: tuple[Any, ...] = field(default=(), repr=False, compare=False)
    """The workflow's per-sample results (for memory write-back)."""

    @property
    def n(self) -> int:
        return len(self.answers)

    @property
    def accuracy(self) -> float:
        """Mean score over the group (what a user asking once would get on average)."""
        return sum(self.scores) / len(self.scores) if self.scores else 0.0

    @property
    def unjudged(self) -> list[bool]:
        """Samples the judge could not score (they earn no reward; the trainer's reward sees this column too)."""
        return [j == "unknown" and self.judge_mode != "vote" for j in self.judgements]

    @property
    def rewards(self) -> list[float]:
        """The trained role's rewards (planner rewards for a planner group, executor rewards for an executor one)."""
        return list(self.planner_rewards if self.role == "planner" else self.executor_rewards)

    @property
    def has_signal(self) -> bool:
        """Whether the trained role's rewards differ (a zero-variance group carries no GRPO signal)."""
        return has_signal(self.rewards)

    def training_group(self, group_id: str | None = None, metadata: dict[str, Any] | None = None
                       ) -> ExperienceGroup:
        """The group as its role's GRPO trainer takes it."""
        if self.role == "executor":
            return self.executor_group(group_id, metadata)
        return self.planner_group(group_id, metadata)

    def executor_group(self, group_id: str | None = None, metadata: dict[str, Any] | None = None
                       ) -> ExperienceGroup:
        """An executor group as the executor's GRPO trainer takes it (the reward inputs of
        :func:`~miaflow.rl.rewards.executor_reward` as columns)."""
        if self.role != "executor":
            raise InvalidInputError(f"group {self.task_id} is a {self.role} group: its samples differ by plan, "
                                    "so they are no executor GRPO group")
        n = self.n
        return ExperienceGroup(
            group_id=group_id or self.task_id, role="executor", prompt=list(self.prompt),
            completions=list(self.completions), rewards=list(self.executor_rewards),
            columns={"accuracy": list(self.scores), "tool_calls": list(self.tool_calls or [0] * n),
                     "citations": list(self.citations or [0] * n), "unjudged": self.unjudged},
            metadata={"question": self.question, "task_id": self.task_id, "adapter_version": self.adapter_version,
                      "judge": self.judge_mode, "role": "executor", **(metadata or {})},
        )

    def planner_group(self, group_id: str | None = None, metadata: dict[str, Any] | None = None) -> ExperienceGroup:
        """The group as the planner's GRPO trainer takes it."""
        if self.role != "planner":
            raise InvalidInputError(f"group {self.task_id} is an executor group: its samples share one plan")
        return ExperienceGroup(
            group_id=group_id or self.task_id, role="planner", prompt=list(self.prompt),
            completions=list(self.completions), rewards=list(self.planner_rewards),
            columns={"accuracy": list(self.scores), "first_accuracy": list(self.first_scores),
                     "replanned": list(self.replanned), "format_ok": list(self.format_ok), "unjudged": self.unjudged},
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
                         seconds: float = 0.0, role: str = "planner", prompt: Sequence[dict[str, str]] | None = None,
                         completions: Sequence[str] | None = None) -> GroupRollout:
    """Judge and reward a group of results (ResearchResult-like objects, one per sample).

    ``role="executor"`` makes an executor group: ``prompt`` and ``completions`` are then the executor's answer
    prompt and its sampled replies (required). A result judged ``unknown`` (outside the vote) scores 0, keeps its
    label and earns 0 for both roles.
    """
    if not results:
        raise InvalidInputError("a group needs at least one result")
    if role not in ROLES:
        raise InvalidInputError(f"role must be one of {', '.join(ROLES)}, got {role!r}")
    if role == "executor" and (prompt is None or completions is None or len(completions) != len(results)):
        raise InvalidInputError("an executor group needs the answer prompt and one sampled completion per result")
    scores, firsts = judge_scores(results, judge_mode)
    unjudged = [judge_mode != "vote" and str(getattr(r, "judgement", "")) == "unknown" for r in results]
    scores = [0.0 if u else s for u, s in zip(unjudged, scores, strict=True)]
    firsts = [0.0 if u else s for u, s in zip(unjudged, firsts, strict=True)]
    plan_texts = [planner_completion(r) for r in results]
    fmt = [bool(not getattr(r, "plan_fallback", False) and plan_format_ok(c)) for r, c in
           zip(results, plan_texts, strict=True)]
    replanned = [bool(r.replan_decision) for r in results]
    answers = [str(r.answer or "") for r in results]
    labels = [("correct" if s >= 0.5 else "incorrect") if judge_mode == "vote" else
              ("unknown" if u else str(r.judgement)) for r, s, u in zip(results, scores, unjudged, strict=True)]
    tools = [len(getattr(r, "steps", []) or []) for r in results]
    cites = [len(getattr(r, "citations", []) or []) for r in results]
    p_rewards = planner_reward(plan_texts, accuracy=scores, first_accuracy=firsts, replanned=replanned,
                               format_ok=fmt)
    e_rewards = executor_reward(list(completions) if completions is not None else answers, accuracy=scores,
                                tool_calls=tools, citations=cites)
    p_rewards = [0.0 if u else x for u, x in zip(unjudged, p_rewards, strict=True)]
    e_rewards = [0.0 if u else x for u, x in zip(unjudged, e_rewards, strict=True)]
    return GroupRollout(
        task_id=task_id or str(results[0].task_id), question=str(results[0].question), gold=gold,
        judge_mode=judge_mode, prompt=list(prompt if prompt is not None else results[0].planner_messages),
        plans=[str(r.plan) for r in results],
        completions=list(completions) if completions is not None else plan_texts, answers=answers,
        first_answers=[str(r.first_answer or "") for r in results],
        scores=scores, first_scores=firsts, judgements=labels, replanned=replanned, format_ok=fmt,
        planner_rewards=p_rewards, executor_rewards=e_rewards, adapter_version=adapter_version, seconds=seconds,
        used_memory_ids=list(getattr(results[0], "used_memory_ids", []) or []), role=role, tool_calls=tools,
        citations=cites, results=tuple(results),
    )


def run_group(workflow: Any, question: str, n: int, gold: Any = None, judge_mode: str = "gold", *,
              task_id: str | None = None, adapter_version: str | None = None, role: str = "planner",
              temperature: float | None = None) -> GroupRollout:
    """Sample a group of ``n`` for ``question``, run, judge and reward it.

    ``role="planner"``: ``n`` plans with ``workflow.run_group``, each executed. ``role="executor"``: one plan, its
    searches run once, ``n`` answers sampled in one batched call at ``temperature`` (see
    :func:`~miaflow.rl.executor_group.run_executor_group`).

    The gold answer reaches the workflow only under the 'gold' judge (the others must not see it); it is kept in
    the rollout either way. Nothing is remembered or buffered here: see :func:`remember_rollout` and
    :func:`buffer_rollout`.
    """
    _check_mode(judge_mode)
    if n < 1:
        raise InvalidInputError(f"n must be >= 1, got {n}")
    if role not in ROLES:
        raise InvalidInputError(f"role must be one of {', '.join(ROLES)}, got {role!r}")
    if role == "executor":
        from .executor_group import run_executor_group

        return run_executor_group(workflow, question, n, gold=gold, judge_mode=judge_mode, task_id=task_id,
                                  adapter_version=adapter_version, temperature=temperature)
    t0 = time.perf_counter()
    results = workflow.run_group(question, n=n, gold=gold if judge_mode == "gold" else None, task_id=task_id)
    seconds = time.perf_counter() - t0
    if not results:
        raise InvalidInputError(f"the workflow returned no results for {question!r}")
    return rollout_from_results(results, judge_mode=judge_mode, gold=gold, task_id=task_id,
                                adapter_version=adapter_version, seconds=seconds)


def buffer_rollout(buffer: ExperienceBuffer, rollout: GroupRollout, *, group_id: str | None = None,
                   metadata: dict[str, Any] | None = None) -> bool:
    """Add the group to the durable buffer under its role (a group of one sample or without a prompt cannot
    train). Returns whether it was added (False also when the buffer already holds that group id)."""
    if rollout.n < 2 or not rollout.prompt:
        return False
    return bool(buffer.add(rollout.training_group(group_id, metadata)))


def remember_rollout(workflow: Any, rollout: GroupRollout) -> list[str | None]:
    """Write every sample's run into memory through ``workflow.remember`` (trajectory + utility updates), each
    under its own task id (:func:`plan_task_id`). Under the vote judge the stored label is the vote's; a run the
    judge could not score is stored as 'unknown' (unjudged: no Q-value update). Returns the memory ids kept."""
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
    its redo does not recall them: trajectory records and the conversation exchange. Returns how many went."""
    manager = getattr(workflow, "manager", None)
    forget_exchange = getattr(manager, "forget_exchange", None)
    gone = int(forget_exchange(task_id)) if forget_exchange is not None else 0
    store = getattr(workflow, "store", None)
    if store is None or not hasattr(store, "delete"):
        return gone
    return gone + sum(int(store.delete(task_id=plan_task_id(task_id, k)) or 0) for k in range(n))
