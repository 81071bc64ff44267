"""Fact level: turns become facts.

Fast mode keeps each turn as one observation fact (``"Speaker: text"``) with capitalised-name entities. LLM mode is
Bi-Mem's inductive agent: a window of turns goes to the model, which lists atomic facts with speaker, entities and
source turn ids as JSON. Small models break JSON, so the answer is parsed leniently; facts naming unknown turns are
tied to the whole window, and a window whose answer cannot be parsed falls back to observation facts (counted).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

from ..._text import STOPWORDS
from ...llm.base import ChatModel, GenerationConfig
from .records import Fact, Turn

__all__ = ["observation_facts", "extract_entities", "induce_facts", "EXTRACTION_PROMPT", "lenient_json"]

_NAME = re.compile(r"\b[A-Z][a-zA-Z'\-]+(?:\s+[A-Z][a-zA-Z'\-]+)*")
_NOT_NAMES = frozenset(
    "hey hi hello thanks thank yeah yes wow oh ok okay sure great congrats congratulations awesome cool good nice "
    "well really absolutely definitely totally haha lol omg aww glad sounds love i'm i've i'd i'll it's that's "
    "what's let's you're don't can't".split()
)


def extract_entities(text: str) -> tuple[str, ...]:
    """Capitalised names in ``text``, lower-cased, minus stop words and interjections (fast mode entities).

    >>> extract_entities("Hey Mel! I went to the LGBTQ support group in New York yesterday.")
    ('mel', 'lgbtq', 'new york')
    """
    out: list[str] = []
    for m in _NAME.finditer(text):
        words = [w for w in m.group(0).lower().split() if w not in STOPWORDS and w not in _NOT_NAMES]
        name = " ".join(words)
        if len(name) > 1 and name not in out:
            out.append(name)
    return tuple(out)


def _fact_text(speaker: str, text: str) -> str:
    return f"{speaker}: {text}"


def observation_facts(conversation_id: str, turns: Sequence[Turn], *, start_seq: int, start_n: int) -> list[Fact]:
    """One observation fact per turn (fast mode)."""
    return [
        Fact(id=f"{conversation_id}|{start_n + i}", conversation_id=conversation_id,
             text=_fact_text(t.speaker, t.text), speaker=t.speaker, time=t.time, session=t.session,
             seq=start_seq + i, entities=extract_entities(t.text), turn_ids=(t.id,), kind="observation")
        for i, t in enumerate(turns)
    ]


EXTRACTION_PROMPT = """Extract the atomic facts stated in this conversation excerpt. Each fact is one short \
sentence that names the person it is about and makes sense on its own.
Answer with a JSON list only, one object per fact:
[{{"fact": "...", "speaker": "...", "entities": ["..."], "turns": ["turn id", ...]}}]

Conversation ({time}):
{lines}
"""


def lenient_json(text: str) -> Any:
    """The first JSON list or object in ``text`` (fenced or not), or None."""
    dec = json.JSONDecoder()
    for i, ch in enumerate(text):
        if ch in "[{":
            try:
                return dec.raw_decode(text[i:])[0]
            except json.JSONDecodeError:
                continue
    return None


def induce_facts(
    llm: ChatModel, conversation_id: str, turns: Sequence[Turn], *, start_seq: int, start_n: int,
    max_tokens: int = 384,
) -> tuple[list[Fact], bool]:
    """Facts the LLM induces from one window of turns. Returns (facts, parsed_ok); on a parse failure the facts
    are the window's observation facts."""
    lines = "\n".join(f"[{t.id}] {t.speaker}: {t.text}" for t in turns)
    prompt = EXTRACTION_PROMPT.format(time=turns[0].time or "time unknown", lines=lines)
    reply = llm.chat(prompt, GenerationConfig(max_tokens=max_tokens)).text
    data = lenient_json(reply)
    if isinstance(data, dict):
        data = data.get("facts", [data])
    items = [d for d in data if isinstance(d, dict)] if isinstance(data, list) else []
    by_id = {t.id: (i, t) for i, t in enumerate(turns)}
    speakers = {t.speaker.lower(): t.speaker for t in turns}
    facts: list[Fact] = []
    for d in items:
        text = str(d.get("fact") or d.get("text") or "").strip()
        if not text:
            continue
        tids = [str(x) for x in (d.get("turns") or d.get("turn_ids") or []) if str(x) in by_id]
        tids = sorted(set(tids), key=lambda x: by_id[x][0]) or [t.id for t in turns]
        first_i, first = by_id[tids[0]]
        speaker = speakers.get(str(d.get("speaker", "")).strip().lower(), first.speaker)
        ents = d.get("entities")
        entities = tuple(dict.fromkeys(str(e).lower().strip() for e in ents if str(e).strip())) \
            if isinstance(ents, list) else extract_entities(text)
        facts.append(Fact(id=f"{conversation_id}|{start_n + len(facts)}", conversation_id=conversation_id,
                          text=text if text.lower().startswith(speaker.lower()) else _fact_text(speaker, text),
                          speaker=speaker, time=first.time, session=first.session, seq=start_seq + first_i,
                          entities=entities, turn_ids=tuple(tids), kind="induced"))
    if not facts:
        return observation_facts(conversation_id, turns, start_seq=start_seq, start_n=start_n), False
    return facts, True
