"""The records the tools hand around: documents, search hits and benchmark questions.

All are frozen, so a document served by :class:`~miaflow.tools.CorpusIndex` can be shared between threads and
agents without copies.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["Document", "SearchHit", "QAExample"]


@dataclass(kw_only=True, frozen=True, slots=True)
class Document:
    """One document of a corpus."""

    id: str
    """Stable id, unique in the corpus: a relative path for folders, the given id for JSONL, the title for HotpotQA."""
    title: str
    """Human-readable title (the file name or first Markdown heading for folders)."""
    text: str
    """The full text."""
    source: str = ""
    """Where it came from inside the corpus root, for example ``notes/a.md`` or ``corpus.jsonl:12``."""


@dataclass(kw_only=True, frozen=True, slots=True)
class SearchHit:
    """One result of :meth:`CorpusIndex.search`, best first."""

    doc_id: str
    """Id of the matching document; pass it to ``open_document`` for the full text."""
    title: str
    """Title of the document."""
    text: str
    """The best matching passage of the document (the whole text for short documents)."""
    score: float
    """Higher is better, comparable within one query: the reciprocal-rank fusion of the dense and BM25 ranks in
    "hybrid" mode, the cosine similarity in "dense" mode, the BM25 score in "bm25" mode."""
    dense_rank: int | None = None
    """1-based rank of the document in the dense (embedding) ranking, None when outside its candidates."""
    bm25_rank: int | None = None
    """1-based rank of the document in the BM25 ranking, None when outside its candidates."""


@dataclass(kw_only=True, frozen=True, slots=True)
class QAExample:
    """A benchmark question with its gold answer and the documents that support it."""

    id: str
    """The dataset's question id."""
    question: str
    """The question text."""
    answer: str
    """The gold answer."""
    supporting_ids: tuple[str, ...] = ()
    """Ids (as :func:`load_corpus` names them for the same data) of the gold supporting documents."""
    supporting_titles: tuple[str, ...] = ()
    """Titles of the gold supporting documents."""
    answer_aliases: tuple[str, ...] = field(default=())
    """Other accepted answers (MuSiQue), empty when the dataset has none."""
    kind: str = ""
    """Question type when the dataset gives one (HotpotQA ``bridge``/``comparison``, MuSiQue ``2hop`` ...)."""
