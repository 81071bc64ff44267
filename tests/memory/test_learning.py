"""Utility learning on a synthetic stream (MemRL's claim): where look-alike memories are always a little more
similar to the question but their plans fail, the learned Q-values let two-phase recall put the useful memories on
top, where similarity alone does not. Similarities are set exactly through a table embedder."""

from __future__ import annotations

import numpy as np
from memory_helpers import TableEmbedder, make_traj

from miaflow.memory import TrajectoryStore, TrajectoryStoreConfig

GROUPS, PAIRS, DIM, TASKS = 4, 5, 64, 50


def _world():
    rng = np.random.default_rng(7)
    basis, _ = np.linalg.qr(rng.standard_normal((DIM, DIM)))
    basis = basis.T  # rows: orthonormal vectors
    table, useful, queries = {}, set(), {}
    k = GROUPS
    for g in range(GROUPS):
        q = basis[g]
        queries[g] = q
        for i, s in enumerate(np.linspace(0.55, 0.85, PAIRS)):
            for kind, sim in (("useful", s), ("lookalike", s + 0.02)):
                text = f"group {g} {kind} memory {i}"
                table[text] = sim * q + np.sqrt(1 - sim**2) * basis[k]
                k += 1
                if kind == "useful":
                    useful.add(text)
    return table, useful, queries


def _precision(ranked, useful, k):
    return sum(m.record.question in useful for m in ranked[:k]) / k


def test_learned_utilities_beat_similarity(tmp_path):
    table, useful, queries = _world()
    emb = TableEmbedder(dict(table), DIM)
    for g, q in queries.items():
        for t in range(TASKS):
            emb.table[f"task {t} of group {g}"] = q
    store = TrajectoryStore(tmp_path / "s", embedder=emb,
                            config=TrajectoryStoreConfig(epsilon=0.5, seed=1, delta=0.3, tau=0.4))
    store.add_many([make_traj(i, text, task=f"mem-{i}") for i, text in enumerate(sorted(table))])
    assert store.count() == GROUPS * PAIRS * 2

    pick = np.random.default_rng(3)
    for t in range(TASKS):  # the stream: follow the best recalled memory (or, exploring, any recalled one)
        for g in range(GROUPS):
            recall = store.recall(f"task {t} of group {g}")
            chosen = recall.all
            followed = chosen[int(pick.integers(len(chosen))) if chosen[0].explored else 0].record
            reward = 1.0 if followed.question in useful else -1.0
            store.update_utilities(f"g{g}-t{t}", [followed.id], reward)

    p_b = {1: [], 5: []}
    p_sim = {1: [], 5: []}
    for g in range(GROUPS):
        r = store.recall(f"task {TASKS - 1} of group {g}", k2=10, epsilon=0.0)
        assert r.used_memory and len(r) == 2 * PAIRS
        by_score = r.all
        by_sim = sorted(r.all, key=lambda m: -m.similarity)
        for k in (1, 5):
            p_b[k].append(_precision(by_score, useful, k))
            p_sim[k].append(_precision(by_sim, useful, k))
    b1, b5, s1, s5 = (float(np.mean(x)) for x in (p_b[1], p_b[5], p_sim[1], p_sim[5]))
    print(f"precision@1 two-phase={b1:.2f} similarity={s1:.2f}; precision@5 two-phase={b5:.2f} similarity={s5:.2f}")
    assert s1 == 0.0 and s5 <= 0.4  # similarity alone prefers the look-alikes
    assert b1 >= 0.9 and b5 >= 0.7  # the learned utilities put the useful ones on top
    qs = {r.question: r.q_value for r in store.iter_records()}
    assert all(-1.0 <= v <= 1.0 for v in qs.values())
    assert np.mean([v for k, v in qs.items() if k in useful]) > np.mean([v for k, v in qs.items() if k not in useful])
