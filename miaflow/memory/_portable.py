"""Stats, JSONL export and import of a :class:`~miaflow.memory.store.TrajectoryStore` (kept apart from the store's
hot paths). All three go through the store's batch interface (``_iter_records``, ``_stored``, ``_put_records``)
and never touch Chroma. Export streams into a temporary file renamed into place (:func:`miaflow._io.atomic_open`),
so a crash never leaves half a file; import checks every line before it writes anything."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .._io import atomic_open
from ..errors import InvalidInputError
from ._codec import pack, static_fields
from ._namespace import check_namespace
from ._utility import is_utility_key

if TYPE_CHECKING:
    from .store import StoredRecord, TrajectoryStore

__all__ = ["stats", "export_jsonl", "import_jsonl"]


def _namespaces(store: TrajectoryStore, namespace: str | None, *, every: str | None) -> list[str]:
    """``[namespace]`` checked, the store's own namespace for None, or all of them for ``every``."""
    if namespace is not None and namespace == every:
        return store.namespaces()
    return [store.namespace if namespace is None else check_namespace(namespace)]


def stats(store: TrajectoryStore, namespace: str | None = None) -> dict[str, Any]:
    per: dict[str, Any] = {}
    for ns in store.namespaces() if namespace is None else [check_namespace(namespace)]:
        judg: Counter[str] = Counter()
        qs, ratios, usage, used = [], [], 0, 0
        for page in store._iter_records(ns):
            for rec in (s.record for s in page):
                judg[rec.judgement] += 1
                qs.append(rec.q_value)
                ratios.append(rec.compression_ratio)
                usage += rec.usage_count
                used += rec.usage_count > 0
        per[ns] = {
            "records": len(qs), "correct": judg["correct"], "incorrect": judg["incorrect"],
            "unknown": judg["unknown"], "mean_q": float(np.mean(qs)) if qs else 0.0,
            "min_q": float(min(qs)) if qs else 0.0, "max_q": float(max(qs)) if qs else 0.0,
            "total_usage": usage, "used_records": used,
            "mean_compression_ratio": float(np.mean(ratios)) if ratios else 0.0,
        }
    return {"where": store.where, "records": sum(p["records"] for p in per.values()), "namespaces": per,
            "counters": dict(store.counters)}


def _row(s: StoredRecord) -> dict[str, Any]:
    """One export line: the static fields, the folded utility (for reading) and the utility keys (for import)."""
    rec = s.record
    row = static_fields(s.meta)
    row.update(id=rec.id, namespace=rec.namespace, q_value=rec.q_value, usage_count=rec.usage_count,
               success_count=rec.success_count, utility=s.utility)
    if s.embedding is not None:
        row["embedding"] = [float(x) for x in s.embedding]
    return row


def export_jsonl(store: TrajectoryStore, path: str | Path, *, namespace: str | None = None,
                 embeddings: bool = False) -> int:
    n = 0
    with atomic_open(path, "w") as f:
        for ns in _namespaces(store, namespace, every="*"):
            for page in store._iter_records(ns, embeddings=embeddings):
                for s in page:
                    f.write(json.dumps(_row(s), ensure_ascii=False) + "\n")
                    n += 1
    return n


def import_jsonl(store: TrajectoryStore, path: str | Path, *, namespace: str | None = None) -> int:
    records: list[StoredRecord] = []
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise InvalidInputError(f"cannot read {path}: {e}") from e
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            ns = _namespaces(store, namespace if namespace is not None else row.get("namespace"), every=None)[0]
            meta = pack(row)
            util = row.get("utility") or {}
            if not all(is_utility_key(k) and isinstance(v, str) for k, v in util.items()):
                raise ValueError("bad utility keys")
            meta.update(util)
            records.append(store._stored(str(row["id"]), meta, ns, row.get("embedding")))
        except (ValueError, KeyError, TypeError, AttributeError, InvalidInputError) as e:
            raise InvalidInputError(f"{path}:{n}: not a trajectory-store record ({e})") from e
    store._put_records(records)
    store.counters["imported"] += len(records)
    return len(records)
