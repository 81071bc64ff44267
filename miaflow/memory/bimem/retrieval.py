"""Retrieval: hybrid seeding, then spreading activation across the three levels.

Seeding (Bi-Mem): every fact, scene and persona gets ``w * cosine + (1 - w) * minmax(BM25)`` against the query,
with the BM25 scores min-max normalised over the candidates of that level. Spreading activation starts from the
top facts and runs ``hops`` rounds: a fact activates its scene (``decay``), an active scene activates up to
``scene_fanout`` of its facts, best seeds first (``decay``), a fact activates the facts of the neighbouring turns
of its session (``temporal_decay``) and the facts it shares a rare entity with (``entity_decay``). A persona is
fully active when the query names its speaker (else it takes its own seed score); top-down, it adds
``speaker_boost`` times its activation to its speaker's activated facts (to the seeds before spreading, with
``boost_seeds``); bottom-up, it takes the activation of its speaker's facts. Activation keeps the maximum over
paths, so a fact is never pushed below its own seed.

Modes: ``flat`` ranks facts by their seed alone; ``graph`` (default) ranks facts by activation; ``top_down``
returns personas, then scenes, then facts of those scenes (2 / 3 / 5 by default); ``bottom_up`` returns facts, then
the scenes they belong to, then the personas of their speakers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from ._state import ConversationState
from .config import BiMemConfig
from .records import MemoryItem

if TYPE_CHECKING:
    import numpy as np

__all__ = ["retrieve_items"]

Key = tuple[int, str]  # (index of the conversation state, id)


def _minmax(values: list[float]) -> list[float]:
    if not values:
        return []
    lo, hi = min(values), max(values)
    if hi - lo < 1e-12:
        return [1.0 if hi > 0 else 0.0 for _ in values]
    return [(v - lo) / (hi - lo) for v in values]


def _seed(states: Sequence[ConversationState], level: str, query: str, qvec: np.ndarray, w: float) -> dict[Key, float]:
    keys: list[Key] = []
    dense: list[float] = []
    bm25: list[float] = []
    for si, st in enumerate(states):
        ids, mat = st.matrix(level)
        if not ids:
            continue
        sims = (mat @ qvec).tolist()
        if level == "fact":
            lex = st.fact_bm25.scores(query)
        elif level == "scene":
            lex = st.scene_bm25.scores(query)
        else:
            lex = {}
        keys.extend((si, i) for i in ids)
        dense.extend(sims)
        bm25.extend(lex.get(i, 0.0) for i in ids)
    if level == "persona":
        return {k: d for k, d in zip(keys, dense, strict=True)}
    norm = _minmax(bm25)
    return {k: w * d + (1 - w) * b for k, d, b in zip(keys, dense, norm, strict=True)}


def _named(states: Sequence[ConversationState], query: str) -> set[tuple[int, str]]:
    """Speakers the query names: their first name, or a word of 3+ letters it starts with ("Mel" -> "Melanie")."""
    from ..._text import tokenize

    words = set(tokenize(query, drop_stopwords=False))
    out = set()
    for si, st in enumerate(states):
        for sp in st.personas:
            first = sp.lower().split()[0] if sp.strip() else ""
            if first and (first in words or any(len(w) >= 3 and first.startswith(w) for w in words)):
                out.add((si, sp))
    return out


def _activate(states: Sequence[ConversationState], fseed: dict[Key, float], sseed: dict[Key, float],
              pseed: dict[Key, float], named: set[Key], cfg: BiMemConfig):
    # personas: named in the query -> fully active; otherwise their own seed. Top-down, an active persona adds
    # speaker_boost times its activation to its speaker's facts before the seeds are chosen.
    persona_act: dict[Key, float] = {k: (1.0 if k in named else max(0.0, v)) for k, v in pseed.items()}
    if cfg.speaker_boost and persona_act and cfg.boost_seeds:
        boosted = {}
        for (si, fid), v in fseed.items():
            pa = persona_act.get((si, states[si].facts[fid].speaker), 0.0)
            boosted[(si, fid)] = v + cfg.speaker_boost * pa
        fseed = boosted
    top = sorted(fseed, key=lambda k: -fseed[k])[: cfg.seeds]
    fact_act: dict[Key, float] = {k: fseed[k] for k in top}
    via: dict[Key, str] = {k: "seed" for k in top}
    scene_act: dict[Key, float] = {}
    for _ in range(cfg.hops):
        new_f = dict(fact_act)
        for (si, fid), a in fact_act.items():
            st = states[si]
            sid = st.fact_scene().get(fid)
            if sid is not None:
                cand = max(a * cfg.decay, sseed.get((si, sid), 0.0))
                if cand > scene_act.get((si, sid), 0.0):
                    scene_act[(si, sid)] = cand
            for nb in st.temporal_neighbors().get(fid, ()):
                cand = a * cfg.temporal_decay
                if cand > new_f.get((si, nb), 0.0):
                    new_f[(si, nb)] = cand
                    via[(si, nb)] = "temporal"
            for nb in st.entity_neighbors().get(fid, ()):
                cand = a * cfg.entity_decay
                if cand > new_f.get((si, nb), 0.0):
                    new_f[(si, nb)] = cand
                    via[(si, nb)] = "entity"
        for (si, sid), a in scene_act.items():
            members = states[si].scenes[sid].fact_ids
            best = sorted(members, key=lambda f: -fseed.get((si, f), 0.0))[: cfg.scene_fanout]
            for f in best:
                cand = a * cfg.decay
                if cand > new_f.get((si, f), 0.0):
                    new_f[(si, f)] = cand
                    via[(si, f)] = "scene"
        fact_act = new_f
    if cfg.speaker_boost and persona_act and not cfg.boost_seeds:
        for key in fact_act:
            pa = persona_act.get((key[0], states[key[0]].facts[key[1]].speaker), 0.0)
            if pa:
                fact_act[key] += cfg.speaker_boost * pa
    for (si, fid), a in fact_act.items():
        sp = states[si].facts[fid].speaker
        if (si, sp) in persona_act:
            persona_act[(si, sp)] = max(persona_act[(si, sp)], a * cfg.decay)
    return fact_act, scene_act, persona_act, via, fseed


def _fact_item(st: ConversationState, fid: str, score: float, via: str = "seed") -> MemoryItem:
    f = st.facts[fid]
    text = f"({f.time}) {f.text}" if f.time else f.text
    return MemoryItem(text=text, level="fact", score=float(score), turn_ids=f.turn_ids, id=fid,
                      conversation_id=st.id, speaker=f.speaker, time=f.time, extra={"via": via})


def _scene_item(st: ConversationState, sid: str, score: float) -> MemoryItem:
    s = st.scenes[sid]
    extra = {"flags": list(s.flags)} if s.flags else {}
    return MemoryItem(text=s.summary, level="scene", score=float(score), turn_ids=st.scene_turns(s), id=sid,
                      conversation_id=st.id, extra=extra)


def _persona_item(st: ConversationState, speaker: str, score: float) -> MemoryItem:
    return MemoryItem(text=f"{speaker}: {st.personas[speaker]}", level="persona", score=float(score), turn_ids=(),
                      id=f"persona:{speaker}", conversation_id=st.id, speaker=speaker)


def retrieve_items(states: Sequence[ConversationState], query: str, qvec: np.ndarray, k: int, mode: str,
                   cfg: BiMemConfig) -> list[MemoryItem]:
    """Rank the memory of ``states`` for ``query`` (its unit vector ``qvec``) in ``mode``; at most ``k`` items."""
    w = cfg.dense_weight
    fseed = _seed(states, "fact", query, qvec, w)
    if not fseed:
        return []
    if mode == "flat":
        ranked = sorted(fseed.items(), key=lambda kv: -kv[1])[:k]
        return [_fact_item(states[si], fid, s) for (si, fid), s in ranked]
    sseed = _seed(states, "scene", query, qvec, w)
    pseed = _seed(states, "persona", query, qvec, w)
    named = _named(states, query)
    fact_act, scene_act, persona_act, via, fseed = _activate(states, fseed, sseed, pseed, named, cfg)
    if mode == "graph":
        ranked = sorted(fact_act.items(), key=lambda kv: (-kv[1], -fseed.get(kv[0], 0.0)))[:k]
        return [_fact_item(states[si], fid, s, via.get((si, fid), "seed")) for (si, fid), s in ranked]
    n_p, n_s, n_f = cfg.top_down
    n_f = max(n_f, k - n_p - n_s)
    personas = sorted(persona_act.items(), key=lambda kv: -kv[1])[:n_p]
    if mode == "top_down":
        scene_score = dict(sseed)
        for key, a in scene_act.items():
            scene_score[key] = max(scene_score.get(key, 0.0), a)
        for (si, sid), v in list(scene_score.items()):
            sp = states[si].scenes[sid].speakers
            boost = max((persona_act.get((si, p), 0.0) for p in sp), default=0.0)
            scene_score[(si, sid)] = v + cfg.speaker_boost * boost
        scenes = sorted(scene_score.items(), key=lambda kv: -kv[1])[:n_s]
        inside = [(si, f) for (si, sid), _ in scenes for f in states[si].scenes[sid].fact_ids]
        rank = sorted(inside, key=lambda key: -fact_act.get(key, fseed.get(key, 0.0)))
        rest = sorted(fact_act, key=lambda key: -fact_act[key])
        facts = list(dict.fromkeys([*rank, *rest]))[:n_f]
        items = [_persona_item(states[si], sp, s) for (si, sp), s in personas if states[si].personas.get(sp)]
        items += [_scene_item(states[si], sid, s) for (si, sid), s in scenes]
        items += [_fact_item(states[si], f, fact_act.get((si, f), fseed.get((si, f), 0.0)), via.get((si, f), "seed"))
                  for si, f in facts]
        return items
    if mode == "bottom_up":
        facts = sorted(fseed.items(), key=lambda kv: -kv[1])[:n_f]
        items = [_fact_item(states[si], fid, s) for (si, fid), s in facts]
        seen: list[Key] = []
        for (si, fid), _ in facts:
            sid = states[si].fact_scene().get(fid)
            if sid is not None and (si, sid) not in seen:
                seen.append((si, sid))
        items += [_scene_item(states[si], sid, scene_act.get((si, sid), 0.0)) for si, sid in seen[:n_s]]
        items += [_persona_item(states[si], sp, s) for (si, sp), s in personas if states[si].personas.get(sp)]
        return items
    raise ValueError(f"unknown retrieval mode {mode!r}")
