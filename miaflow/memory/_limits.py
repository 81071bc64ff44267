"""Bounds on what a store keeps: text made storable (lone surrogates replaced) and long fields cut with a marker.

A lone surrogate (``"\\ud800"``) is a valid Python string that UTF-8 cannot encode, so it used to abort a write at
the last moment and lose the answer; an answer of a megabyte made every record, export and prompt that recalls it
as large. Both are settled once, where text enters a store: surrogate pairs are joined, lone ones become U+FFFD,
and a field longer than its cap keeps its head and ends with ``[... N characters cut]``. Each cut is counted.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

__all__ = ["clean_text", "cap_text", "bound_trajectory", "bound_record"]


def clean_text(text: Any) -> str:
    """``text`` as a string UTF-8 can encode: surrogate pairs joined, lone surrogates replaced by U+FFFD.

    >>> clean_text("ok \\ud83d\\ude00 \\ud800!")
    'ok 😀 \\ufffd!'
    """
    s = text if isinstance(text, str) else str(text)
    try:
        s.encode("utf-8")
        return s
    except UnicodeEncodeError:
        return s.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def cap_text(text: Any, limit: int | None, counters: Counter[str] | None = None, what: str = "text") -> str:
    """Clean ``text`` and cut it to at most ``limit`` characters (the marker included).

    >>> cap_text("x" * 100, 40)
    'xxxxxxxxxxxxxxxx\\n[... 84 characters cut]'
    """
    s = clean_text(text)
    if limit is None or len(s) <= limit:
        return s
    marker = f"\n[... {len(s) - limit} characters cut]"
    keep = max(0, limit - len(marker))
    marker = f"\n[... {len(s) - keep} characters cut]"
    if counters is not None:
        counters[f"truncated_{what}"] += 1
    return s[:keep] + marker


def _step(step: Any, limit: int | None, counters: Counter[str] | None) -> Any:
    if isinstance(step, Mapping):
        out = dict(step)
        for key in ("output", "observation", "result"):
            if isinstance(out.get(key), str):
                out[key] = cap_text(out[key], limit, counters, "tool_output")
            elif isinstance(out.get(key), list | tuple):
                out[key] = [cap_text(x, limit, counters, "tool_output") for x in out[key]]
        if isinstance(out.get("input"), str):
            out["input"] = cap_text(out["input"], limit, counters, "tool_output")
        return out
    return cap_text(step, limit, counters, "tool_output")


def bound_trajectory(traj: Any, config: Any, counters: Counter[str] | None = None) -> Any:
    """A :class:`~miaflow.memory.trajectory.Trajectory` with clean, capped text (steps' tool outputs included)."""
    c = config
    return replace(
        traj,
        question=cap_text(traj.question, c.max_question_chars, counters, "question"),
        plan=cap_text(traj.plan, c.max_plan_chars, counters, "plan"),
        answer=cap_text(traj.answer, c.max_answer_chars, counters, "answer"),
        steps=tuple(_step(s, c.max_tool_output_chars, counters) for s in traj.steps),
        queries=tuple(clean_text(q) for q in traj.queries),
        evidence_ids=tuple(clean_text(e) for e in traj.evidence_ids),
        cited_ids=tuple(clean_text(e) for e in traj.cited_ids),
        task_id=clean_text(traj.task_id),
        model=None if traj.model is None else clean_text(traj.model),
    )


def bound_record(rec: Any, config: Any, counters: Counter[str] | None = None) -> Any:
    """A :class:`~miaflow.memory.trajectory.MemoryRecord` with clean, capped text."""
    c = config
    return replace(
        rec,
        question=cap_text(rec.question, c.max_question_chars, counters, "question"),
        plan=cap_text(rec.plan, c.max_plan_chars, counters, "plan"),
        summary=cap_text(rec.summary, c.max_summary_chars, counters, "summary"),
        answer=cap_text(rec.answer, c.max_answer_chars, counters, "answer"),
        queries=tuple(clean_text(q) for q in rec.queries),
        evidence_ids=tuple(clean_text(e) for e in rec.evidence_ids),
        cited_ids=tuple(clean_text(e) for e in rec.cited_ids),
        task_id=clean_text(rec.task_id),
        id=clean_text(rec.id),
        model=None if rec.model is None else clean_text(rec.model),
        adapter_version=None if rec.adapter_version is None else clean_text(rec.adapter_version),
    )
