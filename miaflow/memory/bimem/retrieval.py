"""Retrieval: hybrid seeding, then spreading activation across the three levels.

Seeding (Bi-Mem): every fact, scene and persona gets ``w * cosine + (1 - w) * minmax(BM25)`` against the query,
with the BM25 scores min-max normalised over the candidates of that level. A fact's BM25 also counts the
conversation's words closest to the query's rare words (semantic expansion, :mod:`.vocabulary`), and its seed gains
a little from its session's best seeds and from a date the query names (:mod:`._dates`). Spreading activation starts from the
top facts and runs ``hops`` rounds: a fact activates its scene (``decay``), an active scene activates up to
``scene_fanout`` of its facts, best seeds first (``decay``), a fact activates the facts of the neighbouring turns
of its session (``temporal_decay``) and the facts it shares a rare entity with (``entity_decay``). A persona is
fully active when the query names its speaker (else it takes its own seed score); top-down, it adds
``speaker_boost`` times its activation to its speaker's activated facts (to the seeds before spreading, with
``boost_seeds``); bottom-up, it takes the activation of its speaker's facts. Activation keeps the maximum over
paths, so a fact is never pushed below its own seed. Facts that only ask a question lose ``question_penalty``
in the final ranking (they still pass activation to the answer after them).

Modes: ``flat`` ranks facts by their seed alone; ``graph`` (default) ranks facts by activation; ``top_down``
returns personas, then scenes, then facts of those scenes (2 / 3 / 5 by default); ``bottom_up`` returns facts, then
the scenes they belong to, then the personas of their speakers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from ._state import ConversationState
from .config import BiMemConfig
from .records import MemoryItem
from .vocabulary import words_of

if TYPE_CHECKING:
    import numpy as np

__all__ = ["retrieve_items"]

Key = tuple[int, str]  # (index of the conversation state, id)
WordVectors = Callable[[list[str]], "dict[str, np.ndarray]"]


def _minmax(values: list[float]) -> list[float]:
    if not values:
        return []
    lo, hi = min(values), max(values)
    if hi - lo < 1e-12:
        return [1.0 if hi > 0 else 0.0 for _ in values]
    return [(v - lo) / (hi - lo) for v in values]


def _seed(states: Sequence[ConversationState], level: str, query: str, qvec: np.ndarray, w: float) -> dict[Key, float]:
    """Scenes and personas: ``w * cosine + (1 - w) * minmax(BM25)`` (personas: cosine alone)."""
    keys: list[Key] = []
    dense: list[float] = []
    bm25: list[float] = []
    for si, st in enumerate(states):
        ids, mat = st.matrix(level)
        if not ids:
            continue
        sims = (mat @ qvec).tolist()
        lex = st.scene_bm25.scores(query) if level == "scene" else {}
        keys.extend((si, i) for i in ids)
        dense.extend(sims)
        bm25.extend(lex.get(i, 0.0) for i in ids)
    if level == "persona":
        return {k: d for k, d in zip(keys, dense, strict=True)}
    norm = _minmax(bm25)
    return {k: w * d + (1 - w) * b for k, d, b in zip(keys, dense, norm, strict=True)}


def _expandable(st: ConversationState, query: str, cfg: BiMemConfig) -> list[str]:
    """The query's words worth expanding in this conversation: rare there, not a speaker's name or a month."""
    from ._bm25 import stem
    from ._dates import MONTH_WORDS

    n = max(len(st.facts), 1)
    names = {sp.lower().split()[0] for sp in st.speakers() if sp.strip()}
    return [w for w in sorted(words_of(query)) if w not in names and w not in MONTH_WORDS
            and st.fact_bm25.df(stem(w)) / n <= cfg.expansion_max_df]


def _expansion(st: ConversationState, words: list[str], cfg: BiMemConfig, outside: dict[str, np.ndarray]
               ) -> dict[str, float]:
    """Stemmed words of the conversation close to ``words``, with their cosine (see :mod:`.vocabulary`);
    ``outside`` holds the vectors of words the conversation does not use."""
    from ._bm25 import stem

    terms: dict[str, float] = {}
    for word in words:
        root = stem(word)
        vec = st.vocab.vector(word)
        if vec is None:
            vec = outside.get(word)
        if vec is None:
            continue

        def same_stem(w: str, r: str = root) -> bool:
            return stem(w) == r

        for other, sim in st.vocab.neighbors(vec, cfg.expansion_neighbors, cfg.expansion_threshold, skip=same_stem):
            key = stem(other)
            terms[key] = max(terms.get(key, 0.0), sim)
    return terms


def _fact_seed(states: Sequence[ConversationState], query: str, qvec: np.ndarray, cfg: BiMemConfig,
               word_vectors: WordVectors) -> dict[Key, float]:
    """Facts: ``w * cosine + (1 - w) * minmax(BM25 + a * BM25 over the expansion)``, plus ``date_boost`` for facts
    dated when the query says, plus ``session_weight`` times the min-max score of the fact's session (the sum of
    its ``session_top`` best seeds), so that a session about the question lifts its facts a little."""
    from ._dates import in_spans, query_spans

    w, a = cfg.dense_weight, cfg.expansion_weight
    spans = query_spans(query) if cfg.date_boost else []
    keys: list[Key] = []
    dense: list[float] = []
    lex: list[float] = []
    expand = [_expandable(st, query, cfg) if a else [] for st in states]
    unknown = sorted({w for st, ws in zip(states, expand, strict=True) for w in ws if w not in st.vocab})
    outside = word_vectors(unknown) if unknown else {}  # one embedding call for all of them
    for si, st in enumerate(states):
        ids, mat = st.matrix("fact")
        if not ids:
            continue
        sims = (mat @ qvec).tolist()
        bm = st.fact_bm25.scores(query)
        if expand[si]:
            terms = _expansion(st, expand[si], cfg, outside)
            for fid, v in st.fact_bm25.weighted_scores(terms).items():
                bm[fid] = bm.get(fid, 0.0) + a * v
        keys.extend((si, i) for i in ids)
        dense.extend(sims)
        lex.extend(bm.get(i, 0.0) for i in ids)
    seed = {k: w * d + (1 - w) * b for k, d, b in zip(keys, dense, _minmax(lex), strict=True)}
    if cfg.session_weight:
        by_session: dict[tuple[int, int], list[float]] = {}
        for (si, fid), v in seed.items():
            by_session.setdefault((si, states[si].facts[fid].session), []).append(v)
        top = {k: sum(sorted(v, reverse=True)[: cfg.session_top]) for k, v in by_session.items()}
        norm = dict(zip(top, _minmax(list(top.values())), strict=True))
        seed = {(si, fid): v + cfg.session_weight * norm[(si, states[si].facts[fid].session)]
                for (si, fid), v in seed.items()}
    if spans:
        before, after = cfg.date_window
        for (si, fid) in seed:
            if in_spans(states[si].fact_dates().get(fid), spans, before, after):
                seed[(si, fid)] += cfg.date_boost
    return seed


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


def _penalize_questions(states: Sequence[ConversationState], scores: dict[Key, float], penalty: float
                        ) -> dict[Key, float]:
    if not penalty:
        return scores
    return {(si, f): v - penalty if f in states[si].question_facts() else v for (si, f), v in scores.items()}


def retrieve_items(states: Sequence[ConversationState], query: str, qvec: np.ndarray, k: int, mode: str,
                   cfg: BiMemConfig, word_vectors: WordVectors | None = None) -> list[MemoryItem]:
    """Rank the memory of ``states`` for ``query`` (its unit vector ``qvec``) in ``mode``; at most ``k`` items.
    ``word_vectors`` embeds query words the conversations never used (for expansion; None skips such words)."""
    w = cfg.dense_weight
    fseed = _fact_seed(states, query, qvec, cfg, word_vectors or (lambda words: {}))
    if not fseed:
        return []
    if mode == "flat":
        ranked = sorted(_penalize_questions(states, fseed, cfg.question_penalty).items(), key=lambda kv: -kv[1])[:k]
        return [_fact_item(states[si], fid, s) for (si, fid), s in ranked]
    sseed = _seed(states, "scene", query, qvec, w)
    pseed = _seed(states, "persona", query, qvec, w)
    named = _named(states, query)
    fact_act, scene_act, persona_act, via, fseed = _activate(states, fseed, sseed, pseed, named, cfg)
    if mode == "graph":
        fact_act = _penalize_questions(states, fact_act, cfg.question_penalty)
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
        return items[:k]  # the level budgets fill k >= their sum; a smaller k keeps the first items
    if mode == "bottom_up":
        facts = sorted(_penalize_questions(states, fseed, cfg.question_penalty).items(), key=lambda kv: -kv[1])[:n_f]
        items = [_fact_item(states[si], fid, s) for (si, fid), s in facts]
        seen: list[Key] = []
        for (si, fid), _ in facts:
            scene = states[si].fact_scene().get(fid)
            if scene is not None and (si, scene) not in seen:
                seen.append((si, scene))
        items += [_scene_item(states[si], sid, scene_act.get((si, sid), 0.0)) for si, sid in seen[:n_s]]
        items += [_persona_item(states[si], sp, s) for (si, sp), s in personas if states[si].personas.get(sp)]
        return items[:k]
    raise ValueError(f"unknown retrieval mode {mode!r}")
