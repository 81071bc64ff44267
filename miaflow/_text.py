"""Text helpers shared by retrieval, judging and benchmarks: tokenising for BM25, the official answer
normalisation (SQuAD / HotpotQA / LoCoMo scorers), exact match and token F1, and a cheap token count.
"""

from __future__ import annotations

import re
import string
from collections import Counter

__all__ = ["tokenize", "normalize_answer", "exact_match", "token_f1", "count_tokens", "STOPWORDS"]

STOPWORDS = frozenset(
    "a an the and or but if of at by for with about against between into through during before after above below "
    "to from up down in out on off over under again further then once here there when where why how all any both "
    "each few more most other some such no nor not only own same so than too very s t can will just don should now "
    "is are was were be been being have has had having do does did doing i me my myself we our ours you your he him "
    "his she her it its they them their what which who whom this that these those am".split()
)
_WORD = re.compile(r"\w+", re.UNICODE)


def tokenize(text: str, *, drop_stopwords: bool = True) -> list[str]:
    """Lower-cased word tokens, stop words removed by default (for BM25)."""
    toks = _WORD.findall(text.lower())
    return [t for t in toks if t not in STOPWORDS] if drop_stopwords else toks


_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = set(string.punctuation)


def normalize_answer(s: str) -> str:
    """Lower case, drop punctuation, articles and extra white space (the official scorers' normalisation)."""
    s = str(s).lower()
    s = "".join(ch for ch in s if ch not in _PUNCT)
    s = _ARTICLES.sub(" ", s)
    return " ".join(s.split())


def exact_match(prediction: str, gold: str) -> float:
    """1.0 when the normalised strings are equal."""
    return float(normalize_answer(prediction) == normalize_answer(gold))


def token_f1(prediction: str, gold: str) -> float:
    """Token-level F1 between normalised prediction and gold.

    >>> round(token_f1("the Eiffel Tower in Paris", "Eiffel Tower"), 2)
    0.67
    """
    p = normalize_answer(prediction).split()
    g = normalize_answer(gold).split()
    if not p or not g:
        return float(p == g)
    common = Counter(p) & Counter(g)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision, recall = same / len(p), same / len(g)
    return 2 * precision * recall / (precision + recall)


def count_tokens(text: str) -> int:
    """A cheap, model-free token estimate (words and punctuation marks), for budgets and ratios."""
    return len(re.findall(r"\w+|[^\w\s]", text))
