"""Learned utilities without read-modify-write: the MemRL update as an append-only, idempotent event log that lives
inside each record's Chroma metadata.

Why: Chroma has no compare-and-swap, so "read Q, write Q'" from two processes loses updates. Chroma does merge
metadata key by key, so each (task, memory) update is written as its own key ``u.<hash(task)>`` = ``"ts|reward"``.
Two writers never touch the same key (no lost update), writing the same task twice writes the same key (counted
once), and one ``update`` call covering all memories of a task is a single atomic Chroma write.

The Q-value is the fold of Q <- Q + alpha * (r - Q) over the events in (time, key) order, starting from a base.
Compaction folds events older than a grace period into a base key ``b.<W>`` (W = watermark, the newest folded
time) and deletes them in the same write; the hashes of folded tasks are kept in ``a.<W>`` (bounded window) so a
late repeat is still ignored. Readers use the base with the largest W, so two compactions racing each other are
harmless. Simplification: concurrent events are ordered by their writers' clocks.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "EVENT_PREFIX",
    "task_hash",
    "event_key",
    "event_value",
    "UtilityState",
    "fold",
    "compaction_patch",
    "is_utility_key",
    "zscores",
    "phase_b_scores",
]

EVENT_PREFIX = "u."
BASE_PREFIX = "b."
APPLIED_PREFIX = "a."
_HASH_LEN = 16


def task_hash(task_id: str) -> str:
    """A short stable hash of a task id (the idempotency key, together with the memory id)."""
    return hashlib.sha1(task_id.encode("utf-8")).hexdigest()[:_HASH_LEN]


def event_key(task_id: str) -> str:
    return EVENT_PREFIX + task_hash(task_id)


def event_value(ts: float, reward: float) -> str:
    return f"{ts:.6f}|{reward!r}"


def is_utility_key(key: str) -> bool:
    return key.startswith((EVENT_PREFIX, BASE_PREFIX, APPLIED_PREFIX))


def _watermark_key(w: float) -> str:
    return f"{w:020.6f}"


@dataclass(slots=True)
class UtilityState:
    """The utility of one memory as folded from its metadata."""

    q: float
    usage: int
    success: int
    last_used: float | None
    watermark: float | None
    applied: str
    """Concatenated task hashes folded into the base (bounded window)."""
    events: list[tuple[float, str, float]]
    """Pending (time, hash, reward) events, sorted, duplicates of folded tasks removed."""

    def has_task(self, h: str) -> bool:
        return any(e[1] == h for e in self.events) or _contains_hash(self.applied, h)


def _contains_hash(applied: str, h: str) -> bool:
    i = applied.find(h)
    while i != -1:
        if i % _HASH_LEN == 0:
            return True
        i = applied.find(h, i + 1)
    return False


def fold(meta: Mapping[str, Any], *, alpha: float, q_init: float, success_threshold: float) -> UtilityState:
    """Fold a record's utility keys into Q, counters and last-use time."""
    base_key: str | None = None
    raw_events: list[tuple[float, str, float]] = []
    for k, v in meta.items():
        if k.startswith(EVENT_PREFIX):
            ts_s, _, r_s = str(v).partition("|")
            raw_events.append((float(ts_s), k[len(EVENT_PREFIX):], float(r_s)))
        elif k.startswith(BASE_PREFIX) and (base_key is None or k > base_key):
            base_key = k
    q, usage, success, applied = q_init, 0, 0, ""
    last: float | None = None
    watermark: float | None = None
    if base_key is not None:
        parts = str(meta[base_key]).split("|")
        q, usage, success = float(parts[0]), int(parts[1]), int(parts[2])
        last = float(parts[3]) if parts[3] else None
        watermark = float(base_key[len(BASE_PREFIX):])
        applied = str(meta.get(APPLIED_PREFIX + base_key[len(BASE_PREFIX):], ""))
    events = sorted(e for e in raw_events if not (applied and _contains_hash(applied, e[1])))
    for ts, _, r in events:
        q += alpha * (r - q)
        usage += 1
        success += int(r > success_threshold)
        last = ts if last is None else max(last, ts)
    q = min(1.0, max(-1.0, q))
    return UtilityState(q, usage, success, last, watermark, applied, events)


def compaction_patch(
    meta: Mapping[str, Any], *, now: float, grace_s: float, alpha: float, q_init: float,
    success_threshold: float, applied_window: int,
) -> dict[str, Any] | None:
    """The metadata patch that folds events older than ``now - grace_s`` into a new base (None: nothing to fold).

    The patch writes ``b.<W>`` and ``a.<W>`` and deletes (sets to None) the folded events and older bases.
    """
    state = fold(meta, alpha=alpha, q_init=q_init, success_threshold=success_threshold)
    cutoff = now - grace_s
    old = [e for e in state.events if e[0] <= cutoff]
    if not old:
        return None
    base_only = {k: v for k, v in meta.items() if k.startswith((BASE_PREFIX, APPLIED_PREFIX))}
    for ts, h, r in old:
        base_only[EVENT_PREFIX + h] = event_value(ts, r)
    folded = fold(base_only, alpha=alpha, q_init=q_init, success_threshold=success_threshold)
    w = max(old[-1][0], state.watermark or -math.inf)
    wk = _watermark_key(w)
    applied = (state.applied + "".join(h for _, h, _ in old))[-applied_window * _HASH_LEN:]
    patch: dict[str, Any] = {k: None for k in meta if k.startswith((BASE_PREFIX, APPLIED_PREFIX))}
    for _, h, _ in old:
        patch[EVENT_PREFIX + h] = None
    # keys of events that were dropped as repeats of folded tasks go too
    for k in meta:
        if k.startswith(EVENT_PREFIX) and _contains_hash(applied, k[len(EVENT_PREFIX):]):
            patch[k] = None
    last = "" if folded.last_used is None else f"{folded.last_used:.6f}"
    patch[BASE_PREFIX + wk] = f"{folded.q!r}|{folded.usage}|{folded.success}|{last}"
    patch[APPLIED_PREFIX + wk] = applied
    return patch


def zscores(x: np.ndarray, clip: float) -> np.ndarray:
    """z-scores over the candidates, clipped to +-clip; all zeros when the values do not vary."""
    std = float(x.std())
    if x.size == 0 or std < 1e-12:
        return np.zeros_like(x, dtype=np.float64)
    return np.clip((x - x.mean()) / std, -clip, clip)


def phase_b_scores(sims: np.ndarray, qs: np.ndarray, *, sim_weight: float, q_weight: float, clip: float) -> np.ndarray:
    """MemRL phase B: ``sim_weight * z(sim) + q_weight * z(Q)``.

    >>> phase_b_scores(np.array([0.9, 0.8]), np.array([1.0, -1.0]), sim_weight=0.5, q_weight=0.5, clip=3).round(6).tolist()
    [1.0, -1.0]

    A lead in similarity is cancelled by an equal lag in Q (up to rounding):

    >>> np.allclose(phase_b_scores(np.array([0.9, 0.8]), np.array([-1.0, 1.0]), sim_weight=0.5, q_weight=0.5, clip=3), 0)
    True
    """
    return sim_weight * zscores(np.asarray(sims, float), clip) + q_weight * zscores(np.asarray(qs, float), clip)
