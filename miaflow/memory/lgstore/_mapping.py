"""The pure parts of the LangGraph store: the namespace mapping, LangGraph's filter and namespace-match rules,
and how an item's value, vectors and timestamps travel in a record's Chroma metadata."""

from __future__ import annotations

import base64
import json
import math
import re
import string
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np
from langgraph.store.base import MatchCondition

from ...errors import InvalidInputError
from ..trajectory import JUDGEMENTS

__all__ = ["MAX_NAMESPACE", "namespace_to_miaflow", "namespace_from_miaflow", "matches_filter",
           "namespace_matches", "pack_vecs", "unpack_vecs", "timestamp", "json_value", "trajectory_fields",
           "EmbedderAdapter"]

_SEP = "."
_MARK = "0=="
_KEEP = frozenset(string.ascii_letters + string.digits + "_-:@+/")
_ESCAPED = re.compile(r"(?:=[0-9A-F]{2})+")
MAX_NAMESPACE = 128
_OPS = ("$eq", "$ne", "$gt", "$gte", "$lt", "$lte")


def _escape(label: str) -> str:
    return "".join(c if c in _KEEP else "".join(f"={b:02X}" for b in c.encode("utf-8")) for c in label)


def namespace_to_miaflow(namespace: Sequence[str]) -> str:
    """The trajectory-store namespace of a LangGraph namespace: labels joined with ``.``, any character outside
    ``A-Z a-z 0-9 _ - : @ + /`` written as ``=XX`` (its UTF-8 bytes in hex), and ``0==`` in front when the first
    label does not start with a letter or digit (miaflow namespaces must). One-to-one, since LangGraph labels are
    non-empty and hold no ``.``.

    >>> namespace_to_miaflow(("users", "alice")), namespace_to_miaflow(("_tmp", "a b"))
    ('users.alice', '0==_tmp.a=20b')
    """
    if not isinstance(namespace, (tuple, list)) or not namespace:
        raise InvalidInputError(f"a namespace is a non-empty tuple of labels, got {namespace!r}")
    for label in namespace:
        if not isinstance(label, str) or not label or _SEP in label or "\x00" in label:
            raise InvalidInputError(f"namespace labels must be non-empty strings without '.', got {namespace!r}")
    name = _SEP.join(_escape(label) for label in namespace)
    if not (name[0].isascii() and name[0].isalnum()):
        name = _MARK + name
    if len(name) > MAX_NAMESPACE:
        raise InvalidInputError(f"namespace {namespace!r} is {len(name)} characters as a miaflow namespace "
                                f"{name!r}; at most {MAX_NAMESPACE} fit")
    return name


def namespace_from_miaflow(name: str) -> tuple[str, ...]:
    """The inverse of :func:`namespace_to_miaflow`.

    >>> namespace_from_miaflow("users.alice"), namespace_from_miaflow("0==_tmp.a=20b")
    (('users', 'alice'), ('_tmp', 'a b'))
    """
    if name.startswith(_MARK):
        name = name[len(_MARK):]

    def unescape(label: str) -> str:
        return _ESCAPED.sub(lambda m: bytes.fromhex(m.group(0).replace("=", "")).decode("utf-8", "replace"), label)

    return tuple(unescape(label) for label in name.split(_SEP))


def _apply_op(value: Any, op: str, target: Any) -> bool:
    if op == "$eq":
        return value == target
    if op == "$ne":
        return value != target
    if op not in _OPS:
        raise InvalidInputError(f"unsupported filter operator {op!r}; use one of {_OPS}")
    try:
        a, b = float(value), float(target)
    except (TypeError, ValueError) as e:
        raise InvalidInputError(f"filter {op} needs numbers, got {value!r} and {target!r}") from e
    return {"$gt": a > b, "$gte": a >= b, "$lt": a < b, "$lte": a <= b}[op]


def _matches(value: Any, cond: Any) -> bool:
    if isinstance(cond, Mapping):
        if any(str(k).startswith("$") for k in cond):
            return all(_apply_op(value, k, v) for k, v in cond.items())
        return isinstance(value, Mapping) and all(_matches(value.get(k), v) for k, v in cond.items())
    if isinstance(cond, (list, tuple)):
        return (isinstance(value, (list, tuple)) and len(value) == len(cond)
                and all(_matches(a, b) for a, b in zip(value, cond, strict=True)))
    return value == cond


def matches_filter(value: Mapping[str, Any], filter: Mapping[str, Any] | None) -> bool:  # noqa: A002
    """Whether a value passes a LangGraph search filter (top-level keys; nested dicts and lists match exactly).

    >>> matches_filter({"n": 3, "tag": "a"}, {"n": {"$gt": 2}, "tag": "a"})
    True
    """
    return not filter or all(_matches(value.get(k), v) for k, v in filter.items())


def namespace_matches(ns: tuple[str, ...], cond: MatchCondition) -> bool:
    path = tuple(cond.path)
    if len(ns) < len(path):
        return False
    part = ns[: len(path)] if cond.match_type == "prefix" else ns[len(ns) - len(path):]
    if cond.match_type not in ("prefix", "suffix"):
        raise InvalidInputError(f"unsupported match type {cond.match_type!r}")
    return all(p == "*" or p == n for n, p in zip(part, path, strict=True))


def pack_vecs(vecs: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(vecs, dtype=np.float32).tobytes()).decode("ascii")


def unpack_vecs(text: str, dim: int) -> np.ndarray:
    if not text or dim <= 0:
        return np.zeros((0, max(dim, 0)), dtype=np.float32)
    return np.frombuffer(base64.b64decode(text), dtype=np.float32).reshape(-1, dim)


def timestamp(value: Any) -> datetime:
    if isinstance(value, str) and value:
        return datetime.fromisoformat(value)
    return datetime.fromtimestamp(float(value or 0.0), tz=UTC)


def json_value(value: Any, where: str) -> tuple[dict[str, Any], str]:
    if not isinstance(value, Mapping):
        raise InvalidInputError(f"{where}: a value must be a mapping, got {type(value).__name__}")
    try:
        text = json.dumps(dict(value), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise InvalidInputError(f"{where}: the value is not JSON-serialisable ({e}); store plain JSON data") from e
    return json.loads(text), text


def trajectory_fields(key: str, value: Mapping[str, Any], question: str, now: float) -> dict[str, Any]:
    """The trajectory-record fields a value carries (so ``TrajectoryStore.recall`` can use the item)."""
    fields: dict[str, Any] = {"task_id": f"langgraph:{key}", "question": question, "created_at": now,
                              "compressed_by": "langgraph"}
    if isinstance(value.get("task_id"), str) and value["task_id"]:
        fields["task_id"] = value["task_id"]
    for name in ("plan", "summary", "answer", "model", "adapter_version"):
        if isinstance(value.get(name), str):
            fields[name] = value[name]
    if value.get("judgement") in JUDGEMENTS:
        fields["judgement"] = value["judgement"]
    reward = value.get("reward")
    if isinstance(reward, (int, float)) and not isinstance(reward, bool) and math.isfinite(reward):
        fields["reward"] = max(-1.0, min(1.0, float(reward)))
    ev = value.get("evidence_ids")
    if isinstance(ev, list) and all(isinstance(e, str) for e in ev):
        fields["evidence_ids"] = ev
    return fields


class EmbedderAdapter:
    """A LangChain ``Embeddings`` seen as a miaflow embedder (``embed(texts) -> array``)."""

    def __init__(self, embeddings: Any):
        self.embeddings = embeddings

    def embed(self, texts: list[str]) -> np.ndarray:
        return np.asarray(self.embeddings.embed_documents(list(texts)), dtype=np.float32)
