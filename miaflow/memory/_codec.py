"""MemoryRecord <-> Chroma metadata. Static fields are plain metadata keys; utility keys (see ``_utility``) sit
beside them and are folded on read. Chroma metadata cannot hold None or lists portably, so None becomes "" and
evidence ids a JSON string."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from ._utility import UtilityState
from .trajectory import MemoryRecord

__all__ = ["STATIC_KEYS", "to_metadata", "from_metadata"]

STATIC_KEYS = (
    "task_id", "question", "plan", "summary", "answer", "judgement", "reward", "evidence_ids", "model",
    "adapter_version", "created_at", "original_tokens", "summary_tokens", "compressed_by",
)


def to_metadata(rec: MemoryRecord) -> dict[str, Any]:
    return {
        "task_id": rec.task_id,
        "question": rec.question,
        "plan": rec.plan,
        "summary": rec.summary,
        "answer": rec.answer,
        "judgement": rec.judgement,
        "reward": float(rec.reward),
        "evidence_ids": json.dumps(list(rec.evidence_ids)),
        "model": rec.model or "",
        "adapter_version": rec.adapter_version or "",
        "created_at": float(rec.created_at),
        "original_tokens": int(rec.original_tokens),
        "summary_tokens": int(rec.summary_tokens),
        "compressed_by": rec.compressed_by,
    }


def from_metadata(rec_id: str, meta: Mapping[str, Any], namespace: str, util: UtilityState) -> MemoryRecord:
    return MemoryRecord(
        id=rec_id,
        task_id=str(meta.get("task_id", "")),
        question=str(meta.get("question", "")),
        plan=str(meta.get("plan", "")),
        summary=str(meta.get("summary", "")),
        answer=str(meta.get("answer", "")),
        judgement=meta.get("judgement", "unknown"),  # type: ignore[arg-type]
        reward=float(meta.get("reward", 0.0)),
        evidence_ids=tuple(json.loads(meta.get("evidence_ids") or "[]")),
        namespace=namespace,
        model=meta.get("model") or None,
        adapter_version=meta.get("adapter_version") or None,
        created_at=float(meta.get("created_at", 0.0)),
        q_value=util.q,
        usage_count=util.usage,
        success_count=util.success,
        last_used_at=util.last_used,
        original_tokens=int(meta.get("original_tokens", 0)),
        summary_tokens=int(meta.get("summary_tokens", 0)),
        compressed_by=str(meta.get("compressed_by", "extractive")),
    )
