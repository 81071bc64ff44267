"""Scene level: a graph over one conversation's facts, its communities as scenes, and a summary per scene.

Edges (Bi-Mem's scene graph): embedding similarity above a threshold (each new fact links to its nearest earlier
facts), shared named entities (only entities rare in the conversation link anything, and only to their most
recent mentions), and temporal adjacency within a session. Communities come from weighted label propagation, as
in Bi-Mem's code, warm-started from the previous labels so that adding a session only moves labels near the new
facts; Louvain (networkx) is the option. Communities larger than ``max_scene_size`` are cut in time order, so a
scene stays a scene. Summaries are cached by member set: only scenes whose members changed are summarised again.
"""

from __future__ import annotations

import hashlib
import random
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from ...llm.base import ChatModel, GenerationConfig
from .config import BiMemConfig
from .records import Fact, Scene

if TYPE_CHECKING:
    import networkx as nx
    import numpy as np

__all__ = ["link_facts", "detect_communities", "build_scenes", "extractive_summary", "llm_summary", "scene_id"]


def link_facts(graph: nx.Graph, facts: dict[str, Fact], vecs: dict[str, np.ndarray], new_ids: Sequence[str],
               cfg: BiMemConfig) -> None:
    """Add ``new_ids`` (already in ``facts``/``vecs``) to ``graph`` with similarity, entity and temporal edges."""
    import numpy as np

    def bump(a: str, b: str, w: float, kind: str) -> None:
        if a == b:
            return
        if graph.has_edge(a, b):
            d = graph[a][b]
            d["weight"] += w
            d["kinds"] = sorted(set(d["kinds"]) | {kind})
        else:
            graph.add_edge(a, b, weight=w, kinds=[kind])

    for fid in new_ids:
        graph.add_node(fid)
    all_ids = list(facts)
    new_set = set(new_ids)
    # similarity: each new fact links to its nearest other facts above the threshold
    if len(all_ids) > 1 and new_ids:
        mat = np.stack([vecs[i] for i in all_ids])
        # one matrix-vector product per new fact: for a session's few new facts this is several times faster than
        # one matrix-matrix product, whose multi-threaded BLAS path stalls on a busy machine
        sims = np.stack([mat @ vecs[i] for i in new_ids])
        k = min(cfg.similarity_neighbors + 1, len(all_ids))
        for row, fid in enumerate(new_ids):
            top = np.argpartition(-sims[row], k - 1)[:k]
            for j in top:
                other = all_ids[int(j)]
                s = float(sims[row, j])
                if other != fid and s >= cfg.similarity_threshold:
                    bump(fid, other, s, "similar")
    # shared rare entities, linked to their most recent earlier mentions
    wanted = {e for fid in new_ids for e in facts[fid].entities}
    mentions: dict[str, list[str]] = defaultdict(list)
    for f in facts.values():
        for e in f.entities:
            if e in wanted:
                mentions[e].append(f.id)
    for ids in mentions.values():
        ids.sort(key=lambda i: facts[i].seq)
    max_df = max(2, int(cfg.entity_max_df * len(facts)))
    for ids in mentions.values():
        if len(ids) > max_df:
            continue
        for i, fid in enumerate(ids):
            if fid in new_set:
                for other in ids[max(0, i - 3):i]:
                    bump(fid, other, 0.5, "entity")
    # temporal adjacency within a session
    by_seq: dict[tuple[int, int], list[str]] = defaultdict(list)
    for f in facts.values():
        by_seq[(f.session, f.seq)].append(f.id)
    for fid in new_ids:
        f = facts[fid]
        for d in range(0, cfg.temporal_window + 1):
            for seq in {f.seq - d, f.seq + d}:
                for other in by_seq.get((f.session, seq), ()):
                    bump(fid, other, 0.5, "temporal")


def _lpa(graph: nx.Graph, init: dict[str, str], seed: int, max_iter: int = 20) -> dict[str, str]:
    """Weighted label propagation. With ``init`` (the previous labels), only nodes without a label and their
    neighbours are updated; the rest keep theirs (incremental)."""
    labels = {n: init.get(n, n) for n in graph.nodes}
    rng = random.Random(seed)
    if init:
        new = [n for n in graph.nodes if n not in init]
        nodes = sorted({*new, *(nb for n in new for nb in graph[n])})
    else:
        nodes = sorted(graph.nodes)
    for _ in range(max_iter):
        rng.shuffle(nodes)
        changed = False
        for n in nodes:
            weights: dict[str, float] = defaultdict(float)
            for nb, d in graph[n].items():
                weights[labels[nb]] += d.get("weight", 1.0)
            if not weights:
                continue
            best = max(weights.values())
            cands = [lab for lab, w in weights.items() if w >= best - 1e-12]
            if labels[n] in cands:
                continue
            labels[n] = min(cands)
            changed = True
        if not changed:
            break
    return labels


def detect_communities(graph: nx.Graph, facts: dict[str, Fact], cfg: BiMemConfig,
                       previous: dict[str, str] | None = None) -> list[list[str]]:
    """Communities of ``graph`` (lists of fact ids in time order), none larger than ``max_scene_size``."""
    if cfg.community == "louvain":
        import networkx as nx

        groups = [list(c) for c in nx.community.louvain_communities(graph, weight="weight", seed=cfg.seed)]
    else:
        labels = _lpa(graph, previous or {}, cfg.seed)
        by_label: dict[str, list[str]] = defaultdict(list)
        for n, lab in labels.items():
            by_label[lab].append(n)
        groups = list(by_label.values())
    out: list[list[str]] = []
    for g in groups:
        g = sorted(g, key=lambda i: (facts[i].seq, i))
        size = cfg.max_scene_size
        n_chunks = -(-len(g) // size)
        step = -(-len(g) // n_chunks)
        out.extend(g[i:i + step] for i in range(0, len(g), step))
    return sorted(out, key=lambda g: facts[g[0]].seq)


def scene_id(conversation_id: str, fact_ids: Sequence[str]) -> str:
    digest = hashlib.sha1("\n".join(sorted(fact_ids)).encode()).hexdigest()[:12]
    return f"{conversation_id}|s{digest}"


def extractive_summary(graph: nx.Graph, facts: dict[str, Fact], members: Sequence[str], n: int) -> str:
    """The ``n`` most central member facts (weighted degree inside the scene), in time order."""
    inside = set(members)
    deg = {m: sum(d.get("weight", 1.0) for nb, d in graph[m].items() if nb in inside) if m in graph else 0.0
           for m in members}
    keep = sorted(sorted(members, key=lambda m: -deg[m])[:n], key=lambda m: facts[m].seq)
    return " ".join(facts[m].text for m in keep)


SUMMARY_PROMPT = """Summarise what these conversation facts say in two or three sentences. Keep names, dates and \
places. Answer with the summary only.

{facts}
"""


def llm_summary(llm: ChatModel, facts: dict[str, Fact], members: Sequence[str]) -> str:
    lines = "\n".join(f"- ({facts[m].time}) {facts[m].text}" for m in members)
    return llm.chat(SUMMARY_PROMPT.format(facts=lines), GenerationConfig(max_tokens=160)).text.strip()


def build_scenes(graph: nx.Graph, facts: dict[str, Fact], conversation_id: str, cfg: BiMemConfig,
                 old: dict[str, Scene], summarize: Callable[[list[str]], str] | None = None,
                 previous_labels: dict[str, str] | None = None) -> tuple[dict[str, Scene], list[str]]:
    """Scenes of one conversation. Scenes whose member set is unchanged are kept as they were (summary, flags);
    returns (scenes by id, ids of the new or changed scenes)."""
    scenes: dict[str, Scene] = {}
    fresh: list[str] = []
    for members in detect_communities(graph, facts, cfg, previous_labels):
        sid = scene_id(conversation_id, members)
        if sid in old:
            scenes[sid] = old[sid]
            continue
        summary = ""
        if summarize is not None:
            summary = summarize(members)
        if not summary:
            summary = extractive_summary(graph, facts, members, cfg.summary_sentences)
        speakers = tuple(dict.fromkeys(facts[m].speaker for m in members))
        scenes[sid] = Scene(id=sid, conversation_id=conversation_id, fact_ids=tuple(members), summary=summary,
                            speakers=speakers)
        fresh.append(sid)
    return scenes, fresh


def scene_labels(scenes: dict[str, Scene]) -> dict[str, str]:
    """fact id -> scene id (the warm start of the next label propagation)."""
    return {f: sid for sid, s in scenes.items() for f in s.fact_ids}


def graph_to_json(graph: nx.Graph, nodes: Sequence[str] | None = None) -> list[list[Any]]:
    """Edges as JSON rows; with ``nodes``, only the edges touching them."""
    edges = graph.edges(nodes, data=True) if nodes is not None else graph.edges(data=True)
    return [[a, b, round(float(d["weight"]), 4), d["kinds"]] for a, b, d in edges]


def graph_from_json(nodes: Sequence[str], edges: Sequence[Sequence[Any]]) -> nx.Graph:
    import networkx as nx

    g = nx.Graph()
    g.add_nodes_from(nodes)
    for a, b, w, kinds in edges:
        g.add_edge(a, b, weight=float(w), kinds=list(kinds))
    return g
