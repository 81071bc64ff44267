"""Persona level and the reflective check (Bi-Mem's bidirectional construction).

Bottom-up, a persona per speaker is inferred from the scenes the speaker takes part in (LLM); without an LLM it is
extractive: the speaker's most connected first-person facts. Top-down, the reflective agent reads each new scene
summary next to the persona and answers CONSISTENT, REVISE (with a corrected summary) or CONFLICT (the scene
contradicts the persona; the conflict is kept as a flag on the scene, since the newer scene may be right).
Simplified: one persona pass per update rather than iterating the two directions to a fixed point.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

from ...llm.base import ChatModel, GenerationConfig
from .records import Fact, Scene

if TYPE_CHECKING:
    import networkx as nx

__all__ = ["extractive_persona", "llm_persona", "reflect", "PERSONA_PROMPT", "REFLECT_PROMPT"]

_FIRST_PERSON = re.compile(r"\b(I|I'm|I've|my|me|mine)\b")


def extractive_persona(speaker: str, facts: Sequence[Fact], graph: nx.Graph | None, n: int) -> str:
    """The speaker's ``n`` most connected (most graph neighbours) first-person facts, in time order (fast mode)."""
    own = [f for f in facts if f.speaker == speaker and _FIRST_PERSON.search(f.text)]
    if not own:
        own = [f for f in facts if f.speaker == speaker]

    def degree(f: Fact) -> float:
        return float(len(graph[f.id])) if graph is not None and f.id in graph else 0.0

    keep = sorted(sorted(own, key=lambda f: (-degree(f), f.seq))[:n], key=lambda f: f.seq)
    return "\n".join(f.text for f in keep)


PERSONA_PROMPT = """Write a short profile of {speaker} from these scenes of their conversations: who they are, \
their relationships, work, interests, plans and important events, with dates. At most six lines. Answer with the \
profile only.

{scenes}
"""


def llm_persona(llm: ChatModel, speaker: str, scenes: Sequence[Scene], max_scenes: int = 30) -> str:
    chosen = sorted(scenes, key=lambda s: -len(s.fact_ids))[:max_scenes]
    text = "\n".join(f"- {s.summary}" for s in chosen)
    return llm.chat(PERSONA_PROMPT.format(speaker=speaker, scenes=text), GenerationConfig(max_tokens=200)).text.strip()


REFLECT_PROMPT = """Profile of {speaker}:
{persona}

Scene summary:
{summary}

Does the scene summary agree with the profile? Answer on one line with exactly one of:
CONSISTENT
REVISE: <the summary rewritten to fix a mistake about {speaker}>
CONFLICT: <what in the scene contradicts the profile>
"""


def reflect(llm: ChatModel, speaker: str, persona: str, scene: Scene) -> Scene:
    """Check ``scene`` against ``persona``; return it unchanged, with a revised summary, or with a conflict flag."""
    from dataclasses import replace

    reply = llm.chat(REFLECT_PROMPT.format(speaker=speaker, persona=persona, summary=scene.summary),
                     GenerationConfig(max_tokens=160)).text.strip()
    head, _, rest = reply.partition(":")
    verdict = head.strip().upper()
    rest = rest.strip()
    if verdict.startswith("REVISE") and rest:
        return replace(scene, summary=rest, revised=True)
    if verdict.startswith("CONFLICT"):
        flag = f"{speaker}: {rest or 'conflicts with the persona'}"
        return replace(scene, flags=tuple(dict.fromkeys((*scene.flags, flag))))
    return scene
