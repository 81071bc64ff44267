"""Turn whatever a user passes for a role into an object with the role's methods.

A role can be given as a chat model (wrapped in the stock agent), as the stock agent itself or any object with the
same methods, or as a plain function:

- planner: ``fn(question, memories) -> str | list[str]`` (plan text or steps); it never replans.
- executor: ``fn(question, steps) -> str | Execution`` (an answer string or a full execution).
- judge: ``fn(question, answer, gold) -> str | Judgement`` (a label or a judgement).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from .executor import Executor, ExecutorConfig, Tool
from .judge import Judge, JudgeConfig
from .planner import Planner, PlannerConfig, parse_plan
from .records import Execution, Judgement, Plan

__all__ = ["as_planner", "as_executor", "as_judge", "FunctionPlanner", "FunctionExecutor", "FunctionJudge",
           "is_chat_model"]


def is_chat_model(obj: Any) -> bool:
    """True for anything with a ``chat`` method (a ChatModel)."""
    return callable(getattr(obj, "chat", None))


class FunctionPlanner:
    """A planner from a function ``fn(question, memories) -> str | list[str]``."""

    def __init__(self, fn: Callable[[str, dict[str, Any]], str | Sequence[str]], max_steps: int = 8):
        self.fn = fn
        self.max_steps = max_steps

    def messages(self, question: str, memories: dict[str, Any] | None = None, context: str = "") -> list[dict]:
        return [{"role": "user", "content": question}]

    def plan(self, question: str, memories: dict[str, Any] | None = None, *, n: int = 1, **_: Any) -> list[Plan]:
        out = self.fn(question, memories or {})
        plan: Plan
        if isinstance(out, Plan):
            plan = out
        elif isinstance(out, str):
            plan = parse_plan(out, question, max_steps=self.max_steps)
        else:
            plan = Plan(steps=tuple(str(s) for s in out)) if out else parse_plan("", question)
        return [plan] * n

    def choose(self, question: str, plans: Sequence[Plan], **_: Any) -> int:
        return 0

    def reflect(self, *args: Any, **kwargs: Any) -> bool:
        return False

    def replan(self, question: str, plan: Plan, *args: Any, **kwargs: Any) -> Plan:
        return plan


class FunctionExecutor:
    """An executor from a function ``fn(question, steps) -> str | Execution``."""

    def __init__(self, fn: Callable[[str, Sequence[str]], str | Execution]):
        self.fn = fn

    def run(self, question: str, steps: Sequence[str], **_: Any) -> Execution:
        out = self.fn(question, list(steps))
        return out if isinstance(out, Execution) else Execution(answer=str(out), raw_answer=str(out),
                                                                 cited_by_model=False)


class FunctionJudge:
    """A judge from a function ``fn(question, answer, gold) -> str | Judgement``."""

    def __init__(self, fn: Callable[[str, str, Any], str | Judgement]):
        self.fn = fn

    def judge(self, question: str, answer: str, gold: Any = None, evidence: str = "", **_: Any) -> Judgement:
        out = self.fn(question, answer, gold)
        if isinstance(out, Judgement):
            return out
        label = str(out)
        return Judgement(label=label, score=1.0 if label == "correct" else 0.0, method="function")


def _with_role_adapter(model: Any, config: Any, default: Any, role: str) -> Any:
    """The role's config, naming the model's trained adapter for this role when the config names none."""
    from dataclasses import replace

    cfg = config or default()
    trained = (getattr(model, "role_adapters", None) or {}).get(role)
    return replace(cfg, adapter=trained) if trained and cfg.adapter is None else cfg


def as_planner(role: Any, config: PlannerConfig | None = None) -> Any:
    if is_chat_model(role):
        return Planner(role, _with_role_adapter(role, config, PlannerConfig, "planner"))
    if hasattr(role, "plan"):
        return role
    if callable(role):
        return FunctionPlanner(role)
    raise TypeError(f"a planner must be a chat model, a planner object or a function, got {type(role).__name__}")


def as_executor(role: Any, index: Any, config: ExecutorConfig | None = None, tools: Sequence[Tool] = ()) -> Any:
    if is_chat_model(role):
        return Executor(role, index, _with_role_adapter(role, config, ExecutorConfig, "executor"), tools)
    if hasattr(role, "run"):
        return role
    if callable(role):
        return FunctionExecutor(role)
    raise TypeError(f"an executor must be a chat model, an executor object or a function, got {type(role).__name__}")


def as_judge(role: Any, model: Any = None, config: JudgeConfig | None = None) -> Any:
    if role is None:
        return Judge(model, config)
    if is_chat_model(role):
        return Judge(role, config)
    if hasattr(role, "judge"):
        return role
    if callable(role):
        return FunctionJudge(role)
    raise TypeError(f"a judge must be a chat model, a judge object or a function, got {type(role).__name__}")
