"""Executor groups: one plan, its searches run once, n answers sampled to the same evidence in one batched call.

MIA alternates the two roles: planner groups (n plans, each executed) train the planner; executor groups train the
executor, so they must differ in what the executor wrote while sharing its input. Here the question is recalled
and planned once (the serving planner, as deployed), the executor runs that plan's searches and opens once, and its
answer call asks for ``n`` samples at ``temperature``: the executor's answer prompt is the GRPO prompt and the n
replies are the completions. Each answer is judged on its own (gold, the evaluators, or the group's vote) and
rewarded with :func:`~miaflow.rl.rewards.executor_reward`.

Speed: the n answers are one ``chat(..., n=n)`` call. ``LocalChatModel`` samples them in one batched ``generate``
with the prompt's prefill computed once and its KV cache shared, so a group costs about one research run plus
n - 1 short answer decodes in the same batch (``miaflow bench group-speed`` measures it).

Simplifications: no reflection or replan inside an executor group (the group is about the answer to one set of
evidence); the samples are scored as sampled, without the executor's answer check, resample or extractive
replacement (they would replace the very completions GRPO trains on; offline alternating GRPO does the same).
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

from ..agents import prompts
from ..agents.executor import Executor, parse_answer, strip_echo
from ..agents.judge import majority_vote
from ..agents.records import Plan, Usage
from ..errors import InvalidInputError
from ..llm.base import ChatResult, GenerationConfig, as_messages, resolve_config

__all__ = ["GroupSampler", "run_executor_group", "DEFAULT_TEMPERATURE"]

DEFAULT_TEMPERATURE = 0.8
"""Sampling temperature of an executor group's answers when none is given."""


def _is_answer_prompt(messages: Any) -> bool:
    msgs = as_messages(messages)
    return bool(msgs) and msgs[0].get("role") == "system" and msgs[0].get("content") == prompts.EXECUTOR_SYSTEM


class GroupSampler:
    """A chat model for the executor whose answer call samples the whole group at once and keeps every sample;
    every other call (query writing) passes through unchanged."""

    def __init__(self, model: Any, n: int, temperature: float):
        self.model, self.n, self.temperature = model, n, temperature
        self.messages: list[dict[str, str]] = []
        self.texts: list[str] = []
        self.seconds = 0.0

    @property
    def name(self) -> str:
        return str(getattr(self.model, "name", "model"))

    def chat(self, messages: Any, config: GenerationConfig | None = None, **overrides: Any) -> ChatResult:
        cfg = resolve_config(config, overrides)
        if not _is_answer_prompt(messages):
            return self.model.chat(messages, cfg)
        t0 = time.perf_counter()
        res = self.model.chat(messages, replace(cfg, n=self.n, temperature=self.temperature, seed=None))
        self.seconds += time.perf_counter() - t0
        self.messages = [dict(m) for m in as_messages(messages)]
        self.texts = list(res.texts)
        if len(self.texts) != self.n:
            raise InvalidInputError(f"the model returned {len(self.texts)} samples for n={self.n}")
        return res


def _roles(workflow: Any) -> tuple[Any, Executor]:
    nodes = getattr(workflow, "nodes", None)
    executor = getattr(nodes, "executor", None)
    if nodes is None or not isinstance(executor, Executor) or not hasattr(executor.model, "chat"):
        raise InvalidInputError("executor groups need a ResearchWorkflow whose executor is a chat model "
                                f"(got {type(workflow).__name__})")
    return nodes, executor


def run_executor_group(workflow: Any, question: str, n: int, gold: Any = None, judge_mode: str = "gold", *,
                       task_id: str | None = None, adapter_version: str | None = None,
                       temperature: float | None = None) -> Any:
    """An executor group for ``question`` on a ResearchWorkflow: one plan, n sampled answers, judged and rewarded
    (a :class:`~miaflow.rl.loop.GroupRollout` with ``role="executor"``). Nothing is remembered or buffered."""
    from .loop import rollout_from_results

    if n < 1:
        raise InvalidInputError(f"n must be >= 1, got {n}")
    nodes, executor = _roles(workflow)
    t0 = time.perf_counter()
    tid = task_id or f"t-{int(time.time() * 1000)}"
    state: dict[str, Any] = {"question": question.strip(), "task_id": tid,
                             "gold": gold if judge_mode == "gold" else None}
    if not state["question"]:
        raise InvalidInputError("the question is empty: pass a non-empty question string")
    state.update(nodes.recall(state))
    planned = nodes.plan(state)
    state["current_plan"] = planned["current_plan"]
    u = Usage()
    sampler = GroupSampler(executor.model, n, DEFAULT_TEMPERATURE if temperature is None else temperature)
    runner = Executor(sampler, executor.index, replace(executor.config, check_answers=False), executor.tools)
    exp = nodes.experience(state.get("memories"), state["question"], tid)
    steps = list(Plan.from_dict(state["current_plan"]).steps)
    ex = runner.run(state["question"], steps, usage=u, adapter=nodes.config.executor_adapter, experience=exp)
    if sampler.texts:
        texts = sampler.texts
        prompt = sampler.messages
    else:  # no evidence, or a same-task case reused through its evidence: the model was not asked
        texts = [ex.raw_answer or ex.answer] * n
        prompt = [{"role": "system", "content": prompts.EXECUTOR_SYSTEM},
                  {"role": "user", "content": state["question"]}]
    ids = list(ex.evidence_ids)
    runs = []
    for t in texts:
        if sampler.texts:
            answer, cited = parse_answer(t, ids)
            answer = strip_echo(answer, state["question"])
            runs.append(replace(ex, answer=answer, raw_answer=t, citations=tuple(cited), cited_by_model=bool(cited)))
        else:
            runs.append(ex)
    if judge_mode == "vote":
        _, verdicts = majority_vote([r.answer for r in runs])
    else:
        verdicts = [nodes.judge_role.judge(state["question"], r.answer, state["gold"], r.evidence_text(), usage=u)
                    for r in runs]
    usage = dict(planned.get("usage", {}))
    for k, x in u.as_dict().items():
        usage[k] = usage.get(k, 0) + x
    wall = time.perf_counter() - t0
    results = []
    for r, j in zip(runs, verdicts, strict=True):
        v = {**state, "first": r.as_dict(), "final": r.as_dict(), "replan_plan": None, "replan_decision": False,
             "judgement": j.as_dict(), "first_judgement": j.as_dict(), "usage": usage}
        results.append(nodes.result(v, wall))
    return rollout_from_results(results, judge_mode=judge_mode, gold=gold, task_id=tid,
                                adapter_version=adapter_version, seconds=wall, role="executor", prompt=prompt,
                                completions=texts)
