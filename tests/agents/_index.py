"""A tiny keyword index with the CorpusIndex search / open API, and a bag-of-words hashing embedder, shared by the
experience, answer-check and remember-path tests."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

import numpy as np

from miaflow._text import tokenize
from miaflow.errors import ToolError


@dataclass(frozen=True)
class Hit:
    doc_id: str
    title: str
    text: str
    score: float = 1.0


@dataclass(frozen=True)
class Doc:
    id: str
    title: str
    text: str


class KeywordIndex:
    """Ranks documents by shared words (ties by id); records every query and every opened id."""

    def __init__(self, docs: dict[str, tuple[str, str]]):
        self.docs = dict(docs)
        self.queries: list[str] = []
        self.opened: list[str] = []

    def search(self, query: str, k: int = 5) -> list[Hit]:
        self.queries.append(query)
        q = set(tokenize(query))
        scored = [(len(q & set(tokenize(t + " " + x))), d) for d, (t, x) in self.docs.items()]
        scored = sorted((s for s in scored if s[0] > 0), key=lambda s: (-s[0], s[1]))[:k]
        return [Hit(d, self.docs[d][0], self.docs[d][1], float(s)) for s, d in scored]

    def open_document(self, doc_id: str) -> Doc:
        self.opened.append(doc_id)
        if doc_id not in self.docs:
            raise ToolError(f"unknown document id {doc_id!r}")
        t, x = self.docs[doc_id]
        return Doc(id=doc_id, title=t, text=x)


class HashEmbedder:
    """Bag of words: each word a fixed pseudo-random vector, so questions sharing words are similar."""

    def __init__(self, dim: int = 64):
        self.dim = dim

    def _word(self, w: str) -> np.ndarray:
        seed = int(hashlib.md5(w.encode()).hexdigest()[:8], 16)
        return np.random.default_rng(seed).standard_normal(self.dim)

    def embed(self, texts):
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, t in enumerate(texts):
            for w in re.findall(r"\w+", t.lower()):
                out[i] += self._word(w)
            n = np.linalg.norm(out[i])
            out[i] = out[i] / n if n else out[i]
        return out

    model_path = None

    def as_chroma(self):
        from miaflow.memory.embeddings import ChromaEmbeddingFunction

        return ChromaEmbeddingFunction(self)


DOCS = {
    # the question's own words find only the album page; the band page needs the recalled query
    "album": ("Tinted Windows (album)", "Tinted Windows is the debut album by the band Tinted Windows, released by S-Curve Records."),
    "band": ("Supergroup of 2009", "The supergroup played its opening show in Tulsa, Oklahoma in 2009."),
    "paris": ("Paris", "Paris is the capital of France."),
    "nile": ("Nile", "The Nile is a major river in northeastern Africa."),
}

QUESTION = "Where did the band of the debut album Tinted Windows first perform?"
