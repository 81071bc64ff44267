"""MIA's write rules of the trajectory store: a near-duplicate question (cosine >= the threshold) replaces an
incorrect or unknown entry, or a correct one when the new run is correct and its summary shorter; otherwise the
stored entry is kept. A replacement keeps the old id and starts a fresh utility."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from ._codec import static_fields, to_metadata
from ._utility import is_utility_key
from .trajectory import MemoryRecord

__all__ = ["apply_write_rules", "replaces", "reset_meta"]


def replaces(old_judgement: str, old_summary: str, rec: MemoryRecord) -> bool:
    """Whether a new near-duplicate replaces the stored one (MIA): always an incorrect or unknown one, a correct
    one only when the new run is correct with a shorter summary."""
    if old_judgement != "correct":
        return True
    return rec.judgement == "correct" and len(rec.summary) < len(old_summary)

def apply_write_rules(
    col: Any, records: list[MemoryRecord], embs: np.ndarray, thr: float | None, step: int
) -> tuple[list[str], dict[str, tuple[MemoryRecord, np.ndarray]], dict[str, tuple[MemoryRecord, np.ndarray, dict]]]:
    """Which records are new, which replace a stored near-duplicate (id, record, embedding, metadata patch), and
    the id each one is kept under; near-duplicates inside the batch are resolved too."""
    new: dict[str, tuple[MemoryRecord, np.ndarray]] = {}
    updates: dict[str, tuple[MemoryRecord, np.ndarray, dict]] = {}
    if thr is None:
        return [r.id for r in records], {r.id: (r, e) for r, e in zip(records, embs, strict=True)}, updates
    near: list[tuple[str, float, dict] | None] = [None] * len(records)
    if col.count() > 0:
        for i in range(0, len(records), step):
            res = col.query(query_embeddings=embs[i:i + step], n_results=1, include=["metadatas", "distances"])
            for j, (ids, ds, ms) in enumerate(zip(res["ids"], res["distances"], res["metadatas"], strict=True)):
                if ids and 1.0 - ds[0] >= thr - 1e-6:
                    near[i + j] = (ids[0], 1.0 - ds[0], ms[0])
    kept: list[str] = []
    sim = embs @ embs.T  # near-duplicates inside the batch itself
    pend_ids: list[str] = []  # ids of new records, and the batch row holding their current content
    pend_rows: list[int] = []
    for idx, (rec, emb) in enumerate(zip(records, embs, strict=True)):
        best: tuple[str, float] | None = None
        if pend_rows:
            row = sim[idx, pend_rows]
            j = int(np.argmax(row))
            if row[j] >= thr - 1e-6:
                best = (pend_ids[j], float(row[j]))
        hit = near[idx]
        if hit is not None and (best is None or hit[1] > best[1]):
            best = (hit[0], hit[1])
        if best is None:
            new[rec.id] = (rec, emb)
            pend_ids.append(rec.id)
            pend_rows.append(idx)
            kept.append(rec.id)
            continue
        old_id = best[0]
        if old_id in new:
            old = new[old_id][0]
            if replaces(old.judgement, old.summary, rec):
                new[old_id] = (replace(rec, id=old_id), emb)
                pend_rows[pend_ids.index(old_id)] = idx
        elif old_id in updates:
            old = updates[old_id][0]
            if replaces(old.judgement, old.summary, rec):
                updates[old_id] = (replace(rec, id=old_id), emb, reset_meta(rec, hit[2]))  # type: ignore[index]
        else:
            assert hit is not None
            old_meta = hit[2]
            f = static_fields(old_meta)
            if replaces(str(f.get("judgement")), str(f.get("summary", "")), rec):
                updates[old_id] = (replace(rec, id=old_id), emb, reset_meta(rec, old_meta))
        kept.append(old_id)
    return kept, new, updates

def reset_meta(rec: MemoryRecord, old_meta: dict[str, Any]) -> dict[str, Any]:
    """New static fields and every old utility key deleted: a fresh utility, in one write."""
    meta: dict[str, Any] = {k: None for k in old_meta if is_utility_key(k)}
    meta.update(to_metadata(rec))
    return meta
