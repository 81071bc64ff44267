"""Memories: the trajectory store (compressed runs with learned utilities), Bi-Mem conversation memory
(:mod:`miaflow.memory.bimem`) and the bundled embedder. Heavy parts load on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "Embedder",
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
]

_LAZY = {
    "Embedder": ".embeddings",
    "default_embedder": ".embeddings",
    "Trajectory": ".trajectory",
    "MemoryRecord": ".trajectory",
    "ScoredMemory": ".trajectory",
    "Recall": ".trajectory",
    "TrajectoryStore": ".store",
    "UtilityUpdate": ".store",
    "TrajectoryStoreConfig": ".config",
    "CompressionConfig": ".config",
    "compress": ".compression",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
