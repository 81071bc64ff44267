"""The one BM25 (Okapi, k1=1.5, b=0.75) of the package: the corpus index and Bi-Mem both score with it.

An inverted index keyed by document id that takes additions and removals (conversation memory grows a session at
a time and rewrites its scene summaries) and scores only the postings of the query's terms, as numpy arrays built
once per term and kept until the term's documents change, so a query over tens of thousands of passages stays
around a millisecond. Terms come from a tokenizer given at construction (the shared word tokens by default;
Bi-Mem passes its stemming one).

Formula: Okapi's ``idf(t) = log((N - df + 0.5) / (df + 0.5))`` floored at 0.01 (a term in half the documents or
more then counts almost nothing instead of negatively); ``score(d) = sum_t w_t * idf(t) * tf * (k1 + 1) / (tf + k1
* (1 - b + b * len(d) / avgdl))``. Bi-Mem's retrieval weights were tuned with it, and on LoCoMo it keeps Bi-Mem's
evidence recall where it was, which Lucene's ``log(1 + ...)`` did not for every mode. Simplifications: a query term
counts once however often it repeats (weights are per distinct term), and the lengths are token counts after the
tokenizer (stop words dropped).

>>> bm = BM25()
>>> bm.add("a", "the volcano erupted and lava flowed")
>>> bm.add("b", "a quiet harbour town")
>>> [doc for doc, _ in bm.top("lava volcano", 5)]
['a']
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Hashable, Iterable, Sequence
from typing import Generic, TypeVar, cast

import numpy as np

from ._text import tokenize as _words

__all__ = ["BM25", "idf"]

K = TypeVar("K", bound=Hashable)


def idf(n_docs: int, df: int) -> float:
    """Okapi's BM25 idf, floored at 0.01 so that it stays positive for every ``df`` in ``1..n_docs``.

    >>> round(idf(10, 1), 3), idf(10, 10)
    (1.846, 0.01)
    """
    return max(math.log((n_docs - df + 0.5) / (df + 0.5)), 0.01)


class BM25(Generic[K]):
    """Documents keyed by any hashable id; ``scores`` gives ``{id: score}`` for documents sharing a query term,
    ``top`` the best ``n`` as ``(id, score)`` pairs (ties in the order the documents were added)."""

    def __init__(self, *, k1: float = 1.5, b: float = 0.75, tokenizer: Callable[[str], list[str]] = _words):
        self.k1, self.b = float(k1), float(b)
        self.tokenizer = tokenizer
        self._row: dict[K, int] = {}  # id -> row of the arrays below
        self._ids: list[K | None] = []  # row -> id (None: a free row)
        self._free: list[int] = []
        self._lengths: list[int] = []  # row -> tokens (0 for a free row)
        self._doc_terms: list[tuple[str, ...]] = []  # row -> distinct terms
        self._total = 0
        self._postings: dict[str, dict[int, int]] = {}  # term -> {row: tf}
        self._arrays: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # term -> (rows, tf), built on first use
        self._norm: np.ndarray | None = None  # row -> k1 * (1 - b + b * len / avgdl), built on first use

    @staticmethod
    def from_tokens(docs: Iterable[Sequence[str]], *, k1: float = 1.5, b: float = 0.75) -> BM25[int]:
        """An index of already tokenized documents, their ids ``0..n-1`` in order."""
        bm: BM25[int] = BM25(k1=k1, b=b)
        for i, tokens in enumerate(docs):
            bm.add_tokens(i, tokens)
        return bm

    def __len__(self) -> int:
        return len(self._row)

    def __contains__(self, doc_id: object) -> bool:
        return doc_id in self._row

    # ------------------------------------------------------------------ changes
    def add(self, doc_id: K, text: str) -> None:
        """Index ``text`` under ``doc_id`` (replacing what the id held)."""
        self.add_tokens(doc_id, self.tokenizer(text))

    def add_tokens(self, doc_id: K, tokens: Sequence[str]) -> None:
        if doc_id in self._row:
            self.remove(doc_id)
        counts = Counter(tokens)
        if self._free:
            row = self._free.pop()
            self._ids[row], self._lengths[row], self._doc_terms[row] = doc_id, len(tokens), tuple(counts)
        else:
            row = len(self._ids)
            self._ids.append(doc_id)
            self._lengths.append(len(tokens))
            self._doc_terms.append(tuple(counts))
        self._row[doc_id] = row
        self._total += len(tokens)
        for term, tf in counts.items():
            self._postings.setdefault(term, {})[row] = tf
            self._arrays.pop(term, None)
        self._norm = None

    def remove(self, doc_id: K) -> None:
        """Forget ``doc_id`` (nothing happens for an unknown id)."""
        row = self._row.pop(doc_id, None)
        if row is None:
            return
        for term in self._doc_terms[row]:
            post = self._postings[term]
            del post[row]
            if not post:
                del self._postings[term]
            self._arrays.pop(term, None)
        self._total -= self._lengths[row]
        self._ids[row] = None
        self._lengths[row] = 0
        self._doc_terms[row] = ()
        self._free.append(row)
        self._norm = None

    # ------------------------------------------------------------------ reading
    def df(self, term: str) -> int:
        """Documents containing ``term`` (a term as the tokenizer makes it)."""
        return len(self._postings.get(term, ()))

    def terms(self, query: str | Sequence[str]) -> dict[str, float]:
        """The query's distinct terms, each with weight 1."""
        return dict.fromkeys(self.tokenizer(query) if isinstance(query, str) else query, 1.0)

    def scores(self, query: str | Sequence[str]) -> dict[K, float]:
        """BM25 score of every document sharing a term with ``query`` (text or terms)."""
        return self.weighted_scores(self.terms(query))

    def weighted_scores(self, terms: dict[str, float]) -> dict[K, float]:
        """``sum(weight * term score)`` over the given terms (already tokenized), for every document with one."""
        rows, values = self._score(terms)
        ids = self._ids
        return {cast(K, ids[r]): v for r, v in zip(rows.tolist(), values.tolist(), strict=True)}

    def top(self, query: str | Sequence[str], n: int) -> list[tuple[K, float]]:
        """The ``n`` best documents for ``query``, best first (ties in the order they were added)."""
        rows, values = self._score(self.terms(query))
        if n <= 0 or not rows.size:
            return []
        order = np.lexsort((rows, -values))[:n]
        ids = self._ids
        return [(cast(K, ids[int(rows[i])]), float(values[i])) for i in order]

    def _score(self, terms: dict[str, float]) -> tuple[np.ndarray, np.ndarray]:
        """Rows that share a term with ``terms`` (ascending) and their scores."""
        n_docs = len(self._row)
        empty = (np.zeros(0, dtype=np.int64), np.zeros(0))
        if not n_docs:
            return empty
        norm = self._norms()
        out = np.zeros(len(self._ids))
        hit = np.zeros(len(self._ids), dtype=bool)
        k1 = self.k1
        for term, weight in terms.items():
            post = self._postings.get(term)
            if not post or not weight:
                continue
            rows, tf = self._posting(term, post)
            out[rows] += (weight * idf(n_docs, len(post))) * tf * (k1 + 1.0) / (tf + norm[rows])
            hit[rows] = True
        rows = np.flatnonzero(hit)
        return (rows, out[rows]) if rows.size else empty

    def _posting(self, term: str, post: dict[int, int]) -> tuple[np.ndarray, np.ndarray]:
        got = self._arrays.get(term)
        if got is None:
            got = (np.fromiter(post.keys(), dtype=np.int64, count=len(post)),
                   np.fromiter(post.values(), dtype=np.float64, count=len(post)))
            self._arrays[term] = got
        return got

    def _norms(self) -> np.ndarray:
        if self._norm is None:
            lengths = np.asarray(self._lengths, dtype=np.float64)
            avgdl = self._total / len(self._row) if self._total else 1.0
            self._norm = self.k1 * (1.0 - self.b + self.b * lengths / avgdl)
        return self._norm
