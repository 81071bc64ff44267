"""The research graph's typed state, its run configuration, and the result handed to callers.

The state holds only JSON-like values (plans, executions and judgements as dicts) so that LangGraph's
checkpointers store it as is. ``usage`` and ``timings`` are summed across nodes by reducers; ``rollouts`` collects
the fanned-out plans of a group run; ``extra`` is merged and belongs to users' own nodes.
"""

from __future__ import annotations

import operator
from dataclasses import asdict, dataclass, field
from typing import Annotated, Any, TypedDict

from ..agents.executor import ExecutorConfig
from ..agents.judge import JudgeConfig
from ..agents.manager import ManagerConfig
from ..agents.planner import PlannerConfig

__all__ = ["ResearchConfig", "ResearchResult", "ResearchState", "sum_dicts", "merge_dicts"]


def sum_dicts(a: dict[str, float] | None, b: dict[str, float] | None) -> dict[str, float]:
    """Reducer: add numbers key by key."""
    out = dict(a or {})
    for k, v in (b or {}).items():
        out[k] = out.get(k, 0) + v
    return out


def merge_dicts(a: dict[str, Any] | None, b: dict[str, Any] | None) -> dict[str, Any]:
    """Reducer: later keys win."""
    return {**(a or {}), **(b or {})}


class ResearchState(TypedDict, total=False):
    """State of one research run (and of a group run)."""

    question: str
    gold: Any
    task_id: str
    user_id: str | None
    conversation_id: str | None
    memories: dict[str, Any]
    planner_messages: list[dict[str, str]]
    plans: list[dict[str, Any]]
    current_plan: dict[str, Any]
    first: dict[str, Any]
    replan_decision: bool
    replan_plan: dict[str, Any] | None
    final: dict[str, Any]
    first_judgement: dict[str, Any]
    judgement: dict[str, Any]
    memory_id: str | None
    remember_run: bool
    index: int
    n_plans: int
    usage: Annotated[dict[str, float], sum_dicts]
    timings: Annotated[dict[str, float], sum_dicts]
    rollouts: Annotated[list[dict[str, Any]], operator.add]
    group: list[dict[str, Any]]
    extra: Annotated[dict[str, Any], merge_dicts]


@dataclass
class ResearchConfig:
    """Settings of a research run; each agent's own settings are nested."""

    planner: PlannerConfig = field(default_factory=PlannerConfig, metadata={"help": "Planner settings."})
    executor: ExecutorConfig = field(default_factory=ExecutorConfig, metadata={"help": "Executor settings."})
    judge: JudgeConfig = field(default_factory=JudgeConfig, metadata={"help": "Judge settings."})
    manager: ManagerConfig = field(default_factory=ManagerConfig, metadata={"help": "Manager settings."})
    planner_adapter: str | None = field(default=None, metadata={"help": "Planner LoRA adapter (None: base model)."})
    executor_adapter: str | None = field(default=None, metadata={"help": "Executor LoRA adapter (None: base)."})
    best_of_n: int = field(default=1, metadata={"help": "Plans sampled per run; the model picks the best."})
    reflect: bool = field(default=True, metadata={"help": "Ask the planner whether to replan after a first answer."})
    remember: bool = field(default=True, metadata={"help": "Write the run into memory after judging (run())."})
    planner_experience: bool = field(default=True, metadata={
        "help": "Show recalled memories to the planner as positive / negative exemplars."})
    executor_experience: bool = field(default=True, metadata={
        "help": "Give recalled cases to the executor: queries to try first, documents to open, notes on what worked "
                "and failed, same-task reuse (see ExecutorConfig.experience)."})
    retry_attempts: int = field(default=3, metadata={"help": "Attempts of a model-calling node on retryable errors."})

    def __post_init__(self) -> None:
        if self.best_of_n < 1:
            raise ValueError(f"best_of_n must be >= 1, got {self.best_of_n}")
        if self.retry_attempts < 1:
            raise ValueError(f"retry_attempts must be >= 1, got {self.retry_attempts}")


@dataclass(kw_only=True, slots=True)
class ResearchResult:
    """Everything a caller (CLI, benchmark, session runner, RL) needs from one run or one plan of a group."""

    task_id: str
    """Id of the task (shared by all plans of a group)."""
    question: str
    """The question."""
    planner_messages: list[dict[str, str]]
    """The chat messages given to the planner (the prompt GRPO trains on)."""
    plan: str
    """The plan followed first, as a numbered list."""
    replan: str | None
    """The supplementary plan, None when there was no replan."""
    replan_decision: bool
    """Whether reflection asked for a replan."""
    first_answer: str
    """The answer after the first plan."""
    answer: str
    """The final answer (after the replan when there was one)."""
    citations: list[str]
    """Ids of the documents cited for the final answer."""
    evidence_ids: list[str]
    """Ids of the documents read by the executor (first run and replan)."""
    steps: list[dict[str, Any]]
    """The executor's tool calls (dicts of tool, input, output ids, titles, step, error)."""
    used_memory_ids: list[str]
    """Ids of the memories recalled for the planner."""
    judgement: str
    """``correct``, ``incorrect`` or ``unknown``."""
    score: float
    """The final answer's score in [0, 1] (F1 with gold, evaluator score or group agreement without)."""
    first_score: float
    """The first answer's score, judged the same way."""
    gold: Any
    """The gold answer (or aliases) when given."""
    model: str
    """Name of the planner's model."""
    adapter: str | None
    """The planner adapter used (None: base model)."""
    timings: dict[str, float]
    """Seconds per node, ``total`` (wall), ``model`` (inside model calls) and ``overhead_share``."""
    tokens: dict[str, int]
    """``prompt``, ``completion``, ``total`` tokens and model ``calls``."""
    plan_fallback: bool = False
    """True when the planner's text was unusable and the default plan ran."""
    plan_raw: str = ""
    """The planner model's raw text for the first plan (what GRPO trains on)."""
    retrieved_ids: list[str] = field(default_factory=list)
    """Ids of every document the searches returned."""
    em: float | None = None
    """Exact match with gold, None without gold."""
    f1: float | None = None
    """Token F1 with gold, None without gold."""
    judge_method: str = "none"
    """How the answer was judged: gold, llm, evaluators, vote, function or none."""
    memory_id: str | None = None
    """Id of the memory written for this run, when it was remembered."""
    conversation_context: str = ""
    """What the user's conversation memory contributed to the plan."""
    user_id: str | None = None
    """The user the run belongs to, if any."""
    conversation_id: str | None = None
    """The conversation the run belongs to, if any."""
    answer_fallbacks: int = 0
    """Model answers not accepted as is (empty, restating the question, unsupported), first and final run."""
    answer_source: str = "model"
    """Where the final answer came from: model, resample, extractive or memory (a re-checked same-task case)."""
    executor_memory_ids: list[str] = field(default_factory=list)
    """Ids of the recalled memories the executor was given."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
