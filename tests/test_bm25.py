"""The one BM25 (``miaflow._bm25``): scores against the formula written out by hand, additions and removals that
leave the index as if built from scratch, and the top-n order."""

from __future__ import annotations

import doctest
import math
import random

import pytest

import miaflow._bm25 as bm25_module
from miaflow._bm25 import BM25, idf

DOCS = {
    "a": "the volcano erupted and lava flowed into the sea",
    "b": "a quiet harbour town by the sea",
    "c": "lava lava everywhere after the volcano",
    "d": "the town council met about the harbour",
}


def _by_hand(docs: dict[str, list[str]], query: list[str], k1: float = 1.5, b: float = 0.75) -> dict[str, float]:
    n = len(docs)
    avgdl = sum(len(t) for t in docs.values()) / n
    out: dict[str, float] = {}
    for term in dict.fromkeys(query):
        df = sum(term in t for t in docs.values())
        if not df:
            continue
        w = max(math.log((n - df + 0.5) / (df + 0.5)), 0.01)
        for d, toks in docs.items():
            tf = toks.count(term)
            if tf:
                out[d] = out.get(d, 0.0) + w * tf * (k1 + 1) / (tf + k1 * (1 - b + b * len(toks) / avgdl))
    return out


def _index(docs: dict[str, str]) -> BM25:
    bm = BM25()
    for d, text in docs.items():
        bm.add(d, text)
    return bm


def test_scores_follow_the_formula():
    bm = _index(DOCS)
    toks = {d: bm.tokenizer(t) for d, t in DOCS.items()}
    for query in ("lava volcano", "harbour town sea", "council", "nothing here", "lava lava sea"):
        want = _by_hand(toks, bm.tokenizer(query))
        got = bm.scores(query)
        assert set(got) == set(want)
        for d in want:
            assert got[d] == pytest.approx(want[d], rel=1e-9)


def test_idf_is_positive_even_for_a_term_in_every_document():
    assert all(idf(50, df) > 0 for df in range(1, 51))
    bm = _index({"x": "sea", "y": "sea sea", "z": "sea shore"})
    assert all(v > 0 for v in bm.scores("sea").values())


def test_removals_and_replacements_match_a_fresh_index():
    rng = random.Random(0)
    words = "lava sea town harbour volcano council quiet flowed met ash rock".split()
    live: dict[str, str] = {}
    bm = BM25()
    for step in range(300):
        doc = f"d{rng.randrange(40)}"
        if doc in live and rng.random() < 0.4:
            bm.remove(doc)
            del live[doc]
        else:
            live[doc] = " ".join(rng.choice(words) for _ in range(rng.randint(1, 8)))
            bm.add(doc, live[doc])
        if step % 25 == 0:
            fresh = _index(live)
            assert len(bm) == len(fresh) == len(live)
            for query in ("lava sea", "council rock ash", "town"):
                got, want = bm.scores(query), fresh.scores(query)
                assert set(got) == set(want)
                assert all(got[d] == pytest.approx(want[d], rel=1e-9) for d in want)
                assert bm.df(query.split()[0]) == fresh.df(query.split()[0])
    bm.remove("never-added")  # an unknown id changes nothing
    assert len(bm) == len(live)


def test_top_is_best_first_with_ties_in_insertion_order():
    bm = BM25.from_tokens([["sea"], ["lava"], ["sea"], ["sea", "lava"]])
    top = bm.top(["sea"], 10)
    assert [d for d, _ in top] == [0, 2, 3]  # 0 and 2 tie (same length), 3 is longer
    assert top[0][1] == top[1][1] > top[2][1]
    assert bm.top(["sea"], 1) == top[:1] and bm.top(["sea"], 0) == [] and bm.top(["ash"], 3) == []
    assert BM25().top("anything", 3) == [] and BM25().scores("anything") == {}


def test_weighted_terms_scale_each_term():
    bm = _index(DOCS)
    one = bm.weighted_scores({"lava": 1.0})
    half = bm.weighted_scores({"lava": 0.5, "council": 0.0})
    assert set(half) == set(one) and all(half[d] == pytest.approx(one[d] / 2) for d in one)


def test_doctests():
    assert doctest.testmod(bm25_module).failed == 0
