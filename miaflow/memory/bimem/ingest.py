"""Reading conversations: LoCoMo's JSON format and plain message lists, checked with clear errors.

LoCoMo (Maharana et al., 2024) stores each sample as ``conversation.session_N`` lists of ``{speaker, dia_id, text}``
turns with ``session_N_date_time`` stamps, and ``qa`` items whose ``evidence`` are turn ids. A few evidence ids in
the released file are malformed (``"D:11:26"``, ``"D8:6; D9:17"``, ``"D"``); :func:`parse_evidence` repairs what
it can and drops the rest.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...errors import InvalidInputError
from .records import Turn

__all__ = ["LocomoQA", "LocomoConversation", "load_locomo", "parse_locomo", "parse_messages", "parse_evidence"]

_SESSION = re.compile(r"^session_(\d+)$")
_EVIDENCE = re.compile(r"D\s*:?\s*(\d+)\s*:\s*(\d+)")


@dataclass(kw_only=True, frozen=True, slots=True)
class LocomoQA:
    """One LoCoMo question."""

    question: str
    """The question."""
    answer: str
    """Gold answer (cast to str; empty for most adversarial items)."""
    category: int
    """1 multi-hop, 2 temporal, 3 open-domain, 4 single-hop, 5 adversarial."""
    evidence: tuple[str, ...]
    """Gold evidence turn ids, repaired by :func:`parse_evidence`."""
    adversarial_answer: str = ""
    """The tempting wrong answer of category 5 items."""


@dataclass(kw_only=True, frozen=True, slots=True)
class LocomoConversation:
    """One LoCoMo sample: its turns in order, and its questions."""

    sample_id: str
    """E.g. ``"conv-26"``."""
    speakers: tuple[str, ...]
    """``speaker_a``, ``speaker_b``."""
    turns: tuple[Turn, ...]
    """All turns, sessions in order."""
    qa: tuple[LocomoQA, ...]
    """Questions (may be empty)."""


def parse_evidence(values: Iterable[Any]) -> tuple[str, ...]:
    """Normalise evidence ids: ``"D:11:26"`` -> ``"D11:26"``, ``"D8:6; D9:17"`` -> two ids, junk dropped.

    >>> parse_evidence(["D1:3", "D:11:26", "D8:6; D9:17", "D"])
    ('D1:3', 'D11:26', 'D8:6', 'D9:17')
    """
    out: list[str] = []
    for v in values:
        for m in _EVIDENCE.finditer(str(v)):
            eid = f"D{int(m.group(1))}:{int(m.group(2))}"
            if eid not in out:
                out.append(eid)
    return tuple(out)


def _turn_text(raw: Mapping[str, Any]) -> str:
    text = str(raw.get("text", "")).strip()
    caption = raw.get("blip_caption")
    if caption:
        text = f"{text} [shares a photo of {str(caption).strip()}]".strip()
    return text


def parse_locomo(data: Any, *, source: str = "<data>") -> list[LocomoConversation]:
    """Parse already-loaded LoCoMo JSON (a list of samples, or one sample)."""
    samples = [data] if isinstance(data, Mapping) else data
    if not isinstance(samples, list) or not samples:
        raise InvalidInputError(f"{source}: expected a non-empty JSON list of LoCoMo samples, got {type(data).__name__}")
    out = []
    for i, s in enumerate(samples):
        where = f"{source}: sample {i}"
        if not isinstance(s, Mapping):
            raise InvalidInputError(f"{where}: expected an object, got {type(s).__name__}")
        conv = s.get("conversation")
        if not isinstance(conv, Mapping):
            raise InvalidInputError(f"{where}: missing the 'conversation' object")
        sample_id = str(s.get("sample_id") or f"sample-{i}")
        sessions = sorted(int(m.group(1)) for k in conv if (m := _SESSION.match(k)))
        if not sessions:
            raise InvalidInputError(f"{where} ({sample_id}): 'conversation' has no session_N lists")
        turns: list[Turn] = []
        seen: set[str] = set()
        for n in sessions:
            items = conv[f"session_{n}"]
            if not isinstance(items, list):
                raise InvalidInputError(f"{where} ({sample_id}): session_{n} must be a list of turns")
            time = str(conv.get(f"session_{n}_date_time", ""))
            for j, raw in enumerate(items):
                if not isinstance(raw, Mapping) or "speaker" not in raw or "text" not in raw:
                    raise InvalidInputError(
                        f"{where} ({sample_id}): session_{n} turn {j} needs 'speaker' and 'text' fields")
                tid = str(raw.get("dia_id") or f"D{n}:{j + 1}")
                if tid in seen:
                    raise InvalidInputError(f"{where} ({sample_id}): duplicate turn id {tid!r}")
                seen.add(tid)
                turns.append(Turn(id=tid, speaker=str(raw["speaker"]), text=_turn_text(raw), time=time, session=n))
        qa = []
        for j, q in enumerate(s.get("qa") or []):
            if not isinstance(q, Mapping) or "question" not in q:
                raise InvalidInputError(f"{where} ({sample_id}): qa item {j} has no 'question'")
            try:
                cat = int(q.get("category", 0))
            except (TypeError, ValueError):
                raise InvalidInputError(f"{where} ({sample_id}): qa item {j} has a bad category {q.get('category')!r}") \
                    from None
            qa.append(LocomoQA(question=str(q["question"]), answer=str(q.get("answer", "")), category=cat,
                               evidence=parse_evidence(q.get("evidence") or []),
                               adversarial_answer=str(q.get("adversarial_answer", ""))))
        speakers = tuple(str(conv[k]) for k in ("speaker_a", "speaker_b") if k in conv)
        out.append(LocomoConversation(sample_id=sample_id, speakers=speakers, turns=tuple(turns), qa=tuple(qa)))
    return out


def load_locomo(path: str | Path) -> list[LocomoConversation]:
    """Load a LoCoMo-format JSON file. Missing, non-UTF-8, non-JSON or mis-shaped files raise InvalidInputError."""
    p = Path(path)
    if not p.is_file():
        raise InvalidInputError(f"LoCoMo file not found: {p}")
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except UnicodeDecodeError as e:
        raise InvalidInputError(f"{p}: not UTF-8 text ({e})") from None
    except json.JSONDecodeError as e:
        raise InvalidInputError(f"{p}: not valid JSON (line {e.lineno}, column {e.colno}: {e.msg})") from None
    return parse_locomo(data, source=str(p))


def parse_messages(messages: Iterable[Mapping[str, Any]], *, start: int = 0) -> list[Turn]:
    """Plain messages ``{"speaker", "text", "time"?, "id"?, "session"?}`` -> turns (ids default to ``m<n>``)."""
    turns = []
    for i, m in enumerate(messages):
        if not isinstance(m, Mapping):
            raise InvalidInputError(f"message {i}: expected a mapping, got {type(m).__name__}")
        speaker = m.get("speaker", m.get("role"))
        text = m.get("text", m.get("content"))
        if not isinstance(speaker, str) or not speaker.strip():
            raise InvalidInputError(f"message {i}: needs a non-empty 'speaker'")
        if not isinstance(text, str):
            raise InvalidInputError(f"message {i}: needs a 'text' string")
        try:
            session = int(m.get("session", 0) or 0)
        except (TypeError, ValueError):
            raise InvalidInputError(f"message {i}: bad session {m.get('session')!r}") from None
        turns.append(Turn(id=str(m.get("id") or f"m{start + i}"), speaker=speaker.strip(), text=text.strip(),
                          time=str(m.get("time", "") or ""), session=session))
    return turns
