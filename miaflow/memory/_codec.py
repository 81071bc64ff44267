"""MemoryRecord <-> Chroma metadata. The static fields travel packed as one JSON string (``rec``) beside
``task_id`` (kept apart so ``delete(task_id=...)`` can filter on it): Chroma writes one row per metadata key, so
packing makes writes several times cheaper. Utility keys (see ``_utility``) sit beside them and are folded on read.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from ._utility import UtilityState
from .trajectory import MemoryRecord

__all__ = ["STATIC_KEYS", "to_metadata", "from_metadata", "static_fields", "pack"]

STATIC_KEYS = (
    "task_id", "question", "plan", "summary", "answer", "judgement", "reward", "evidence_ids", "model",
    "adapter_version", "created_at", "original_tokens", "summary_tokens", "compressed_by", "cited_ids", "queries",
)


def pack(fields: Mapping[str, Any]) -> dict[str, Any]:
    """Chroma metadata for the given static fields."""
    body = {k: fields[k] for k in STATIC_KEYS if k in fields and k != "task_id"}
    return {"task_id": str(fields.get("task_id", "")), "rec": json.dumps(body, ensure_ascii=False)}


def static_fields(meta: Mapping[str, Any]) -> dict[str, Any]:
    """The static fields stored in a record's metadata."""
    out = json.loads(meta.get("rec") or "{}")
    out["task_id"] = meta.get("task_id", "")
    return out


def to_metadata(rec: MemoryRecord) -> dict[str, Any]:
    return pack({
        "task_id": rec.task_id,
        "question": rec.question,
        "plan": rec.plan,
        "summary": rec.summary,
        "answer": rec.answer,
        "judgement": rec.judgement,
        "reward": float(rec.reward),
        "evidence_ids": list(rec.evidence_ids),
        "model": rec.model,
        "adapter_version": rec.adapter_version,
        "created_at": float(rec.created_at),
        "original_tokens": int(rec.original_tokens),
        "summary_tokens": int(rec.summary_tokens),
        "compressed_by": rec.compressed_by,
        "cited_ids": list(rec.cited_ids),
        "queries": list(rec.queries),
    })


def from_metadata(rec_id: str, meta: Mapping[str, Any], namespace: str, util: UtilityState) -> MemoryRecord:
    f = static_fields(meta)
    return MemoryRecord(
        id=rec_id,
        task_id=str(f.get("task_id", "")),
        question=str(f.get("question", "")),
        plan=str(f.get("plan", "")),
        summary=str(f.get("summary", "")),
        answer=str(f.get("answer", "")),
        judgement=f.get("judgement", "unknown"),
        reward=float(f.get("reward", 0.0)),
        evidence_ids=tuple(str(e) for e in f.get("evidence_ids") or ()),
        namespace=namespace,
        model=f.get("model") or None,
        adapter_version=f.get("adapter_version") or None,
        created_at=float(f.get("created_at", 0.0)),
        q_value=util.q,
        usage_count=util.usage,
        success_count=util.success,
        last_used_at=util.last_used,
        original_tokens=int(f.get("original_tokens", 0)),
        summary_tokens=int(f.get("summary_tokens", 0)),
        compressed_by=str(f.get("compressed_by", "extractive")),
        cited_ids=tuple(str(e) for e in f.get("cited_ids") or ()),
        queries=tuple(str(q) for q in f.get("queries") or ()),
    )
