"""The two tools the executor agent calls: search the corpus, open a document by id.

Plain callables with a ``name`` and a ``description`` for prompts. Both only read what the :class:`CorpusIndex`
holds, and both raise :class:`~miaflow.errors.ToolError` (never another exception) on bad arguments, so an agent
loop can show the message to the model and carry on.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import ToolError
from .records import Document, SearchHit

if TYPE_CHECKING:
    from .index import CorpusIndex

__all__ = ["SearchTool", "OpenDocumentTool", "format_hits", "format_document"]


class SearchTool:
    """``search(query, k)``: the best matching documents of the corpus, each with its best passage."""

    name = "search"

    def __init__(self, index: CorpusIndex, *, default_k: int = 5, max_k: int = 20, mode: str = "hybrid"):
        if not 1 <= default_k <= max_k:
            raise ValueError(f"need 1 <= default_k <= max_k, got default_k={default_k}, max_k={max_k}")
        self.index = index
        self.default_k = default_k
        self.max_k = max_k
        self.mode = mode
        self.description = (
            f"search(query, k={default_k}): search the document collection with a short keyword query and return "
            f"the {default_k} best documents (at most {max_k}), each with its id, title and best passage. "
            "Use the ids with open_document."
        )

    def __call__(self, query: str, k: int | None = None) -> list[SearchHit]:
        if k is None:
            k = self.default_k
        try:
            k = int(k)
        except (TypeError, ValueError):
            raise ToolError(f"k must be an integer, got {k!r}") from None
        return self.index.search(query, k=max(1, min(k, self.max_k)), mode=self.mode)


class OpenDocumentTool:
    """``open_document(doc_id)``: the full text of one document returned by search."""

    name = "open_document"

    def __init__(self, index: CorpusIndex):
        self.index = index
        self.description = (
            "open_document(doc_id): the full text of the document with this id, as returned by search. "
            "Only documents of the collection can be opened; file paths are not accepted."
        )

    def __call__(self, doc_id: str) -> Document:
        if not isinstance(doc_id, str) or not doc_id.strip():
            raise ToolError("open_document needs a document id from the search results")
        return self.index.open_document(doc_id)


def format_hits(hits: list[SearchHit], *, max_chars: int = 400) -> str:
    """Search hits as numbered prompt lines: ``[1] id: title — passage``, each passage cut to ``max_chars``."""
    if not hits:
        return "(no results)"
    lines = []
    for n, h in enumerate(hits, 1):
        text = " ".join(h.text.split())
        if len(text) > max_chars:
            text = text[: max_chars - 3].rstrip() + "..."
        head = h.doc_id if h.title == h.doc_id else f"{h.doc_id}: {h.title}"
        lines.append(f"[{n}] {head} — {text}")
    return "\n".join(lines)


def format_document(doc: Document, *, max_chars: int = 4000) -> str:
    """A document for a prompt: id, title and its text cut to ``max_chars``."""
    text = doc.text if len(doc.text) <= max_chars else doc.text[: max_chars - 3].rstrip() + "..."
    return f"[{doc.id}] {doc.title}\n{text}"
