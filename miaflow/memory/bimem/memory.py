"""Bi-Mem: hierarchical conversation memory (facts -> scenes -> persona) with associative retrieval.

Method (Bi-Mem): the inductive agent turns conversation turns into facts; a graph over the facts groups them into
scenes; scenes are summarised and a persona per speaker is inferred from them, and a reflective agent checks the
scene summaries against the persona (bottom-up and top-down construction). Retrieval seeds with hybrid
dense + BM25 scores and spreads activation through the levels (:mod:`.retrieval`).

Storage: the embedded vectors (facts; in LLM mode also scene summaries and personas) live in one Chroma
collection (embedded folder or HTTP server); fast mode's scene and persona vectors are centroids of fact vectors
and are recomputed on load;
the texts, graph, scenes, personas and turns live in JSON files per conversation written atomically beside it
(Chroma holds ids, vectors and the conversation id only, so no text outlives a deletion in Chroma's write-ahead
log; deleted vectors stay in that log until Chroma compacts it, or ``chroma vacuum --path DIR``). The word vectors
of query expansion (:mod:`.vocabulary`) are derived data in ``vocab.npz`` beside the JSON. Chroma is
written first and the JSON last, and opening the memory reconciles the two (missing vectors are re-embedded, stray
ones deleted), so a crash between the two writes loses nothing already stored. Dense search runs in numpy over
vectors cached in RAM per conversation; Chroma is the durable copy.
Simplified: no capacity limits; a conversation's facts are never rewritten once induced.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
import weakref
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...errors import InvalidInputError, MemoryStoreError
from ...llm.base import ChatModel
from .._limits import cap_text, clean_text
from . import _persist as persist
from ._state import ConversationState
from .config import MODES, BiMemConfig
from .facts import induce_facts, observation_facts
from .ingest import parse_messages
from .persona import extractive_persona, llm_persona, reflect
from .records import Fact, MemoryItem, Scene, Turn
from .retrieval import retrieve_items
from .scenes import build_scenes, graph_from_json, graph_to_json, link_facts, llm_summary, scene_labels
from .vocabulary import Vocabulary, words_of

if TYPE_CHECKING:
    from ..embeddings import Embedder

__all__ = ["BiMemory"]

log = logging.getLogger(__name__)
_FORMAT = 1
_BATCH = 1000
_VOCAB = "vocab.npz"
_WORD_CACHE = 4096


class BiMemory:
    """Hierarchical conversation memory persisted under ``path``.

    ``llm=None`` is the fast mode: each turn is an observation fact, scene summaries and personas are extractive,
    and no model is called. With an LLM (any :class:`~miaflow.llm.base.ChatModel`), facts are induced, scenes and
    personas are written by the model and scene summaries are checked against personas.
    """

    def __init__(self, path: str | Path, *, config: BiMemConfig | None = None, llm: ChatModel | None = None,
                 embedder: Embedder | None = None, namespace: str = "default", host: str | None = None,
                 port: int | None = None):
        from .._chroma import open_client
        from .._namespace import check_namespace, collection_name, storage_name

        self.namespace = check_namespace(namespace)
        self.config = config or BiMemConfig()
        self.llm = llm
        self._embedder = embedder
        self.root = Path(path)
        self._state_dir = self.root / "bimem" / storage_name(namespace)  # a name, never a path
        self._lock = threading.RLock()
        self.limits: Counter[str] = Counter()
        """Texts cut to ``max_turn_chars``."""
        self._writer = None
        if host is None:
            from .._lock import acquire

            self._writer = acquire(self.root, "Bi-Mem memory", serve=self.root / "chroma")
            weakref.finalize(self, self._writer.release)
        self.stats: dict[str, float] = {"turns": 0, "facts": 0, "llm_calls": 0, "extraction_fallbacks": 0,
                                        "ingest_seconds": 0.0, "embed_seconds": 0.0, "reflect_revised": 0,
                                        "reflect_conflicts": 0}
        try:
            self._client = open_client(self.root / "chroma") if host is None else open_client(host=host, port=port)
            self._col = self._client.get_or_create_collection(
                collection_name("bimem", namespace), metadata={"hnsw:space": "cosine"},
                embedding_function=self.embedder.as_chroma())
        except Exception as e:  # chromadb raises many kinds on a corrupt folder
            self.close()
            if isinstance(e, MemoryStoreError):
                raise
            raise MemoryStoreError(f"cannot open the Bi-Mem vector store under {self.root}: {e}") from e
        import networkx as nx

        self._nx = nx
        self._states: dict[str, ConversationState] = {}
        self._word_cache: dict[str, Any] = {}
        try:
            self._load()
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Give back the folder's writer lock (the data stays on disk); the object is not used after this."""
        client = getattr(self, "_client", None)
        if client is not None:
            from .._chroma import close_client

            self._client = None
            close_client(client)
        if self._writer is not None:
            self._writer.release()

    # ------------------------------------------------------------------ basics
    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            from ..embeddings import default_embedder

            self._embedder = default_embedder()
        return self._embedder

    def conversations(self) -> list[str]:
        return list(self._states)

    def turns(self, conversation_id: str) -> list[Turn]:
        return list(self._state(conversation_id).turns.values())

    def facts(self, conversation_id: str) -> list[Fact]:
        return sorted(self._state(conversation_id).facts.values(), key=lambda f: (f.seq, f.id))

    def scenes(self, conversation_id: str) -> list[Scene]:
        st = self._state(conversation_id)
        return sorted(st.scenes.values(), key=lambda s: st.facts[s.fact_ids[0]].seq)

    def scene_turns(self, scene: Scene) -> tuple[str, ...]:
        return self._state(scene.conversation_id).scene_turns(scene)

    def persona(self, speaker: str, conversation_id: str | None = None) -> str:
        """The persona of ``speaker`` (in one conversation, or all of them joined); empty if unknown."""
        states = [self._state(conversation_id)] if conversation_id is not None else list(self._states.values())
        return "\n".join(p for st in states if (p := st.personas.get(speaker)))

    def _state(self, conversation_id: str) -> ConversationState:
        st = self._states.get(conversation_id)
        if st is None:
            raise InvalidInputError(f"unknown conversation {conversation_id!r}; known: {sorted(self._states)[:10]}")
        return st

    def _chat_count(self) -> None:
        self.stats["llm_calls"] += 1

    # ------------------------------------------------------------------ writing
    def add_messages(self, conversation_id: str, messages: Iterable[Mapping[str, Any]]) -> int:
        """Add plain messages ``{"speaker", "text", "time"?, "id"?, "session"?}``; returns the turns added."""
        st = self._states.get(conversation_id)
        return self.add_turns(conversation_id, parse_messages(messages, start=len(st.turns) if st else 0))

    def add_turns(self, conversation_id: str, turns: Sequence[Turn]) -> int:
        """Add turns (incrementally: earlier facts and vectors stay; only changed scenes are summarised again).
        Turns whose id is already stored are skipped. Returns the number of turns added."""
        if not isinstance(conversation_id, str) or not conversation_id.strip():
            raise InvalidInputError("conversation_id must be a non-empty string")
        if clean_text(conversation_id) != conversation_id or "\x00" in conversation_id:
            raise InvalidInputError(f"conversation_id {conversation_id!r} holds a NUL or a lone surrogate")
        turns = list(turns)
        if any(not isinstance(t, Turn) for t in turns):
            raise InvalidInputError("add_turns takes Turn records; use add_messages for plain dicts")
        cap = self.config.max_turn_chars
        turns = [replace(t, id=clean_text(t.id), speaker=clean_text(t.speaker), time=clean_text(t.time),
                         text=cap_text(t.text, cap, self.limits, "turn")) for t in turns]
        with self._lock:
            st = self._states.get(conversation_id) or ConversationState(id=conversation_id, graph=self._nx.Graph())
            new: list[Turn] = []
            for t in turns:
                if not t.text.strip() or t.id in st.turns or any(t.id == n.id for n in new):
                    continue
                new.append(t)
            if not new:
                return 0
            t0 = time.perf_counter()
            embed_s = 0.0
            facts = self._make_facts(st, new)
            te = time.perf_counter()
            vecs = self.embedder.embed([f.text for f in facts])
            new_words = st.vocab.embed_missing(set().union(*(words_of(f.text) for f in facts)), self.embedder.embed)
            embed_s += time.perf_counter() - te
            for t in new:
                st.turns[t.id] = t
            for f, v in zip(facts, vecs, strict=True):
                st.facts[f.id] = f
                st.fact_vecs[f.id] = v
                st.fact_bm25.add(f.id, f.text)
            link_facts(st.graph, st.facts, st.fact_vecs, [f.id for f in facts], self.config)
            embed_s += self._rebuild_upper_levels(st, {t.speaker for t in new}, new_facts=facts)
            is_new = conversation_id not in self._states
            self._states[conversation_id] = st
            self._save(st, new_turns=new, new_facts=facts, manifest=is_new, vocab=bool(new_words))
            self.stats["turns"] += len(new)
            self.stats["facts"] += len(facts)
            self.stats["embed_seconds"] += embed_s
            self.stats["ingest_seconds"] += time.perf_counter() - t0 - embed_s
            return len(new)

    def _make_facts(self, st: ConversationState, new: list[Turn]) -> list[Fact]:
        seq0, n0 = st.next_seq, st.next_n
        st.next_seq += len(new)
        if self.llm is None:
            facts = observation_facts(st.id, new, start_seq=seq0, start_n=n0)
        else:
            facts = []
            w = self.config.extraction_window
            i = 0
            while i < len(new):
                window = [new[i]]
                while len(window) < w and i + len(window) < len(new) and new[i + len(window)].session == new[i].session:
                    window.append(new[i + len(window)])
                got, ok = induce_facts(self.llm, st.id, window, start_seq=seq0 + i, start_n=n0 + len(facts))
                self._chat_count()
                if not ok:
                    self.stats["extraction_fallbacks"] += 1
                facts.extend(got)
                i += len(window)
        st.next_n = n0 + len(facts)
        return facts

    def _rebuild_upper_levels(self, st: ConversationState, speakers: set[str], new_facts: Sequence[Fact] = (),
                              full: bool = False) -> float:
        """Scenes and personas after a change; returns seconds spent embedding. Writes Chroma (not the JSON)."""
        cfg = self.config
        summarize = None
        llm = self.llm
        if llm is not None:
            def summarize(members: list[str]) -> str:
                self._chat_count()
                return llm_summary(llm, st.facts, members)
        old = {} if full else st.scenes
        labels = None if full else scene_labels(st.scenes)
        scenes, fresh = build_scenes(st.graph, st.facts, st.id, cfg, old, summarize, labels)
        gone = [sid for sid in st.scenes if sid not in scenes]
        # personas of the touched speakers, then the reflective check of new scenes against them
        personas = dict(st.personas)
        all_speakers = {f.speaker for f in st.facts.values()}
        for sp in list(personas):
            if sp not in all_speakers:
                del personas[sp]
        for sp in speakers & all_speakers:
            if self.llm is None:
                personas[sp] = extractive_persona(sp, list(st.facts.values()), st.graph, cfg.persona_lines)
            else:
                self._chat_count()
                personas[sp] = llm_persona(self.llm, sp, [s for s in scenes.values() if sp in s.speakers])
        if self.llm is not None and cfg.reflect:
            for sid in fresh:
                s = scenes[sid]
                for sp in s.speakers:
                    if personas.get(sp):
                        self._chat_count()
                        before = s
                        s = reflect(self.llm, sp, personas[sp], s)
                        self.stats["reflect_revised"] += int(s.revised and not before.revised)
                        self.stats["reflect_conflicts"] += len(s.flags) - len(before.flags)
                scenes[sid] = s
        changed_personas = [sp for sp, p in personas.items() if st.personas.get(sp) != p]
        removed_personas = [sp for sp in st.personas if sp not in personas]
        # embed what is new; extractive summaries and personas are member facts, so they take the normalised
        # centroid of those facts' vectors instead of a new embedding
        te = time.perf_counter()
        if self.llm is None:
            vecs = [_centroid([st.fact_vecs[f] for f in scenes[sid].fact_ids]) for sid in fresh]
            vecs += [_centroid([v for f, v in st.fact_vecs.items() if st.facts[f].speaker == sp])
                     for sp in changed_personas]
        else:
            texts = [scenes[sid].summary for sid in fresh] + [personas[sp] for sp in changed_personas]
            vecs = list(self.embedder.embed(texts)) if texts else []
        embed_s = time.perf_counter() - te
        for sid in gone:
            st.scenes.pop(sid, None)
            st.scene_vecs.pop(sid, None)
            st.scene_bm25.remove(sid)
        for sid, v in zip(fresh, vecs[: len(fresh)], strict=True):
            st.scenes[sid] = scenes[sid]
            st.scene_vecs[sid] = v
            st.scene_bm25.add(sid, scenes[sid].summary)
        st.scenes = {sid: scenes[sid] for sid in scenes}
        for sp, v in zip(changed_personas, vecs[len(fresh):], strict=True):
            st.personas[sp] = personas[sp]
            st.persona_vecs[sp] = v
        for sp in removed_personas:
            st.personas.pop(sp, None)
            st.persona_vecs.pop(sp, None)
        st.changed()
        # Chroma first (the JSON written afterwards is the commit point). Scene and persona vectors that are
        # centroids of fact vectors (fast mode) are derived data: they are recomputed on load, not stored.
        gone_ids = [*gone, *(self._pid(st.id, sp) for sp in removed_personas)]
        self._chroma_delete([i for i in gone_ids if i in st.upper_in_chroma])
        st.upper_in_chroma.difference_update(gone_ids)
        ids, embs, docs, metas = [], [], [], []
        for f in new_facts:
            ids.append(f.id)
            embs.append(st.fact_vecs[f.id])
            docs.append(f.text)
            metas.append({"conversation_id": st.id, "level": "fact"})
        if self.llm is not None:
            for sid in fresh:
                ids.append(sid)
                embs.append(st.scene_vecs[sid])
                docs.append(st.scenes[sid].summary)
                metas.append({"conversation_id": st.id, "level": "scene"})
                st.upper_in_chroma.add(sid)
            for sp in changed_personas:
                ids.append(self._pid(st.id, sp))
                embs.append(st.persona_vecs[sp])
                docs.append(st.personas[sp])
                metas.append({"conversation_id": st.id, "level": "persona"})
                st.upper_in_chroma.add(self._pid(st.id, sp))
        self._chroma_upsert(ids, embs, docs, metas)
        return embed_s

    @staticmethod
    def _pid(conversation_id: str, speaker: str) -> str:
        return f"{conversation_id}|p:{speaker}"

    def _chroma_upsert(self, ids: list[str], embs: list[Any], docs: list[str], metas: list[dict]) -> None:
        # ``docs`` are not written: texts live only in the JSON state, so deleting them there deletes them
        # everywhere (Chroma keeps written documents in its write-ahead log until it compacts it).
        import numpy as np

        del docs
        for i in range(0, len(ids), _BATCH):
            self._col.upsert(ids=ids[i:i + _BATCH], embeddings=np.stack(embs[i:i + _BATCH]),
                             metadatas=metas[i:i + _BATCH])

    def _chroma_delete(self, ids: Sequence[str]) -> None:
        ids = list(ids)
        for i in range(0, len(ids), _BATCH):
            self._col.delete(ids=ids[i:i + _BATCH])

    # ------------------------------------------------------------------ deleting
    def delete_conversation(self, conversation_id: str) -> None:
        """Remove a conversation from Chroma, the JSON state and RAM."""
        with self._lock:
            st = self._state(conversation_id)
            self._chroma_delete([*st.facts, *st.scenes, *(self._pid(st.id, sp) for sp in st.personas)])
            left = self._col.get(where={"conversation_id": conversation_id}, include=[])["ids"]
            self._chroma_delete(left)
            del self._states[conversation_id]
            self._save_manifest()
            shutil.rmtree(persist.conversation_dir(self._state_dir, conversation_id), ignore_errors=True)

    def delete_speaker(self, conversation_id: str, speaker: str) -> int:
        """Remove everything ``speaker`` said (turns, facts from their turns, persona); scenes are rebuilt without
        them. Returns the number of turns removed."""
        with self._lock:
            st = self._state(conversation_id)
            gone_turns = {tid for tid, t in st.turns.items() if t.speaker == speaker}
            if not gone_turns:
                return 0
            self._drop_turns(st, gone_turns, set(), also_facts_of=speaker)
            st.personas.pop(speaker, None)
            st.persona_vecs.pop(speaker, None)
            self._chroma_delete([self._pid(st.id, speaker)])
            st.upper_in_chroma.discard(self._pid(st.id, speaker))
            st.vocab.retain(_fact_words(st))
            st.changed()
            self._save(st, compact=True, vocab=True)
            return len(gone_turns)

    def delete_turns(self, conversation_id: str, turn_ids: Iterable[str]) -> int:
        """Remove these turns and the facts drawn from them (e.g. the exchange of an attempt cut short, so that its
        redo does not recall it); scenes and their speakers' personas are rebuilt without them. Ids not stored, and
        an unknown conversation, remove nothing. Returns the number of turns removed."""
        with self._lock:
            st = self._states.get(conversation_id)
            gone_turns = {t for t in turn_ids if st is not None and t in st.turns}
            if st is None or not gone_turns:
                return 0
            speakers = {st.turns[t].speaker for t in gone_turns}
            self._drop_turns(st, gone_turns, speakers)
            st.vocab.retain(_fact_words(st))
            st.changed()
            self._save(st, compact=True, vocab=True)
            return len(gone_turns)

    def _drop_turns(self, st: ConversationState, gone_turns: set[str], speakers: set[str], *,
                    also_facts_of: str | None = None) -> None:
        """Turns out, with the facts drawn from them (and every fact of ``also_facts_of``); scenes and the personas
        of ``speakers`` rebuilt. The caller saves."""
        gone_facts = [fid for fid, f in st.facts.items()
                      if (also_facts_of is not None and f.speaker == also_facts_of) or set(f.turn_ids) & gone_turns]
        for tid in gone_turns:
            del st.turns[tid]
        for fid in gone_facts:
            del st.facts[fid]
            del st.fact_vecs[fid]
            st.fact_bm25.remove(fid)
            st.graph.remove_node(fid)
        self._chroma_delete(gone_facts)
        old_scenes = dict(st.scenes)
        st.scenes = {sid: s for sid, s in old_scenes.items() if not set(s.fact_ids) & set(gone_facts)}
        for sid in old_scenes:
            if sid not in st.scenes:
                st.scene_vecs.pop(sid, None)
                st.scene_bm25.remove(sid)
        dropped = [sid for sid in old_scenes if sid not in st.scenes]
        self._chroma_delete([sid for sid in dropped if sid in st.upper_in_chroma])
        st.upper_in_chroma.difference_update(dropped)
        self._rebuild_upper_levels(st, speakers, full=not st.facts)

    # ------------------------------------------------------------------ reading
    def retrieve(self, query: str, conversation_id: str | None = None, k: int = 10, mode: str = "graph", *,
                 query_vector: Any = None) -> list[MemoryItem]:
        """The ``k`` best memory items for ``query`` (see :mod:`.retrieval` for the modes). Every item carries its
        level, score and the turn ids it brings. ``query_vector`` (the query's unit embedding from the same
        embedder) skips embedding the query, e.g. when a caller shares one embedding between several lookups."""
        if not isinstance(query, str) or not query.strip():
            raise InvalidInputError("the query is empty")
        if mode not in MODES:
            raise InvalidInputError(f"unknown mode {mode!r}; choose one of {MODES}")
        if k < 1:
            raise InvalidInputError(f"k must be >= 1, got {k}")
        states = [self._state(conversation_id)] if conversation_id is not None else list(self._states.values())
        if not any(st.facts for st in states):
            return []
        if query_vector is None:
            # the query's words no conversation uses are embedded with the query, in one call, for expansion
            unknown = sorted(w for w in words_of(query) if w not in self._word_cache
                             and not any(w in st.vocab for st in states))
            vecs = self.embedder.embed([query, *unknown])
            qvec = vecs[0]
            with self._lock:
                self._cache_words(unknown, vecs[1:])
        else:
            qvec = query_vector
        with self._lock:
            return retrieve_items(states, query, qvec, k, mode, self.config, self._word_vectors)

    def _word_vectors(self, words: list[str]) -> dict[str, Any]:
        """Vectors of query words no conversation uses, embedded in one call (cached: words recur across queries).
        Called under the lock."""
        new = [w for w in words if w not in self._word_cache]
        if new:
            self._cache_words(new, self.embedder.embed(new))
        return {w: self._word_cache[w] for w in words if w in self._word_cache}

    def _cache_words(self, words: Sequence[str], vecs: Any) -> None:
        for w, v in zip(words, vecs, strict=True):
            if len(self._word_cache) >= _WORD_CACHE:
                self._word_cache.pop(next(iter(self._word_cache)))
            self._word_cache[w] = v

    # ------------------------------------------------------------------ persistence
    def _save(self, st: ConversationState, *, new_turns: Sequence[Turn] = (), new_facts: Sequence[Fact] = (),
              compact: bool = False, manifest: bool = False, vocab: bool = False) -> None:
        """Write the new segment (or, with ``compact``, one segment of everything) and, with ``vocab``, the
        vocabulary, then ``state.json``."""
        folder = persist.conversation_dir(self._state_dir, st.id)
        if vocab:
            st.vocab.save(folder / _VOCAB)
        if compact or new_turns:
            n = 1 + max((int(x[4:-5]) for x in st.segments), default=0)
            name = f"seg-{n:06d}.json"
            if compact:
                seg = {"turns": [t.to_dict() for t in st.turns.values()],
                       "facts": [f.to_dict() for f in st.facts.values()], "edges": graph_to_json(st.graph)}
            else:
                seg = {"turns": [t.to_dict() for t in new_turns], "facts": [f.to_dict() for f in new_facts],
                       "edges": graph_to_json(st.graph, [f.id for f in new_facts])}
            persist.atomic_write_json(folder / name, seg)
            old, st.segments = st.segments, ([name] if compact else [*st.segments, name])
        else:
            old = []
        persist.atomic_write_json(folder / "state.json", {
            "format": _FORMAT, "conversation_id": st.id, "next_n": st.next_n, "next_seq": st.next_seq,
            "segments": st.segments, "scenes": [x.to_dict() for x in st.scenes.values()], "personas": st.personas})
        if compact:
            for name in old:
                (folder / name).unlink(missing_ok=True)
        if manifest:
            self._save_manifest()

    def _save_manifest(self) -> None:
        persist.atomic_write_json(self._state_dir / "manifest.json", {
            "format": _FORMAT, "conversations": list(self._states), "config": asdict(self.config)})

    def _load(self) -> None:
        manifest = self._state_dir / "manifest.json"
        if not manifest.exists():
            return
        data = persist.read_json(manifest)
        if not isinstance(data, dict) or data.get("format") != _FORMAT:
            raise MemoryStoreError(f"{manifest}: not a Bi-Mem manifest of format {_FORMAT}")
        for cid in data.get("conversations", []):
            folder = persist.conversation_dir(self._state_dir, cid)
            if not (folder / "state.json").exists():
                raise MemoryStoreError(f"{folder}/state.json (conversation {cid!r}) is missing; the memory folder "
                                       "is incomplete")
            self._states[cid] = self._load_state(folder)

    def _load_state(self, folder: Path) -> ConversationState:
        path = folder / "state.json"
        d = persist.read_json(path)
        try:
            turns: dict[str, Turn] = {}
            facts: dict[str, Fact] = {}
            edges: list[Any] = []
            for name in d["segments"]:
                seg = persist.read_json(folder / name)
                turns.update((t["id"], Turn(**t)) for t in seg["turns"])
                facts.update((f["id"], Fact.from_dict(f)) for f in seg["facts"])
                edges.extend(seg["edges"])
            st = ConversationState(
                id=d["conversation_id"], graph=graph_from_json(list(facts), edges), turns=turns, facts=facts,
                scenes={s["id"]: Scene.from_dict(s) for s in d["scenes"]}, personas=dict(d["personas"]),
                next_n=int(d["next_n"]), next_seq=int(d["next_seq"]), segments=list(d["segments"]))
        except (KeyError, TypeError, ValueError) as e:
            raise MemoryStoreError(f"{path}: malformed Bi-Mem state ({e!r})") from None
        got = self._col.get(where={"conversation_id": st.id}, include=["embeddings"])
        vec_by_id = dict(zip(got["ids"], got["embeddings"], strict=True))
        upper = {*st.scenes, *(self._pid(st.id, sp) for sp in st.personas)}
        stray = [i for i in vec_by_id if i not in st.facts and i not in upper]
        if stray:
            log.warning("Bi-Mem %s: deleting %d vectors not in the saved state", st.id, len(stray))
            self._chroma_delete(stray)
        missing = [i for i in st.facts if i not in vec_by_id]
        if missing:
            log.warning("Bi-Mem %s: re-embedding %d facts missing from Chroma", st.id, len(missing))
            vecs = self.embedder.embed([st.facts[i].text for i in missing])
            self._chroma_upsert(missing, list(vecs), [st.facts[i].text for i in missing],
                                [{"conversation_id": st.id, "level": "fact"} for i in missing])
            vec_by_id.update(zip(missing, vecs, strict=True))
        import numpy as np

        for fid, f in st.facts.items():
            st.fact_vecs[fid] = np.asarray(vec_by_id[fid], dtype=np.float32)
            st.fact_bm25.add(fid, f.text)
        st.upper_in_chroma = {i for i in upper if i in vec_by_id}
        for sid, sc in st.scenes.items():
            v = vec_by_id.get(sid)
            st.scene_vecs[sid] = (np.asarray(v, dtype=np.float32) if v is not None
                                  else _centroid([st.fact_vecs[f] for f in sc.fact_ids]))
            st.scene_bm25.add(sid, sc.summary)
        for sp in st.personas:
            v = vec_by_id.get(self._pid(st.id, sp))
            st.persona_vecs[sp] = (np.asarray(v, dtype=np.float32) if v is not None else _centroid(
                [st.fact_vecs[f] for f, x in st.facts.items() if x.speaker == sp]))
        # the vocabulary is derived from the facts: drop words no fact uses, embed the missing ones
        st.vocab = Vocabulary.load(folder / _VOCAB)
        words = _fact_words(st)
        dropped = st.vocab.retain(words)
        added = st.vocab.embed_missing(words, self.embedder.embed)
        if dropped or added:
            log.info("Bi-Mem %s: vocabulary repaired (%d words dropped, %d embedded)", st.id, dropped, len(added))
            st.vocab.save(folder / _VOCAB)
        return st

    def vector_count(self, conversation_id: str | None = None) -> int:
        """Vectors stored in Chroma (for one conversation, or all)."""
        if conversation_id is None:
            return int(self._col.count())
        return len(self._col.get(where={"conversation_id": conversation_id}, include=[])["ids"])

    def __repr__(self) -> str:
        return f"BiMemory({str(self.root)!r}, conversations={len(self._states)}, llm={getattr(self.llm, 'name', None)})"


def _fact_words(st: ConversationState) -> set[str]:
    return set().union(*(words_of(f.text) for f in st.facts.values()))


def _centroid(vecs: list[Any]) -> Any:
    import numpy as np

    v = np.mean(np.stack(vecs), axis=0)
    n = float(np.linalg.norm(v))
    return (v / n if n > 0 else v).astype(np.float32)
