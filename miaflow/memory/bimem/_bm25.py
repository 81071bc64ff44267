"""A small incremental BM25 (Okapi, k1=1.5, b=0.75, the same formula as rank_bm25's BM25Okapi).

Why not rank_bm25 itself: it rebuilds its tables on every change and scores every document per query term in
Python; conversation memory grows a session at a time and is queried often, so an inverted index that takes
additions and removals and only touches the postings of the query's terms is simpler and faster.
Simplified: rank_bm25's epsilon floor for negative IDF is replaced by a plain floor at a small positive value.
"""

from __future__ import annotations

import math
from collections import Counter
from functools import lru_cache

from ..._text import tokenize as _words

__all__ = ["BM25Index", "stem", "tokenize"]


@lru_cache(maxsize=65536)
def stem(word: str) -> str:
    """A tiny suffix stripper, so that plurals and verb forms meet ("hikes", "hiking", "hiked" -> "hik").

    Much cruder than Porter's: it only removes -ies/-es/-s, -ing, -ed, -ly from words long enough to keep a stem
    of 3+ letters; both the documents and the query go through it, so the stems only need to agree."""
    if len(word) <= 3 or not word.isalpha():
        return word
    w = word
    for suf, rep in (("ies", "y"), ("ing", ""), ("ed", ""), ("es", ""), ("ly", ""), ("s", "")):
        if word.endswith(suf) and len(word) - len(suf) >= 3:
            if suf == "s" and word.endswith(("ss", "us", "is")):
                break
            w = word[: -len(suf)] + rep
            if suf in ("ing", "ed") and len(w) > 3 and w[-1] == w[-2] and w[-1] not in "lsz":
                w = w[:-1]  # "running" -> "run", "planned" -> "plan"
            if suf == "s":
                return stem(w)  # "paintings" -> "painting" -> "paint"
            break
    return w[:-1] if len(w) > 3 and w.endswith("e") else w


def tokenize(text: str) -> list[str]:
    """BM25 terms: the shared word tokens (stop words dropped), stemmed."""
    return [stem(t) for t in _words(text)]


class BM25Index:
    """Documents keyed by id; ``scores(query)`` returns ``{id: score}`` for documents sharing a term."""

    def __init__(self, k1: float = 1.5, b: float = 0.75):
        self.k1, self.b = k1, b
        self._tf: dict[str, Counter[str]] = {}
        self._len: dict[str, int] = {}
        self._postings: dict[str, dict[str, int]] = {}
        self._total = 0

    def __len__(self) -> int:
        return len(self._tf)

    def __contains__(self, doc_id: str) -> bool:
        return doc_id in self._tf

    def add(self, doc_id: str, text: str) -> None:
        if doc_id in self._tf:
            self.remove(doc_id)
        tf = Counter(tokenize(text))
        self._tf[doc_id] = tf
        n = sum(tf.values())
        self._len[doc_id] = n
        self._total += n
        for term, c in tf.items():
            self._postings.setdefault(term, {})[doc_id] = c

    def remove(self, doc_id: str) -> None:
        tf = self._tf.pop(doc_id, None)
        if tf is None:
            return
        self._total -= self._len.pop(doc_id)
        for term in tf:
            post = self._postings[term]
            post.pop(doc_id, None)
            if not post:
                del self._postings[term]

    def df(self, term: str) -> int:
        """Documents containing the (already stemmed) ``term``."""
        return len(self._postings.get(term, ()))

    def scores(self, query: str) -> dict[str, float]:
        return self.weighted_scores(dict.fromkeys(tokenize(query), 1.0))

    def weighted_scores(self, terms: dict[str, float]) -> dict[str, float]:
        """BM25 with a weight per (already stemmed) query term: ``sum(weight * term score)``."""
        n_docs = len(self._tf)
        if not n_docs:
            return {}
        avgdl = self._total / n_docs or 1.0
        out: dict[str, float] = {}
        k1, b = self.k1, self.b
        for term, weight in terms.items():
            post = self._postings.get(term)
            if not post or not weight:
                continue
            df = len(post)
            idf = weight * max(math.log((n_docs - df + 0.5) / (df + 0.5)), 0.01)
            for doc_id, tf in post.items():
                denom = tf + k1 * (1 - b + b * self._len[doc_id] / avgdl)
                out[doc_id] = out.get(doc_id, 0.0) + idf * tf * (k1 + 1) / denom
        return out
