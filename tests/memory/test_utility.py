"""The utility event log: folding equals the sequential MemRL update, repeats count once, compaction keeps the
state, and racing compactions lose nothing."""

from __future__ import annotations

import numpy as np
import pytest

from miaflow.memory._utility import (
    compaction_patch,
    event_key,
    event_value,
    fold,
    phase_b_scores,
    task_hash,
    zscores,
)

KW = {"alpha": 0.3, "q_init": 0.0, "success_threshold": 0.0}


def _apply(meta: dict, patch: dict) -> dict:
    out = {**meta, **patch}
    return {k: v for k, v in out.items() if v is not None}


def _events(n: int, t0: float = 1000.0) -> tuple[dict, list[float]]:
    rewards = [(-1) ** i * (i % 3) / 2 for i in range(n)]
    return {event_key(f"task{i}"): event_value(t0 + i, r) for i, r in enumerate(rewards)}, rewards


def _ema(rewards, q=0.0, alpha=0.3):
    for r in rewards:
        q += alpha * (r - q)
    return q


def test_fold_is_the_sequential_update():
    meta, rewards = _events(20)
    st = fold({"question": "q", **meta}, **KW)
    assert st.q == pytest.approx(_ema(rewards))
    assert st.usage == 20 and st.success == sum(r > 0 for r in rewards)
    assert st.last_used == pytest.approx(1019.0)
    assert st.has_task(task_hash("task3")) and not st.has_task(task_hash("other"))


def test_empty_fold_uses_q_init():
    st = fold({}, alpha=0.3, q_init=0.25, success_threshold=0.0)
    assert (st.q, st.usage, st.success, st.last_used) == (0.25, 0, 0, None)


def test_compaction_keeps_state_and_idempotency():
    meta, rewards = _events(30)
    before = fold(meta, **KW)
    patch = compaction_patch(meta, now=1020.5, grace_s=0.0, applied_window=100, **KW)
    after_meta = _apply(meta, patch)
    assert sum(k.startswith("u.") for k in after_meta) == 9  # events newer than the cutoff stay pending
    after = fold(after_meta, **KW)
    assert after.q == pytest.approx(before.q) and after.usage == 30 and after.success == before.success
    # a folded task is still known: its repeat is ignored on read
    assert after.has_task(task_hash("task0"))
    again = _apply(after_meta, {event_key("task0"): event_value(5000.0, 1.0)})
    assert fold(again, **KW).usage == 30
    # a second compaction folds the rest and the stale repeat key goes away
    patch2 = compaction_patch(again, now=1e9, grace_s=0.0, applied_window=100, **KW)
    final = _apply(again, patch2)
    assert not any(k.startswith("u.") for k in final)
    assert fold(final, **KW).q == pytest.approx(before.q) and fold(final, **KW).usage == 30


def test_racing_compactions_in_either_order_agree():
    meta, _ = _events(12)
    a = compaction_patch(meta, now=1005.5, grace_s=0.0, applied_window=100, **KW)
    late = _apply(meta, {event_key("late"): event_value(2000.0, 1.0)})
    b = compaction_patch(late, now=1011.5, grace_s=0.0, applied_window=100, **KW)
    expected = fold(late, **KW)
    for first, second in ((a, b), (b, a)):
        out = _apply(_apply(late, first), second)
        st = fold(out, **KW)
        assert st.usage == expected.usage == 13
        assert st.q == pytest.approx(expected.q)


def test_applied_window_is_bounded():
    meta, _ = _events(50)
    patch = compaction_patch(meta, now=1e9, grace_s=0.0, applied_window=10, **KW)
    applied = [v for k, v in patch.items() if k.startswith("a.") and v]
    assert len(applied) == 1 and len(applied[0]) == 10 * 16


def test_zscores_clip_and_flat():
    assert zscores(np.array([1.0, 1.0, 1.0]), 3).tolist() == [0.0, 0.0, 0.0]
    z = zscores(np.array([0.0] * 99 + [100.0]), 3)
    assert z.max() == 3.0 and z.min() > -3


def test_phase_b_prefers_high_q_at_similar_similarity():
    sims = np.array([0.80, 0.79, 0.60])
    qs = np.array([-0.9, 0.9, 0.0])
    s = phase_b_scores(sims, qs, sim_weight=0.5, q_weight=0.5, clip=3)
    assert int(np.argmax(s)) == 1


def test_every_config_figure_has_help_and_is_checked():
    from dataclasses import fields

    from miaflow.errors import InvalidInputError
    from miaflow.memory import CompressionConfig, TrajectoryStoreConfig

    for cls in (TrajectoryStoreConfig, CompressionConfig):
        assert all(f.metadata.get("help") for f in fields(cls))
    cfg = TrajectoryStoreConfig()
    assert (cfg.k1, cfg.k2, cfg.alpha, cfg.q_init, cfg.duplicate_threshold, cfg.z_clip) == (10, 5, 0.3, 0.0, 0.9999, 3.0)
    assert CompressionConfig().max_words == 300
    for bad in ({"k1": 3, "k2": 5}, {"alpha": 0.0}, {"epsilon": 1.5}, {"delta": float("nan")}, {"q_init": 2.0},
                {"duplicate_threshold": 0.0}, {"max_records": 0}, {"sim_weight": 0.0, "q_weight": 0.0}):
        with pytest.raises(InvalidInputError):
            TrajectoryStoreConfig(**bad)
    with pytest.raises(InvalidInputError):
        CompressionConfig(max_words=5)
