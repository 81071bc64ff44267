"""Questions that name their own candidates: "Who was older, A or B?" and "Are X and Y both ...?".

A comparison question's answer is one of the options it names, and a yes / no question's answer is "yes" or "no".
A small reader often answers such questions with something else (a date from a passage, a third name), which can
never be right. The executor therefore maps its answer onto the candidates:

1. an answer that names one option (or says yes / no) becomes that option, spelled as the question spells it;
2. for "first / earlier / older / before" and "last / later / younger / more recent" comparisons whose two option
   passages each give a year, the option with the earlier (or later) first-mentioned year is taken: the small model
   cannot compare numbers, a comparison of the years it was shown can;
3. otherwise the model is asked once more with the candidates spelled out, and its reply is mapped again;
4. what still names no candidate falls back to the first option (a choice question) or "yes" (a yes / no question):
   a candidate is the only kind of answer that can be right.

Option parsing is deliberately simple: the options are the two phrases around " or " inside the clause that
holds it (after a comma or colon), cut where a capitalised name stops ("Purbanchal University was established
first" gives "Purbanchal University").
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from .._text import normalize_answer, tokenize

__all__ = ["question_options", "is_yes_no_question", "match_option", "compare_by_year", "choice_hint"]

_YES_NO_LEAD = {"is", "are", "was", "were", "do", "does", "did", "can", "could", "has", "have", "had", "will",
                "would", "should", "shall", "may", "might"}
_JOIN = {"of", "the", "and", "de", "von", "van", "for", "in", "on", "a", "&", "v.", "v", "vs.", "vs"}
_EARLY = re.compile(r"\b(first|earlier|earliest|older|oldest|before|sooner|predate[sd]?)\b", re.I)
_LATE = re.compile(r"\b(last|later|latest|younger|youngest|after|more recent(ly)?|most recent(ly)?|newer|newest)\b",
                   re.I)
_YEAR = re.compile(r"\b(1[0-9]{3}|20[0-9]{2})\b")


def _cut_name(words: list[str], *, forward: bool) -> list[str]:
    """The capitalised run at the start (``forward``) or end of ``words`` ("of"/"and" may join two names)."""
    seq = words if forward else words[::-1]
    out: list[str] = []
    for i, w in enumerate(seq):
        bare = w.strip("\"'“”‘’()")
        if bare[:1].isupper() or bare[:1].isdigit():
            out.append(w)
        elif out and bare.lower() in _JOIN and i + 1 < len(seq) and seq[i + 1].strip("\"'“”‘’(")[:1].isupper():
            out.append(w)
        else:
            break
    while out and out[-1].strip("\"'").lower() in _JOIN:
        out.pop()
    return out if forward else out[::-1]


def question_options(question: str) -> tuple[str, ...]:
    """The two options a comparison question names, or () when it names none.

    >>> question_options("Who was older, George Atzerodt or Andrew Johnson?")
    ('George Atzerodt', 'Andrew Johnson')
    >>> question_options("Was Pepper Keenan or Rob Parissi born first?")
    ('Pepper Keenan', 'Rob Parissi')
    >>> question_options("Which University, University of New South Wales or Purbanchal University was established first ?")
    ('University of New South Wales', 'Purbanchal University')
    >>> question_options("Which genus has more species: Sarracenia or Butea?")
    ('Sarracenia', 'Butea')
    >>> question_options('Which came to market first, "Hey Pa! A Goat on the Roof" or "Poleconomy"?')
    ('Hey Pa! A Goat on the Roof', 'Poleconomy')
    >>> question_options("Which case was decided first, Selle v. Gibb or Reynolds v. Sims?")
    ('Selle v. Gibb', 'Reynolds v. Sims')
    >>> question_options("Where did the band play first?")
    ()
    """
    q = " ".join(question.split()).rstrip(" ?.!")
    quoted = re.search(r'["\u201c]([^"\u201d]+)["\u201d]\s*,?\s+or\s+["\u201c]([^"\u201d]+)["\u201d]', q)
    if quoted:  # quoted titles may hold any words: 'Which came first, "Hey Pa! ..." or "Poleconomy"?'
        return (quoted.group(1).strip(), quoted.group(2).strip())
    m = re.search(r"\s+or\s+", q)
    if not m or len(re.findall(r"\bor\b", q)) > 1:
        return ()
    left, right = q[: m.start()], q[m.end():]
    left_clause = re.split(r"[,:;]\s*", left)[-1]
    right_clause = re.split(r"\s*[,:;]", right)[0]
    lw, rw = left_clause.split(), right_clause.split()
    a = _cut_name(lw, forward=False)
    b = _cut_name(rw, forward=True)
    if not a or not b:  # lowercase options ("rice or wheat"): the clause words next to "or"
        if len(re.split(r"[,:;]", left)) > 1 and 0 < len(lw) <= 4 and 0 < len(rw) <= 4:
            a, b = lw, rw
        else:
            return ()
    if a == lw and len(re.split(r"[,:;]", left)) == 1 and lw and lw[0].lower() in _YES_NO_LEAD | {"which", "who"}:
        a = a[1:]  # "Was Pepper Keenan ..." / "Which Company ...": the question word is not part of the option
        if not a:
            return ()
    opts = (" ".join(a).strip("\"'“”"), " ".join(b).strip("\"'“”"))
    return opts if all(normalize_answer(o) for o in opts) and normalize_answer(opts[0]) != normalize_answer(opts[1]) \
        else ()


def is_yes_no_question(question: str) -> bool:
    """True for questions that start with an auxiliary verb and name no options ("Were X and Y both ...?").

    >>> is_yes_no_question("Were Scott Derrickson and Ed Wood of the same nationality?")
    True
    >>> is_yes_no_question("Was Pepper Keenan or Rob Parissi born first?")
    False
    >>> is_yes_no_question("Which city hosted it?")
    False
    """
    words = normalize_answer(question).split()
    return bool(words) and words[0] in _YES_NO_LEAD and not question_options(question)


def match_option(answer: str, options: Sequence[str]) -> str | None:
    """The option ``answer`` names (most shared words; none shared: None), or yes / no for a yes / no question
    (``options`` = ("yes", "no")).

    >>> match_option("Andrew Johnson was older", ("George Atzerodt", "Andrew Johnson"))
    'Andrew Johnson'
    >>> match_option("Kenneth S. Webb", ("Leslie Goodwins", "Kenneth Webb"))
    'Kenneth Webb'
    >>> match_option("1965", ("Halestorm", "Audioslave")) is None
    True
    """
    norm = normalize_answer(answer)
    if not norm:
        return None
    for o in options:
        if normalize_answer(o) == norm:
            return o
    words = set(tokenize(answer)) or set(norm.split())
    scored = []
    for o in options:
        ow = set(tokenize(o)) or set(normalize_answer(o).split())
        shared = len(words & ow)
        scored.append((shared / max(1, len(ow)), shared, o))
    scored.sort(key=lambda s: (-s[0], -s[1]))
    best = scored[0]
    if best[1] == 0 or (len(scored) > 1 and scored[1][:2] == best[:2]):
        return None
    return best[2]


def _option_passage(option: str, passages: Sequence[tuple[str, str, str]]) -> str | None:
    """The text of the passage about ``option``: its title names the option (else the one that names it first)."""
    ow = set(tokenize(option))
    if not ow:
        return None
    titled = [(len(ow & set(tokenize(t))) / len(ow), x) for _, t, x in passages]
    best = max(titled, key=lambda s: s[0], default=(0.0, ""))
    if best[0] >= 0.5:
        return best[1]
    norm = normalize_answer(option)
    for _, _, x in passages:
        if norm and norm in normalize_answer(x[:200]):
            return x
    return None


def compare_by_year(question: str, options: Sequence[str], passages: Sequence[tuple[str, str, str]]) -> str | None:
    """For an earlier / later comparison, the option whose passage's first year is earlier / later; None when the
    question asks no such thing, a passage or a year is missing, or the years tie.

    >>> compare_by_year("Who was born first, A. Smith or B. Jones?", ("A. Smith", "B. Jones"),
    ...                 [("1", "A. Smith", "A. Smith (born 1950) is a writer."),
    ...                  ("2", "B. Jones", "B. Jones (1931-2001) was a poet.")])
    'B. Jones'
    """
    early, late = bool(_EARLY.search(question)), bool(_LATE.search(question))
    if early == late or len(options) != 2:
        return None
    years = []
    for o in options:
        text = _option_passage(o, passages)
        found = _YEAR.search(text) if text else None
        if found is None:
            return None
        years.append(int(found.group(1)))
    if years[0] == years[1]:
        return None
    pick = min if early else max
    return options[years.index(pick(years))]


def choice_hint(options: Sequence[str]) -> str:
    """The line added to the answer prompt when the model is asked again with the candidates spelled out."""
    return "Answer with exactly one of: " + " / ".join(options) + "."
