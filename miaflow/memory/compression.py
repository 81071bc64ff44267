"""Trajectory compression (MIA's Memory Manager): a whole research run becomes a short workflow summary of numbered
steps ``action purpose (input -> output)`` that keeps the key queries, at most 300 words.

With a chat model, the model writes the summary (MIA's prompt, shortened). Without one, or when the model's answer
has no numbered steps, an extractive summary is built from the recorded steps: each step's action, purpose, the
first words of its input and of its output. Beside the summary, the record keeps what made the run work (or fail):
the key queries (searches whose results held a document the answer cited), the cited ids, the answer and the
judgement; the key queries (at most a quarter of it) and the answer count against the same word budget.
Simplification: tokens are counted with a cheap model-free counter, so the compression ratio (tokens before /
after) is comparable across runs, not exact for any tokenizer.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from .._text import count_tokens
from ..errors import MiaflowError
from .config import CompressionConfig
from .trajectory import MemoryRecord, Trajectory

__all__ = ["compress", "extractive_summary", "render_trajectory", "key_queries", "COMPRESS_PROMPT", "COMPRESS_STATS",
           "MAX_KEY_QUERIES"]

log = logging.getLogger(__name__)

COMPRESS_STATS: dict[str, int] = {"llm": 0, "extractive": 0, "llm_fallback": 0}
"""Process-wide counters: summaries written by the LLM, extractively, and LLM answers that fell back."""

COMPRESS_PROMPT = """You compress a finished research run into a reusable workflow.
Rewrite the run as numbered steps, one per line, each in the form:
N. action purpose (input -> output)
Keep the key search queries verbatim. Do not add facts that are not in the run. At most {max_words} words.

{run}

Workflow:"""

_ACTION_KEYS = ("action", "tool", "name", "type")
_PURPOSE_KEYS = ("purpose", "thought", "reason", "why")
_INPUT_KEYS = ("input", "query", "args", "arguments", "doc_id")
_OUTPUT_KEYS = ("output", "observation", "result", "answer")
_NUMBERED = re.compile(r"^\s*(\d+)[.)]\s+(.+)$")
_SEARCH_TOOLS = ("search",)

MAX_KEY_QUERIES = 4
"""Key queries kept per record (each cut to ``CompressionConfig.step_input_words`` words)."""


def _pick(step: Mapping[str, Any], keys: tuple[str, ...]) -> str:
    for k in keys:
        v = step.get(k)
        if v not in (None, "", [], {}):
            if isinstance(v, list | tuple):
                return ", ".join(str(x) for x in v)
            return v if isinstance(v, str) else str(v)
    return ""


def _output_ids(value: Any) -> set[str]:
    if isinstance(value, str):
        return {p.strip() for p in value.split(",") if p.strip()}
    if isinstance(value, list | tuple):
        return {str(x) for x in value}
    return set()


def key_queries(steps: Any, cited_ids: Any, *, limit: int = MAX_KEY_QUERIES, words: int = 14) -> tuple[str, ...]:
    """The search queries whose results held a cited document, in order, without repeats.

    >>> key_queries([{"tool": "search", "input": "debut album", "output": ["a", "b"]},
    ...              {"tool": "search", "input": "first show", "output": "c"}], ["b"])
    ('debut album',)
    """
    cited = {str(c) for c in cited_ids or ()}
    out: list[str] = []
    for step in steps or ():
        if not isinstance(step, Mapping) or not cited:
            continue
        tool = str(step.get("tool") or step.get("action") or "")
        if not any(t in tool for t in _SEARCH_TOOLS):
            continue
        query = _words(_pick(step, _INPUT_KEYS), words).removesuffix(" ...").strip()
        if query and query not in out and _output_ids(step.get("output")) & cited:
            out.append(query)
        if len(out) == limit:
            break
    return tuple(out)


def _words(text: str, n: int) -> str:
    ws = " ".join(str(text).split()).split(" ")
    return " ".join(ws[:n]) + (" ..." if len(ws) > n else "")


def _render_step(step: Any) -> str:
    if isinstance(step, Mapping):
        parts = [f"{k}: {v}" for k, v in step.items()]
        return "; ".join(parts)
    return str(step)


def render_trajectory(traj: Trajectory) -> str:
    """The full run as text (what compression starts from and what the ratio is measured against)."""
    lines = [f"Question: {traj.question}"]
    if traj.plan:
        lines.append(f"Plan:\n{traj.plan}")
    for i, step in enumerate(traj.steps, 1):
        lines.append(f"Step {i}: {_render_step(step)}")
    if traj.evidence_ids:
        lines.append("Evidence: " + ", ".join(traj.evidence_ids))
    if traj.cited_ids:
        lines.append("Cited: " + ", ".join(traj.cited_ids))
    if traj.answer:
        lines.append(f"Answer: {traj.answer}")
    lines.append(f"Judgement: {traj.judgement}")
    return "\n".join(lines)


def extractive_summary(traj: Trajectory, config: CompressionConfig | None = None) -> str:
    """Numbered ``action purpose (input -> output)`` lines from the recorded steps, no model needed."""
    cfg = config or CompressionConfig()
    lines: list[str] = []
    for step in traj.steps:
        if isinstance(step, Mapping):
            action = _pick(step, _ACTION_KEYS) or "step"
            purpose = _pick(step, _PURPOSE_KEYS)
            inp = _words(_pick(step, _INPUT_KEYS), cfg.step_input_words)
            out = _words(_pick(step, _OUTPUT_KEYS), cfg.step_output_words)
            text = " ".join(p for p in (action, _words(purpose, cfg.step_input_words) if purpose else "") if p)
            lines.append(f"{text} ({inp} -> {out})" if (inp or out) else text)
        else:
            lines.append(_words(str(step), cfg.step_input_words + cfg.step_output_words))
    if not lines and traj.plan:
        lines = [m.group(2) if (m := _NUMBERED.match(ln)) else ln.strip() for ln in traj.plan.splitlines() if ln.strip()]
    if traj.answer:
        lines.append(f"answer report the result ({_words(traj.question, cfg.step_input_words)} -> "
                     f"{_words(traj.answer, cfg.step_output_words)})")
    return _limit_words("\n".join(f"{i}. {ln}" for i, ln in enumerate(lines, 1)), cfg.max_words)


def _limit_words(text: str, max_words: int) -> str:
    out: list[str] = []
    n = 0
    for line in text.splitlines():
        ws = line.split()
        if n + len(ws) > max_words:
            if max_words - n > 3:
                out.append(" ".join(ws[: max_words - n]))
            break
        out.append(line)
        n += len(ws)
    return "\n".join(out)


def _llm_summary(traj: Trajectory, llm: Any, cfg: CompressionConfig, max_words: int) -> str | None:
    prompt = COMPRESS_PROMPT.format(max_words=cfg.max_words, run=render_trajectory(traj))
    try:
        text = llm.chat(prompt, max_tokens=cfg.max_llm_tokens, temperature=0.0).text
    except MiaflowError as e:  # a model failure must never lose the memory: fall back
        log.warning("LLM compression failed (%s); using the extractive summary", e)
        return None
    steps = [m.group(2).strip() for ln in text.splitlines() if (m := _NUMBERED.match(ln))]
    if len(steps) < cfg.min_llm_steps:
        return None
    return _limit_words("\n".join(f"{i}. {s}" for i, s in enumerate(steps, 1)), max_words)


def compress(
    trajectory: Trajectory,
    llm: Any = None,
    *,
    config: CompressionConfig | None = None,
    namespace: str = "default",
    record_id: str | None = None,
) -> MemoryRecord:
    """Compress a trajectory into a :class:`MemoryRecord` (LLM summary if ``llm`` is given, else extractive)."""
    cfg = config or CompressionConfig()
    given = trajectory.queries[:MAX_KEY_QUERIES]
    found = tuple(_words(q, cfg.step_input_words).removesuffix(" ...") for q in given) or \
        key_queries(trajectory.steps, trajectory.cited_ids, words=cfg.step_input_words)
    queries: list[str] = []
    for q in found:  # the key queries take at most a quarter of the budget
        if sum(len(x.split()) for x in queries) + len(q.split()) <= cfg.max_words // 4:
            queries.append(q)
    spent = sum(len(q.split()) for q in queries) + len(trajectory.answer.split())
    summary_cfg = replace(cfg, max_words=max(10, cfg.max_words - spent))  # queries + answer share the budget
    summary: str | None = None
    by = "extractive"
    if llm is not None:
        summary = _llm_summary(trajectory, llm, cfg, summary_cfg.max_words)
        if summary is None:
            COMPRESS_STATS["llm_fallback"] += 1
        else:
            by = "llm"
    if summary is None:
        summary = extractive_summary(trajectory, summary_cfg)
    COMPRESS_STATS[by] += 1
    original = count_tokens(render_trajectory(trajectory))
    stored = count_tokens(trajectory.plan) + count_tokens(summary) + count_tokens(trajectory.answer) + \
        sum(count_tokens(q) for q in queries)
    return MemoryRecord(
        id=record_id or uuid.uuid4().hex,
        task_id=trajectory.task_id,
        question=trajectory.question.strip(),
        plan=trajectory.plan,
        summary=summary,
        answer=trajectory.answer,
        judgement=trajectory.judgement,
        reward=trajectory.reward,
        evidence_ids=tuple(trajectory.evidence_ids),
        cited_ids=tuple(trajectory.cited_ids),
        queries=tuple(queries),
        namespace=namespace,
        model=trajectory.model,
        adapter_version=trajectory.adapter_version,
        created_at=trajectory.created_at,
        original_tokens=original,
        summary_tokens=max(1, stored),
        compressed_by=by,
    )
