"""The agents of a deep-research run: Manager (memories), Planner, Executor and Judge, their prompts and records.

Each role is a small class around a chat model; any of them can be replaced by a user's function or object
(see :mod:`miaflow.agents.roles`). Nothing heavy is imported here.
"""

from __future__ import annotations

from .answer_check import check_answer, extractive_span
from .executor import Executor, ExecutorConfig, SearchIndex, Tool, step_query
from .experience import Case, Experience, ExperienceConfig, experience_from_memories
from .judge import Judge, JudgeConfig, majority_vote
from .manager import Manager, ManagerConfig, reward_of
from .planner import Planner, PlannerConfig, default_plan, parse_plan
from .records import Execution, Judgement, Plan, ToolCall, Usage
from .roles import as_executor, as_judge, as_planner

__all__ = [
    "Planner", "PlannerConfig", "parse_plan", "default_plan",
    "Executor", "ExecutorConfig", "SearchIndex", "Tool", "step_query",
    "Experience", "ExperienceConfig", "Case", "experience_from_memories", "check_answer", "extractive_span",
    "Judge", "JudgeConfig", "majority_vote",
    "Manager", "ManagerConfig", "reward_of",
    "Plan", "ToolCall", "Execution", "Judgement", "Usage",
    "as_planner", "as_executor", "as_judge",
]
