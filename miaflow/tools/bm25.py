"""A small BM25 (Okapi) over an inverted index in numpy.

Scoring touches only the postings of the query terms, so a query over a few thousand passages costs well under a
millisecond. Simplifications: the index is built in memory from the passages each time a corpus is opened (a few
hundred milliseconds for ~6,000 passages, cheaper than storing it), repeated query terms count once, and the idf
is Lucene's ``log(1 + (N - df + 0.5) / (df + 0.5))``, which is never negative.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Sequence

import numpy as np

from .._text import tokenize

__all__ = ["BM25"]


class BM25:
    """BM25 over token lists; ``top(query, n)`` gives ``(passage_index, score)`` pairs, best first."""

    def __init__(self, tokens: Sequence[Sequence[str]], *, k1: float = 1.5, b: float = 0.75):
        self.k1, self.b = k1, b
        self.n = len(tokens)
        lengths = np.array([len(t) for t in tokens], dtype=np.float32)
        avgdl = float(lengths.mean()) if self.n and lengths.sum() > 0 else 1.0
        self._norm = k1 * (1.0 - b + b * lengths / avgdl)
        docs: dict[str, list[int]] = defaultdict(list)
        tfs: dict[str, list[int]] = defaultdict(list)
        for i, toks in enumerate(tokens):
            for term, tf in Counter(toks).items():
                docs[term].append(i)
                tfs[term].append(tf)
        self._postings = {
            term: (np.array(docs[term], dtype=np.int64), np.array(tfs[term], dtype=np.float32)) for term in docs
        }
        self._idf = {term: math.log(1.0 + (self.n - len(d) + 0.5) / (len(d) + 0.5)) for term, d in docs.items()}

    @classmethod
    def from_texts(cls, texts: Sequence[str], **kwargs: float) -> BM25:
        return cls([tokenize(t) for t in texts], **kwargs)

    def scores(self, query: str | Sequence[str]) -> np.ndarray:
        """BM25 score of every passage for ``query`` (text or tokens)."""
        terms = tokenize(query) if isinstance(query, str) else list(query)
        out = np.zeros(self.n, dtype=np.float32)
        for term in dict.fromkeys(terms):
            posting = self._postings.get(term)
            if posting is None:
                continue
            idx, tf = posting
            out[idx] += self._idf[term] * tf * (self.k1 + 1.0) / (tf + self._norm[idx])
        return out

    def top(self, query: str | Sequence[str], n: int) -> list[tuple[int, float]]:
        """The ``n`` best passages with a positive score, best first (ties by index)."""
        s = self.scores(query)
        if n <= 0 or not self.n:
            return []
        n = min(n, self.n)
        cand = np.argpartition(-s, n - 1)[:n] if n < self.n else np.arange(self.n)
        cand = cand[s[cand] > 0]
        order = sorted(cand.tolist(), key=lambda i: (-float(s[i]), i))
        return [(i, float(s[i])) for i in order]
