"""Bi-Mem's BM25 terms: the shared word tokens (stop words dropped), stemmed, so that "hikes" meets "hiking".

The index itself is the package's one BM25 (:class:`miaflow._bm25.BM25`, an incremental inverted index with
Okapi's idf), given this tokenizer: conversation memory grows a session at a time and is queried often, so it
takes additions and removals and only touches the postings of the query's terms.
"""

from __future__ import annotations

from functools import lru_cache

from ..._bm25 import BM25
from ..._text import tokenize as _words

__all__ = ["new_index", "stem", "tokenize"]


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


def new_index() -> BM25[str]:
    """An empty BM25 (the package's one, :mod:`miaflow._bm25`) over Bi-Mem's stemmed terms, keyed by item id."""
    return BM25(tokenizer=tokenize)
