"""Records the agents hand to each other and to the graph: plans, tool calls, executions, judgements, and the
model usage counter every role adds to.

Plans, executions and judgements are frozen; the graph keeps their ``as_dict()`` form in its state so LangGraph's
checkpointer can store it as plain JSON-like data.
"""

from __future__ import annotations

import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from ..llm.base import ChatResult, GenerationConfig, Message

__all__ = ["Plan", "ToolCall", "Execution", "Judgement", "Usage", "call_model"]


@dataclass(kw_only=True, frozen=True, slots=True)
class Plan:
    """A numbered plan of atomic steps."""

    steps: tuple[str, ...]
    """The atomic steps, without their numbers."""
    thinking: str = ""
    """The planner's brief thinking before the steps (not shown to the executor)."""
    raw: str = ""
    """The model's raw text, kept for training and debugging."""
    fallback: bool = False
    """True when the model's text was unusable and the default plan was used instead."""

    @property
    def text(self) -> str:
        """The plan as a numbered list."""
        return "\n".join(f"{i}. {s}" for i, s in enumerate(self.steps, 1))

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "steps": list(self.steps), "text": self.text}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Plan:
        return cls(steps=tuple(d.get("steps", ())), thinking=d.get("thinking", ""), raw=d.get("raw", ""),
                   fallback=bool(d.get("fallback", False)))


@dataclass(kw_only=True, frozen=True, slots=True)
class ToolCall:
    """One tool call made by the executor."""

    tool: str
    """Tool name: ``search``, ``open_document`` or a user tool's name."""
    input: str
    """The query or the document id."""
    output: tuple[str, ...] = ()
    """Document ids returned (search) or opened (open_document)."""
    titles: tuple[str, ...] = ()
    """Titles of those documents, in the same order."""
    step: int = 0
    """1-based index of the plan step that led to the call."""
    error: str | None = None
    """Error message when the tool refused or failed (the run goes on)."""

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "output": list(self.output), "titles": list(self.titles)}


@dataclass(kw_only=True, frozen=True, slots=True)
class Execution:
    """What the executor did for one plan, and its answer."""

    answer: str
    """The short answer, citations removed."""
    raw_answer: str = ""
    """The model's raw answer text."""
    citations: tuple[str, ...] = ()
    """Ids of the documents cited for the answer (always among ``evidence_ids``)."""
    evidence_ids: tuple[str, ...] = ()
    """Ids of the documents read and shown to the answering model."""
    retrieved_ids: tuple[str, ...] = ()
    """Ids of every document any search returned, in first-seen order."""
    steps: tuple[ToolCall, ...] = ()
    """The tool calls, in order."""
    cited_by_model: bool = True
    """False when the model cited nothing valid and the best-matching evidence document was cited instead."""
    passages: tuple[tuple[str, str, str], ...] = ()
    """(doc_id, title, text) of the passages shown to the answering model, texts clipped."""
    answer_source: str = "model"
    """Where the answer came from: ``model``, ``resample`` (a second sample), ``extractive`` (a passage span) or
    ``memory`` (a same-task case's answer, re-checked against its re-opened document)."""
    answer_check: str = ""
    """Why the model's first answer was not accepted as is (``empty``, ``restates_question``, ``known_wrong``,
    ``unsupported``); ``recited`` when it was kept but its citation moved to the shown passage that states it;
    "" when it was accepted as is."""
    answer_fallbacks: int = 0
    """1 when the model's first answer was not accepted as is (sampled again or replaced), else 0."""
    experience_ids: tuple[str, ...] = ()
    """Ids of the recalled memories the executor was given."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "answer": self.answer, "raw_answer": self.raw_answer, "citations": list(self.citations),
            "evidence_ids": list(self.evidence_ids), "retrieved_ids": list(self.retrieved_ids),
            "steps": [s.as_dict() for s in self.steps], "cited_by_model": self.cited_by_model,
            "passages": [list(p) for p in self.passages], "answer_source": self.answer_source,
            "answer_check": self.answer_check, "answer_fallbacks": self.answer_fallbacks,
            "experience_ids": list(self.experience_ids),
        }

    def evidence_text(self, chars: int = 300) -> str:
        """The passages as short ``[id] title: text`` lines for reflection and judging prompts."""
        out = []
        for did, title, text in self.passages:
            t = " ".join(text.split())
            out.append(f"[{did}] {title}: {t[:chars]}")
        return "\n".join(out) or "(no documents found)"

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Execution:
        return cls(answer=d.get("answer", ""), raw_answer=d.get("raw_answer", ""),
                   citations=tuple(d.get("citations", ())), evidence_ids=tuple(d.get("evidence_ids", ())),
                   retrieved_ids=tuple(d.get("retrieved_ids", ())), steps=tuple(
                       ToolCall(**{**s, "output": tuple(s.get("output", ())), "titles": tuple(s.get("titles", ()))})
                       for s in d.get("steps", ())),
                   cited_by_model=d.get("cited_by_model", True),
                   passages=tuple(tuple(p) for p in d.get("passages", ())),
                   answer_source=d.get("answer_source", "model"), answer_check=d.get("answer_check", ""),
                   answer_fallbacks=int(d.get("answer_fallbacks", 0)),
                   experience_ids=tuple(d.get("experience_ids", ())))


@dataclass(kw_only=True, frozen=True, slots=True)
class Judgement:
    """The judge's verdict on one answer."""

    label: str
    """``correct``, ``incorrect`` or ``unknown``."""
    score: float
    """In [0, 1]: token F1 with gold, the weighted evaluator score without it, group agreement when voting."""
    method: str
    """``gold``, ``llm``, ``evaluators``, ``vote`` or ``none``."""
    em: float | None = None
    """Exact match with gold (None without gold)."""
    f1: float | None = None
    """Token F1 with gold (None without gold)."""
    details: dict[str, Any] = field(default_factory=dict)
    """Per-evaluator scores, the arbiter's text, the majority answer, ..."""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class Usage:
    """Thread-safe counter of model calls, tokens and the wall time spent inside them."""

    def __init__(self) -> None:
        self.calls = 0
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.seconds = 0.0
        self._lock = threading.Lock()

    def add(self, result: ChatResult, seconds: float) -> None:
        with self._lock:
            self.calls += 1
            self.prompt_tokens += result.prompt_tokens
            self.completion_tokens += result.completion_tokens
            self.seconds += seconds

    def as_dict(self) -> dict[str, float]:
        return {"calls": self.calls, "prompt_tokens": self.prompt_tokens,
                "completion_tokens": self.completion_tokens, "model_seconds": self.seconds}


def call_model(model: Any, messages: list[Message] | str, config: GenerationConfig, usage: Usage | None) -> ChatResult:
    """Call ``model.chat`` and record tokens and wall time in ``usage``."""
    t0 = time.perf_counter()
    result = model.chat(messages, config)
    if usage is not None:
        usage.add(result, time.perf_counter() - t0)
    return result
