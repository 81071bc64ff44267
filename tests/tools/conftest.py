"""Fixtures for the tools tests: a copy of the small folder corpus, the real embedder (loaded once), a counting
wrapper to see what gets re-embedded, and a cheap hashing embedder for the bigger corpora."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

CORPUS_SMALL = Path(__file__).parent / "corpus_small"


class CountingEmbedder:
    """Wraps an embedder and records every text it embeds."""

    def __init__(self, inner):
        self.inner = inner
        self.model_path = getattr(inner, "model_path", None)
        self.texts: list[str] = []

    def embed(self, texts):
        self.texts.extend(texts)
        return self.inner.embed(texts)


class HashEmbedder:
    """A deterministic bag-of-hashed-words embedder: fast, and similar texts get similar vectors."""

    model_path = "hash-embedder"

    def embed(self, texts):
        out = np.zeros((len(texts), 384), dtype=np.float32)
        for i, text in enumerate(texts):
            for word in text.lower().split():
                out[i, int(hashlib.md5(word.encode()).hexdigest(), 16) % 384] += 1.0
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.where(norms == 0, 1, norms)


@pytest.fixture(scope="session")
def real_embedder():
    from miaflow.memory.embeddings import default_embedder

    emb = default_embedder()
    emb.embed(["warm up"])
    return emb


@pytest.fixture
def counting_embedder(real_embedder):
    return CountingEmbedder(real_embedder)


@pytest.fixture
def hash_embedder():
    return HashEmbedder()


@pytest.fixture
def corpus_dir(tmp_path) -> Path:
    """A writable copy of tests/tools/corpus_small (the index is written beside it)."""
    dest = tmp_path / "corpus"
    shutil.copytree(CORPUS_SMALL, dest)
    return dest
