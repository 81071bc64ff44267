"""Memories: the trajectory store (compressed runs with learned utilities), Bi-Mem conversation memory
(:mod:`miaflow.memory.bimem`) and the bundled embedder. Heavy parts load on first use.
"""

from __future__ import annotations

from .._lazy import lazy_exports

__all__ = [
    "Embedder",
    "EmbedderConfig",
    "default_embedder",
    "Trajectory",
    "MemoryRecord",
    "ScoredMemory",
    "Recall",
    "TrajectoryStore",
    "TrajectoryStoreConfig",
    "CompressionConfig",
    "UtilityUpdate",
    "compress",
    "LangGraphStore",
]

_LAZY = {
    "Embedder": ".embeddings",
    "EmbedderConfig": ".embeddings",
    "default_embedder": ".embeddings",
    "Trajectory": ".trajectory",
    "MemoryRecord": ".trajectory",
    "ScoredMemory": ".trajectory",
    "Recall": ".trajectory",
    "TrajectoryStore": ".store",
    "UtilityUpdate": ".trajectory",
    "TrajectoryStoreConfig": ".config",
    "CompressionConfig": ".config",
    "compress": ".compression",
    "LangGraphStore": ".lgstore",
}

__getattr__, __dir__ = lazy_exports(__name__, _LAZY, __all__)
