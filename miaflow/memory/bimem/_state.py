"""One conversation's memory in RAM: turns, facts, scenes, personas, their vectors, the scene graph and the BM25
indexes. :class:`~miaflow.memory.bimem.memory.BiMemory` keeps one per conversation and persists it; retrieval
reads it through cached matrices that are rebuilt only after a change.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..._bm25 import BM25
from ._bm25 import new_index
from .records import Fact, Scene, Turn
from .vocabulary import Vocabulary

if TYPE_CHECKING:
    import networkx as nx
    import numpy as np

__all__ = ["ConversationState"]


@dataclass
class ConversationState:
    """Everything Bi-Mem holds about one conversation."""

    id: str
    graph: nx.Graph
    turns: dict[str, Turn] = field(default_factory=dict)
    facts: dict[str, Fact] = field(default_factory=dict)
    fact_vecs: dict[str, np.ndarray] = field(default_factory=dict)
    scenes: dict[str, Scene] = field(default_factory=dict)
    scene_vecs: dict[str, np.ndarray] = field(default_factory=dict)
    personas: dict[str, str] = field(default_factory=dict)
    persona_vecs: dict[str, np.ndarray] = field(default_factory=dict)
    next_n: int = 0
    next_seq: int = 0
    segments: list[str] = field(default_factory=list)
    """Saved segment files (each holds the turns, facts and new edges of one addition)."""
    upper_in_chroma: set[str] = field(default_factory=set)
    """Scene and persona ids whose vectors are stored in Chroma (LLM mode embeds them)."""
    fact_bm25: BM25[str] = field(default_factory=new_index)
    scene_bm25: BM25[str] = field(default_factory=new_index)
    vocab: Vocabulary = field(default_factory=Vocabulary)
    """Word vectors of the facts' words (query expansion)."""
    _cache: dict[str, Any] = field(default_factory=dict)

    def changed(self) -> None:
        self._cache.clear()

    def matrix(self, level: str) -> tuple[list[str], np.ndarray]:
        """(ids, stacked unit vectors) of ``level`` ('fact', 'scene', 'persona'), cached until the next change."""
        import numpy as np

        key = f"mat:{level}"
        if key not in self._cache:
            vecs = {"fact": self.fact_vecs, "scene": self.scene_vecs, "persona": self.persona_vecs}[level]
            ids = list(vecs)
            mat = np.stack([vecs[i] for i in ids]) if ids else np.zeros((0, 384), dtype=np.float32)
            self._cache[key] = (ids, mat)
        return self._cache[key]

    def fact_scene(self) -> dict[str, str]:
        if "fact_scene" not in self._cache:
            self._cache["fact_scene"] = {f: sid for sid, s in self.scenes.items() for f in s.fact_ids}
        return self._cache["fact_scene"]

    def temporal_neighbors(self) -> dict[str, list[str]]:
        if "temporal" not in self._cache:
            out: dict[str, list[str]] = {}
            for a, b, d in self.graph.edges(data=True):
                if "temporal" in d.get("kinds", ()):
                    out.setdefault(a, []).append(b)
                    out.setdefault(b, []).append(a)
            self._cache["temporal"] = out
        return self._cache["temporal"]

    def entity_neighbors(self) -> dict[str, list[str]]:
        if "entity" not in self._cache:
            out: dict[str, list[str]] = {}
            for a, b, d in self.graph.edges(data=True):
                if "entity" in d.get("kinds", ()):
                    out.setdefault(a, []).append(b)
                    out.setdefault(b, []).append(a)
            self._cache["entity"] = out
        return self._cache["entity"]

    def fact_order(self) -> tuple[list[str], dict[str, int]]:
        """Fact ids in time order (seq), and each id's position in that order."""
        if "order" not in self._cache:
            ids = sorted(self.facts, key=lambda f: (self.facts[f].seq, f))
            self._cache["order"] = (ids, {f: i for i, f in enumerate(ids)})
        return self._cache["order"]

    def fact_dates(self) -> dict[str, Any]:
        """Each fact's date (from its time string), or None."""
        from ._dates import parse_time

        if "dates" not in self._cache:
            self._cache["dates"] = {f: parse_time(x.time) for f, x in self.facts.items()}
        return self._cache["dates"]

    def question_facts(self) -> set[str]:
        """Facts that only ask (their text, less a shared photo's caption, ends with "?")."""
        if "questions" not in self._cache:
            self._cache["questions"] = {f for f, x in self.facts.items()
                                        if x.text.split(" [shares ", 1)[0].rstrip().endswith("?")}
        return self._cache["questions"]

    def speakers(self) -> list[str]:
        return list(dict.fromkeys(t.speaker for t in self.turns.values()))

    def scene_turns(self, scene: Scene) -> tuple[str, ...]:
        """The turns a scene brings into the context (its facts' turns, in time order, no repeats)."""
        return tuple(dict.fromkeys(t for f in scene.fact_ids for t in self.facts[f].turn_ids))
