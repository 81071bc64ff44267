"""Bi-Mem: hierarchical conversation memory (facts, scenes, persona) with associative retrieval.

``BiMemory(path, llm=None)`` stores conversations; ``retrieve(query, mode=...)`` returns :class:`MemoryItem` s
with their turn ids. Heavy libraries (chromadb, sentence-transformers, networkx) load on first use.
"""

from __future__ import annotations

from ..._lazy import lazy_exports

__all__ = [
    "BiMemory",
    "BiMemConfig",
    "Turn",
    "Fact",
    "Scene",
    "MemoryItem",
    "LocomoConversation",
    "LocomoQA",
    "load_locomo",
    "parse_locomo",
    "parse_messages",
    "parse_evidence",
    "MODES",
]

_LAZY = {
    "BiMemory": ".memory",
    "BiMemConfig": ".config",
    "MODES": ".config",
    "Turn": ".records",
    "Fact": ".records",
    "Scene": ".records",
    "MemoryItem": ".records",
    "LocomoConversation": ".ingest",
    "LocomoQA": ".ingest",
    "load_locomo": ".ingest",
    "parse_locomo": ".ingest",
    "parse_messages": ".ingest",
    "parse_evidence": ".ingest",
}

__getattr__, __dir__ = lazy_exports(__name__, _LAZY, __all__)
