"""Stats, JSONL export and import of a :class:`~miaflow.memory.store.TrajectoryStore` (kept apart from the store's
hot paths). Export writes a temporary file and renames it, so a crash never leaves half a file; import checks every
line before it writes anything."""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import InvalidInputError
from ._codec import pack, static_fields
from ._utility import is_utility_key
from .trajectory import _check_reward

if TYPE_CHECKING:
    from .store import TrajectoryStore

__all__ = ["stats", "export_jsonl", "import_jsonl"]


def stats(store: TrajectoryStore, namespace: str | None = None) -> dict[str, Any]:
    nss = store.namespaces() if namespace is None else [store._check_ns(namespace)]
    per: dict[str, Any] = {}
    for ns in nss:
        judg: Counter[str] = Counter()
        qs, ratios, usage, used = [], [], 0, 0
        for rec in store.iter_records(ns):
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


def export_jsonl(store: TrajectoryStore, path: str | Path, *, namespace: str | None = None,
                 embeddings: bool = False) -> int:
    nss = store.namespaces() if namespace == "*" else [store._ns(namespace)]
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    n = 0
    with tmp.open("w", encoding="utf-8") as f:
        for ns in nss:
            for rec_id, meta, emb in store._scan(ns, embeddings=embeddings):
                row = static_fields(meta)
                st = store._fold(meta)
                row.update(id=rec_id, namespace=ns, q_value=st.q, usage_count=st.usage, success_count=st.success,
                           utility={k: v for k, v in meta.items() if is_utility_key(k)})
                if emb is not None:
                    row["embedding"] = [float(x) for x in emb]
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
                n += 1
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return n


def import_jsonl(store: TrajectoryStore, path: str | Path, *, namespace: str | None = None) -> int:
    rows: list[tuple[str, str, dict[str, Any], list[float] | None]] = []
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise InvalidInputError(f"cannot read {path}: {e}") from e
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            rec_id = str(row["id"])
            ns = store._ns(namespace if namespace is not None else row.get("namespace"))
            meta = pack(row)
            util = row.get("utility") or {}
            if not all(is_utility_key(k) and isinstance(v, str) for k, v in util.items()):
                raise ValueError("bad utility keys")
            meta.update(util)
            rec = store._record(rec_id, meta, ns)
            if not rec.question.strip():
                raise ValueError("empty question")
            _check_reward(rec.reward)
            emb = row.get("embedding")
        except (ValueError, KeyError, TypeError, AttributeError, InvalidInputError) as e:
            raise InvalidInputError(f"{path}:{n}: not a trajectory-store record ({e})") from e
        rows.append((ns, rec_id, meta, emb))
    by_ns: dict[str, list[tuple[str, dict[str, Any], list[float] | None]]] = {}
    for ns, rec_id, meta, emb in rows:
        by_ns.setdefault(ns, []).append((rec_id, meta, emb))
    for ns, items in by_ns.items():
        missing = [k for k, (_, _, e) in enumerate(items) if e is None]
        vecs = store._embed([static_fields(items[k][1])["question"] for k in missing]) if missing else None
        embs: list[Any] = [np.asarray(e, np.float32) if e is not None else None for _, _, e in items]
        for j, k in enumerate(missing):
            embs[k] = vecs[j]  # type: ignore[index]
        with store._lock, store._errors("import records"):
            col = store._collection(ns, create=True)
            before = int(col.count())
            store._begin(ns, before, before + len(items))
            step = store._batch()
            for i in range(0, len(items), step):
                chunk = items[i:i + step]
                ids = [c[0] for c in chunk]
                got = col.get(ids=ids, include=["metadatas"])
                old = dict(zip(got["ids"], got["metadatas"], strict=True))
                metas = []
                for rec_id, meta, _ in chunk:
                    m: dict[str, Any] = {k: None for k in old.get(rec_id, {}) if is_utility_key(k)}
                    m.update(meta)
                    metas.append(m)
                col.upsert(ids=ids, embeddings=np.stack(embs[i:i + step]), metadatas=metas)
            store._commit(ns, col)
    store.counters["imported"] += len(rows)
    return len(rows)
