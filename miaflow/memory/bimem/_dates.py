"""Dates in questions and in turn times, for date-aware retrieval.

Questions such as "What did Tim say on 16 November, 2023?" or "Which tournament did Nate win in November 2022?"
name when something was said; the facts of sessions held then (or in the days after, when people report what
happened "last week") are the likely evidence. Understood: a day ("16 November, 2023", "November 16th, 2023",
"2023-11-16"), a month of a year ("November 2022"), and a bare month after "in" or "during" ("in December",
any year). Turn times are read the same way (LoCoMo writes "1:56 pm on 8 May, 2023"; ISO dates also work).
Simplified: no relative dates ("last week"), no bare years, no ranges beyond their end points.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from functools import lru_cache

__all__ = ["DateSpan", "parse_time", "query_spans", "in_spans", "MONTH_WORDS"]

_MONTHS = ("january", "february", "march", "april", "may", "june", "july", "august", "september", "october",
           "november", "december")
_MONTH_NUM = {m: i + 1 for i, m in enumerate(_MONTHS)} | {m[:3]: i + 1 for i, m in enumerate(_MONTHS)} | {"sept": 9}
MONTH_WORDS = frozenset(_MONTHS) | frozenset(
    "monday tuesday wednesday thursday friday saturday sunday".split())
"""Calendar words: never expanded into their neighbours (one month is as similar to the next as to itself)."""

_M = r"(january|february|march|april|may|june|july|august|september|october|november|december|jan|feb|mar|apr|" \
     r"jun|jul|aug|sept|sep|oct|nov|dec)\.?"
_DAY_MONTH_YEAR = re.compile(r"\b(\d{1,2})(?:st|nd|rd|th)?\s+(?:of\s+)?" + _M + r",?\s+(\d{4})\b", re.I)
_MONTH_DAY_YEAR = re.compile(r"\b" + _M + r"\s+(\d{1,2})(?:st|nd|rd|th)?,?\s*(\d{4})\b", re.I)
_MONTH_YEAR = re.compile(r"\b" + _M + r",?\s+(\d{4})\b", re.I)
_ISO = re.compile(r"\b(\d{4})-(\d{2})-(\d{2})")
_BARE_MONTH = re.compile(r"\b(?:in|during|early|late|mid|beginning of|end of)\s+" + _M + r"\b(?!\s*\d)", re.I)


@dataclass(frozen=True, slots=True)
class DateSpan:
    """Days from ``start`` to ``end``; ``month`` alone (start/end None) means that month of any year."""

    start: dt.date | None = None
    end: dt.date | None = None
    month: int = 0


def _month(word: str) -> int:
    w = word.lower().rstrip(".")
    return _MONTH_NUM.get(w) or _MONTH_NUM[w[:3]]


def _date(y: str, m: int, d: str) -> dt.date | None:
    try:
        return dt.date(int(y), m, int(d))
    except ValueError:
        return None


@lru_cache(maxsize=4096)
def parse_time(text: str) -> dt.date | None:
    """The date in a turn's time string, or None.

    >>> parse_time("7:49 pm on 20 May, 2022"), parse_time("2023-05-08T13:56"), parse_time("yesterday")
    (datetime.date(2022, 5, 20), datetime.date(2023, 5, 8), None)
    """
    if not text:
        return None
    if m := _ISO.search(text):
        return _date(m[1], int(m[2]), m[3])
    if m := _DAY_MONTH_YEAR.search(text):
        return _date(m[3], _month(m[2]), m[1])
    if m := _MONTH_DAY_YEAR.search(text):
        return _date(m[3], _month(m[1]), m[2])
    return None


def query_spans(question: str) -> list[DateSpan]:
    """The dates a question names.

    >>> [(s.start.isoformat(), s.end.isoformat()) for s in query_spans("Where was Nate in November 2022?")]
    [('2022-11-01', '2022-11-30')]
    >>> query_spans("What deal did John get in December?")[0].month
    12
    """
    spans: list[DateSpan] = []
    taken: list[tuple[int, int]] = []

    def free(m: re.Match) -> bool:
        return not any(a <= m.start() < b for a, b in taken)

    for m in _ISO.finditer(question):
        if d := _date(m[1], int(m[2]), m[3]):
            spans.append(DateSpan(d, d))
            taken.append(m.span())
    for m in _DAY_MONTH_YEAR.finditer(question):
        if free(m) and (d := _date(m[3], _month(m[2]), m[1])):
            spans.append(DateSpan(d, d))
            taken.append(m.span())
    for m in _MONTH_DAY_YEAR.finditer(question):
        if free(m) and (d := _date(m[3], _month(m[1]), m[2])):
            spans.append(DateSpan(d, d))
            taken.append(m.span())
    for m in _MONTH_YEAR.finditer(question):
        if free(m):
            y, mo = int(m[2]), _month(m[1])
            nxt = dt.date(y + 1, 1, 1) if mo == 12 else dt.date(y, mo + 1, 1)
            spans.append(DateSpan(dt.date(y, mo, 1), nxt - dt.timedelta(days=1)))
            taken.append(m.span())
    for m in _BARE_MONTH.finditer(question):
        if free(m):
            spans.append(DateSpan(month=_month(m[1])))
    return spans


def in_spans(day: dt.date | None, spans: list[DateSpan], before: int, after: int) -> bool:
    """Whether ``day`` falls in one of ``spans``, widened by ``before`` days before and ``after`` days after.

    >>> in_spans(dt.date(2022, 11, 5), query_spans("in November 2022"), 2, 7)
    True
    """
    if day is None:
        return False
    for s in spans:
        if s.start is None or s.end is None:
            if day.month == s.month or (day - dt.timedelta(days=after)).month == s.month:
                return True
        elif s.start - dt.timedelta(days=before) <= day <= s.end + dt.timedelta(days=after):
            return True
    return False
