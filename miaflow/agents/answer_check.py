"""Answers a user can trust from a small model: a check that an answer is an answer, and a cheap extractive
fallback for when it is not.

An answer is not accepted as is when it is empty (or only stop words), when it restates the question (every content
word of it comes from the question, and the question offers no choice between named options, or it repeats most
of the question), when it repeats an answer already judged wrong for the same task, or when it does not occur in,
or near, the passage it cites: near means at least ``min_support`` of its content words are in that passage. A
yes / no answer to a yes / no question needs no passage check.

The fallback picks a span of the shown passages without a model, deterministically:
1. of all sentences of all passages, the one sharing most content words with the question's unanswered part (its
   words that are not in the passage's title, which names what is already known), then with the whole question,
   then one of a cited passage, then the earlier passage and sentence (a cited passage is not trusted blindly:
   the answer citing it was just rejected);
2. in it, the candidate spans are the runs of words that are neither question words nor stop words, cut at
   punctuation ("of" / "the" may join two capitalised words: "University of Tulsa");
3. the span kept fits the answer type the question's wording asks for ("when" / "what year": a year; "how many":
   a number; else a capitalised word or a number), then is nearest to the question's words in the sentence, then
   first; it is cut to ``max_words`` words.
Simplification: no parser; answer types are read from a few question words only. Questions that name their
candidates ("A or B?", yes / no) are answered through :mod:`miaflow.agents.choices` before this fallback.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from .._text import STOPWORDS, normalize_answer, tokenize
from .choices import is_yes_no_question, question_options

__all__ = ["check_answer", "supported", "restates_question", "is_yes_no_question", "extractive_span",
           "REJECT_REASONS"]

REJECT_REASONS = ("empty", "restates_question", "known_wrong", "unsupported")
"""Why an answer was not accepted, as :func:`check_answer` names it."""

_JOINERS = {"of", "the", "de", "von", "van", "and", "for"}
_WORD = re.compile(r"[\w'\u2019-]+|[^\w\s]")


def _is_yes_no(answer: str) -> bool:
    return normalize_answer(answer) in {"yes", "no"}


def supported(answer: str, text: str, min_support: float = 0.5) -> bool:
    """The answer occurs in ``text``, or at least ``min_support`` of its content words do.

    >>> supported("Tulsa, Oklahoma", "Their first performance was in Tulsa.")
    True
    >>> supported("Paris", "Their first performance was in Tulsa.")
    False
    """
    norm_a, norm_t = normalize_answer(answer), normalize_answer(text)
    if not norm_a:
        return False
    if re.search(r"(?:^|\s)" + re.escape(norm_a) + r"(?:\s|$)", norm_t):
        return True
    toks = set(tokenize(answer))
    if not toks:
        return False
    return len(toks & set(tokenize(text))) / len(toks) >= min_support


def _offers_choice(question: str) -> bool:
    return bool(re.search(r"\bor\b", question.lower()))


def restates_question(answer: str, question: str) -> bool:
    """True when the answer only says back (part of) the question.

    >>> restates_question("the band who released the album", "The band who released the album played where?")
    True
    >>> restates_question("Arthur's Magazine", "Which magazine was started first, Arthur's Magazine or First for Women?")
    False
    >>> restates_question("Tulsa", "The band played its first show in what city?")
    False
    >>> restates_question("University of New South Wales",
    ...                   "Which University, University of New South Wales or Purbanchal University was established first?")
    False
    """
    a = set(tokenize(answer))
    q = set(tokenize(question))
    if not a:
        return False
    if any(normalize_answer(answer) == normalize_answer(o) for o in question_options(question)):
        return False  # one of the options the question names is an answer, however long
    if normalize_answer(answer) == normalize_answer(question):
        return True
    inside = len(a & q) / len(a)
    if inside < 1.0:  # a new word: an answer, unless it is mostly the question said again
        return len(a) >= 4 and inside >= 0.8
    return not _offers_choice(question) or len(a) > max(1, len(q) // 2)


def check_answer(answer: str, question: str, passages: Sequence[tuple[str, str, str]], *,
                 cited: Sequence[str] = (), known_wrong: Sequence[str] = (), min_support: float = 0.5) -> str:
    """Why ``answer`` is not accepted as is ("" when it is); see :data:`REJECT_REASONS`.

    ``passages``: the (doc_id, title, text) triples the model was shown; the answer must be supported by one it
    cites (by any shown passage when it cites none).
    """
    if not normalize_answer(answer) or (not tokenize(answer) and not _is_yes_no(answer)):
        return "empty"
    if any(normalize_answer(answer) == normalize_answer(w) for w in known_wrong if w):
        return "known_wrong"
    if _is_yes_no(answer) and is_yes_no_question(question):
        return ""
    if restates_question(answer, question):
        return "restates_question"
    pool = [p for p in passages if p[0] in set(cited)] or list(passages)
    if not any(supported(answer, f"{title}. {text}", min_support) for _, title, text in pool):
        return "unsupported"
    return ""


def _sentences(text: str) -> list[str]:
    return [s.strip() for s in re.split(r"(?<=[.!?;])\s+", " ".join(text.split())) if s.strip()]


def _spans(sentence: str, qwords: set[str]) -> list[tuple[int, list[str]]]:
    """Runs of non-question, non-stop words (with their start index), cut at punctuation."""
    words = _WORD.findall(sentence)
    runs: list[tuple[int, list[str]]] = []
    cur: list[str] = []
    start = 0
    for i, w in enumerate(words):
        low = w.lower().strip("'\u2019-")
        keep = bool(re.match(r"\w", w)) and low not in STOPWORDS and low not in qwords
        joiner = (cur and low in _JOINERS and i + 1 < len(words) and words[i + 1][:1].isupper()
                  and cur[-1][:1].isupper())
        if keep or joiner:
            if not cur:
                start = i
            cur.append(w)
        elif cur:
            runs.append((start, cur))
            cur = []
    if cur:
        runs.append((start, cur))
    return [(s, r) for s, r in runs if r[-1].lower() not in _JOINERS]


_WANTS_YEAR = re.compile(r"^(when|what year|which year|in what year|in which year)\b|\b(what|which) (year|decade)\b", re.I)
_WANTS_NUMBER = re.compile(r"\bhow (many|much|long|old|tall|far|high)\b|\bwhat (number|percentage|population)\b",
                           re.I)


def _wanted(question: str) -> str:
    """The answer type a question asks for, as far as its wording shows: "year", "number" or "name"."""
    q = " ".join(question.split())
    if _WANTS_YEAR.search(q):
        return "year"
    if _WANTS_NUMBER.search(q):
        return "number"
    return "name"


def _fits(run: list[str], wanted: str) -> bool:
    text = " ".join(run)
    if wanted == "year":
        return bool(re.search(r"\b(1[0-9]{3}|20[0-9]{2})\b", text))
    if wanted == "number":
        return bool(re.search(r"\d", text)) or any(w.lower() in _NUMBER_WORDS for w in run)
    return any(w[:1].isupper() or w[:1].isdigit() for w in run)


_NUMBER_WORDS = {"one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve",
                 "twenty", "thirty", "forty", "fifty", "hundred", "thousand", "million", "billion"}


def extractive_span(question: str, passages: Sequence[tuple[str, str, str]], *, prefer: Sequence[str] = (),
                    max_words: int = 6, avoid: Sequence[str] = ()) -> tuple[str, str]:
    """(span, doc_id) from the best-matching sentence of all passages; ("", "") when none is found.
    Spans equal to an ``avoid`` answer (known wrong) are skipped.

    >>> extractive_span("The band had its first performance in what city?",
    ...                 [("b", "Band", "The band formed in 2009. Their first performance was in Tulsa, Oklahoma.")])
    ('Tulsa', 'b')
    >>> extractive_span("When did the band form?",
    ...                 [("b", "Band", "The band, from Tulsa, formed in 2009.")])
    ('2009', 'b')
    """
    qwords = set(tokenize(question))
    wanted = _wanted(question)
    bad = {normalize_answer(a) for a in avoid}
    preferred = set(prefer)
    scored: list[tuple[tuple[int, int, int, int, int], str, str]] = []
    for rank, (doc_id, title, text) in enumerate(passages):
        rest = (qwords - set(tokenize(title))) or qwords  # the title names what is known; the rest is asked
        for i, sent in enumerate(_sentences(text)):
            words = set(tokenize(sent))
            key = (len(words & rest), len(words & qwords), int(doc_id in preferred), -rank, -i)
            scored.append((key, sent, doc_id))
    scored.sort(key=lambda x: x[0], reverse=True)
    for _key, sent, doc_id in scored:
        qpos = [i for i, w in enumerate(_WORD.findall(sent)) if w.lower() in qwords]
        cands = [c for c in _spans(sent, qwords) if normalize_answer(" ".join(c[1][:max_words])) not in bad]
        if not cands:
            continue

        def rank_span(c: tuple[int, list[str]], qpos: list[int] = qpos) -> tuple[int, int, int, int]:
            start, run = c
            named = any(w[:1].isupper() or w[:1].isdigit() for w in run)
            dist = min((abs(start - p) for p in qpos), default=start)
            return (0 if _fits(run, wanted) else 1, 0 if named else 1, dist, start)

        _start, run = min(cands, key=rank_span)
        return " ".join(run[:max_words]), doc_id
    return "", ""
