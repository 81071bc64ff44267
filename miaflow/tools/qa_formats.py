"""HotpotQA and MuSiQue: their paragraphs as a corpus, their questions as :class:`QAExample`.

- HotpotQA (distractor): both the Hugging Face schema (``context = {"title": [...], "sentences": [[...]]}``, JSON
  Lines) and the original release (``context = [[title, [sentences]], ...]``, a JSON list) are read. Paragraphs
  are the joined sentences; they are deduplicated by title across questions (the first text seen is kept), and
  the id of a paragraph is its title, as in Wikipedia. Supporting ids are the titles in ``supporting_facts``.
- MuSiQue: a questions file (JSON list or JSON Lines of ``{id, question, answer, paragraphs: [{title,
  paragraph_text, is_supporting}]}``) or a corpus file (a JSON list of ``{title, text}``). MuSiQue repeats titles
  for different paragraphs, so ids come from :func:`~miaflow.tools.loaders.title_ids`: the title, with a short
  hash of the text appended only when the title is ambiguous. A questions file and the corpus built from the same
  paragraphs therefore give the same ids.
- ``jsonl`` questions: miaflow's own ``{id, question, answer, supporting_ids}`` lines (the shipped sample).

A questions file that is missing, not JSON, or holds a line that is not an object raises
:class:`QuestionsFileError` (an :class:`~miaflow.errors.InvalidInputError`) naming the file and the line.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from ..errors import CorpusError, InvalidInputError
from ._paths import corpus_root
from .loaders import CorpusLoad, read_records, title_ids
from .records import Document, QAExample

__all__ = ["hotpotqa_corpus", "musique_corpus", "load_questions", "question_lines", "QuestionsFileError",
           "QUESTION_FORMATS"]

log = logging.getLogger(__name__)

QUESTION_FORMATS = ("auto", "hotpotqa", "musique", "jsonl")


class QuestionsFileError(InvalidInputError, CorpusError):
    """A questions file is missing, unreadable or malformed; the message names the file and the line."""


def _questions_path(path: str | Path) -> Path:
    p = Path(path).expanduser()
    if not p.exists():
        raise QuestionsFileError(f"questions file not found: {p}; give a .jsonl or .json questions file")
    if p.is_dir():
        raise QuestionsFileError(f"{p} is a folder; give the questions file (.json or .jsonl)")
    return p


def question_lines(path: str | Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """``(where, record)`` for each non-blank line of a JSON Lines questions file, ``where`` being
    ``name:line`` (the true line number). Each line must be a JSON object."""
    p = _questions_path(path)
    try:
        fh = p.open(encoding="utf-8", errors="replace")
    except OSError as e:
        raise QuestionsFileError(f"cannot read questions file {p}: {e.strerror or e}") from None
    with fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            where = f"{p.name}:{lineno}"
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                raise QuestionsFileError(f"{where}: not valid JSON ({e.msg} at column {e.colno}); expected one "
                                         "object per line") from None
            if not isinstance(rec, dict):
                raise QuestionsFileError(f"{where}: expected a JSON object with a \"question\" field, got "
                                         f"{type(rec).__name__}")
            yield where, rec


def _hotpot_paragraphs(rec: dict[str, Any], where: str) -> list[tuple[str, str]]:
    ctx = rec.get("context")
    pairs: Iterable[tuple[Any, Any]]
    if isinstance(ctx, dict):
        pairs = zip(ctx.get("title", []), ctx.get("sentences", []), strict=False)
    elif isinstance(ctx, list):
        pairs = ((c[0], c[1]) for c in ctx if isinstance(c, list | tuple) and len(c) == 2)
    else:
        raise CorpusError(f"{where}: 'context' is in no HotpotQA layout (a dict of lists, or [title, sentences] pairs)")
    out = []
    for title, sents in pairs:
        text = "".join(sents) if isinstance(sents, list) else str(sents)
        if str(title).strip() and text.strip():
            out.append((str(title).strip(), text.strip()))
    return out


def _hotpot_support(rec: dict[str, Any]) -> list[str]:
    sf = rec.get("supporting_facts") or []
    titles = sf.get("title", []) if isinstance(sf, dict) else [f[0] for f in sf if isinstance(f, list | tuple) and f]
    return list(dict.fromkeys(str(t).strip() for t in titles))


def hotpotqa_corpus(root: Path) -> CorpusLoad:
    """The distinct paragraphs of a HotpotQA file, one :class:`Document` per title."""
    docs: dict[str, Document] = {}
    conflicts = 0
    for where, rec in read_records(root):
        if not isinstance(rec, dict):
            raise CorpusError(f"{where}: expected a HotpotQA question object")
        for title, text in _hotpot_paragraphs(rec, where):
            if title in docs:
                conflicts += docs[title].text != text
                continue
            docs[title] = Document(id=title, title=title, text=text, source=where)
    if conflicts:
        log.info("%s: %d titles came with a different text in another question; the first text was kept",
                 root, conflicts)
    return CorpusLoad(documents=tuple(docs.values()), root=root, format="hotpotqa")


def _musique_pairs(root: Path) -> tuple[list[tuple[str, str, str]], list[tuple[str, dict[str, Any]]]]:
    """All ``(where, title, text)`` paragraphs, and the question records (empty for a corpus file)."""
    paras: list[tuple[str, str, str]] = []
    questions: list[tuple[str, dict[str, Any]]] = []
    for where, rec in read_records(root):
        if not isinstance(rec, dict):
            raise CorpusError(f"{where}: expected a MuSiQue object")
        if "paragraphs" in rec:
            questions.append((where, rec))
            for p in rec["paragraphs"] or []:
                title, text = str(p.get("title", "")).strip(), str(p.get("paragraph_text", "")).strip()
                if title and text:
                    paras.append((where, title, text))
        elif "text" in rec:
            title, text = str(rec.get("title", "")).strip(), str(rec["text"]).strip()
            if text:
                paras.append((where, title, text))
        else:
            raise CorpusError(f"{where}: neither a MuSiQue question (paragraphs) nor a corpus entry (title, text)")
    return paras, questions


def musique_corpus(root: Path) -> CorpusLoad:
    """The distinct paragraphs of a MuSiQue questions file or corpus file."""
    paras, _ = _musique_pairs(root)
    ids = title_ids([(t, x) for _, t, x in paras])
    docs: dict[str, Document] = {}
    for where, title, text in paras:
        doc_id = ids[(title, text)]
        if doc_id not in docs:
            docs[doc_id] = Document(id=doc_id, title=title or doc_id, text=text, source=where)
    return CorpusLoad(documents=tuple(docs.values()), root=root, format="musique")


def load_questions(path: str | Path, format: str = "auto") -> list[QAExample]:  # noqa: A002 - public name
    """The questions of a HotpotQA, MuSiQue or miaflow JSONL questions file, in file order."""
    if format not in QUESTION_FORMATS:
        raise CorpusError(f"Unknown questions format {format!r}; use one of {', '.join(QUESTION_FORMATS)}")
    root = corpus_root(_questions_path(path))
    try:
        out = _questions(root, _detect(root) if format == "auto" else format)
    except QuestionsFileError:
        raise
    except CorpusError as e:  # read_records names the file and the line already
        raise QuestionsFileError(str(e)) from None
    if not out:
        raise QuestionsFileError(f"No questions in {root}")
    return out


def _detect(root: Path) -> str:
    first = next(read_records(root), (None, None))[1]
    if isinstance(first, dict) and "context" in first:
        return "hotpotqa"
    if isinstance(first, dict) and "paragraphs" in first:
        return "musique"
    if isinstance(first, dict) and "question" in first:
        return "jsonl"
    raise QuestionsFileError(f"Cannot tell the questions format of {root}; pass format='hotpotqa'|'musique'|'jsonl'")


def _questions(root: Path, fmt: str) -> list[QAExample]:
    if fmt == "hotpotqa":
        out = [_hotpot_question(where, rec) for where, rec in read_records(root)]
    elif fmt == "musique":
        paras, recs = _musique_pairs(root)
        ids = title_ids([(t, x) for _, t, x in paras])
        out = [_musique_question(where, rec, ids) for where, rec in recs]
    else:
        out = [_plain_question(where, rec) for where, rec in read_records(root)]
    return out


def _require(rec: Any, where: str, *keys: str) -> None:
    if not isinstance(rec, dict) or any(k not in rec for k in keys):
        raise QuestionsFileError(f"{where}: a question record needs the fields {', '.join(keys)}")


def _hotpot_question(where: str, rec: dict[str, Any]) -> QAExample:
    _require(rec, where, "question", "answer")
    titles = tuple(_hotpot_support(rec))
    return QAExample(id=str(rec.get("id") or rec.get("_id") or where), question=str(rec["question"]),
                     answer=str(rec["answer"]), supporting_ids=titles, supporting_titles=titles,
                     kind=str(rec.get("type") or ""))


def _musique_question(where: str, rec: dict[str, Any], ids: dict[tuple[str, str], str]) -> QAExample:
    _require(rec, where, "question", "answer", "paragraphs")
    support = [p for p in rec["paragraphs"] if p.get("is_supporting")]
    pairs = [(str(p.get("title", "")).strip(), str(p.get("paragraph_text", "")).strip()) for p in support]
    qid = str(rec.get("id") or where)
    return QAExample(id=qid, question=str(rec["question"]), answer=str(rec["answer"]),
                     supporting_ids=tuple(ids[pair] for pair in pairs if pair in ids),
                     supporting_titles=tuple(t for t, _ in pairs),
                     answer_aliases=tuple(str(a) for a in rec.get("answer_aliases") or ()),
                     kind=qid.split("__", 1)[0] if "__" in qid else "")


def _plain_question(where: str, rec: dict[str, Any]) -> QAExample:
    _require(rec, where, "question", "answer")
    ids = tuple(str(i) for i in rec.get("supporting_ids") or ())
    return QAExample(id=str(rec.get("id") or where), question=str(rec["question"]), answer=str(rec["answer"]),
                     supporting_ids=ids, supporting_titles=tuple(str(t) for t in rec.get("supporting_titles") or ids),
                     answer_aliases=tuple(str(a) for a in rec.get("answer_aliases") or ()),
                     kind=str(rec.get("kind") or rec.get("type") or ""))
