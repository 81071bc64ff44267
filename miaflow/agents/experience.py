"""Experience for the executor: recalled cases (Memento-style case reuse over MIA's compressed workflows) turned
into what the executor can act on.

The Manager recalls memories with MemRL's two-phase ranking, so Q-values decide which cases come first; this module
only reads them. A positive case (judged correct) gives queries to try first (the searches whose results held the
documents its answer cited), documents worth opening (those cited ids) and how its answer was found; a negative case
(judged incorrect) says what failed. A case of the same task (same task id, or a question whose normalised text is
near-identical: ``difflib`` ratio at or above a threshold) is reused through its evidence, not copied: the executor
re-opens its documents and keeps its answer only when a re-opened passage supports it.

The rendered block is short (a few lines) and appears in the answer prompt only when there is experience, so the
prompt without experience stays exactly the one the executor adapter is trained on.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .._text import normalize_answer

__all__ = ["Case", "Experience", "ExperienceConfig", "experience_from_memories", "question_similarity",
           "same_task", "render_experience"]


@dataclass
class ExperienceConfig:
    """How many recalled cases reach the executor and what it does with them."""

    max_positive: int = field(default=2, metadata={"help": "Positive cases shown to the executor (best first)."})
    max_negative: int = field(default=1, metadata={"help": "Negative cases shown to the executor."})
    max_queries: int = field(default=2, metadata={"help": "Recalled queries run as searches before the plan's."})
    max_docs: int = field(default=2, metadata={"help": "Recalled cited documents opened when the index has them."})
    reuse_same_task: bool = field(default=True, metadata={
        "help": "Reuse a case of the same task through its evidence (re-open its documents, re-check its answer)."})
    same_task_threshold: float = field(default=0.95, metadata={
        "help": "Question similarity (difflib ratio of normalised texts) at or above which a case is the same task."})

    def __post_init__(self) -> None:
        if min(self.max_positive, self.max_negative, self.max_queries, self.max_docs) < 0:
            raise ValueError(f"experience limits must be >= 0, got max_positive={self.max_positive}, "
                             f"max_negative={self.max_negative}, max_queries={self.max_queries}, "
                             f"max_docs={self.max_docs}")
        if not 0.0 < self.same_task_threshold <= 1.0:
            raise ValueError(f"same_task_threshold must be in (0, 1], got {self.same_task_threshold}")


@dataclass(kw_only=True, frozen=True, slots=True)
class Case:
    """One recalled run, as the executor reads it."""

    id: str
    """Memory id (its Q-value is updated from this run's reward)."""
    task_id: str = ""
    """The task the case came from."""
    question: str = ""
    """Its question."""
    answer: str = ""
    """Its final answer."""
    judgement: str = "unknown"
    """correct / incorrect / unknown."""
    queries: tuple[str, ...] = ()
    """Searches whose results held a cited document."""
    doc_ids: tuple[str, ...] = ()
    """The cited documents (the documents read, for records older than cited ids)."""
    same_task: bool = False
    """True when the case is the task being answered now."""

    @classmethod
    def from_memory(cls, m: Mapping[str, Any], *, same: bool = False) -> Case:
        docs = tuple(m.get("cited_ids") or ()) or tuple(m.get("evidence_ids") or ())[:2]
        return cls(id=str(m.get("id", "")), task_id=str(m.get("task_id", "") or ""),
                   question=str(m.get("question", "")), answer=str(m.get("answer", "") or ""),
                   judgement=str(m.get("judgement", "unknown") or "unknown"),
                   queries=tuple(str(q) for q in m.get("queries") or ()), doc_ids=tuple(str(d) for d in docs),
                   same_task=same)


@dataclass(kw_only=True, frozen=True, slots=True)
class Experience:
    """The cases given to one execution."""

    positive: tuple[Case, ...] = ()
    """Cases judged correct, best first (a same-task one first of all)."""
    negative: tuple[Case, ...] = ()
    """Cases judged incorrect."""
    max_queries: int = 2
    """Recalled queries to run."""
    max_docs: int = 2
    """Recalled documents to open."""

    def __bool__(self) -> bool:
        return bool(self.positive or self.negative)

    @property
    def ids(self) -> list[str]:
        """Memory ids of the cases shown."""
        return [c.id for c in (*self.positive, *self.negative) if c.id]

    @property
    def same_task_case(self) -> Case | None:
        """The positive case of this very task, if one was recalled."""
        return next((c for c in self.positive if c.same_task), None)

    @property
    def known_wrong(self) -> list[str]:
        """Answers already judged wrong for this very task."""
        return [c.answer for c in self.negative if c.same_task and c.answer]

    def queries(self) -> list[str]:
        """Queries to try first, best case first, without repeats. A case's own question is left out: the executor
        searches the current question anyway."""
        out: list[str] = []
        for c in self.positive:
            for q in c.queries:
                if q not in out and normalize_answer(q) != normalize_answer(c.question):
                    out.append(q)
        return out[: self.max_queries]

    def doc_ids(self) -> list[str]:
        """Documents worth opening: the same-task case's first, then the other positive cases', in order."""
        out: list[str] = []
        for c in self.positive:
            for d in c.doc_ids:
                if d not in out:
                    out.append(d)
        same = self.same_task_case
        keep = max(self.max_docs, len(same.doc_ids) if same else 0)
        return out[:keep]

    def as_dict(self) -> dict[str, Any]:
        return {"ids": self.ids, "queries": self.queries(), "doc_ids": self.doc_ids(),
                "same_task": self.same_task_case.id if self.same_task_case else None}


def question_similarity(a: str, b: str) -> float:
    """Similarity of two questions' normalised texts in [0, 1] (``difflib`` ratio).

    >>> question_similarity("Who founded Alpha?", "who founded alpha")
    1.0
    """
    return difflib.SequenceMatcher(None, normalize_answer(a), normalize_answer(b), autojunk=False).ratio()


_PLAN_SUFFIX = re.compile(r"/p\d+$")


def same_task(memory: Mapping[str, Any], question: str, task_id: str | None, threshold: float) -> bool:
    """Same task id (a group's ``/pN`` plan suffix ignored), or a near-identical question."""
    mid = _PLAN_SUFFIX.sub("", str(memory.get("task_id") or ""))
    if task_id and mid and mid == _PLAN_SUFFIX.sub("", task_id):
        return True
    return question_similarity(str(memory.get("question", "")), question) >= threshold


def experience_from_memories(memories: Mapping[str, Any] | None, question: str, task_id: str | None = None,
                             config: ExperienceConfig | None = None) -> Experience:
    """The executor's cases from a recall (``{"positive": [...], "negative": [...]}`` as the Manager returns)."""
    cfg = config or ExperienceConfig()
    memories = memories or {}

    def cases(key: str, limit: int) -> list[Case]:
        out = []
        for m in list(memories.get(key) or ()):
            same = cfg.reuse_same_task and same_task(m, question, task_id, cfg.same_task_threshold)
            out.append(Case.from_memory(m, same=same))
        out.sort(key=lambda c: not c.same_task)  # stable: Q-value order otherwise
        keep = out[:limit]
        keep += [c for c in out[limit:] if c.same_task and key == "negative"]  # every known-wrong answer counts
        return keep

    return Experience(positive=tuple(cases("positive", cfg.max_positive)),
                      negative=tuple(cases("negative", cfg.max_negative)),
                      max_queries=cfg.max_queries, max_docs=cfg.max_docs)


def _clip(text: str, n: int) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= n else text[: n - 3] + "..."


def render_experience(exp: Experience, *, verified: tuple[str, str] | None = None) -> str:
    """A few lines for the answer prompt ("" when there is nothing to say).

    ``verified``: (answer, doc_id) of the same-task case when a re-opened passage supports its answer.
    """
    lines: list[str] = []
    if verified:
        lines.append(f'- This question was answered before: "{_clip(verified[0], 60)}" [{verified[1]}] '
                     "(checked against that document).")
    for c in exp.positive:
        if c.same_task and verified:
            continue
        how = []
        if c.queries:
            how.append("searching " + "; ".join(f'"{_clip(q, 60)}"' for q in c.queries[:2]))
        if c.doc_ids:
            how.append("reading " + ", ".join(f"[{d}]" for d in c.doc_ids[:2]))
        lines.append(f'- A similar question "{_clip(c.question, 100)}" was answered by '
                     f"{' and '.join(how) or 'the documents'}.")
    for c in exp.negative:
        if c.answer:
            lines.append(f'- For "{_clip(c.question, 100)}" the answer "{_clip(c.answer, 60)}" was wrong.')
    if not lines:
        return ""
    return "Notes from earlier research (trust the documents over them):\n" + "\n".join(lines)

