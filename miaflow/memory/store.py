"""The Memory Manager's non-parametric memory: compressed trajectories with learned utilities, on ChromaDB.

- Storage: one Chroma collection per namespace (so namespaces never leak), embedded ``PersistentClient`` in a folder
  by default, ``HttpClient`` against a ``chroma run`` server when processes or machines share memory. A record's
  embedding is its question's; everything else is metadata (no Chroma documents: their full-text index only slows
  writes down). A small ``miaflow-store.json`` marks a folder as a store.
- Write rules (MIA): a near-duplicate question (cosine >= 0.9999) replaces an incorrect or unknown entry, or a
  correct one when the new run is correct and its summary shorter; otherwise the existing entry is kept. The
  replacement is one atomic write under the old id, with a fresh utility.
- Recall (MemRL): phase A asks Chroma for the top k1 by cosine (no ``where`` filter: it is slow at scale) and keeps
  those above delta; phase B ranks them in Python by 0.5*z(sim) + 0.5*z(Q) and keeps k2; under tau, no memory.
- Utilities (MemRL): Q <- Q + alpha*(r - Q), stored as an idempotent event per (task, memory), see ``_utility``.
  Every update is a single Chroma write, so a crash never leaves half of one, and concurrent writers lose nothing.
- Capacity: past ``max_records`` the records with the lowest Q + recency bonus are evicted.

Simplifications: several processes must share one store through a Chroma server (Chroma does not support two
``PersistentClient`` processes on one folder). Utility updates from many processes are safe (see ``_utility``; it
assumes a write becomes visible within ``compaction_grace_s``); the near-duplicate check of ``add`` is not atomic
across processes, so two processes adding the same question at the same moment can both keep it.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
import weakref
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from .._io import atomic_write_json
from ..errors import InvalidInputError, MemoryStoreError, MiaflowError
from ._chroma import open_client
from ._codec import from_metadata, to_metadata
from ._integrity import Manifest, check_before_open, check_store, raise_if_damaged, segment_of
from ._limits import bound_record, bound_trajectory
from ._lock import acquire
from ._namespace import check_namespace, collection_name, legacy_collection_name
from ._utility import (
    EVENT_PREFIX,
    compaction_patch,
    event_value,
    fold,
    is_utility_key,
    phase_b_scores,
    task_hash,
)
from ._write_rules import apply_write_rules
from .compression import compress
from .config import CompressionConfig, TrajectoryStoreConfig
from .trajectory import (
    MemoryRecord,
    Recall,
    ScoredMemory,
    Trajectory,
    UtilityUpdate,
    _check_ids,
    _check_question,
    _check_reward,
)

__all__ = ["TrajectoryStore", "UtilityUpdate", "MARKER_FILE"]

log = logging.getLogger(__name__)

MARKER_FILE = "miaflow-store.json"
_FORMAT = "miaflow-trajectory-store"
_VERSION = 1
_PAGE = 2000


@dataclass(frozen=True, slots=True, kw_only=True)
class StoredRecord:
    """One record exactly as stored, for whole-store passes (export, import, stats): the store's batch interface
    (``_iter_records`` / ``_put_records``) reads and writes these, so those passes never touch Chroma."""

    record: MemoryRecord
    """The record with its utility folded (Q, usage, successes)."""
    meta: dict[str, Any]
    """The raw Chroma metadata: packed static fields plus the utility events and idempotency keys."""
    embedding: np.ndarray | None = None
    """The question's embedding, when it was read or given (None: embed the question on write)."""

    @property
    def utility(self) -> dict[str, Any]:
        """The utility keys of ``meta`` (events, compacted state, applied-task keys)."""
        return {k: v for k, v in self.meta.items() if is_utility_key(k)}


class TrajectoryStore:
    """Compressed trajectories with learned utilities, in a folder or on a Chroma server.

    >>> store = TrajectoryStore("memories/")                       # doctest: +SKIP
    >>> store.add(Trajectory(task_id="t1", question="Who ...?", answer="...", judgement="correct",
    ...                      reward=1.0))                               # doctest: +SKIP
    >>> recall = store.recall("Who ...?")                               # doctest: +SKIP
    >>> store.update_utilities("t2", recall.ids, reward=1.0)           # doctest: +SKIP
    """

    def __init__(
        self,
        path: str | Path | None = None,
        *,
        namespace: str = "default",
        host: str | None = None,
        port: int | None = None,
        config: TrajectoryStoreConfig | None = None,
        compression: CompressionConfig | None = None,
        embedder: Any = None,
        llm: Any = None,
    ):
        self.namespace = self._check_ns(namespace)
        self.config = config or TrajectoryStoreConfig()
        self.compression = compression or CompressionConfig()
        self.llm = llm
        self._embedder = embedder
        self.path = Path(path) if path is not None and not host else None
        self.where = f"http://{host}:{port or 8000}" if host else str(path)
        self._cols: dict[str, Any] = {}
        self._lock = threading.RLock()
        self._rng = random.Random(self.config.seed)
        self.counters: Counter[str] = Counter()
        self._manifest: Manifest | None = None  # embedded stores only
        self._writer: Any = None
        if host:
            with self._errors("connect to the Chroma server"):
                self._client = open_client(host=host, port=port)
                self._client.heartbeat()
        else:
            if path is None:
                raise InvalidInputError("give a folder path, or host= (and port=) of a Chroma server")
            folder = Path(path)
            self._prepare_folder(folder)
            self._writer = acquire(folder, "trajectory store")
            weakref.finalize(self, self._writer.release)
            try:
                if self.config.verify_on_open:
                    check_before_open(folder)
                with self._errors("open the store"):
                    self._client = open_client(path)
                    for ns in self.namespaces():  # reading every collection proves the folder is healthy
                        self._collection(ns, create=False)
                self._manifest = Manifest.shared(folder, reload=self._writer.first)
                if self.config.verify_on_open:
                    with self._errors("verify the store"):
                        raise_if_damaged(check_store(self, self._manifest))
            except BaseException:
                self._writer.release()
                raise

    # ------------------------------------------------------------------ plumbing
    @staticmethod
    def _check_ns(namespace: Any) -> str:
        return check_namespace(namespace)

    def _ns(self, namespace: str | None) -> str:
        return self.namespace if namespace is None else self._check_ns(namespace)

    @property
    def embedder(self) -> Any:
        if self._embedder is None:
            from .embeddings import default_embedder

            self._embedder = default_embedder()
        return self._embedder

    def _prepare_folder(self, path: Path) -> None:
        marker = path / MARKER_FILE
        if path.exists() and not path.is_dir():
            raise MemoryStoreError(f"{path} is a file, not a trajectory store folder")
        if marker.exists():
            try:
                info = json.loads(marker.read_text())
                ok = info.get("format") == _FORMAT
            except (OSError, ValueError, AttributeError):
                ok = False
            if not ok:
                raise MemoryStoreError(f"{marker} is damaged or not a miaflow marker; restore it or use another folder")
            return
        if path.exists() and any(path.iterdir()):
            raise MemoryStoreError(
                f"{path} is not a miaflow trajectory store (no {MARKER_FILE}) and is not empty; "
                "give a new or empty folder"
            )
        atomic_write_json(marker, {"format": _FORMAT, "version": _VERSION})

    @contextmanager
    def _errors(self, what: str) -> Iterator[None]:
        try:
            yield
        except MiaflowError:
            raise
        except Exception as e:  # Chroma, sqlite, HTTP: one clear error type for callers
            gone = type(e).__name__ == "NotFoundError"  # a namespace deleted by another process
            if gone:
                self._cols.clear()
            err = MemoryStoreError(f"could not {what} at {self.where}: {type(e).__name__}: {e}")
            err.retryable = gone or isinstance(e, (ConnectionError, TimeoutError)) or "connect" in str(e).lower()
            raise err from e

    def _collection(self, ns: str, *, create: bool) -> Any:
        col = self._cols.get(ns)
        if col is not None:
            return col
        prefix = self.config.collection_prefix
        name = collection_name(prefix, ns)
        col = self._get_collection(name, ns)
        if col is None and legacy_collection_name(prefix, ns) != name:  # written by an earlier release
            col = self._get_collection(legacy_collection_name(prefix, ns), ns, strict=False)
        if col is None and create:
            col = self._client.get_or_create_collection(
                name, metadata={"hnsw:space": "cosine", "namespace": ns, "format": _FORMAT},
                embedding_function=None,
            )
            self._check_owner(col, ns)
        if col is not None:
            self._cols[ns] = col
        return col

    def _get_collection(self, name: str, ns: str, *, strict: bool = True) -> Any:
        from chromadb.errors import NotFoundError

        try:
            col = self._client.get_collection(name, embedding_function=None)
        except (NotFoundError, ValueError):
            return None
        if not strict and (getattr(col, "metadata", None) or {}).get("namespace") != ns:
            return None  # an old name another namespace was cut to: not ours
        return self._check_owner(col, ns)

    @staticmethod
    def _check_owner(col: Any, ns: str) -> Any:
        owner = (getattr(col, "metadata", None) or {}).get("namespace")
        if owner is not None and owner != ns:  # never read or write another tenant's records
            raise MemoryStoreError(f"collection {col.name!r} belongs to namespace {owner!r}, not {ns!r}")
        return col

    def _embed(self, texts: list[str]) -> np.ndarray:
        vecs = np.asarray(self.embedder.embed(texts), dtype=np.float32)
        if vecs.shape[0] != len(texts) or not np.isfinite(vecs).all():
            raise MemoryStoreError("the embedder returned vectors of the wrong shape or non-finite values")
        return vecs

    def _fold(self, meta: dict[str, Any]) -> Any:
        c = self.config
        return fold(meta, alpha=c.alpha, q_init=c.q_init, success_threshold=c.success_threshold)

    def _record(self, rec_id: str, meta: dict[str, Any], ns: str) -> MemoryRecord:
        return from_metadata(rec_id, meta, ns, self._fold(meta))

    def _batch(self) -> int:
        try:
            return max(1, min(int(self._client.get_max_batch_size()), 5000))
        except Exception:
            return 1000

    def _begin(self, ns: str, low: int, high: int) -> None:
        """Before a write that changes the count: the counts a crash may leave (see ``_integrity``)."""
        if self._manifest is not None:
            self._manifest.begin(ns, low, high)

    def _commit(self, ns: str, col: Any) -> None:
        if self._manifest is not None:
            self._manifest.commit(ns, int(col.count()), segment_of(self, col))

    # ------------------------------------------------------------------ namespaces and reads
    def namespaces(self) -> list[str]:
        """Namespaces that hold a collection in this store."""
        with self._errors("list namespaces"):
            cols = self._client.list_collections()
        out = []
        for c in cols:
            meta = getattr(c, "metadata", None) or {}
            if meta.get("format") == _FORMAT and str(c.name).startswith(self.config.collection_prefix + "-"):
                out.append(str(meta["namespace"]))
        return sorted(out)

    def count(self, namespace: str | None = None) -> int:
        ns = self._ns(namespace)
        with self._errors("count records"):
            col = self._collection(ns, create=False)
            return 0 if col is None else int(col.count())

    def get(self, ids: str | Sequence[str], *, namespace: str | None = None) -> list[MemoryRecord]:
        """Records by id, in the given order; an unknown id raises :class:`InvalidInputError`."""
        ids = _check_ids(ids)
        ns = self._ns(namespace)
        metas = self._metas(ns, ids)
        return [self._record(i, metas[i], ns) for i in ids]

    def _metas(self, ns: str, ids: list[str]) -> dict[str, dict[str, Any]]:
        with self._errors("read records"):
            col = self._collection(ns, create=False)
            got = col.get(ids=ids, include=["metadatas"]) if (col is not None and ids) else {"ids": [], "metadatas": []}
        found = dict(zip(got["ids"], got["metadatas"], strict=True))
        missing = [i for i in ids if i not in found]
        if missing:
            raise InvalidInputError(f"unknown memory id(s) in namespace {ns!r}: {missing[:5]}")
        return found

    def iter_records(self, namespace: str | None = None) -> Iterator[MemoryRecord]:
        """Every record of a namespace (paged)."""
        for page in self._iter_records(namespace):
            yield from (s.record for s in page)

    # ------------------------------------------------------------------ writes
    def _to_record(self, item: Trajectory | MemoryRecord, ns: str) -> MemoryRecord:
        if isinstance(item, Trajectory):
            traj = bound_trajectory(item, self.config, self.counters)
            return bound_record(compress(traj, self.llm, config=self.compression, namespace=ns), self.config,
                                self.counters)
        if isinstance(item, MemoryRecord):
            _check_question(item.question)
            _check_reward(item.reward)
            if not item.id:
                raise InvalidInputError("a MemoryRecord to add needs an id")
            return replace(bound_record(item, self.config, self.counters), namespace=ns)
        raise InvalidInputError(f"add() takes a Trajectory or a MemoryRecord, got {type(item).__name__}")

    def add(self, item: Trajectory | MemoryRecord, *, namespace: str | None = None) -> str:
        """Store one trajectory (compressed) or record, applying the near-duplicate rules; returns the id kept."""
        return self.add_many([item], namespace=namespace)[0]

    def add_many(self, items: Iterable[Trajectory | MemoryRecord], *, namespace: str | None = None) -> list[str]:
        """Store many at once (one batched embedding and one Chroma write per batch); returns the ids kept."""
        ns = self._ns(namespace)
        items = list(items)
        records = [self._to_record(it, ns) for it in items]
        caller_ids = any(isinstance(it, MemoryRecord) for it in items)  # compress() ids are fresh uuids
        if not records:
            return []
        embs = self._embed([r.question for r in records])
        with self._lock, self._errors("add records"):
            col = self._collection(ns, create=True)
            given = [r.id for r in records]
            if len(set(given)) != len(given):
                raise InvalidInputError("the records to add carry repeated ids")
            if caller_ids:
                clash = col.get(ids=given, include=[])["ids"]
                if clash:
                    raise InvalidInputError(f"record id(s) already stored: {clash[:5]}; delete them or import_jsonl")
            kept, new, updates = apply_write_rules(col, records, embs, self.config.duplicate_threshold, self._batch())
            before = int(col.count()) if self._manifest is not None else 0
            self._begin(ns, 0 if self.config.max_records is not None else before, before + len(new))
            step = self._batch()
            new_ids = list(new)
            for i in range(0, len(new_ids), step):
                chunk = new_ids[i:i + step]
                col.add(ids=chunk, embeddings=np.stack([new[c][1] for c in chunk]),
                        metadatas=[to_metadata(new[c][0]) for c in chunk])
            if updates:
                up_ids = list(updates)
                col.update(ids=up_ids, embeddings=np.stack([updates[u][1] for u in up_ids]),
                           metadatas=[updates[u][2] for u in up_ids])
            self.counters["added"] += len(new)
            self.counters["replaced"] += len(updates)
            self.counters["duplicates_kept"] += len(records) - len(new) - len(updates)
            if self.config.max_records is not None:
                self._evict(col, ns)
            self._commit(ns, col)
        return kept

    def _evict(self, col: Any, ns: str) -> int:
        cap = self.config.max_records
        assert cap is not None
        n = int(col.count())
        if n <= cap:
            return 0
        target = cap - int(cap * self.config.evict_fraction)
        now = time.time()
        c = self.config
        scored = []
        for page in self._iter_records(ns):
            for s in page:
                idle = max(0.0, now - (s.record.last_used_at or float(s.meta.get("created_at", now))))
                scored.append((s.record.q_value + c.recency_weight * 2.0 ** (-idle / c.recency_half_life_s),
                               s.record.id))
        scored.sort()
        victims = [rid for _, rid in scored[: max(0, len(scored) - target)]]
        for i in range(0, len(victims), self._batch()):
            col.delete(ids=victims[i:i + self._batch()])
        self.counters["evicted"] += len(victims)
        log.info("evicted %d low-utility memories from namespace %r", len(victims), ns)
        return len(victims)

    # ------------------------------------------------------------------ recall
    def recall(
        self, question: str, *, namespace: str | None = None, k1: int | None = None, k2: int | None = None,
        epsilon: float | None = None,
    ) -> Recall:
        """MemRL two-phase recall; positive (correct) and negative (incorrect) exemplars apart, best first."""
        q = _check_question(question)
        ns = self._ns(namespace)
        col = self._collection(ns, create=False)
        if col is None:
            self.counters["recalls_empty"] += 1
            return Recall()
        return self.recall_by_embedding(self._embed([q])[0], namespace=ns, k1=k1, k2=k2, epsilon=epsilon)

    def recall_by_embedding(
        self, embedding: Any, *, namespace: str | None = None, k1: int | None = None, k2: int | None = None,
        epsilon: float | None = None,
    ) -> Recall:
        """:meth:`recall` with the query already embedded."""
        c = self.config
        k1 = c.k1 if k1 is None else int(k1)
        k2 = min(k1, c.k2 if k2 is None else int(k2))
        eps = c.epsilon if epsilon is None else float(epsilon)
        if k1 < 1 or k2 < 1 or not 0 <= eps <= 1:
            raise InvalidInputError(f"need k1 >= k2 >= 1 and epsilon in [0, 1], got k1={k1}, k2={k2}, epsilon={eps}")
        ns = self._ns(namespace)
        self.counters["recalls"] += 1
        with self._errors("query memories"):
            col = self._collection(ns, create=False)
            if col is None:
                self.counters["recalls_empty"] += 1
                return Recall()
            res = col.query(query_embeddings=np.asarray(embedding, np.float32)[None, :], n_results=k1,
                            include=["metadatas", "distances"])
        ids, metas = res["ids"][0], res["metadatas"][0]
        if not ids:
            self.counters["recalls_empty"] += 1
            return Recall()
        sims = 1.0 - np.asarray(res["distances"][0], dtype=np.float64)
        best = float(sims.max())
        keep = np.flatnonzero(sims >= c.delta)
        if best < c.tau or keep.size == 0:
            self.counters["recalls_empty"] += 1
            return Recall(best_similarity=best, used_memory=False)
        states = [self._fold(metas[i]) for i in keep]
        qs = np.array([s.q for s in states])
        scores = phase_b_scores(sims[keep], qs, sim_weight=c.sim_weight, q_weight=c.q_weight, clip=c.z_clip)
        explored = eps > 0 and self._rng.random() < eps
        if explored:
            order = self._rng.sample(range(keep.size), min(k2, keep.size))
            self.counters["recalls_explored"] += 1
        else:
            order = list(np.argsort(-scores, kind="stable")[:k2])
        out: dict[str, list[ScoredMemory]] = {"correct": [], "incorrect": [], "unknown": []}
        for j in order:
            i = int(keep[j])
            rec = from_metadata(ids[i], metas[i], ns, states[j])
            out[rec.judgement].append(ScoredMemory(record=rec, similarity=float(sims[i]), score=float(scores[j]),
                                                   explored=explored))
        return Recall(positive=out["correct"], negative=out["incorrect"], neutral=out["unknown"],
                      best_similarity=best, used_memory=True)

    # ------------------------------------------------------------------ utilities
    def update_utilities(
        self, task_id: str, used_ids: Sequence[str], reward: float, *, namespace: str | None = None
    ) -> UtilityUpdate:
        """Q <- Q + alpha * (reward - Q) for each memory used by ``task_id``; a repeat of the same task counts once.

        All ids are checked first (an unknown id changes nothing); the update is one atomic Chroma write.
        """
        if not isinstance(task_id, str) or not task_id.strip():
            raise InvalidInputError("task_id must be a non-empty string")
        r = _check_reward(reward)
        ids = _check_ids(used_ids, "used_ids")
        ns = self._ns(namespace)
        if not ids:
            return UtilityUpdate(applied=(), repeated=(), q_values={})
        metas = self._metas(ns, ids)
        c = self.config
        h = task_hash(task_id)
        now = time.time()
        patch_ids: list[str] = []
        patches: list[dict[str, Any]] = []
        repeated: list[str] = []
        q_values: dict[str, float] = {}
        for i in ids:
            meta = metas[i]
            st = self._fold(meta)
            if st.has_task(h):
                repeated.append(i)
                q_values[i] = st.q
                continue
            patch: dict[str, Any] = {EVENT_PREFIX + h: event_value(now, r)}
            merged = {**meta, **patch}
            if len(st.events) + 1 > c.compact_after_events:
                cp = compaction_patch(merged, now=now, grace_s=c.compaction_grace_s, alpha=c.alpha,
                                      q_init=c.q_init, success_threshold=c.success_threshold,
                                      applied_window=c.applied_window)
                if cp:
                    patch.update(cp)
                    merged = {k: v for k, v in {**meta, **patch}.items() if v is not None}
            patch_ids.append(i)
            patches.append(patch)
            q_values[i] = self._fold(merged).q
        if patch_ids:
            with self._errors("update utilities"):
                self._collection(ns, create=False).update(ids=patch_ids, metadatas=patches)
        self.counters["utility_updates"] += len(patch_ids)
        self.counters["utility_repeats"] += len(repeated)
        return UtilityUpdate(applied=tuple(patch_ids), repeated=tuple(repeated), q_values=q_values)

    # ------------------------------------------------------------------ deletion
    def delete(
        self, ids: str | Sequence[str] | None = None, *, task_id: str | None = None, namespace: str | None = None
    ) -> int:
        """Delete by ids, by task id, or (with only ``namespace``) a whole namespace. Returns how many went."""
        if ids is None and task_id is None:
            if namespace is None:
                raise InvalidInputError("say what to delete: ids=, task_id= or namespace=")
            ns = self._check_ns(namespace)
            with self._lock, self._errors("delete a namespace"):
                col = self._collection(ns, create=False)
                if col is None:
                    return 0
                n = int(col.count())
                self._begin(ns, 0, n)
                self._client.delete_collection(col.name)
                self._cols.pop(ns, None)
                if self._manifest is not None:
                    self._manifest.drop(ns)
            self.counters["deleted"] += n
            return n
        ns = self._ns(namespace)
        victims: list[str] = []
        if ids is not None:
            victims += list(self._metas(ns, _check_ids(ids)))
        with self._lock, self._errors("delete records"):
            col = self._collection(ns, create=False)
            if col is None:
                return 0
            if task_id is not None:
                if not isinstance(task_id, str) or not task_id:
                    raise InvalidInputError("task_id must be a non-empty string")
                victims += col.get(where={"task_id": task_id}, include=[])["ids"]
            victims = list(dict.fromkeys(victims))
            if victims:
                n = int(col.count()) if self._manifest is not None else 0
                self._begin(ns, n - len(victims), n)
                col.delete(ids=victims)
                self._commit(ns, col)
        self.counters["deleted"] += len(victims)
        return len(victims)

    # ------------------------------------------------------------------ batch interface (export, import, stats)
    def _iter_records(self, namespace: str | None = None, *, embeddings: bool = False, batch: int = _PAGE
                      ) -> Iterator[list[StoredRecord]]:
        """Every record of a namespace as stored, in lists of up to ``batch`` (one Chroma read each)."""
        ns = self._ns(namespace)
        col = self._collection(ns, create=False)
        if col is None:
            return
        include = ["metadatas", "embeddings"] if embeddings else ["metadatas"]
        offset = 0
        while True:
            with self._errors("scan records"):
                got = col.get(include=include, limit=batch, offset=offset)
            if not got["ids"]:
                return
            embs = got.get("embeddings") if embeddings else None
            yield [StoredRecord(record=self._record(rec_id, meta, ns), meta=meta,
                                embedding=None if embs is None else np.asarray(embs[j], np.float32))
                   for j, (rec_id, meta) in enumerate(zip(got["ids"], got["metadatas"], strict=True))]
            offset += len(got["ids"])

    def _stored(self, rec_id: str, meta: dict[str, Any], namespace: str | None = None,
                embedding: Any = None) -> StoredRecord:
        """Raw metadata checked as a record of this store (non-empty question, reward in range); raises
        :class:`InvalidInputError` or ``ValueError`` on a bad one."""
        rec = self._record(str(rec_id), meta, self._ns(namespace))
        _check_question(rec.question)
        _check_reward(rec.reward)
        if not all(is_utility_key(k) for k in meta if k not in ("task_id", "rec")):
            raise InvalidInputError("metadata keys other than the record and its utility keys")
        emb = None if embedding is None else np.asarray(embedding, np.float32)
        return StoredRecord(record=rec, meta=dict(meta), embedding=emb)

    def _put_records(self, records: Sequence[StoredRecord]) -> int:
        """Write records as they are (ids, static fields and utility keys kept; no write rules), each into its
        record's namespace: an existing id is overwritten, utility keys included. Records without an embedding
        are embedded from their question first, so a failure there writes nothing."""
        by_ns: dict[str, list[StoredRecord]] = {}
        for r in records:
            by_ns.setdefault(self._check_ns(r.record.namespace), []).append(r)
        vectors: dict[str, list[np.ndarray]] = {}
        for ns, items in by_ns.items():
            missing = [r.record.question for r in items if r.embedding is None]
            fresh = iter(self._embed(missing)) if missing else iter(())
            vectors[ns] = [r.embedding if r.embedding is not None else next(fresh) for r in items]
        for ns, items in by_ns.items():
            with self._lock, self._errors("write records"):
                col = self._collection(ns, create=True)
                before = int(col.count())
                self._begin(ns, before, before + len(items))
                step = self._batch()
                for i in range(0, len(items), step):
                    chunk = items[i:i + step]
                    ids = [r.record.id for r in chunk]
                    got = col.get(ids=ids, include=["metadatas"])
                    old = dict(zip(got["ids"], got["metadatas"], strict=True))
                    metas = []
                    for r in chunk:  # utility keys the new record lacks are removed (None deletes a key)
                        m: dict[str, Any] = {k: None for k in old.get(r.record.id, {}) if is_utility_key(k)}
                        m.update(r.meta)
                        metas.append(m)
                    col.upsert(ids=ids, embeddings=np.stack(vectors[ns][i:i + step]), metadatas=metas)
                self._commit(ns, col)
        return sum(len(v) for v in by_ns.values())

    # ------------------------------------------------------------------ stats, export, import
    def stats(self, namespace: str | None = None) -> dict[str, Any]:
        """Counts, judgements, utility and compression figures per namespace (a full scan), plus counters."""
        from ._portable import stats

        return stats(self, namespace)

    def export_jsonl(self, path: str | Path, *, namespace: str | None = None, embeddings: bool = False) -> int:
        """Write every record of a namespace (all namespaces when ``namespace="*"``) as JSON lines, atomically;
        utilities travel with their idempotency keys."""
        from ._portable import export_jsonl

        return export_jsonl(self, path, namespace=namespace, embeddings=embeddings)

    def import_jsonl(self, path: str | Path, *, namespace: str | None = None) -> int:
        """Load records written by :meth:`export_jsonl` (ids, utilities and idempotency keys kept); an existing id
        is overwritten. Every line is checked before anything is written."""
        from ._portable import import_jsonl

        return import_jsonl(self, path, namespace=namespace)

    def close(self) -> None:
        """Drop the client and cached collections (the data stays on disk or on the server)."""
        self._cols.clear()
        client, self._client = self._client, None
        if client is not None:
            from ._chroma import close_client

            close_client(client)
        if self._writer is not None:
            self._writer.release()

    def __enter__(self) -> TrajectoryStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"TrajectoryStore({self.where!r}, namespace={self.namespace!r})"
