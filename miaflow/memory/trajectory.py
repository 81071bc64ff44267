"""Records of the trajectory store: a finished research run (:class:`Trajectory`), its compressed stored form with
learned utility (:class:`MemoryRecord`), and what a recall returns (:class:`ScoredMemory`, :class:`Recall`).

The utility fields of a :class:`MemoryRecord` (``q_value``, ``usage_count``, ``success_count``, ``last_used_at``) are
derived by the store from the record's utility events; they are read-only snapshots here.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from ..errors import InvalidInputError

__all__ = ["Judgement", "JUDGEMENTS", "Trajectory", "MemoryRecord", "ScoredMemory", "Recall", "UtilityUpdate"]

Judgement = Literal["correct", "incorrect", "unknown"]
JUDGEMENTS: tuple[str, ...] = ("correct", "incorrect", "unknown")

Step = str | Mapping[str, Any]


def _check_question(question: Any) -> str:
    if not isinstance(question, str) or not question.strip():
        raise InvalidInputError("the question must be a non-empty string")
    return question.strip()


def _check_ids(ids: Any, what: str = "ids") -> list[str]:
    if isinstance(ids, str):
        ids = [ids]
    try:
        out = list(dict.fromkeys(ids))
    except TypeError as e:
        raise InvalidInputError(f"{what} must be a list of strings, got {ids!r}") from e
    if not all(isinstance(i, str) and i for i in out):
        raise InvalidInputError(f"{what} must be non-empty strings, got {out!r}")
    return out


def _check_reward(reward: float, what: str = "reward") -> float:
    try:
        r = float(reward)
    except (TypeError, ValueError) as e:
        raise InvalidInputError(f"{what} must be a number in [-1, 1], got {reward!r}") from e
    if not math.isfinite(r) or not -1.0 <= r <= 1.0:
        raise InvalidInputError(f"{what} must be a finite number in [-1, 1], got {reward!r}")
    return r


def _check_judgement(judgement: str) -> None:
    if judgement not in JUDGEMENTS:
        raise InvalidInputError(f"judgement must be one of {JUDGEMENTS}, got {judgement!r}")


@dataclass(kw_only=True, frozen=True, slots=True)
class Trajectory:
    """One finished deep-research run, as the Manager hands it to memory."""

    task_id: str
    """Identifier of the task (question instance); utility updates are idempotent per (task_id, memory)."""
    question: str
    """The question that was answered; the memory is retrieved by its embedding."""
    plan: str = ""
    """The planner's numbered plan."""
    steps: Sequence[Step] = ()
    """Executor steps (stored as a tuple): strings, or mappings with keys such as action/tool, purpose/thought, input/query, output."""
    evidence_ids: Sequence[str] = ()
    """Ids of the documents the executor read (stored as a tuple)."""
    cited_ids: Sequence[str] = ()
    """Ids of the documents the answer cited (stored as a tuple): the evidence that made the run work."""
    queries: Sequence[str] = ()
    """Search queries whose results held a cited document; derived from ``steps`` when empty."""
    answer: str = ""
    """The final answer."""
    judgement: Judgement = "unknown"
    """The judge's verdict: correct, incorrect or unknown."""
    reward: float = 0.0
    """The judge's reward in [-1, 1]."""
    model: str | None = None
    """Name of the model that ran the task (provenance)."""
    adapter_version: str | None = None
    """Planner adapter version used (provenance)."""
    timings: Mapping[str, float] = field(default_factory=dict)
    """Seconds spent per phase (plan, execute, judge, ...)."""
    created_at: float = field(default_factory=time.time)
    """Unix time the run finished."""

    def __post_init__(self) -> None:
        if not isinstance(self.task_id, str) or not self.task_id.strip():
            raise InvalidInputError("a trajectory needs a non-empty task_id")
        if not isinstance(self.question, str) or not self.question.strip():
            raise InvalidInputError("a trajectory needs a non-empty question")
        _check_judgement(self.judgement)
        object.__setattr__(self, "reward", _check_reward(self.reward))
        object.__setattr__(self, "steps", tuple(self.steps))
        object.__setattr__(self, "evidence_ids", tuple(str(e) for e in self.evidence_ids))
        object.__setattr__(self, "cited_ids", tuple(str(e) for e in self.cited_ids))
        object.__setattr__(self, "queries", tuple(str(q) for q in self.queries))


@dataclass(kw_only=True, frozen=True, slots=True)
class MemoryRecord:
    """A compressed trajectory as stored, with its learned utility."""

    id: str
    """Record id, unique within the store."""
    task_id: str
    """Task the trajectory came from (provenance; ``delete(task_id=...)`` uses it)."""
    question: str
    """The question; the record's embedding is the question's."""
    plan: str = ""
    """The planner's plan."""
    summary: str = ""
    """MIA workflow summary: numbered steps 'action purpose (input -> output)'."""
    answer: str = ""
    """The final answer."""
    judgement: Judgement = "unknown"
    """correct / incorrect / unknown."""
    reward: float = 0.0
    """The judge's reward of the original run."""
    evidence_ids: tuple[str, ...] = ()
    """Documents the run read."""
    cited_ids: tuple[str, ...] = ()
    """Documents the answer cited (a case's "documents worth opening")."""
    queries: tuple[str, ...] = ()
    """Search queries whose results held a cited document (a case's "queries to try first")."""
    namespace: str = "default"
    """Namespace (user / agent / project) the record lives in."""
    model: str | None = None
    """Model of the original run."""
    adapter_version: str | None = None
    """Planner adapter version of the original run."""
    created_at: float = 0.0
    """Unix time of the original run."""
    q_value: float = 0.0
    """Learned utility Q in [-1, 1]."""
    usage_count: int = 0
    """How many distinct tasks used this memory."""
    success_count: int = 0
    """How many of those tasks got a reward above the success threshold."""
    last_used_at: float | None = None
    """Unix time of the last utility update, None if never used."""
    original_tokens: int = 0
    """Token count of the full trajectory before compression."""
    summary_tokens: int = 0
    """Token count of the stored text (plan + summary + key queries + answer)."""
    compressed_by: str = "extractive"
    """'llm' or 'extractive'."""

    def __post_init__(self) -> None:
        _check_judgement(self.judgement)

    @property
    def compression_ratio(self) -> float:
        """Tokens before / after compression (1.0 when unknown)."""
        return self.original_tokens / self.summary_tokens if self.summary_tokens else 1.0


@dataclass(kw_only=True, frozen=True, slots=True)
class ScoredMemory:
    """A recalled memory with the scores that selected it."""

    record: MemoryRecord
    """The memory."""
    similarity: float
    """Cosine similarity of its question to the query."""
    score: float
    """Phase-B score 0.5 * z(sim) + 0.5 * z(Q) (with the configured weights)."""
    explored: bool = False
    """True when it was picked by epsilon-greedy exploration rather than by score."""


@dataclass(kw_only=True, frozen=True, slots=True)
class Recall:
    """What :meth:`TrajectoryStore.recall` returns: exemplars split by judgement, best first."""

    positive: list[ScoredMemory] = field(default_factory=list)
    """Memories judged correct: examples to follow."""
    negative: list[ScoredMemory] = field(default_factory=list)
    """Memories judged incorrect: examples to avoid."""
    neutral: list[ScoredMemory] = field(default_factory=list)
    """Memories with an unknown judgement."""
    best_similarity: float | None = None
    """Highest candidate similarity (None when the namespace is empty)."""
    used_memory: bool = False
    """False when nothing passed the tau / delta thresholds."""

    @property
    def all(self) -> list[ScoredMemory]:
        """Every selected memory, best score first."""
        return sorted([*self.positive, *self.negative, *self.neutral], key=lambda m: -m.score)

    @property
    def ids(self) -> list[str]:
        """Ids of all memories used (pass them to ``update_utilities``)."""
        return [m.record.id for m in self.all]

    def __len__(self) -> int:
        return len(self.positive) + len(self.negative) + len(self.neutral)


@dataclass(kw_only=True, frozen=True, slots=True)
class UtilityUpdate:
    """What :meth:`TrajectoryStore.update_utilities` did."""

    applied: tuple[str, ...]
    """Memory ids whose Q-value moved."""
    repeated: tuple[str, ...]
    """Memory ids this task had already updated (ignored: counted once)."""
    q_values: dict[str, float]
    """Q-value of each given id after the update, as seen by this process."""
