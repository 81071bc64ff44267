"""CorpusIndex: hybrid search over a local corpus, ChromaDB (dense) + BM25, persisted and refreshed incrementally.

How it works:

- The corpus is loaded with :func:`~miaflow.tools.loaders.read_corpus`; each document is split into passages
  (see ``_passages``) and every passage is embedded as ``title + "\\n" + passage`` with the bundled MiniLM
  :class:`~miaflow.memory.embeddings.Embedder`. The vectors are computed here and passed to an embedded Chroma
  collection (cosine space) as ``embeddings=``; Chroma stores vectors and ``{doc_id, hash, i, n}`` metadata only,
  the texts stay in the corpus.
- The index folder is ``<corpus>/.miaflow-index/`` for a folder, ``<dir>/.miaflow-index/<file name>/`` for a
  corpus file, or the ``index_dir`` given. Corpora inside the installed miaflow package (the shipped sample) or in
  read-only places are indexed under ``~/.cache/miaflow/indexes/`` instead (``$XDG_CACHE_HOME`` is honoured).
- ``manifest.json`` keeps a sha256 per document; on open only added or changed documents are embedded and removed
  ones deleted. Changing the embedder or the passage size re-embeds everything.
- BM25 is rebuilt in memory on open (``bm25``). Fusion is weighted reciprocal-rank fusion at document level:
  ``score(d) = w_dense / (rrf_k + rank_dense(d)) + w_bm25 / (rrf_k + rank_bm25(d))`` over each ranker's top
  ``candidates`` passages, a document taking the rank of its best passage. RRF needs no score calibration between
  cosine similarities and BM25 scores, which live on unrelated scales.
- ``open_document`` serves only documents held by the index, from memory: it never touches the file system, so no
  id (``../../etc/passwd``, an absolute path) can make it read outside the corpus root.

Simplified: writers of one index folder take turns (a file lock around each refresh; an open index does not see
another process's later changes until its own ``refresh()``); BM25 is not persisted.
"""

from __future__ import annotations

import contextlib
import logging
import os
import posixpath
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._bm25 import BM25
from .._text import tokenize
from ..errors import MemoryStoreError, ToolError
from ._manifest import Manifest, doc_hash
from ._passages import split_passages
from .loaders import CorpusLoad, read_corpus
from .records import Document, SearchHit

__all__ = ["CorpusIndex", "IndexConfig", "SyncStats", "default_index_dir", "INDEX_DIRNAME"]

log = logging.getLogger(__name__)

INDEX_DIRNAME = ".miaflow-index"
_COLLECTION = "corpus"
_MODES = ("hybrid", "dense", "bm25")
_SPLIT_VERSION = 2  # bump when split_passages changes, so stored passages are rebuilt


@dataclass
class IndexConfig:
    """Settings of a :class:`CorpusIndex`."""

    rrf_k: int = field(default=60, metadata={"help": "Reciprocal-rank fusion constant (60 as in Cormack et al. 2009)."})
    candidates: int = field(default=50, metadata={"help": "Passages each ranker contributes to the fusion."})
    dense_weight: float = field(default=1.0, metadata={"help": "Weight of the dense ranking in the fusion."})
    bm25_weight: float = field(default=1.0, metadata={"help": "Weight of the BM25 ranking in the fusion."})
    passage_words: int = field(default=200, metadata={"help": "Longest passage in words; longer documents are split."})
    batch_size: int = field(default=256, metadata={"help": "Passages embedded and written to Chroma per batch."})

    def __post_init__(self) -> None:
        bad = []
        if self.rrf_k < 0:
            bad.append(f"rrf_k={self.rrf_k} (must be >= 0)")
        if self.candidates < 1:
            bad.append(f"candidates={self.candidates} (must be >= 1)")
        if self.dense_weight < 0 or self.bm25_weight < 0 or self.dense_weight + self.bm25_weight == 0:
            bad.append(f"dense_weight={self.dense_weight}, bm25_weight={self.bm25_weight} (>= 0, not both 0)")
        if self.passage_words < 20:
            bad.append(f"passage_words={self.passage_words} (must be >= 20)")
        if self.batch_size < 1:
            bad.append(f"batch_size={self.batch_size} (must be >= 1)")
        if bad:
            raise ValueError("invalid IndexConfig: " + "; ".join(bad))


@dataclass(kw_only=True, frozen=True, slots=True)
class SyncStats:
    """What one open or refresh of the index did."""

    added: int
    """New documents embedded."""
    changed: int
    """Documents whose content changed, re-embedded."""
    reused: int
    """Unchanged documents whose stored vectors were kept."""
    removed: int
    """Documents gone from the corpus, deleted from the index."""
    passages_embedded: int
    """Passages embedded in this sync."""
    seconds: float
    """Wall time of the whole open/refresh (load, embed, write)."""
    embed_seconds: float = 0.0
    """Part of ``seconds`` spent computing embeddings."""
    rebuilt: str = ""
    """Why everything was re-embedded (new index, settings changed), empty for an incremental sync."""

    @property
    def indexed(self) -> int:
        """Documents embedded in this sync (added + changed)."""
        return self.added + self.changed


def _cache_home() -> Path:
    from .._cache import cache_dir

    return cache_dir() / "indexes"


def default_index_dir(root: Path) -> Path:
    """Where the index of the corpus at ``root`` lives when no folder is given (see the module docstring)."""
    import hashlib

    beside = root / INDEX_DIRNAME if root.is_dir() else root.parent / INDEX_DIRNAME / root.name
    package_dir = Path(__file__).resolve().parents[1]
    inside_package = beside.is_relative_to(package_dir)
    parent = next((p for p in [beside, *beside.parents] if p.exists()), None)
    if not inside_package and parent is not None and os.access(parent, os.W_OK):
        return beside
    tag = hashlib.sha1(str(root).encode("utf-8")).hexdigest()[:10]
    return _cache_home() / f"{root.name}-{tag}"


@dataclass(frozen=True, slots=True)
class _State:
    """An immutable snapshot that searches read while a refresh builds the next one."""

    docs: dict[str, Document]
    passages: list[tuple[str, str]]  # (doc_id, passage text)
    row_of: dict[str, int]  # chroma id -> passage row
    bm25: BM25[int]
    by_lower: dict[str, str]  # lower-cased id or title -> id, only when unambiguous


class CorpusIndex:
    """Hybrid search and open-by-id over one corpus. Build it with :meth:`open`."""

    def __init__(self, corpus: str | Path, index_dir: str | Path | None = None, *, format: str = "auto",  # noqa: A002
                 embedder: Any = None, config: IndexConfig | None = None):
        self.config = config or IndexConfig()
        self.format = format
        self._corpus = Path(corpus)
        self._index_dir_arg = Path(index_dir) if index_dir is not None else None
        self._embedder = embedder
        self._lock = threading.Lock()
        self._collection: Any = None
        self._state: _State | None = None
        self._query_cache: dict[str, Any] = {}
        self.load: CorpusLoad | None = None
        self.last_sync: SyncStats | None = None
        self.index_dir: Path | None = None

    @classmethod
    def open(cls, corpus: str | Path, index_dir: str | Path | None = None, *, format: str = "auto",  # noqa: A002
             embedder: Any = None, config: IndexConfig | None = None,
             progress: Callable[[int, int], None] | None = None) -> CorpusIndex:
        """Load the corpus, bring its persisted index up to date (embedding only what changed) and return it.

        ``progress(done, total)`` is called after each batch of passages embedded, when given.
        """
        index = cls(corpus, index_dir, format=format, embedder=embedder, config=config)
        index.refresh(progress=progress)
        return index

    # -- properties -------------------------------------------------------------------------------------------
    @property
    def root(self) -> Path:
        """The resolved corpus root (folder or file)."""
        return self._require_state()[1]

    @property
    def embedder(self) -> Any:
        if self._embedder is None:
            from ..memory.embeddings import default_embedder

            self._embedder = default_embedder()
        return self._embedder

    def __len__(self) -> int:
        return len(self._require_state()[0].docs)

    def __contains__(self, doc_id: object) -> bool:
        return isinstance(doc_id, str) and doc_id in self._require_state()[0].docs

    @property
    def ids(self) -> list[str]:
        """Document ids in corpus order."""
        return list(self._require_state()[0].docs)

    def _require_state(self) -> tuple[_State, Path]:
        if self._state is None or self.load is None:
            raise ToolError("the index is not built yet; use CorpusIndex.open(corpus)")
        return self._state, self.load.root

    # -- building ---------------------------------------------------------------------------------------------
    def refresh(self, progress: Callable[[int, int], None] | None = None) -> SyncStats:
        """Re-read the corpus and sync the index with it; returns what changed."""
        with self._lock:
            t0 = time.perf_counter()
            load = read_corpus(self._corpus, self.format)
            index_dir = self._index_dir_arg or default_index_dir(load.root)
            with _folder_lock(index_dir):
                stats = self._sync(load, index_dir, t0, progress)
            self.load, self.index_dir, self.last_sync = load, index_dir, stats
            log.info("indexed %s: %d added, %d changed, %d reused, %d removed in %.1fs", load.root, stats.added,
                     stats.changed, stats.reused, stats.removed, stats.seconds)
            return stats

    def _embedder_name(self) -> str:
        path = getattr(self.embedder, "model_path", None)
        return str(path) if path else f"{type(self.embedder).__name__}:bundled-all-MiniLM-L6-v2"

    def _open_collection(self, index_dir: Path, *, reset: bool) -> Any:
        from ..memory._chroma import open_client

        try:
            client = open_client(index_dir / "chroma")
            if reset and any(c == _COLLECTION or getattr(c, "name", None) == _COLLECTION
                             for c in client.list_collections()):
                client.delete_collection(_COLLECTION)
            return client.get_or_create_collection(_COLLECTION, embedding_function=None,
                                                   configuration={"hnsw": {"space": "cosine"}})
        except Exception as exc:  # sqlite / Chroma errors on a damaged or unwritable folder
            raise MemoryStoreError(
                f"Cannot open the index in {index_dir}: {exc}. Delete that folder to rebuild it, or pass another "
                "index_dir."
            ) from exc

    def _sync(self, load: CorpusLoad, index_dir: Path, t0: float,
              progress: Callable[[int, int], None] | None) -> SyncStats:
        cfg = self.config
        try:
            index_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise MemoryStoreError(f"Cannot create the index folder {index_dir}: {exc}. Pass another index_dir.") from exc
        settings = {"embedder": self._embedder_name(), "passage_words": cfg.passage_words,
                    "passage_split": _SPLIT_VERSION}
        mpath = index_dir / "manifest.json"
        manifest = Manifest.read(mpath)
        rebuilt = ""
        if manifest is None:
            rebuilt = "new index"
        elif manifest.settings != settings:
            rebuilt = "embedder or passage splitting changed"
        col = self._open_collection(index_dir, reset=bool(rebuilt))
        if rebuilt:
            old: dict[str, dict[str, Any]] = {}
        elif manifest is not None and manifest.complete and col.count() == sum(
                int(d.get("passages", 0)) for d in manifest.documents.values()):
            old = manifest.documents
        else:
            log.warning("index %s was not closed cleanly; recovering its state from Chroma", index_dir)
            old = _scan_collection(col)

        docs = {d.id: d for d in load.documents}
        hashes = {i: doc_hash(d.title, d.text) for i, d in docs.items()}
        removed = [i for i in old if i not in docs]
        changed = [i for i in docs if i in old and old[i].get("hash") != hashes[i]]
        added = [i for i in docs if i not in old]

        passages: list[tuple[str, str]] = []
        row_of: dict[str, int] = {}
        todo: list[tuple[str, int, int, int]] = []  # (chroma id, row, passage number, passages in the doc)
        fresh = set(changed) | set(added)
        new_manifest: dict[str, dict[str, Any]] = {}
        for doc_id, doc in docs.items():
            parts = split_passages(doc.text, cfg.passage_words)
            new_manifest[doc_id] = {"hash": hashes[doc_id], "passages": len(parts)}
            for j, part in enumerate(parts):
                cid = _passage_id(doc_id, j)
                row_of[cid] = len(passages)
                if doc_id in fresh:
                    todo.append((cid, len(passages), j, len(parts)))
                passages.append((doc_id, part))

        embed_seconds = 0.0
        if removed or changed or added or rebuilt:
            Manifest(settings=settings, documents=old, complete=False, corpus=str(load.root),
                     format=load.format).write(mpath)
            stale = [_passage_id(i, j) for i in (*removed, *changed) for j in range(int(old[i].get("passages", 0)))]
            for start in range(0, len(stale), 5000):
                col.delete(ids=stale[start : start + 5000])
            for start in range(0, len(todo), cfg.batch_size):
                batch = todo[start : start + cfg.batch_size]
                texts = [f"{docs[passages[row][0]].title}\n{passages[row][1]}" for _, row, _, _ in batch]
                t_embed = time.perf_counter()
                vectors = self.embedder.embed(texts)
                embed_seconds += time.perf_counter() - t_embed
                col.upsert(ids=[cid for cid, _, _, _ in batch], embeddings=vectors,
                        metadatas=[{"doc_id": passages[row][0], "hash": hashes[passages[row][0]], "i": j, "n": n}
                                   for _, row, j, n in batch])
                if progress is not None:
                    progress(min(start + cfg.batch_size, len(todo)), len(todo))
            Manifest(settings=settings, documents=new_manifest, complete=True, corpus=str(load.root),
                     format=load.format).write(mpath)

        bm25 = BM25.from_tokens(tokenize(f"{docs[d].title} {text}") for d, text in passages)
        by_lower: dict[str, str] = {}
        ambiguous: set[str] = set()
        for doc_id, doc in docs.items():
            for key in {doc_id.lower(), doc.title.lower()}:
                if key in by_lower and by_lower[key] != doc_id:
                    ambiguous.add(key)
                by_lower.setdefault(key, doc_id)
        for key in ambiguous:
            by_lower.pop(key, None)
        self._collection = col
        self._state = _State(docs=docs, passages=passages, row_of=row_of, bm25=bm25, by_lower=by_lower)
        return SyncStats(added=len(added), changed=len(changed), reused=len(docs) - len(added) - len(changed),
                         removed=len(removed), passages_embedded=len(todo), seconds=time.perf_counter() - t0,
                         embed_seconds=embed_seconds, rebuilt=rebuilt)

    # -- reading ----------------------------------------------------------------------------------------------
    def search(self, query: str, k: int = 5, *, mode: str = "hybrid") -> list[SearchHit]:
        """The ``k`` best documents for ``query``, each once, with its best passage; best first.

        ``mode`` is "hybrid" (RRF of dense and BM25; the default), "dense" (score = cosine similarity) or "bm25".
        """
        state, _ = self._require_state()
        if not isinstance(query, str) or not query.strip():
            raise ToolError("search needs a non-empty query")
        if mode not in _MODES:
            raise ToolError(f"unknown search mode {mode!r}; use one of {', '.join(_MODES)}")
        if not isinstance(k, int) or k < 1:
            raise ToolError(f"k must be a positive integer, got {k!r}")
        n_cand = min(len(state.passages), max(self.config.candidates, 4 * k))
        cfg = self.config
        use_dense = mode == "dense" or (mode == "hybrid" and cfg.dense_weight > 0)
        use_bm25 = mode == "bm25" or (mode == "hybrid" and cfg.bm25_weight > 0)
        dense = self._dense(state, query, n_cand) if use_dense else []
        sparse = state.bm25.top(query, n_cand) if use_bm25 else []
        dense_docs = _best_per_doc(state, dense)
        sparse_docs = _best_per_doc(state, sparse)
        fused: dict[str, float] = {}
        for doc_id, (rank, _, score) in dense_docs.items():
            fused[doc_id] = score if mode == "dense" else cfg.dense_weight / (cfg.rrf_k + rank)
        for doc_id, (rank, _, score) in sparse_docs.items():
            fused[doc_id] = fused.get(doc_id, 0.0) + (score if mode == "bm25" else cfg.bm25_weight / (cfg.rrf_k + rank))

        def best_rank(doc_id: str) -> int:
            return min(dense_docs.get(doc_id, (10**9,))[0], sparse_docs.get(doc_id, (10**9,))[0])

        order = sorted(fused, key=lambda d: (-fused[d], best_rank(d), d))[:k]
        hits = []
        for doc_id in order:
            d, s = dense_docs.get(doc_id), sparse_docs.get(doc_id)
            best = d if d is not None and (s is None or d[0] <= s[0]) else s
            assert best is not None, "fused holds only documents one of the two searches found"
            row = best[1]
            doc = state.docs[doc_id]
            hits.append(SearchHit(doc_id=doc_id, title=doc.title, text=state.passages[row][1], score=float(fused[doc_id]),
                                  dense_rank=d[0] if d else None, bm25_rank=s[0] if s else None))
        return hits

    def _query_vector(self, query: str) -> Any:
        """The query's embedding, from a small cache: agents often repeat a query (the question, n plans)."""
        vec = self._query_cache.get(query)
        if vec is None:
            vec = self.embedder.embed([query])
            if len(self._query_cache) >= 512:
                self._query_cache.pop(next(iter(self._query_cache)), None)
            self._query_cache[query] = vec
        return vec

    def _dense(self, state: _State, query: str, n: int) -> list[tuple[int, float]]:
        vec = self._query_vector(query)
        res = self._collection.query(query_embeddings=vec, n_results=n, include=["distances"])
        out = []
        for cid, dist in zip(res["ids"][0], res["distances"][0], strict=True):
            row = state.row_of.get(cid)
            if row is not None:
                out.append((row, 1.0 - float(dist)))
        return out

    def resolve_id(self, name: str) -> str | None:
        """The id of the indexed document ``name`` refers to (its id, or, unambiguously, its title in any case,
        quotes and brackets stripped), or None. Only ids held by the index are ever returned."""
        return _resolve(self._require_state()[0], name)

    def open_document(self, doc_id: str) -> Document:
        """The full document ``doc_id`` (an id from :meth:`search`); unknown ids raise :class:`ToolError`."""
        state, _ = self._require_state()
        key = _resolve(state, doc_id)
        if key is None:
            import difflib

            close = difflib.get_close_matches(str(doc_id), list(state.docs), n=3, cutoff=0.6)
            hint = f" Did you mean: {', '.join(repr(c) for c in close)}?" if close else ""
            raise ToolError(f"unknown document id {str(doc_id)[:200]!r}: open only ids returned by search.{hint}")
        return state.docs[key]


def _resolve(state: _State, name: object) -> str | None:
    """An id held by ``state`` that ``name`` names, trying the exact id, then quotes/brackets stripped, a
    normalised path, and an unambiguous case-insensitive id or title. Never looks at the file system."""
    if not isinstance(name, str):
        return None
    if name in state.docs:
        return name
    stripped = name.strip()
    for cand in (stripped, stripped.strip("'\"`"), stripped.strip("'\"`[]<>")):
        if not cand:
            continue
        for key in (cand, posixpath.normpath(cand)):
            if key in state.docs:
                return key
        if cand.lower() in state.by_lower:
            return state.by_lower[cand.lower()]
    return None


@contextlib.contextmanager
def _folder_lock(index_dir: Path) -> Iterator[None]:
    """An exclusive lock on the index folder while it is written, so two processes opening the same corpus
    build it one after the other (the second finds it up to date). POSIX only; elsewhere a no-op."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    try:
        index_dir.mkdir(parents=True, exist_ok=True)
        fh = open(index_dir / "lock", "a+b")  # noqa: SIM115 - held for the duration of the block
    except OSError as exc:
        raise MemoryStoreError(f"Cannot create the index folder {index_dir}: {exc}. Pass another index_dir.") from exc
    try:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
        fh.close()


def _passage_id(doc_id: str, j: int) -> str:
    return f"{doc_id}::{j}"


def _best_per_doc(state: _State, ranked: list[tuple[int, float]]) -> dict[str, tuple[int, int, float]]:
    """``doc_id -> (1-based doc rank, best passage row, its score)`` from a ranked passage list."""
    out: dict[str, tuple[int, int, float]] = {}
    for row, score in ranked:
        doc_id = state.passages[row][0]
        if doc_id not in out:
            out[doc_id] = (len(out) + 1, row, score)
    return out


def _scan_collection(col: Any) -> dict[str, dict[str, Any]]:
    """Recover ``doc_id -> {hash, passages}`` from the Chroma metadata, deleting documents stored only in part."""
    got = col.get(include=["metadatas"])
    seen: dict[str, dict[str, Any]] = {}
    for cid, md in zip(got["ids"], got["metadatas"], strict=True):
        md = md or {}
        entry = seen.setdefault(str(md.get("doc_id")), {"hash": md.get("hash"), "passages": int(md.get("n", 0)),
                                                        "ids": [], "ok": True})
        entry["ids"].append(cid)
        entry["ok"] &= entry["hash"] == md.get("hash") and entry["passages"] == int(md.get("n", 0))
    good: dict[str, dict[str, Any]] = {}
    for doc_id, e in seen.items():
        if e["ok"] and len(e["ids"]) == e["passages"]:
            good[doc_id] = {"hash": e["hash"], "passages": e["passages"]}
        else:
            col.delete(ids=e["ids"])
    return good

