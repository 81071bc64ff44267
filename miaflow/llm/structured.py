"""Structured output from small models, which break JSON.

Parse leniently: the first JSON object or list in the text (fenced or not, with light repairs such as trailing
commas or single quotes), validated with pydantic; else a line-based parse of numbered or bulleted steps. Nothing
here raises on garbage: failures return ``None`` / an empty list and are counted in :data:`PARSE_STATS`.
"""

from __future__ import annotations

import json
import re
import threading
from collections import Counter
from typing import Any, TypeVar

__all__ = ["extract_json", "parse_as", "parse_numbered_list", "ParseStats", "PARSE_STATS"]

T = TypeVar("T")


class ParseStats:
    """Thread-safe counters of parse outcomes, reported by workflows and benchmarks."""

    def __init__(self) -> None:
        self._counts: Counter[str] = Counter()
        self._lock = threading.Lock()

    def count(self, key: str) -> None:
        with self._lock:
            self._counts[key] += 1

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)

    def reset(self) -> None:
        with self._lock:
            self._counts.clear()


PARSE_STATS = ParseStats()

_FENCE = re.compile(r"```(?:json|JSON)?\s*(.*?)```", re.DOTALL)
_TRAILING_COMMA = re.compile(r",\s*([}\]])")


def _candidates(text: str) -> list[str]:
    blocks = [m.group(1) for m in _FENCE.finditer(text)]
    return blocks + [text]


def _repairs(s: str) -> list[str]:
    fixed = _TRAILING_COMMA.sub(r"\1", s)
    out = [s]
    if fixed != s:
        out.append(fixed)
    if "'" in s and '"' not in s:
        out.append(_TRAILING_COMMA.sub(r"\1", s.replace("'", '"')))
    return out


def extract_json(text: str) -> Any | None:
    """The first JSON object or list found in ``text``, or None.

    >>> extract_json('Sure! ```json\\n{"steps": ["a", "b",]}\\n``` done')
    {'steps': ['a', 'b']}
    >>> extract_json("no json here") is None
    True
    """
    if not isinstance(text, str) or not text:
        return None
    decoder = json.JSONDecoder()
    for chunk in _candidates(text):
        for variant in _repairs(chunk):
            for i, ch in enumerate(variant):
                if ch not in "{[":
                    continue
                try:
                    value, _ = decoder.raw_decode(variant, i)
                except (json.JSONDecodeError, RecursionError):
                    continue
                if isinstance(value, dict | list):
                    return value
    return None


def parse_as(text: str, model: type[T], *, stats: ParseStats | None = None) -> T | None:
    """Extract JSON from ``text`` and validate it as the pydantic ``model``; None (counted) on failure."""
    from pydantic import BaseModel, ValidationError

    stats = stats or PARSE_STATS
    data = extract_json(text)
    if data is None:
        stats.count("no_json")
        return None
    try:
        assert issubclass(model, BaseModel)
        value = model.model_validate(data)
    except (ValidationError, ValueError, TypeError):
        stats.count("invalid")
        return None
    stats.count("ok")
    return value


_STEP = re.compile(r"^\s*(?:(?:step\s*)?\d{1,3}\s*[.):\-]|[-*\u2022])\s+(.*\S)\s*$", re.IGNORECASE)


def parse_numbered_list(text: str, *, max_items: int = 50) -> list[str]:
    """Items of a numbered (``1.``, ``2)``, ``Step 3:``) or bulleted list in ``text``; [] when there is none.

    >>> parse_numbered_list("Plan:\\n1. Search X\\n2) Read Y\\n- Answer")
    ['Search X', 'Read Y', 'Answer']
    """
    if not isinstance(text, str):
        return []
    items = []
    for line in text.splitlines():
        m = _STEP.match(line)
        if m:
            item = m.group(1).strip()
            if item:
                items.append(item)
        if len(items) >= max_items:
            break
    return items
