"""miaflow's memories as a LangGraph store: :class:`LangGraphStore` is a ``langgraph.store.base.BaseStore`` over the
trajectory store (and, for conversation namespaces, Bi-Mem), so ``graph.compile(store=...)``, ``get_store()`` in a
node and langmem's memory tools read and write miaflow memory unchanged.

Mapping:

- a namespace tuple ``("users", "alice")`` is the trajectory-store namespace ``"users.alice"`` (one Chroma
  collection); characters miaflow namespaces do not allow are written ``=XX`` (:func:`._mapping.namespace_to_miaflow`;
  one-to-one, since LangGraph labels are non-empty and hold no ``.``); the agent's own namespace ``"default"`` is
  ``("default",)``;
- an item is one record of that namespace, its key the record id. The raw JSON value, its vectors and timestamps
  travel in the record's metadata, so ``get`` returns exactly what was put; the record's trajectory fields come
  from the value (``question``, ``answer``, ``plan``, ``summary``, ``judgement``, ``reward``, ``task_id``,
  ``evidence_ids`` when present; otherwise the question is the first indexed text), so ``TrajectoryStore.recall``
  finds items written through LangGraph and, the other way round, records the agent wrote read as values of their
  fields (with ``q_value``, ``usage_count``, ``success_count``);
- with ``bimem=``, a namespace ``(conversation_label, conversation_id)`` is also a Bi-Mem conversation: values
  shaped as messages (``speaker``/``role`` and ``text``/``content`` strings) become turns (turn id = key), and a
  search with a query there is ranked by Bi-Mem's retrieval (a turn scores the best item that brings it).
  Turns Bi-Mem holds that no item carries (a conversation ingested directly) read as items too, the turn as
  value. Changing or deleting a turn rebuilds the conversation from the remaining turns (in LLM mode that calls
  the model again).

Semantics follow LangGraph's ``InMemoryStore``: reads of a batch see the state before its writes, the last write
to a key in a batch wins, a write sets both ``created_at`` and ``updated_at`` to now but keeps the item's place in
unranked results (namespace first written, then key first written), filters are exact matches on top-level fields
or ``$eq/$ne/$gt/$gte/$lt/$lte``, a ranked search puts items with no vector after the ranked ones, and a
namespace stays listed after its last item is deleted. Differences: values must be JSON (a value comes back
decoded, tuples as lists); search always embeds (the trajectory store's embedder unless ``index["embed"]`` is
given) and scores by exact cosine over every item of the matching namespaces (linear in their size, no ANN
index); a namespace emptied and written again moves to the end of unranked results; a ``get`` never makes a
namespace appear in ``list_namespaces`` (``InMemoryStore``'s does); no TTL.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import threading
import time
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from langgraph.store.base import (
    BaseStore,
    GetOp,
    IndexConfig,
    Item,
    ListNamespacesOp,
    Op,
    PutOp,
    Result,
    SearchItem,
    SearchOp,
    ensure_embeddings,
    get_text_at_path,
    tokenize_path,
    validate_op_namespace,
)

from ...errors import InvalidInputError, MemoryStoreError
from .._codec import from_metadata, pack
from .._utility import is_utility_key
from ..store import TrajectoryStore
from ._mapping import (
    EmbedderAdapter,
    json_value,
    matches_filter,
    namespace_from_miaflow,
    namespace_matches,
    namespace_to_miaflow,
    pack_vecs,
    timestamp,
    trajectory_fields,
    unpack_vecs,
)

if TYPE_CHECKING:
    from ..bimem import BiMemory

__all__ = ["LangGraphStore"]

_SEP = "."
_PAGE = 2000


def _digest(meta: Mapping[str, Any]) -> str:
    """A fingerprint of a record's trajectory fields as this store wrote them."""
    body = f"{meta.get('task_id', '')}\x00{meta.get('rec', '')}"
    return hashlib.sha1(body.encode("utf-8")).hexdigest()[:16]


def _owned(meta: Mapping[str, Any]) -> bool:
    """Whether the raw value in a record's metadata is still its content: the trajectory store may since have
    replaced the record under the same id (a near-duplicate run), and then the record's own fields are the value."""
    return meta.get("lg_value") is not None and meta.get("lg_rec") == _digest(meta)


class LangGraphStore(BaseStore):
    """A durable LangGraph ``BaseStore`` over a :class:`~miaflow.memory.TrajectoryStore` (and optionally Bi-Mem).

    >>> store = LangGraphStore("memories/")                                  # doctest: +SKIP
    >>> graph = builder.compile(store=store)                                 # doctest: +SKIP

    ``trajectories``: a store, or a folder to open one in. ``index``: LangGraph's ``IndexConfig`` (``embed`` a
    LangChain ``Embeddings`` or a function of texts; ``fields`` the paths embedded, default the whole value); with
    a folder, the trajectory store opened there embeds with it too, so that its recall and the items share one
    vector space (give a store of your own the same embedder). ``bimem``: a
    :class:`~miaflow.memory.bimem.BiMemory` behind the ``(conversation_label, id)`` namespaces.
    """

    supports_ttl = False

    def __init__(self, trajectories: TrajectoryStore | str | Path, *, bimem: BiMemory | None = None,
                 index: IndexConfig | None = None, conversation_label: str = "conversations"):
        cfg: dict[str, Any] = dict(index or {})
        custom = ensure_embeddings(cfg["embed"]) if cfg.get("embed") is not None else None
        if isinstance(trajectories, TrajectoryStore):
            self.trajectories = trajectories
        elif isinstance(trajectories, (str, Path)):
            self.trajectories = TrajectoryStore(trajectories, embedder=EmbedderAdapter(custom) if custom else None)
        else:
            raise InvalidInputError(f"give a TrajectoryStore or a folder, got {type(trajectories).__name__}")
        self._custom = custom
        self.fields = list(cfg.get("fields") or ["$"])
        self._fields = [(p, p if p == "$" else tokenize_path(p)) for p in self.fields]
        self.bimem = bimem
        namespace_to_miaflow((conversation_label,))  # a valid label, or a clear error
        self.conversation_label = conversation_label
        self._lock = threading.RLock()
        self._last_seq = 0

    # ------------------------------------------------------------------ plumbing
    def _embed(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        if self._custom is not None:
            vecs = np.asarray(self._custom.embed_documents(texts), dtype=np.float32)
        else:
            vecs = np.asarray(self.trajectories.embedder.embed(texts), dtype=np.float32)
        if vecs.ndim != 2 or vecs.shape[0] != len(texts) or not np.isfinite(vecs).all():
            raise MemoryStoreError("the embedder returned vectors of the wrong shape or non-finite values")
        return vecs

    def _seq(self) -> int:
        self._last_seq = max(self._last_seq + 1, time.time_ns())
        return self._last_seq

    def _col(self, ns: tuple[str, ...], *, create: bool) -> Any:
        try:
            name = namespace_to_miaflow(ns)
        except InvalidInputError:
            if create:
                raise
            return None  # a namespace no item can be written to holds none
        with self.trajectories._errors("open a namespace"):
            return self.trajectories._collection(name, create=create)

    def _begin(self, ns: tuple[str, ...], low: int, high: int) -> None:
        """Tell the trajectory store's integrity manifest (where it keeps one) the counts a write may leave."""
        begin = getattr(self.trajectories, "_begin", None)
        if begin is not None:
            begin(namespace_to_miaflow(ns), low, high)

    def _commit(self, ns: tuple[str, ...], col: Any) -> None:
        commit = getattr(self.trajectories, "_commit", None)
        if commit is not None:
            commit(namespace_to_miaflow(ns), col)

    def _conversation(self, ns: tuple[str, ...]) -> str | None:
        if self.bimem is not None and len(ns) == 2 and ns[0] == self.conversation_label:
            return ns[1]
        return None

    def _texts(self, value: Mapping[str, Any], index: Any) -> list[tuple[str, str]]:
        """(path, text) pairs to embed for a value, as ``InMemoryStore`` extracts them."""
        if index is False:
            return []
        paths = self._fields if index is None else [(p, p if p == "$" else tokenize_path(p)) for p in index]
        out: list[tuple[str, str]] = []
        for path, tokens in paths:
            texts = get_text_at_path(value, tokens)
            out += [(f"{path}.{i}" if len(texts) > 1 else path, t) for i, t in enumerate(texts)]
        return out

    # ------------------------------------------------------------------ decoding records
    def _item(self, ns: tuple[str, ...], rec_id: str, meta: Mapping[str, Any], emb: Any) -> dict[str, Any]:
        """An internal row: the LangGraph item, its vectors, and its place in unranked results."""
        if _owned(meta):
            value = json.loads(meta["lg_value"])
            vecs = unpack_vecs(str(meta.get("lg_vecs") or ""), int(meta.get("lg_dim") or 0))
            created, updated = timestamp(meta.get("lg_created")), timestamp(meta.get("lg_updated"))
            order = (int(meta.get("lg_nsseq") or 0), int(meta.get("lg_seq") or 0))
        else:  # a record the agent wrote (or replaced under this key): its fields are the value
            rec = from_metadata(rec_id, meta, namespace_to_miaflow(ns), self.trajectories._fold(dict(meta)))
            value = {name: getattr(rec, name) for name in (
                "question", "plan", "summary", "answer", "judgement", "reward", "task_id", "model",
                "adapter_version", "q_value", "usage_count", "success_count")}
            value["evidence_ids"] = list(rec.evidence_ids)
            created = updated = timestamp(rec.created_at)
            if rec.last_used_at:
                updated = timestamp(rec.last_used_at)
            vecs = np.zeros((0, 0), np.float32) if emb is None else np.asarray(emb, np.float32)[None, :]
            order = (0, int(rec.created_at * 1e9))
        return {"ns": ns, "key": rec_id, "value": value, "created": created, "updated": updated, "vecs": vecs,
                "order": order}

    def _rows(self, ns: tuple[str, ...], *, ids: list[str] | None = None, vectors: bool = False) -> list[dict]:
        """The items of a namespace; in a conversation namespace also the Bi-Mem turns no item carries (written
        outside LangGraph: their value is the turn, their timestamps unknown, shown as the epoch)."""
        rows = self._chroma_rows(ns, ids=ids, vectors=vectors)
        bimem, conv = self.bimem, self._conversation(ns)
        if bimem is None or conv is None or conv not in bimem.conversations():
            return rows
        have, wanted = {r["key"] for r in rows}, None if ids is None else set(ids)
        epoch = datetime.fromtimestamp(0, UTC)
        for i, t in enumerate(bimem.turns(conv)):
            if t.id not in have and (wanted is None or t.id in wanted):
                rows.append({"ns": ns, "key": t.id, "created": epoch, "updated": epoch, "order": (0, i),
                             "value": {"speaker": t.speaker, "text": t.text, "time": t.time, "session": t.session},
                             "vecs": np.zeros((0, 0), np.float32)})
        return rows

    def _chroma_rows(self, ns: tuple[str, ...], *, ids: list[str] | None = None,
                     vectors: bool = False) -> list[dict]:
        col = self._col(ns, create=False)
        if col is None or ids == []:
            return []
        metas: list[tuple[str, dict]] = []
        offset = 0
        with self.trajectories._errors("read items"):
            while True:
                got = (col.get(ids=ids, include=["metadatas"]) if ids is not None
                       else col.get(include=["metadatas"], limit=_PAGE, offset=offset))
                metas += [(rid, meta or {}) for rid, meta in zip(got["ids"], got["metadatas"], strict=True)]
                if ids is not None or len(got["ids"]) < _PAGE:
                    break
                offset += len(got["ids"])
            # items carry their vectors in metadata; only records the agent wrote need Chroma's
            bare = [rid for rid, meta in metas if not _owned(meta)] if vectors else []
            embs: dict[str, Any] = {}
            if bare:
                got = col.get(ids=bare, include=["embeddings"])
                embs = dict(zip(got["ids"], got["embeddings"], strict=True))
        return [self._item(ns, rid, meta, embs.get(rid)) for rid, meta in metas]

    def _namespaces(self) -> list[tuple[str, ...]]:
        """Namespaces of the trajectory store a LangGraph namespace maps to, and Bi-Mem's conversations."""
        out = []
        for name in self.trajectories.namespaces():
            ns = namespace_from_miaflow(name)
            if all(ns) and not any(_SEP in label for label in ns) and namespace_to_miaflow(ns) == name:
                out.append(ns)  # a name no LangGraph namespace maps to is left alone
        if self.bimem is not None:
            out += [(self.conversation_label, c) for c in self.bimem.conversations() if c and _SEP not in c]
        return sorted(set(out))

    # ------------------------------------------------------------------ reads
    def _get(self, ops: list[tuple[int, GetOp]], results: list[Result]) -> None:
        by_ns: dict[tuple[str, ...], list[tuple[int, str]]] = {}
        for i, op in ops:
            by_ns.setdefault(tuple(op.namespace), []).append((i, str(op.key)))
        for ns, wanted in by_ns.items():
            rows = {r["key"]: r for r in self._rows(ns, ids=list(dict.fromkeys(k for _, k in wanted)))}
            for i, key in wanted:
                r = rows.get(key)
                results[i] = None if r is None else Item(value=r["value"], key=key, namespace=ns,
                                                         created_at=r["created"], updated_at=r["updated"])

    def _search(self, op: SearchOp, qvec: np.ndarray | None) -> list[SearchItem]:
        prefix = tuple(op.namespace_prefix)
        limit, offset = int(op.limit), int(op.offset)
        rows: list[dict] = []
        ranked: dict[tuple, float] = {}
        for ns in self._namespaces():
            if ns[: len(prefix)] != prefix:
                continue
            ns_rows = [r for r in self._rows(ns, vectors=op.query is not None)
                       if matches_filter(r["value"], op.filter)]
            bimem, conv = self.bimem, self._conversation(ns)
            if op.query and bimem is not None and conv is not None and ns_rows and conv in bimem.conversations():
                for it in bimem.retrieve(op.query, conv, k=max(10, limit + offset)):
                    for tid in it.turn_ids:
                        k = (ns, tid)
                        ranked[k] = max(ranked.get(k, -math.inf), float(it.score))
                for r in ns_rows:
                    r["vecs"] = np.zeros((0, 0), np.float32)  # Bi-Mem ranks this conversation
            rows += ns_rows
        rows.sort(key=lambda r: r["order"])
        if not op.query:
            return [self._search_item(r, None) for r in rows[offset: offset + limit]]
        scored: list[tuple[float, dict]] = []
        scoreless: list[dict] = []
        blocks: list[np.ndarray] = []
        owners: list[int] = []
        by_vec: list[dict] = []
        for r in rows:
            k = (r["ns"], r["key"])
            if k in ranked:
                scored.append((ranked[k], r))
            elif r["vecs"].size and qvec is not None and r["vecs"].shape[1] == qvec.shape[0]:
                blocks.append(r["vecs"])
                owners += [len(by_vec)] * len(r["vecs"])
                by_vec.append(r)
            else:
                scoreless.append(r)
        if by_vec and qvec is not None:  # exact cosine, one matrix product; an item scores its best vector (as InMemoryStore)
            mat = np.concatenate(blocks).astype(np.float64)
            norms = np.linalg.norm(mat, axis=1) * (np.linalg.norm(qvec) or 1.0)
            sims = np.divide(mat @ qvec, norms, out=np.zeros(len(mat)), where=norms > 0)
            best = np.full(len(by_vec), -np.inf)
            np.maximum.at(best, np.asarray(owners), sims)
            scored += [(float(b), r) for b, r in zip(best, by_vec, strict=True)]
        scored.sort(key=lambda x: x[0], reverse=True)
        kept: list[tuple[float | None, dict]] = list(scored[offset: offset + limit])
        if scoreless and len(kept) < limit:  # as InMemoryStore: fill with items that have no vector
            kept += [(None, r) for r in scoreless[: limit - len(kept)]]
        return [self._search_item(r, s) for s, r in kept]

    @staticmethod
    def _search_item(r: dict, score: float | None) -> SearchItem:
        return SearchItem(namespace=r["ns"], key=r["key"], value=r["value"], created_at=r["created"],
                          updated_at=r["updated"], score=score)

    def _list(self, op: ListNamespacesOp) -> list[tuple[str, ...]]:
        names = self._namespaces()
        for cond in op.match_conditions or ():
            names = [ns for ns in names if namespace_matches(ns, cond)]
        if op.max_depth is not None:
            names = sorted({ns[: op.max_depth] for ns in names})
        return names[op.offset: op.offset + op.limit]

    # ------------------------------------------------------------------ writes
    def _put(self, puts: dict[tuple[tuple[str, ...], str], PutOp]) -> None:
        now_dt = datetime.now(UTC)
        now, stamp = now_dt.timestamp(), now_dt.isoformat()
        plans: list[dict[str, Any]] = []
        to_embed: list[str] = []
        for (ns, key), op in puts.items():
            if op.value is None:
                plans.append({"ns": ns, "key": key, "delete": True})
                continue
            value, raw = json_value(op.value, f"put {ns}/{key}")
            texts = self._texts(value, op.index)
            question = value.get("question") if isinstance(value.get("question"), str) else None
            question = (question or "").strip() or (texts[0][1] if texts else raw)
            first = len(to_embed)
            to_embed += [t for _, t in texts]
            q_row = next((first + j for j, (_, t) in enumerate(texts) if t == question), None)
            if q_row is None:
                q_row = len(to_embed)
                to_embed.append(question)
            plans.append({"ns": ns, "key": key, "delete": False, "value": value, "raw": raw, "question": question,
                          "rows": list(range(first, first + len(texts))), "q_row": q_row})
        vecs = self._embed(to_embed)
        by_ns: dict[tuple[str, ...], list[dict]] = {}
        for p in plans:
            by_ns.setdefault(p["ns"], []).append(p)
        for ns, group in by_ns.items():
            self._write_namespace(ns, group, vecs, now, stamp)

    def _write_namespace(self, ns: tuple[str, ...], group: list[dict], vecs: np.ndarray, now: float,
                         stamp: str) -> None:
        writes = [p for p in group if not p["delete"]]
        col = self._col(ns, create=bool(writes))
        if col is not None:
            self._write_records(ns, col, group, writes, vecs, now, stamp)
        conv = self._conversation(ns)
        if conv is not None and self.bimem is not None:
            self._mirror_conversation(self.bimem, conv, group)

    def _write_records(self, ns: tuple[str, ...], col: Any, group: list[dict], writes: list[dict],
                       vecs: np.ndarray, now: float, stamp: str) -> None:
        keys = [p["key"] for p in group]
        with self.trajectories._errors("write items"):
            got = col.get(ids=keys, include=["metadatas"])
            old = dict(zip(got["ids"], got["metadatas"], strict=True))
            nsseq = next((int(m["lg_nsseq"]) for m in old.values() if m and m.get("lg_nsseq")), 0)
            if not nsseq:
                peek = col.get(limit=1, include=["metadatas"])
                meta0 = (peek["metadatas"] or [None])[0] or {}
                nsseq = int(meta0.get("lg_nsseq") or 0) or self._seq()
            gone = [p["key"] for p in group if p["delete"] and p["key"] in old]
            n_new = len({p["key"] for p in writes} - set(old))
            moves = bool(gone or n_new)  # only a write that changes the count goes through the manifest
            if moves:
                before = int(col.count())
                self._begin(ns, before - len(gone), before + n_new)
            if gone:
                col.delete(ids=gone)
            adds: dict[str, list] = {"ids": [], "embeddings": [], "metadatas": []}
            ups: dict[str, list] = {"ids": [], "embeddings": [], "metadatas": []}
            for p in writes:
                prev = old.get(p["key"])
                mine = vecs[p["rows"]] if p["rows"] else np.zeros((0, vecs.shape[1]), np.float32)
                meta: dict[str, Any] = {k: None for k in (prev or {}) if is_utility_key(k) or k.startswith("lg_")}
                meta.update(pack(trajectory_fields(p["key"], p["value"], p["question"], now)))
                meta.update({
                    "lg_rec": _digest(meta),
                    "lg_value": p["raw"], "lg_vecs": pack_vecs(mine), "lg_dim": int(vecs.shape[1]),
                    "lg_seq": int((prev or {}).get("lg_seq") or self._seq()), "lg_nsseq": nsseq,
                    "lg_created": stamp, "lg_updated": stamp,
                })
                target = ups if prev is not None else adds
                target["ids"].append(p["key"])
                target["embeddings"].append(vecs[p["q_row"]])
                target["metadatas"].append(meta if prev is not None else {k: v for k, v in meta.items()
                                                                          if v is not None})
            for target, call in ((adds, col.add), (ups, col.update)):
                if target["ids"]:
                    call(ids=target["ids"], embeddings=np.stack(target["embeddings"]),
                         metadatas=target["metadatas"])
            if moves:
                self._commit(ns, col)

    @staticmethod
    def _mirror_conversation(bimem: BiMemory, conv: str, group: list[dict]) -> None:
        """Keep the Bi-Mem conversation in step with the message-shaped items of its namespace."""
        from ..bimem.ingest import parse_messages

        def message(p: dict) -> dict[str, Any] | None:
            v = p["value"]
            speaker, text = v.get("speaker", v.get("role")), v.get("text", v.get("content"))
            if not (isinstance(speaker, str) and speaker.strip() and isinstance(text, str) and text.strip()):
                return None
            return {"id": p["key"], "speaker": speaker, "text": text, "time": v.get("time", ""),
                    "session": v.get("session", 0) if isinstance(v.get("session"), int) else 0}

        new = [m for p in group if not p["delete"] and (m := message(p)) is not None]
        known = {t.id for t in bimem.turns(conv)} if conv in bimem.conversations() else set()
        changed = {p["key"] for p in group if p["key"] in known}
        if changed:  # Bi-Mem never rewrites a turn: rebuild the conversation from what remains
            keep = [t for t in bimem.turns(conv) if t.id not in changed]
            bimem.delete_conversation(conv)
            if keep:
                bimem.add_turns(conv, keep)
        if new:
            bimem.add_turns(conv, parse_messages(new))

    # ------------------------------------------------------------------ the batch operation
    def batch(self, ops: Iterable[Op]) -> list[Result]:
        """Run a batch like ``InMemoryStore``: gets, searches and listings first, then the puts (last one wins)."""
        ops = list(ops)
        results: list[Result] = [None] * len(ops)
        gets: list[tuple[int, GetOp]] = []
        searches: list[tuple[int, SearchOp]] = []
        puts: dict[tuple[tuple[str, ...], str], PutOp] = {}
        for i, op in enumerate(ops):
            validate_op_namespace(op)
            if isinstance(op, GetOp):
                gets.append((i, op))
            elif isinstance(op, SearchOp):
                searches.append((i, op))
            elif isinstance(op, ListNamespacesOp):
                results[i] = self._list(op)
            elif isinstance(op, PutOp):
                namespace_to_miaflow(op.namespace)
                puts[(tuple(op.namespace), str(op.key))] = op
            else:
                raise InvalidInputError(f"unknown store operation {type(op).__name__}")
        with self._lock:
            if gets:
                self._get(gets, results)
            queries = sorted({op.query for _, op in searches if op.query})
            qvecs = dict(zip(queries, self._embed(queries), strict=True)) if queries else {}
            for i, op in searches:
                results[i] = self._search(op, qvecs.get(op.query) if op.query else None)
            if puts:
                self._put(puts)
        return results

    async def abatch(self, ops: Iterable[Op]) -> list[Result]:
        """:meth:`batch` in a worker thread (Chroma and the embedder are synchronous)."""
        return await asyncio.to_thread(self.batch, list(ops))

    def __repr__(self) -> str:
        return f"LangGraphStore({self.trajectories.where!r}, bimem={self.bimem is not None})"
