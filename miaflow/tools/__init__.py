"""Search over a local corpus for the research agents.

``load_corpus`` reads a folder of .txt/.md files, JSONL, HotpotQA or MuSiQue data into :class:`Document` records;
:class:`CorpusIndex` indexes them (ChromaDB dense + BM25, fused by reciprocal rank), persists the index and
re-embeds only what changed; :class:`SearchTool` and :class:`OpenDocumentTool` are what an agent calls. Nothing
here reads outside the corpus root it was given.

Importing this package is light: ChromaDB, numpy and the embedder load on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

if TYPE_CHECKING:
    from .agent_tools import OpenDocumentTool, SearchTool, format_document, format_hits
    from .index import CorpusIndex, IndexConfig, SyncStats
    from .loaders import CorpusLoad, detect_format, load_corpus, read_corpus
    from .qa_formats import load_questions
    from .records import Document, QAExample, SearchHit

__all__ = [
    "Document",
    "SearchHit",
    "QAExample",
    "CorpusLoad",
    "load_corpus",
    "read_corpus",
    "detect_format",
    "load_questions",
    "CorpusIndex",
    "IndexConfig",
    "SyncStats",
    "SearchTool",
    "OpenDocumentTool",
    "format_hits",
    "format_document",
]

_WHERE = {
    "Document": "records", "SearchHit": "records", "QAExample": "records",
    "CorpusLoad": "loaders", "load_corpus": "loaders", "read_corpus": "loaders", "detect_format": "loaders",
    "load_questions": "qa_formats",
    "CorpusIndex": "index", "IndexConfig": "index", "SyncStats": "index",
    "SearchTool": "agent_tools", "OpenDocumentTool": "agent_tools", "format_hits": "agent_tools",
    "format_document": "agent_tools",
}

__getattr__, __dir__ = lazy_exports(__name__, _WHERE, __all__)
