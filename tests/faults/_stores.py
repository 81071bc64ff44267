"""Shared figures of the store fault tests (imported by name: conftest puts this folder on sys.path)."""

from __future__ import annotations

N_RECORDS = 1100
"""Enough records for Chroma to write its HNSW files (it keeps the first thousand in its log only)."""


def question(i: int) -> str:
    return f"record {i} asks about topic t{i} and subject s{i * 7}"


def bimem_embedder():
    """The hashing embedder with the ``as_chroma`` Bi-Mem asks of an embedder."""
    from memory_helpers import HashEmbedder

    from miaflow.memory.embeddings import ChromaEmbeddingFunction

    class BiHashEmbedder(HashEmbedder):
        def as_chroma(self):
            return ChromaEmbeddingFunction(self)

    return BiHashEmbedder()
