"""Task streams of ``miaflow bench learn`` (the Evo-Memory protocol), built from the questions of a QA data file.

Everything here is plain data work (no model, no index), so the splits can be checked on their own.

- ``repeat``: the stream is ``limit`` questions of the file. Questions that have a transfer partner in the pool
  (below) come first and their partners are kept out of the stream (so they stay held out), then the others,
  all in file order; each seed shuffles the stream (``stream_order``), and epoch 2 answers the same tasks again in
  the same order (MemRL's protocol: does the memory of a task help on the same task?).
- ``transfer``: held-out questions, never in the stream, that share a supporting document with an earlier stream
  question: a HotpotQA ``supporting_facts.title`` or a MuSiQue paragraph with ``is_supporting`` (titles compared
  case-insensitively). The pool is the rest of the data file plus any ``--transfer-pool`` files and, for
  MuSiQue, the single-hop steps of ``question_decomposition`` (each step's ``paragraph_support_idx`` names its
  supporting paragraph; steps that refer to an earlier answer, ``#1``, or are written as ``entity >> relation``
  are skipped). A step of a stream question shares its supporting paragraph, the bridge entity, with that
  question. Transfer tasks are answered once, after the repeat epochs, with the memory the stream left.
- ``distractor``: pairs (source, near-duplicate) whose near-duplicate has a different answer, so the source's
  recalled case misleads on it. Two sources, both from the pool:
  ``flipped``: a comparison question ``..., A or B?`` whose answer is A or B and which holds exactly one
  comparative of a fixed list (older/younger, first/last, larger/smaller, west/east, ...); the near-duplicate swaps
  that word, so its gold answer is the other option (same documents, same template, opposite answer).
  ``template``: two questions of the file whose templates (capitalised words, numbers and quoted titles masked
  as one entity token) have a word-set Jaccard >= ``threshold``, different normalised answers and no shared
  supporting title: same template, different entity. The distractor stream is every source (seed order) followed
  by every near-duplicate, run for the same epochs in a fresh memory; the benchmark checks where the source's
  case ranks in the near-duplicate's recall (Q-values should push it down, similarity alone cannot).
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

from .._text import normalize_answer, token_f1

__all__ = ["LearnTask", "from_examples", "musique_steps", "select_stream", "transfer_split", "flip_comparative",
           "question_template", "template_similarity", "distractor_pairs", "stream_order", "FLIPS"]

FLIPS: dict[str, str] = {
    "older": "younger", "oldest": "youngest", "first": "last", "earlier": "later", "earliest": "latest",
    "larger": "smaller", "largest": "smallest", "bigger": "smaller", "longer": "shorter", "longest": "shortest",
    "higher": "lower", "highest": "lowest", "taller": "shorter", "tallest": "shortest", "west": "east",
    "north": "south", "more": "fewer",
}
"""Comparatives a ``flipped`` near-duplicate swaps (both directions)."""
_FLIP_ANY = {**FLIPS, **{v: k for k, v in FLIPS.items() if v not in FLIPS}}
_OPTIONS = re.compile(r",\s*(?:the\s+)?(?P<a>[^,?]+?)\s+or\s+(?:the\s+)?(?P<b>[^,?]+?)\s*\?\s*$")


@dataclass(kw_only=True, frozen=True, slots=True)
class LearnTask:
    """One task of a stream."""

    id: str
    """Unique id (the data's id; ``ID/stepK`` for a MuSiQue step, ``ID/flip`` for a flipped near-duplicate)."""
    question: str
    answer: str
    aliases: tuple[str, ...] = ()
    """Other accepted answers (MuSiQue)."""
    titles: tuple[str, ...] = ()
    """Titles of the supporting documents."""
    source: str = ""
    """Id of the data record whose paragraphs hold this task's evidence (the corpus keeps that record)."""
    split: str = "repeat"
    """``repeat``, ``transfer``, ``distractor`` (a source) or ``near_duplicate``."""
    partner: str | None = None
    """The linked task: the stream question a transfer task shares a document with, or a near-duplicate's source."""
    link: str = ""
    """What links them: the shared title, ``flipped older->younger`` or ``template 0.83``."""
    kind: str = ""
    """The data's question type (bridge, comparison, 2hop, ...; ``step`` for a MuSiQue step)."""


def from_examples(examples: Iterable[Any]) -> list[LearnTask]:
    """Tasks from :class:`~miaflow.tools.records.QAExample` records (``load_questions``)."""
    return [LearnTask(id=q.id, question=q.question, answer=q.answer, aliases=tuple(q.answer_aliases),
                      titles=tuple(q.supporting_titles or q.supporting_ids), source=q.id, kind=q.kind)
            for q in examples]


def _records(path: Path) -> list[dict[str, Any]]:
    text = path.read_text(encoding="utf-8").strip()
    if text.startswith("["):
        return [r for r in json.loads(text) if isinstance(r, dict)]
    return [json.loads(x) for x in text.splitlines() if x.strip()]


def musique_steps(path: str | Path) -> list[LearnTask]:
    """The self-contained single-hop steps of a MuSiQue questions file's ``question_decomposition``."""
    out = []
    for rec in _records(Path(path)):
        paras = rec.get("paragraphs") or []
        for k, step in enumerate(rec.get("question_decomposition") or []):
            q, a = str(step.get("question", "")).strip(), str(step.get("answer", "")).strip()
            idx = step.get("paragraph_support_idx")
            if not q or not a or "#" in q or ">>" in q or not isinstance(idx, int) or not 0 <= idx < len(paras):
                continue
            q = q[0].upper() + q[1:] + ("" if q.endswith("?") else "?")
            out.append(LearnTask(id=f"{rec.get('id')}/step{k + 1}", question=q, answer=a,
                                 titles=(str(paras[idx].get("title", "")).strip(),), source=str(rec.get("id")),
                                 kind="step"))
    return out


def _key(title: str) -> str:
    return " ".join(title.casefold().split())


def _qkey(question: str) -> str:
    return " ".join(normalize_answer(question).split())


def transfer_split(stream: Sequence[LearnTask], pool: Iterable[LearnTask], limit: int | None = None
                   ) -> list[LearnTask]:
    """Pool tasks (in pool order) that share a supporting title with a stream task and are not in the stream."""
    first: dict[str, LearnTask] = {}
    for t in stream:
        for title in t.titles:
            first.setdefault(_key(title), t)
    ids, texts = {t.id for t in stream}, {_qkey(t.question) for t in stream}
    out: list[LearnTask] = []
    for cand in pool:
        if cand.id in ids or _qkey(cand.question) in texts:
            continue
        shared = [title for title in cand.titles if _key(title) in first]
        if shared:
            out.append(replace(cand, split="transfer", partner=first[_key(shared[0])].id, link=shared[0]))
            ids.add(cand.id)
            texts.add(_qkey(cand.question))
        if limit is not None and len(out) >= limit:
            break
    return out


def select_stream(questions: Sequence[LearnTask], limit: int, pool: Sequence[LearnTask]) -> list[LearnTask]:
    """``limit`` questions. In file order, a question with a partner in ``pool`` (a shared supporting title) is
    taken and its partners are kept out of the stream, so they stay held out; then the other questions follow
    in file order."""
    titles: dict[str, set[str]] = {}
    for p in pool:
        for title in p.titles:
            titles.setdefault(_key(title), set()).add(p.id)
    linked: list[LearnTask] = []
    reserved: set[str] = set()
    for q in questions:
        if q.id in reserved:
            continue
        partners = {i for t in q.titles for i in titles.get(_key(t), ())} - {q.id} - {x.id for x in linked}
        if partners:
            linked.append(q)
            reserved |= partners
    keep = {q.id for q in linked} | reserved
    return (linked + [q for q in questions if q.id not in keep])[:limit]


def flip_comparative(task: LearnTask) -> LearnTask | None:
    """The near-duplicate of a two-option comparison question with its comparative swapped, or None."""
    m = _OPTIONS.search(task.question)
    if m is None or " both " in f" {task.question.lower()} ":
        return None
    a, b = m.group("a").strip(), m.group("b").strip()
    fa, fb = token_f1(task.answer, a), token_f1(task.answer, b)
    if max(fa, fb) < 0.5 or min(fa, fb) >= 0.5:
        return None
    words = [w for w in re.findall(r"[A-Za-z]+", task.question[: m.start()]) if w.lower() in _FLIP_ANY]
    if len(words) != 1:
        return None
    word = words[0]
    new = _FLIP_ANY[word.lower()]
    new = new.capitalize() if word[0].isupper() else new
    question = re.sub(rf"\b{word}\b", new, task.question, count=1)
    return LearnTask(id=f"{task.id}/flip", question=question, answer=b if fa > fb else a, titles=task.titles,
                     source=task.source or task.id, split="near_duplicate", partner=task.id,
                     link=f"flipped {word.lower()}->{new.lower()}", kind=task.kind)


def question_template(question: str) -> list[str]:
    """The question's words with entities masked: quoted spans, numbers and capitalised words (but the first)
    become ``E``; a run of them is one ``E``.

    >>> question_template('Who was born first, Morgan Llywelyn or Robert Jordan?')
    ['who', 'was', 'born', 'first', 'E', 'or', 'E']
    """
    text = re.sub(r"[\"“][^\"”]*[\"”]|`[^`']*'", " QQENT ", question)
    out: list[str] = []
    for i, w in enumerate(re.findall(r"[\w'&.-]+", text)):
        w = w.strip(".'-")
        if not w:
            continue
        ent = w == "QQENT" or w[0].isdigit() or (i > 0 and w[0].isupper())
        tok = "E" if ent else w.lower()
        if not (tok == "E" and out and out[-1] == "E"):
            out.append(tok)
    return out


def template_similarity(q1: str, q2: str) -> float:
    """Word-set Jaccard of the two questions' templates."""
    a, b = set(question_template(q1)), set(question_template(q2))
    return len(a & b) / len(a | b) if a | b else 0.0


def distractor_pairs(pool: Sequence[LearnTask], limit: int, *, threshold: float = 0.8
                     ) -> list[tuple[LearnTask, LearnTask]]:
    """Up to ``limit`` (source, near-duplicate) pairs, ``flipped`` and ``template`` ones alternating, no task in
    two pairs."""
    flipped = []
    for t in pool:
        f = flip_comparative(t)
        if f is not None:
            flipped.append((replace(t, split="distractor"), f))
    mined = []
    used: set[str] = set()
    for i, a in enumerate(pool):
        if a.id in used or len(question_template(a.question)) < 4:
            continue
        for b in pool[i + 1:]:
            if b.id in used or normalize_answer(a.answer) == normalize_answer(b.answer):
                continue
            if {_key(t) for t in a.titles} & {_key(t) for t in b.titles}:
                continue
            sim = template_similarity(a.question, b.question)
            if sim >= threshold and "E" in question_template(b.question):
                mined.append((replace(a, split="distractor"),
                              replace(b, split="near_duplicate", partner=a.id, link=f"template {sim:.2f}")))
                used |= {a.id, b.id}
                break
    out: list[tuple[LearnTask, LearnTask]] = []
    taken: set[str] = set()
    for k in range(max(len(flipped), len(mined))):
        for lst in (flipped, mined):
            if k < len(lst) and len(out) < limit:
                src, dup = lst[k]
                if src.id not in taken and dup.id not in taken:
                    out.append(lst[k])
                    taken |= {src.id, dup.id}
    return out


_T = TypeVar("_T")


def stream_order(tasks: Sequence[_T], seed: int) -> list[_T]:
    """The tasks (or task pairs) in the order of seed ``seed`` (a seeded shuffle; the same seed gives the same
    order)."""
    out = list(tasks)
    random.Random(seed).shuffle(out)
    return out
