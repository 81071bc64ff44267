"""The research graph's nodes, as methods of one object holding the roles.

Each node reads the state, calls one role, and returns a partial update with its model usage and wall time. The
per-plan steps (execute, reflect, replan, execute again, judge) are plain methods too, so the fanned-out
``rollout`` node of a group run reuses them for its own plan. Progress events go to LangGraph's custom stream.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

from .._text import normalize_answer
from ..agents.judge import majority_vote
from ..agents.records import Execution, Judgement, Plan, Usage
from ..errors import InvalidInputError
from .state import ResearchConfig, ResearchState

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


class ResearchNodes:
    """Node functions over the roles: ``planner``, ``executor``, ``judge`` and ``manager``."""

    def __init__(self, *, planner: Any, executor: Any, judge: Any, manager: Any, config: ResearchConfig):
        self.planner = planner
        self.executor = executor
        self.judge_role = judge
        self.manager = manager
        self.config = config

    # ---- graph nodes -------------------------------------------------------------------------------------------
    def recall(self, state: ResearchState) -> dict[str, Any]:
        t0 = time.perf_counter()
        question = state.get("question")
        if not isinstance(question, str) or not question.strip():
            raise InvalidInputError("the question is empty: pass a non-empty question string")
        mem = self.manager.recall(question, user_id=state.get("user_id"),
                                  conversation_id=state.get("conversation_id"))
        msgs = self.planner.messages(question, mem)
        writer()({"event": "recall", "positive": len(mem["positive"]), "negative": len(mem["negative"]),
                  "conversation": bool(mem.get("conversation"))})
        out: dict[str, Any] = {"memories": mem, "planner_messages": msgs,
                               "timings": {"recall": time.perf_counter() - t0}}
        if not state.get("task_id"):  # graphs started by LangGraph's own tools get only a question
            out["task_id"] = f"t-{uuid.uuid4().hex[:12]}"
        return out

    def plan(self, state: ResearchState) -> dict[str, Any]:
        t0, u = time.perf_counter(), Usage()
        n = self.config.best_of_n
        plans = self.planner.plan(state["question"], state.get("memories"), n=n, usage=u,
                                  adapter=self.config.planner_adapter, messages=state.get("planner_messages"))
        idx = self.planner.choose(state["question"], plans, usage=u) if len(plans) > 1 else 0
        chosen = plans[idx]
        writer()({"event": "plan", "plan": chosen.text, "fallback": chosen.fallback})
        return {"plans": [p.as_dict() for p in plans], "current_plan": chosen.as_dict(), "usage": _usage(u),
                "timings": {"plan": time.perf_counter() - t0}}

    def plan_group(self, state: ResearchState) -> dict[str, Any]:
        t0, u = time.perf_counter(), Usage()
        n = int(state.get("n_plans") or 1)
        plans = self.planner.plan(state["question"], state.get("memories"), n=n, usage=u,
                                  adapter=self.config.planner_adapter, messages=state.get("planner_messages"))
        writer()({"event": "plans", "n": len(plans), "fallbacks": sum(p.fallback for p in plans)})
        return {"plans": [p.as_dict() for p in plans], "usage": _usage(u),
                "timings": {"plan": time.perf_counter() - t0}}

    def execute(self, state: ResearchState) -> dict[str, Any]:
        t0, u = time.perf_counter(), Usage()
        ex = self._execute(state["question"], Plan.from_dict(state["current_plan"]), u)
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
        plan, final = Plan.from_dict(state["current_plan"]), Execution.from_dict(state["final"])
        replan = Plan.from_dict(state["replan_plan"]) if state.get("replan_plan") else None
        steps = [s.as_dict() for s in Execution.from_dict(state["first"]).steps + (final.steps if replan else ())]
        mem_id = self.manager.remember(
            task_id=state.get("task_id") or "task", question=state["question"],
            plan=plan.text + (("\nReplan:\n" + replan.text) if replan else ""), steps=steps,
            evidence_ids=list(final.evidence_ids), answer=final.answer,
            judgement=state.get("judgement", {}).get("label", "unknown"),
            used_ids=state.get("memories", {}).get("used_ids", []),
            model=getattr(getattr(self.planner, "model", None), "name", ""), adapter=self.config.planner_adapter)
        cid = state.get("conversation_id") or state.get("user_id")
        if cid:
            self.manager.write_conversation(conversation_id=cid, user_id=state.get("user_id"),
                                            question=state["question"], answer=final.answer,
                                            turn_id=state.get("task_id"))
        writer()({"event": "remember", "memory_id": mem_id})
        return {"memory_id": mem_id, "timings": {"remember": time.perf_counter() - t0}}

    def rollout(self, state: ResearchState) -> dict[str, Any]:
        """One plan of a group: execute, reflect, maybe replan and execute again, judge with gold."""
        t0, u = time.perf_counter(), Usage()
        q = state["question"]
        plan = Plan.from_dict(state["current_plan"])
        first = self._execute(q, plan, u)
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
    def _execute(self, question: str, plan: Plan, u: Usage, previous: Execution | None = None) -> Execution:
        emit = writer()
        kw: dict[str, Any] = {"usage": u, "on_event": emit, "adapter": self.config.executor_adapter}
        if previous is not None:
            kw["previous"] = previous
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
