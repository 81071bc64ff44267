"""The Executor: follows a plan with the search tools for a bounded number of tool calls, keeps the ids of the
documents it read, and answers with ``[doc_id]`` citations.

A 135M model cannot drive free-form tool calling, so the loop is deterministic: the question is searched first,
then the queries of recalled cases that worked, then each plan step becomes a search query (the step text itself,
or a query the model writes when ``write_queries`` is on); "read" steps open the best unread hits; "answer" steps
are left to the final answer prompt, which shows the retrieved passages as data (and, only when cases were
recalled, a few notes on them). Recalled cases work whatever the plan (the default plan included): their cited
documents are opened when the index has them, and a case of the same task is reused through its evidence (its
answer is kept only when a re-opened document supports it). A rejected answer (empty, restating the question, not
supported by the passage it cites) is sampled once more, then replaced by an extractive span (``answer_check``);
an answer stated in another shown passage than the one it cites is kept, cited to that passage.

Safety: documents never choose what the executor does; it opens only ids that a search returned or that its own
memory recorded, and the index refuses anything outside its corpus root.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from .._text import normalize_answer, tokenize
from ..errors import ToolError
from ..llm.base import GenerationConfig
from . import prompts
from .answer_check import check_answer, extractive_span, supported
from .choices import choice_hint, compare_by_year, is_yes_no_question, match_option, question_options
from .experience import Experience, ExperienceConfig, render_experience
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
    check_answers: bool = field(default=True, metadata={
        "help": "Reject empty, question-restating or unsupported answers: sample again, then take a passage span."})
    answer_retries: int = field(default=1, metadata={"help": "Samples drawn again when an answer is rejected."})
    retry_temperature: float = field(default=0.7, metadata={"help": "Temperature of those samples."})
    min_support: float = field(default=0.5, metadata={
        "help": "Share of an answer's content words that must be in the passage it cites."})
    fallback_span_words: int = field(default=6, metadata={"help": "Longest extractive fallback answer, in words."})
    map_choices: bool = field(default=True, metadata={
        "help": "With check_answers: map the answer of an 'A or B?' or yes / no question onto its candidates "
                "(years compared for earlier / later questions; asked once more with the candidates when needed)."})
    experience: ExperienceConfig = field(default_factory=ExperienceConfig, metadata={
        "help": "What the executor does with recalled cases (queries, documents, same-task reuse)."})

    def __post_init__(self) -> None:
        if self.max_tool_calls < 1 or self.search_k < 1 or self.max_evidence < 1:
            raise ValueError(f"max_tool_calls, search_k and max_evidence must be >= 1, got {self.max_tool_calls}, "
                             f"{self.search_k}, {self.max_evidence}")
        if self.read_k < 0:
            raise ValueError(f"read_k must be >= 0, got {self.read_k}")
        if self.answer_retries < 0 or self.retry_temperature < 0 or self.fallback_span_words < 1:
            raise ValueError(f"answer_retries and retry_temperature must be >= 0 and fallback_span_words >= 1, got "
                             f"{self.answer_retries}, {self.retry_temperature}, {self.fallback_span_words}")
        if not 0.0 < self.min_support <= 1.0:
            raise ValueError(f"min_support must be in (0, 1], got {self.min_support}")


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


@dataclass(frozen=True)
class _Doc:
    """A recalled document opened by id (no search returned it in this run)."""

    doc_id: str
    title: str
    text: str


@dataclass
class _Run:
    """What one execution has gathered so far."""

    limit: int
    calls: list[ToolCall] = field(default_factory=list)
    hits: dict[str, Any] = field(default_factory=dict)
    ranks: dict[str, float] = field(default_factory=dict)
    order: list[str] = field(default_factory=list)
    read: dict[str, str] = field(default_factory=dict)
    searched: set[str] = field(default_factory=set)

    @property
    def full(self) -> bool:
        return len(self.calls) >= self.limit

    def boost(self, doc_id: str, weight: float) -> None:
        self.ranks[doc_id] = self.ranks.get(doc_id, 0.0) + weight / 61


@dataclass(frozen=True)
class _Answer:
    answer: str
    cited: list[str]
    raw: str
    by_model: bool
    source: str = "model"
    check: str = ""
    fallbacks: int = 0


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

    def _search(self, r: _Run, query: str, step: int) -> list[str]:
        k = self.config.search_k
        sources: list[tuple[str, Callable[[str, int], Sequence[Any]]]] = []
        if self.index is not None:
            sources.append(("search", self.index.search))
        sources += [(t.name, t.fn) for t in self.tools]
        got: list[str] = []
        for name, fn in sources:
            if r.full:
                break
            try:
                hits = list(fn(query, k))[:k]
            except ToolError as e:
                r.calls.append(ToolCall(tool=name, input=query, step=step, error=str(e)))
                continue
            for rank, h in enumerate(hits, 1):
                did = str(h.doc_id)
                if did not in r.hits:
                    r.hits[did] = h
                    r.order.append(did)
                r.ranks[did] = r.ranks.get(did, 0.0) + 1.0 / (60 + rank)
                got.append(did)
            r.calls.append(ToolCall(tool=name, input=query, step=step, output=tuple(h.doc_id for h in hits),
                                    titles=tuple(h.title for h in hits)))
        return got

    def _open(self, r: _Run, ids: Sequence[str], step: int) -> None:
        for did in ids:
            if did in r.read or r.full:
                continue
            if did not in r.hits:  # only ids a search returned are ever opened
                continue
            if self.index is None or not hasattr(self.index, "open_document"):
                r.read[did] = r.hits[did].text
                continue
            try:
                doc = self.index.open_document(did)
            except ToolError as e:
                r.calls.append(ToolCall(tool="open_document", input=did, step=step, error=str(e)))
                r.read[did] = r.hits[did].text
                continue
            r.read[did] = doc.text if len(doc.text) <= self.config.passage_chars else r.hits[did].text
            r.calls.append(ToolCall(tool="open_document", input=did, step=step, output=(did,), titles=(doc.title,)))

    def _search_step(self, r: _Run, query: str, step: int, emit: Callable[[dict[str, Any]], None]) -> list[str]:
        key = " ".join(tokenize(query))
        if key in r.searched:  # the same search again would only cost time
            return []
        r.searched.add(key)
        emit({"event": "search", "step": step, "query": query})
        ids = self._search(r, query, step)
        if self.config.read_k:
            self._open(r, [d for d in ids if d not in r.read][: self.config.read_k], step)
        return ids

    def _use_experience(self, r: _Run, exp: Experience, emit: Callable[[dict[str, Any]], None]
                        ) -> tuple[str, str] | None:
        """Run the recalled queries, open the recalled documents (their calls come on top of the plan's budget),
        and re-check a same-task case's answer against its re-opened documents: (answer, doc_id) when supported."""
        for query in exp.queries():
            before, limit = len(r.calls), r.limit
            r.limit = before + 1 + len(self.tools) + self.config.read_k
            self._search_step(r, query, 0, emit)
            r.limit = limit + len(r.calls) - before
        same = exp.same_task_case
        for did in exp.doc_ids():
            weight = 2.0 if same is not None and did in same.doc_ids else 1.0
            if did in r.read:
                r.boost(did, weight)
                continue
            if self.index is None or not hasattr(self.index, "open_document"):
                continue
            r.limit += 1
            try:
                doc = self.index.open_document(did)
            except ToolError as e:  # not in this index (another corpus), or refused
                r.calls.append(ToolCall(tool="open_document", input=did, step=0, error=str(e)))
                continue
            if did not in r.hits:
                r.hits[did] = _Doc(doc_id=did, title=str(doc.title), text=str(doc.text))
                r.order.append(did)
            r.read[did] = str(doc.text)
            r.boost(did, weight)
            r.calls.append(ToolCall(tool="open_document", input=did, step=0, output=(did,), titles=(doc.title,)))
        if same is None or not same.answer:
            return None
        for did in same.doc_ids:
            text = r.read.get(did)
            title = getattr(r.hits.get(did), "title", "")
            if text is not None and supported(same.answer, f"{title}. {text}", 1.0):  # every word must be there
                emit({"event": "reuse", "memory_id": same.id, "doc_id": did})
                return same.answer, did
        return None

    def run(self, question: str, steps: Sequence[str], *, usage: Usage | None = None,
            on_event: Callable[[dict[str, Any]], None] | None = None, adapter: str | None = None,
            previous: Execution | None = None, experience: Experience | None = None) -> Execution:
        """Follow ``steps``; ``previous`` (a first execution) seeds the evidence when running a replan;
        ``experience`` (recalled cases) adds queries to try first, documents to open and notes to the prompt."""
        cfg = self.config
        emit = on_event or (lambda e: None)
        r = _Run(limit=cfg.max_tool_calls)
        exp = experience if experience else None
        last_ids: list[str] = []
        verified: tuple[str, str] | None = None
        if cfg.search_question_first and previous is None:
            last_ids = self._search_step(r, question, 0, emit)
        if exp is not None:
            verified = self._use_experience(r, exp, emit)
        for i, step in enumerate(steps, 1):
            if r.full:
                break
            kind = _step_kind(step)
            if kind == "answer":
                continue
            if kind == "read":
                self._open(r, [d for d in last_ids if d not in r.read][: max(cfg.read_k, 1)], i)
                continue
            last_ids = self._search_step(r, self._query(question, step, usage, adapter), i, emit) or last_ids
        if previous is not None:  # a replan adds to what the first run found
            for j, did in enumerate(previous.evidence_ids):
                r.ranks[did] = r.ranks.get(did, 0.0) + 1.0 / (60 + j + 1)
        evidence = self._evidence(r, previous, verified)
        evidence_ids = [d for d, _, _ in evidence]
        exp_ids = tuple(exp.ids) if exp is not None else ()
        if not evidence:
            emit({"event": "answer", "answer": ""})
            return Execution(answer="", raw_answer="", steps=tuple(r.calls), retrieved_ids=tuple(r.order),
                             cited_by_model=False, experience_ids=exp_ids)
        if verified is not None:  # the same task, its answer re-checked against its re-opened document
            ans = _Answer(answer=verified[0], cited=[verified[1]], raw="", by_model=False, source="memory")
        else:
            notes = render_experience(exp) if exp is not None else ""
            ans = self._answer(question, evidence, notes, exp.known_wrong if exp is not None else [], usage,
                               adapter)
        emit({"event": "answer", "answer": ans.answer, "citations": ans.cited, "source": ans.source})
        clipped = tuple((d, t, " ".join(x.split())[: cfg.passage_chars]) for d, t, x in evidence)
        return Execution(answer=ans.answer, raw_answer=ans.raw, citations=tuple(ans.cited),
                         evidence_ids=tuple(evidence_ids), retrieved_ids=tuple(r.order), steps=tuple(r.calls),
                         cited_by_model=ans.by_model, passages=clipped, answer_source=ans.source,
                         answer_check=ans.check, answer_fallbacks=ans.fallbacks, experience_ids=exp_ids)

    def _evidence(self, r: _Run, previous: Execution | None, verified: tuple[str, str] | None
                  ) -> list[tuple[str, str, str]]:
        """The best-ranked passages (reciprocal-rank fusion over every search), at most ``max_evidence``."""
        evidence: list[tuple[str, str, str]] = []
        for did in sorted(r.ranks, key=lambda d: -r.ranks[d]):
            if len(evidence) == self.config.max_evidence:
                break
            if did in r.hits:
                h = r.hits[did]
                text = r.read.get(did, h.text)
                if verified is not None and did == verified[1]:
                    text = _window(text, verified[0], self.config.passage_chars)
                evidence.append((did, h.title, text))
            elif previous is not None and self.index is not None:
                try:
                    doc = self.index.open_document(did)
                except ToolError:
                    continue
                evidence.append((did, doc.title, doc.text))
        return evidence

    def _parse(self, raw: str, question: str, evidence: Sequence[tuple[str, str, str]]
               ) -> tuple[str, list[str], bool]:
        answer, cited = parse_answer(raw, [d for d, _, _ in evidence])
        answer = strip_echo(answer, question)
        by_model = bool(cited)
        if not cited and answer:
            cited = [_best_support(answer, evidence)]
        return answer, cited, by_model

    def _answer(self, question: str, evidence: Sequence[tuple[str, str, str]], notes: str,
                known_wrong: Sequence[str], usage: Usage | None, adapter: str | None) -> _Answer:
        """The model's answer; when checking is on, a rejected one is sampled again, then replaced by a span."""
        cfg = self.config
        msgs = [{"role": "system", "content": prompts.EXECUTOR_SYSTEM},
                {"role": "user", "content": prompts.answer_prompt(question, evidence, chars=cfg.passage_chars,
                                                                  experience=notes)}]
        gen = GenerationConfig(max_tokens=cfg.answer_max_tokens, temperature=0.0,
                               adapter=adapter if adapter is not None else cfg.adapter)
        raw = call_model(self.model, msgs, gen, usage).text
        answer, cited, by_model = self._parse(raw, question, evidence)
        if not cfg.check_answers:
            return _Answer(answer=answer, cited=cited, raw=raw, by_model=by_model)
        shown = [(d, t, " ".join(x.split())[: cfg.passage_chars]) for d, t, x in evidence]
        if cfg.map_choices:
            chosen = self._choose(question, answer, cited, by_model, raw, shown, msgs, gen, usage)
            if chosen is not None:
                return chosen

        def check(a: str, c: list[str]) -> str:
            return check_answer(a, question, shown, cited=c, known_wrong=known_wrong, min_support=cfg.min_support)

        reason = check(answer, cited)
        if not reason:
            return _Answer(answer=answer, cited=cited, raw=raw, by_model=by_model)
        if reason == "unsupported" and cited:  # stated in another shown passage: keep it, cite that one instead
            other = [d for d, _, _ in shown if d not in cited and not check(answer, [d])]
            if other:
                return _Answer(answer=answer, cited=other[:1], raw=raw, by_model=False, check="recited")
        for attempt in range(1, cfg.answer_retries + 1):
            again = replace(gen, temperature=cfg.retry_temperature, seed=attempt)
            raw2 = call_model(self.model, msgs, again, usage).text
            a2, c2, b2 = self._parse(raw2, question, evidence)
            if not check(a2, c2):
                return _Answer(answer=a2, cited=c2, raw=raw2, by_model=b2, source="resample", check=reason,
                               fallbacks=1)
        span, did = extractive_span(question, shown, prefer=cited, max_words=cfg.fallback_span_words,
                                    avoid=known_wrong)
        if span:
            return _Answer(answer=span, cited=[did], raw=raw, by_model=False, source="extractive", check=reason,
                           fallbacks=1)
        return _Answer(answer=answer, cited=cited, raw=raw, by_model=by_model, check=reason, fallbacks=1)

    def _choose(self, question: str, answer: str, cited: list[str], by_model: bool, raw: str,
                shown: Sequence[tuple[str, str, str]], msgs: list[dict[str, str]], gen: GenerationConfig,
                usage: Usage | None) -> _Answer | None:
        """The answer of a question that names its candidates (see :mod:`miaflow.agents.choices`); None for
        other questions."""
        opts = question_options(question)
        if not opts and not is_yes_no_question(question):
            return None
        cands: tuple[str, ...] = opts or ("yes", "no")
        pick, source = match_option(answer, cands), "model"
        compared = compare_by_year(question, opts, shown) if opts else None
        if compared is not None and compared != pick:
            pick, source = compared, "compared"
        if pick is None:
            hinted = [*msgs[:-1], {"role": "user", "content": f"{msgs[-1]['content']}\n{choice_hint(cands)}"}]
            again = call_model(self.model, hinted, gen, usage).text
            pick, source = match_option(self._parse(again, question, shown)[0], cands), "choice"
        if pick is None:
            pick, source = cands[0], "default"
        if opts:  # cite the passage about the chosen option when one was shown
            about = [d for d, t, _ in shown if match_option(t, opts) == pick]
            cited = about[:1] or cited
        changed = source != "model" or normalize_answer(pick) != normalize_answer(answer)
        return _Answer(answer=pick, cited=cited or [shown[0][0]], raw=raw, by_model=by_model and not changed,
                       source=source, check="choice" if changed else "", fallbacks=int(changed))

    def _query(self, question: str, step: str, usage: Usage | None, adapter: str | None) -> str:
        if not self.config.write_queries:
            return step_query(step, question)
        gen = GenerationConfig(max_tokens=16, temperature=0.0, adapter=adapter or self.config.adapter)
        text = call_model(self.model, prompts.query_prompt(question, step), gen, usage).text
        line = next((ln.strip(" \"'`") for ln in text.splitlines() if ln.strip()), "")
        return line[:200] if len(tokenize(line)) >= 1 else step_query(step, question)


def _window(text: str, answer: str, chars: int) -> str:
    """``text`` itself when short; else a ``chars`` window around the answer's first occurrence."""
    flat = " ".join(text.split())
    if len(flat) <= chars:
        return text
    at = flat.lower().find(answer.lower())
    if at < 0:
        return text
    start = max(0, min(at - chars // 3, len(flat) - chars))
    return flat[start:start + chars]

def _best_support(answer: str, evidence: Sequence[tuple[str, str, str]]) -> str:
    """The evidence document sharing most answer tokens (the top one on a tie)."""
    toks = set(tokenize(answer))
    best, best_n = evidence[0][0], 0
    for did, title, text in evidence:
        n = len(toks & set(tokenize(title + " " + text)))
        if n > best_n:
            best, best_n = did, n
    return best
