"""The records of Bi-Mem's three levels: conversation turns in, facts, scenes and persona lines stored, and the
items retrieval returns. All are frozen, slotted, keyword-only dataclasses, so they can be shared and hashed.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, Literal

__all__ = ["Turn", "Fact", "Scene", "MemoryItem", "Level"]

Level = Literal["fact", "scene", "persona"]


def _to_dict(obj: Any) -> dict[str, Any]:
    """A shallow dict of a record (tuples become lists in JSON); much faster than ``asdict`` for flat records."""
    return {f.name: getattr(obj, f.name) for f in fields(obj)}


@dataclass(kw_only=True, frozen=True, slots=True)
class Turn:
    """One utterance of a conversation."""

    id: str
    """Turn id, unique within its conversation (LoCoMo's ``dia_id`` such as ``"D3:7"``)."""
    speaker: str
    """Who said it."""
    text: str
    """What was said (an image caption, if any, is appended as ``[shares a photo of ...]``)."""
    time: str = ""
    """When it was said, as given (LoCoMo gives a session date such as ``"1:56 pm on 8 May, 2023"``)."""
    session: int = 0
    """Session number; turns of one session are temporally adjacent."""

    def to_dict(self) -> dict[str, Any]:
        return _to_dict(self)


@dataclass(kw_only=True, frozen=True, slots=True)
class Fact:
    """An atomic fact (LLM mode) or one whole turn kept as an observation (fast mode)."""

    id: str
    """Fact id, unique within the memory (``"<conversation>|<n>"``)."""
    conversation_id: str
    """The conversation it comes from."""
    text: str
    """The fact, as it is embedded and indexed (speaker-prefixed)."""
    speaker: str
    """The speaker the fact is about or said by."""
    time: str = ""
    """When it was said."""
    session: int = 0
    """Session number of its first source turn."""
    seq: int = 0
    """Position of its first source turn in the conversation (orders facts in time)."""
    entities: tuple[str, ...] = ()
    """Named entities it mentions (lower-cased), used for graph edges."""
    turn_ids: tuple[str, ...] = ()
    """Provenance: the ids of the turns it was induced from."""
    kind: str = "observation"
    """``"observation"`` (a turn kept verbatim) or ``"induced"`` (extracted by the LLM)."""

    def to_dict(self) -> dict[str, Any]:
        return _to_dict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Fact:
        return cls(**{**d, "entities": tuple(d.get("entities", ())), "turn_ids": tuple(d.get("turn_ids", ()))})


@dataclass(kw_only=True, frozen=True, slots=True)
class Scene:
    """A community of related facts with a summary."""

    id: str
    """Scene id, stable for a given member set (a hash of the member ids)."""
    conversation_id: str
    """The conversation it belongs to."""
    fact_ids: tuple[str, ...]
    """Member facts in time order."""
    summary: str
    """LLM summary, or an extractive one (the most central member facts)."""
    speakers: tuple[str, ...] = ()
    """Speakers of its facts."""
    flags: tuple[str, ...] = ()
    """Conflicts the reflective check found against a persona and could not resolve."""
    revised: bool = False
    """True when the reflective check rewrote the summary to agree with the persona."""

    def to_dict(self) -> dict[str, Any]:
        return _to_dict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Scene:
        return cls(**{**d, "fact_ids": tuple(d["fact_ids"]), "speakers": tuple(d.get("speakers", ())),
                      "flags": tuple(d.get("flags", ()))})


@dataclass(kw_only=True, frozen=True, slots=True)
class MemoryItem:
    """One retrieval result."""

    text: str
    """What goes into the context."""
    level: Level
    """``"fact"``, ``"scene"`` or ``"persona"``."""
    score: float
    """Retrieval score (hybrid seed score or spreading activation); higher is better."""
    turn_ids: tuple[str, ...] = ()
    """The turns this item brings into the context (none for a persona)."""
    id: str = ""
    """The id of the fact, scene, or ``persona:<speaker>``."""
    conversation_id: str = ""
    """The conversation it belongs to."""
    speaker: str = ""
    """The speaker (facts and persona); empty for scenes."""
    time: str = ""
    """When (facts)."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Anything else a mode wants to report (e.g. the hop that activated it)."""
