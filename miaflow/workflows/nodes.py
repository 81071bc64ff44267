"""The research graph's nodes, as methods of one object holding the roles.

Each node reads the state, calls one role, and returns a partial update with its model usage and wall time. The
per-plan steps (execute, reflect, replan, execute again, judge) are plain methods too, so the fanned-out
``rollout`` node of a group run reuses them for its own plan. Progress events go to LangGraph's custom stream.

Recalled memories reach each role under its own switch: the planner as exemplars (``planner_experience``), the
executor as cases (``executor_experience``: queries, documents, notes, same-task reuse), whatever plan runs. The
memories counted as used (their Q-values move with the run's reward) are the ones some role was shown. One
remember path (:meth:`ResearchNodes.remember_result`) serves the graph's ``remember`` node, ``ResearchWorkflow.
remember`` and sessions alike: the run's result goes through ``Manager.remember`` (trajectory store, Q-value
updates, Bi-Mem).
"""

from __future__ import annotations

import inspect
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from .._text import normalize_answer
from ..agents.experience import Experience, experience_from_memories
from ..agents.judge import majority_vote
from ..agents.records import Execution, Judgement, Plan, Usage
from ..errors import InvalidInputError
from .state import ResearchConfig, ResearchResult, ResearchState

__all__ = ["ResearchNodes", "writer"]


def writer() -> Callable[[Any], None]:
    """LangGraph's custom-stream writer inside a run, a no-op outside one."""
    try:
        from langgraph.config import get_stream_writer

        return get_stream_writer()
    except Exception:  # outside a graph run there is no writer
        return lambda _: None


def _agreement(answer: str, majority: str) -> Judgement:
    ok = bool(normalize_answer(answer)) and normalize_answer(answer) == normalize_answer(majority)
    return Judgement(label="correct" if ok else "incorrect", score=float(ok), method="vote",
                     details={"majority": majority})


def _usage(u: Usage) -> dict[str, float]:
    return u.as_dict()


def _accepts(fn: Any, name: str) -> bool:
    """Whether ``fn`` takes the keyword ``name`` (user executors may not know about experience)."""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.name == name or p.kind is inspect.Parameter.VAR_KEYWORD for p in params)


class ResearchNodes:
    """Node functions over the roles: ``planner``, ``executor``, ``judge`` and ``manager``."""

    def __init__(self, *, planner: Any, executor: Any, judge: Any, manager: Any, config: ResearchConfig):
        self.planner = planner
        self.executor = executor
        self.judge_role = judge
        self.manager = manager
        self.config = config
        self._exp_kw = _accepts(getattr(executor, "run", None), "experience")

    @property
    def model_name(self) -> str:
        """The planner's model name (its class name for plain functions)."""
        return str(getattr(getattr(self.planner, "model", None), "name", "") or type(self.planner).__name__)

    def experience(self, memories: Mapping[str, Any] | None, question: str, task_id: str | None
                   ) -> Experience | None:
        """The executor's cases from the recalled memories, or None when switched off or nothing was recalled."""
        if not self.config.executor_experience or not memories:
            return None
        cfg = getattr(getattr(self.executor, "config", None), "experience", None)
        exp = experience_from_memories(memories, question, task_id, cfg)
        return exp if exp else None

    def _planner_memories(self, mem: Mapping[str, Any] | None) -> dict[str, Any]:
        mem = dict(mem or {})
        if not self.config.planner_experience:
            mem.update(positive=[], negative=[])
        return mem

    # ---- graph nodes -------------------------------------------------------------------------------------------
    def recall(self, state: ResearchState) -> dict[str, Any]:
        t0 = time.perf_counter()
        question = state.get("question")
        if not isinstance(question, str) or not question.strip():
            raise InvalidInputError("the question is empty: pass a non-empty question string")
        mem = self.manager.recall(question, user_id=state.get("user_id"),
                                  conversation_id=state.get("conversation_id"))
        task_id = state.get("task_id") or f"t-{uuid.uuid4().hex[:12]}"
        msgs = self.planner.messages(question, self._planner_memories(mem))
        if not self.config.planner_experience:  # only what the executor is shown counts as used
            exp = self.experience(mem, question, task_id)
            mem = {**mem, "used_ids": exp.ids if exp else []}
        writer()({"event": "recall", "positive": len(mem["positive"]), "negative": len(mem["negative"]),
                  "conversation": bool(mem.get("conversation"))})
        out: dict[str, Any] = {"memories": mem, "planner_messages": msgs,
                               "timings": {"recall": time.perf_counter() - t0}}
        if not state.get("task_id"):  # graphs started by LangGraph's own tools get only a question
            out["task_id"] = task_id
        return out

    def plan(self, state: ResearchState) -> dict[str, Any]:
        t0, u = time.perf_counter(), Usage()
        n = self.config.best_of_n
        plans = self.planner.plan(state["question"], self._planner_memories(state.get("memories")), n=n, usage=u,
                                  adapter=self.config.planner_adapter, messages=state.get("planner_messages"))
        idx = self.planner.choose(state["question"], plans, usage=u) if len(plans) > 1 else 0
        chosen = plans[idx]
        writer()({"event": "plan", "plan": chosen.text, "fallback": chosen.fallback})
        return {"plans": [p.as_dict() for p in plans], "current_plan": chosen.as_dict(), "usage": _usage(u),
                "timings": {"plan": time.perf_counter() - t0}}

    def plan_group(self, state: ResearchState) -> dict[str, Any]:
        t0, u = time.perf_counter(), Usage()
        n = int(state.get("n_plans") or 1)
        plans = self.planner.plan(state["question"], self._planner_memories(state.get("memories")), n=n, usage=u,
                                  adapter=self.config.planner_adapter, messages=state.get("planner_messages"))
        writer()({"event": "plans", "n": len(plans), "fallbacks": sum(p.fallback for p in plans)})
        return {"plans": [p.as_dict() for p in plans], "usage": _usage(u),
                "timings": {"plan": time.perf_counter() - t0}}

    def execute(self, state: ResearchState) -> dict[str, Any]:
        t0, u = time.perf_counter(), Usage()
        q = state["question"]
        ex = self._execute(q, Plan.from_dict(state["current_plan"]), u,
                           experience=self.experience(state.get("memories"), q, state.get("task_id")))
        return {"first": ex.as_dict(), "final": ex.as_dict(), "usage": _usage(u),
                "timings": {"execute": time.perf_counter() - t0}}

    def reflect(self, state: ResearchState) -> dict[str, Any]:
        t0, u = time.perf_counter(), Usage()
        decision = self._reflect(state["question"], Plan.from_dict(state["current_plan"]),
                                 Execution.from_dict(state["first"]), u)
        return {"replan_decision": decision, "usage": _usage(u), "timings": {"reflect": time.perf_counter() - t0}}

    def route_after_reflect(self, state: ResearchState) -> str:
        return "replan" if state.get("replan_decision") else "judge"

    def replan(self, state: ResearchState) -> dict[str, Any]:
        t0, u = time.perf_counter(), Usage()
        new = self._replan(state["question"], Plan.from_dict(state["current_plan"]),
                           Execution.from_dict(state["first"]), u)
        return {"replan_plan": new.as_dict(), "usage": _usage(u), "timings": {"replan": time.perf_counter() - t0}}

    def execute_replan(self, state: ResearchState) -> dict[str, Any]:
        t0, u = time.perf_counter(), Usage()
        first = Execution.from_dict(state["first"])
        final = self._execute(state["question"], Plan.from_dict(state["replan_plan"] or {}), u, previous=first)
        return {"final": final.as_dict(), "usage": _usage(u),
                "timings": {"execute_replan": time.perf_counter() - t0}}

    def judge(self, state: ResearchState) -> dict[str, Any]:
        t0, u = time.perf_counter(), Usage()
        first, final = Execution.from_dict(state["first"]), Execution.from_dict(state["final"])
        j, fj = self._judge(state["question"], first, final, state.get("gold"), u)
        writer()({"event": "judge", "judgement": j.label, "score": j.score})
        return {"judgement": j.as_dict(), "first_judgement": fj.as_dict(), "usage": _usage(u),
                "timings": {"judge": time.perf_counter() - t0}}

    def remember(self, state: ResearchState) -> dict[str, Any]:
        t0 = time.perf_counter()
        if not state.get("remember_run", True) or not self.config.remember:
            return {"memory_id": None}
        mem_id = self.remember_result(self.result(dict(state), 0.0))
        return {"memory_id": mem_id, "timings": {"remember": time.perf_counter() - t0}}

    def remember_result(self, result: ResearchResult) -> str | None:
        """The one remember path: trajectory store (compressed with the store's settings), Q-value updates of the
        memories the run used, and the user's conversation memory. Sets and returns ``result.memory_id``."""
        plan = result.plan + (("\nReplan:\n" + result.replan) if result.replan else "")
        mem_id = self.manager.remember(
            task_id=result.task_id or "task", question=result.question, plan=plan, steps=result.steps,
            evidence_ids=result.evidence_ids, citations=result.citations, answer=result.answer,
            judgement=result.judgement, used_ids=result.used_memory_ids, model=result.model,
            adapter=result.adapter, user_id=result.user_id, conversation_id=result.conversation_id)
        result.memory_id = mem_id
        writer()({"event": "remember", "memory_id": mem_id})
        return mem_id

    def rollout(self, state: ResearchState) -> dict[str, Any]:
        """One plan of a group: execute, reflect, maybe replan and execute again, judge with gold."""
        t0, u = time.perf_counter(), Usage()
        q = state["question"]
        plan = Plan.from_dict(state["current_plan"])
        first = self._execute(q, plan, u, experience=self.experience(state.get("memories"), q, state.get("task_id")))
        decision = self._reflect(q, plan, first, u)
        replan, final = None, first
        if decision:
            replan = self._replan(q, plan, first, u)
            final = self._execute(q, replan, u, previous=first)
        out: dict[str, Any] = {"index": state.get("index", 0), "plan": plan.as_dict(), "first": first.as_dict(),
                               "replan_decision": decision, "replan": replan.as_dict() if replan else None,
                               "final": final.as_dict()}
        if state.get("gold") not in (None, "", []):
            j, fj = self._judge(q, first, final, state["gold"], u)
            out.update(judgement=j.as_dict(), first_judgement=fj.as_dict())
        out["usage"] = _usage(u)
        out["seconds"] = time.perf_counter() - t0
        writer()({"event": "rollout", "index": out["index"], "answer": final.answer})
        return {"rollouts": [out], "usage": _usage(u), "timings": {"rollouts": out["seconds"]}}

    def vote(self, state: ResearchState) -> dict[str, Any]:
        """Order the group's rollouts; without gold, judge each by agreement with the majority final answer."""
        rolls = sorted(state.get("rollouts", []), key=lambda r: r["index"])
        if rolls and "judgement" not in rolls[0]:
            majority, js = majority_vote([r["final"]["answer"] for r in rolls])
            firsts = [_agreement(r["first"]["answer"], majority) for r in rolls]
            rolls = [{**r, "judgement": j.as_dict(), "first_judgement": f.as_dict()}
                     for r, j, f in zip(rolls, js, firsts, strict=True)]
        return {"group": rolls}

    # ---- per-plan steps --------------------------------------------------------------------------------------
    def _execute(self, question: str, plan: Plan, u: Usage, previous: Execution | None = None, *,
                 experience: Experience | None = None) -> Execution:
        emit = writer()
        kw: dict[str, Any] = {"usage": u, "on_event": emit, "adapter": self.config.executor_adapter}
        if previous is not None:
            kw["previous"] = previous
        if experience is not None and self._exp_kw:
            kw["experience"] = experience
        ex = self.executor.run(question, list(plan.steps), **kw)
        if previous is not None and not ex.answer and previous.answer:
            return previous  # a replan that found nothing keeps the first answer
        return ex

    def _reflect(self, question: str, plan: Plan, first: Execution, u: Usage) -> bool:
        if not self.config.reflect:
            return False
        decision = bool(self.planner.reflect(question, plan, first.answer, first.evidence_text(), usage=u,
                                             adapter=self.config.planner_adapter))
        writer()({"event": "reflect", "replan": decision})
        return decision

    def _replan(self, question: str, plan: Plan, first: Execution, u: Usage) -> Plan:
        new = self.planner.replan(question, plan, first.answer, first.evidence_text(), usage=u,
                                  adapter=self.config.planner_adapter)
        writer()({"event": "replan", "plan": new.text})
        return new

    def _judge(self, question: str, first: Execution, final: Execution, gold: Any, u: Usage
               ) -> tuple[Judgement, Judgement]:
        j = self.judge_role.judge(question, final.answer, gold, final.evidence_text(), usage=u)
        if final is first or final.answer == first.answer:
            return j, j
        fj = self.judge_role.judge(question, first.answer, gold, first.evidence_text(), usage=u)
        return j, fj

    # ---- results ---------------------------------------------------------------------------------------------
    def result(self, v: dict[str, Any], wall: float) -> ResearchResult:
        """The caller's view of a finished state (one run, or one plan of a group)."""
        first, final = v.get("first", {}) or {}, v.get("final", {}) or {}
        j, fj = v.get("judgement", {}) or {}, v.get("first_judgement", {}) or v.get("judgement", {}) or {}
        usage = v.get("usage", {}) or {}
        steps = list(first.get("steps", []))
        replan = v.get("replan_plan")
        again = bool(replan) and final is not first and final.get("steps") != first.get("steps")
        if again:
            steps += final.get("steps", [])
        evidence = list(dict.fromkeys(list(first.get("evidence_ids", [])) + list(final.get("evidence_ids", []))))
        retrieved = list(dict.fromkeys(list(first.get("retrieved_ids", [])) + list(final.get("retrieved_ids", []))))
        model_s = float(usage.get("model_seconds", 0.0))
        timings = {k: float(x) for k, x in (v.get("timings", {}) or {}).items()}
        timings.update(total=wall, model=model_s, overhead_share=max(wall - model_s, 0.0) / wall if wall else 0.0)
        pt, ct = int(usage.get("prompt_tokens", 0)), int(usage.get("completion_tokens", 0))
        plan = v.get("current_plan", {}) or {}
        memories = v.get("memories", {}) or {}
        fallbacks = int(first.get("answer_fallbacks", 0)) + (int(final.get("answer_fallbacks", 0)) if again else 0)
        return ResearchResult(
            task_id=v.get("task_id", ""), question=v.get("question", ""),
            planner_messages=list(v.get("planner_messages", [])), plan=plan.get("text", ""),
            replan=replan.get("text") if replan else None, replan_decision=bool(v.get("replan_decision")),
            first_answer=first.get("answer", ""), answer=final.get("answer", ""),
            citations=list(final.get("citations", [])), evidence_ids=evidence, steps=steps,
            used_memory_ids=list(memories.get("used_ids", [])),
            judgement=j.get("label", "unknown"), score=float(j.get("score", 0.0)),
            first_score=float(fj.get("score", 0.0)), gold=v.get("gold"), model=self.model_name,
            adapter=self.config.planner_adapter, timings=timings,
            tokens={"prompt": pt, "completion": ct, "total": pt + ct, "calls": int(usage.get("calls", 0))},
            plan_fallback=bool(plan.get("fallback", False)), plan_raw=str(plan.get("raw", "")),
            retrieved_ids=retrieved, em=j.get("em"), f1=j.get("f1"), judge_method=j.get("method", "none"),
            memory_id=v.get("memory_id"), conversation_context=memories.get("conversation", ""),
            user_id=v.get("user_id"), conversation_id=v.get("conversation_id"), answer_fallbacks=fallbacks,
            answer_source=str(final.get("answer_source", "model")),
            executor_memory_ids=list(first.get("experience_ids", [])))
