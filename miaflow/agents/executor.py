"""The Executor: follows a plan with the search tools for a bounded number of tool calls, keeps the ids of the
documents it read, and answers with ``[doc_id]`` citations.

A 135M model cannot drive free-form tool calling, so the loop is deterministic: the question is searched first,
then each plan step becomes a search query (the step text itself, or a query the model writes when
``write_queries`` is on); "read" steps open the best unread hits; "answer" steps are left to the final answer
prompt, which shows the retrieved passages as data. Safety: documents never choose what the executor does; it opens
only ids that a search returned, and the index refuses anything outside its corpus root.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from .._text import tokenize
from ..errors import ToolError
from ..llm.base import GenerationConfig
from . import prompts
from .records import Execution, ToolCall, Usage, call_model

__all__ = ["ExecutorConfig", "Executor", "SearchIndex", "Tool", "step_query", "parse_answer", "strip_echo"]


class SearchIndex(Protocol):
    """What the executor needs from a corpus index (``miaflow.tools.CorpusIndex`` is one)."""

    def search(self, query: str, k: int = 5) -> list[Any]: ...

    def open_document(self, doc_id: str) -> Any: ...


@dataclass(frozen=True)
class Tool:
    """An extra search tool: ``fn(query, k)`` returns hits with ``doc_id``, ``title``, ``text`` attributes."""

    name: str
    fn: Callable[[str, int], Sequence[Any]]


@dataclass
class ExecutorConfig:
    """Bounds and prompt sizes of the executor."""

    max_tool_calls: int = field(default=8, metadata={"help": "Tool calls (searches + opens) per plan."})
    search_k: int = field(default=4, metadata={"help": "Hits per search."})
    read_k: int = field(default=1, metadata={"help": "Unread hits opened after each search."})
    max_evidence: int = field(default=4, metadata={"help": "Passages shown to the answering model."})
    passage_chars: int = field(default=600, metadata={"help": "Characters shown per passage."})
    answer_max_tokens: int = field(default=32, metadata={"help": "Token budget of the answer."})
    write_queries: bool = field(default=False, metadata={"help": "Let the model write each step's query."})
    search_question_first: bool = field(default=True, metadata={"help": "Search the question before the plan."})
    adapter: str | None = field(default=None, metadata={"help": "LoRA adapter of the executor (None: base)."})

    def __post_init__(self) -> None:
        if self.max_tool_calls < 1 or self.search_k < 1 or self.max_evidence < 1:
            raise ValueError(f"max_tool_calls, search_k and max_evidence must be >= 1, got {self.max_tool_calls}, "
                             f"{self.search_k}, {self.max_evidence}")
        if self.read_k < 0:
            raise ValueError(f"read_k must be >= 0, got {self.read_k}")


_LEAD = re.compile(r"^(?:(?:please|then|next|first|finally)\s+)?(?:search(?:\s+the\s+documents)?\s+(?:for|about)|"
                   r"search|look\s+up|find\s+out|find|identify|determine|check|research|retrieve|get)\b[:\s]*",
                   re.IGNORECASE)
_READ = re.compile(r"^(?:read|open|review|examine|look\s+at)\b", re.IGNORECASE)
_ANSWER = re.compile(r"^(?:answer|conclude|respond|give|write|provide|state|compare|combine|summari[sz]e)\b",
                     re.IGNORECASE)


def step_query(step: str, question: str) -> str:
    """The search query for a plan step: the step without its leading verb; the question when too vague.

    >>> step_query("Search for the band that released Tinted Windows.", "q")
    'the band that released Tinted Windows'
    """
    q = _LEAD.sub("", step.strip()).strip(" .:;")
    return q if len(tokenize(q)) >= 2 else question


def _step_kind(step: str) -> str:
    if _READ.match(step):
        return "read"
    if _ANSWER.match(step):
        return "answer"
    return "search"


_CITE = re.compile(r"\[([^\[\]\n]{1,200})\]")
_PREFIX = re.compile(r"^\s*(?:final\s+)?answer\s*[:\-]\s*", re.IGNORECASE)


def parse_answer(text: str, evidence_ids: Sequence[str]) -> tuple[str, list[str]]:
    """Split a model answer into the short answer and the valid cited ids (those among ``evidence_ids``)."""
    lines = [ln for ln in (text or "").splitlines() if ln.strip()]
    first = lines[0] if lines else ""
    known = set(evidence_ids)
    cited = []
    for m in _CITE.finditer(text or ""):
        for part in re.split(r"[,;]\s*", m.group(1)):
            part = part.strip().strip("'\"")
            if part in known and part not in cited:
                cited.append(part)
    answer = _PREFIX.sub("", _CITE.sub("", first)).strip(" .*\"'`")
    return answer, cited


def strip_echo(answer: str, question: str) -> str:
    """Cut a restatement of the question off the front of an answer, and keep its first sentence.

    >>> strip_echo("The band who released the album had their first performance in Tulsa, Oklahoma.",
    ...            "The band who released the album had their first performance in what city?")
    'Tulsa, Oklahoma'
    >>> strip_echo("The band who released the album", "The band who released the album played where?")
    ''
    """
    from .._text import normalize_answer

    answer = re.split(r"(?<=[a-z0-9)])\.\s+(?=[A-Z])", answer.strip(), maxsplit=1)[0].strip(" .")
    qwords = set(normalize_answer(question).split()) | {"is", "was", "are", "were", "answer", "in", "on", "at",
                                                        "by", "from", "of"}
    words = answer.split()
    i = 0
    while i < len(words) and (normalize_answer(words[i]) in qwords or not normalize_answer(words[i])):
        i += 1
    if i >= 3:  # an answer that only restates the question is no answer
        return " ".join(words[i:]).strip(" .,:;")
    return answer


class Executor:
    """Runs plan steps against the tools and writes the cited answer."""

    def __init__(self, model: Any, index: SearchIndex | None, config: ExecutorConfig | None = None,
                 tools: Sequence[Tool] = ()):
        if index is None and not tools:
            raise ToolError("the executor needs a corpus index or at least one search tool")
        self.model = model
        self.index = index
        self.config = config or ExecutorConfig()
        self.tools = list(tools)

    def _search(self, query: str, step: int, calls: list[ToolCall], hits_by_id: dict[str, Any],
                ranks: dict[str, float], order: list[str]) -> list[str]:
        k = self.config.search_k
        sources: list[tuple[str, Callable[[str, int], Sequence[Any]]]] = []
        if self.index is not None:
            sources.append(("search", self.index.search))
        sources += [(t.name, t.fn) for t in self.tools]
        got: list[str] = []
        for name, fn in sources:
            if len(calls) >= self.config.max_tool_calls:
                break
            try:
                hits = list(fn(query, k))[:k]
            except ToolError as e:
                calls.append(ToolCall(tool=name, input=query, step=step, error=str(e)))
                continue
            for rank, h in enumerate(hits, 1):
                did = str(h.doc_id)
                if did not in hits_by_id:
                    hits_by_id[did] = h
                    order.append(did)
                ranks[did] = ranks.get(did, 0.0) + 1.0 / (60 + rank)
                got.append(did)
            calls.append(ToolCall(tool=name, input=query, step=step, output=tuple(h.doc_id for h in hits),
                                  titles=tuple(h.title for h in hits)))
        return got

    def _open(self, ids: Sequence[str], step: int, calls: list[ToolCall], hits_by_id: dict[str, Any],
              read: dict[str, str]) -> None:
        for did in ids:
            if did in read or len(calls) >= self.config.max_tool_calls:
                continue
            if did not in hits_by_id:  # only ids a search returned are ever opened
                continue
            if self.index is None or not hasattr(self.index, "open_document"):
                read[did] = hits_by_id[did].text
                continue
            try:
                doc = self.index.open_document(did)
            except ToolError as e:
                calls.append(ToolCall(tool="open_document", input=did, step=step, error=str(e)))
                read[did] = hits_by_id[did].text
                continue
            text = doc.text if len(doc.text) <= self.config.passage_chars else hits_by_id[did].text
            read[did] = text
            calls.append(ToolCall(tool="open_document", input=did, step=step, output=(did,), titles=(doc.title,)))

    def run(self, question: str, steps: Sequence[str], *, usage: Usage | None = None,
            on_event: Callable[[dict[str, Any]], None] | None = None, adapter: str | None = None,
            previous: Execution | None = None) -> Execution:
        """Follow ``steps``; ``previous`` (a first execution) seeds the evidence when running a replan."""
        cfg = self.config
        emit = on_event or (lambda e: None)
        calls: list[ToolCall] = []
        hits_by_id: dict[str, Any] = {}
        ranks: dict[str, float] = {}
        order: list[str] = []
        read: dict[str, str] = {}
        last_ids: list[str] = []
        searched: set[str] = set()
        todo = list(enumerate(steps, 1))
        if cfg.search_question_first and previous is None:
            todo.insert(0, (0, question))
        for i, step in todo:
            if len(calls) >= cfg.max_tool_calls:
                break
            kind = "search" if i == 0 else _step_kind(step)
            if kind == "answer":
                continue
            if kind == "read":
                self._open([d for d in last_ids if d not in read][: max(cfg.read_k, 1)], i, calls, hits_by_id, read)
                continue
            query = question if i == 0 else self._query(question, step, usage, adapter)
            key = " ".join(tokenize(query))
            if key in searched:  # the same search again would only cost time
                continue
            searched.add(key)
            emit({"event": "search", "step": i, "query": query})
            last_ids = self._search(query, i, calls, hits_by_id, ranks, order)
            if cfg.read_k:
                self._open([d for d in last_ids if d not in read][: cfg.read_k], i, calls, hits_by_id, read)
        if previous is not None:  # a replan adds to what the first run found
            for j, did in enumerate(previous.evidence_ids):
                ranks[did] = ranks.get(did, 0.0) + 1.0 / (60 + j + 1)
        ranked = sorted(ranks, key=lambda d: -ranks[d])
        evidence: list[tuple[str, str, str]] = []
        for did in ranked:
            if len(evidence) == cfg.max_evidence:
                break
            if did in hits_by_id:
                h = hits_by_id[did]
                evidence.append((did, h.title, read.get(did, h.text)))
            elif previous is not None and self.index is not None:
                try:
                    doc = self.index.open_document(did)
                except ToolError:
                    continue
                evidence.append((did, doc.title, doc.text))
        evidence_ids = [d for d, _, _ in evidence]
        if not evidence:
            emit({"event": "answer", "answer": ""})
            return Execution(answer="", raw_answer="", steps=tuple(calls), retrieved_ids=tuple(order),
                             cited_by_model=False)
        msgs = [{"role": "system", "content": prompts.EXECUTOR_SYSTEM},
                {"role": "user", "content": prompts.answer_prompt(question, evidence, chars=cfg.passage_chars)}]
        gen = GenerationConfig(max_tokens=cfg.answer_max_tokens, temperature=0.0,
                               adapter=adapter if adapter is not None else cfg.adapter)
        raw = call_model(self.model, msgs, gen, usage).text
        answer, cited = parse_answer(raw, evidence_ids)
        answer = strip_echo(answer, question)
        by_model = bool(cited)
        if not cited and answer:
            cited = [_best_support(answer, evidence)]
        emit({"event": "answer", "answer": answer, "citations": cited})
        clipped = tuple((d, t, " ".join(x.split())[: cfg.passage_chars]) for d, t, x in evidence)
        return Execution(answer=answer, raw_answer=raw, citations=tuple(cited), evidence_ids=tuple(evidence_ids),
                         retrieved_ids=tuple(order), steps=tuple(calls), cited_by_model=by_model, passages=clipped)

    def _query(self, question: str, step: str, usage: Usage | None, adapter: str | None) -> str:
        if not self.config.write_queries:
            return step_query(step, question)
        gen = GenerationConfig(max_tokens=16, temperature=0.0, adapter=adapter or self.config.adapter)
        text = call_model(self.model, prompts.query_prompt(question, step), gen, usage).text
        line = next((ln.strip(" \"'`") for ln in text.splitlines() if ln.strip()), "")
        return line[:200] if len(tokenize(line)) >= 1 else step_query(step, question)


def _best_support(answer: str, evidence: Sequence[tuple[str, str, str]]) -> str:
    """The evidence document sharing most answer tokens (the top one on a tie)."""
    toks = set(tokenize(answer))
    best, best_n = evidence[0][0], 0
    for did, title, text in evidence:
        n = len(toks & set(tokenize(title + " " + text)))
        if n > best_n:
            best, best_n = did, n
    return best
