"""One rule for namespaces of every store, and one collision-free mapping to storage names.

A namespace separates tenants, so two of them must never share a collection or a folder, and none may steer a
write outside the memory folder. The rule: 1 to 128 characters from ASCII letters, digits and ``_ - . : @ + = /``
and inner spaces, starting with a letter or digit, without ``..``. It is checked the same way by the trajectory
store and Bi-Mem.

Storage names (Chroma collection names, Bi-Mem folder names) are never cut: a namespace that is already a short,
plain Chroma name maps to itself (so collections written before keep their names); any other maps to a readable
prefix plus ``-h`` and 32 hex digits of its SHA-256. Plain names never end in that pattern (a namespace that does is
hashed too), so the two kinds cannot meet, and distinct hashed names differ unless SHA-256 collides.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from ..errors import InvalidInputError

__all__ = ["MAX_NAMESPACE", "check_namespace", "storage_name", "collection_name", "legacy_collection_name"]

MAX_NAMESPACE = 128
_ALLOWED = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:@+=/ -]*")
_PLAIN = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9_.-]*[A-Za-z0-9])?")
_HASHED_TAIL = re.compile(r"-h[0-9a-f]{32}$")
_PLAIN_MAX = 100


def check_namespace(namespace: Any) -> str:
    """``namespace`` if it follows the rule, else an :class:`InvalidInputError` saying why.

    >>> check_namespace("team/alice")
    'team/alice'
    >>> check_namespace("/abs/path")
    Traceback (most recent call last):
    ...
    miaflow.errors.InvalidInputError: namespace '/abs/path' must start with a letter or digit (it is a name, never a path)
    """
    if not isinstance(namespace, str) or not namespace:
        raise InvalidInputError(f"namespace must be a non-empty string, got {namespace!r}")
    if len(namespace) > MAX_NAMESPACE:
        raise InvalidInputError(f"namespace is {len(namespace)} characters long; at most {MAX_NAMESPACE} are allowed")
    if not namespace[0].isascii() or not namespace[0].isalnum():
        raise InvalidInputError(f"namespace {namespace!r} must start with a letter or digit (it is a name, never a "
                                "path)")
    if not _ALLOWED.fullmatch(namespace) or namespace != namespace.strip():
        raise InvalidInputError(f"namespace {namespace!r} may only hold ASCII letters, digits, inner spaces and "
                                "_ - . : @ + = /")
    if ".." in namespace:
        raise InvalidInputError(f"namespace {namespace!r} must not contain '..'")
    return namespace


def storage_name(namespace: str) -> str:
    """The namespace itself when it is a short plain name, else a readable prefix + ``-h`` + 32 hex of SHA-256.

    >>> storage_name("default"), storage_name("team/x y")
    ('default', 'team-x-y-h01d76938843a7b4b964b69ca05af368e')
    """
    check_namespace(namespace)
    if _PLAIN.fullmatch(namespace) and len(namespace) <= _PLAIN_MAX and not _HASHED_TAIL.search(namespace) \
            and ".." not in namespace:
        return namespace
    readable = re.sub(r"[^A-Za-z0-9]+", "-", namespace)[:40].strip("-") or "ns"
    return f"{readable}-h{hashlib.sha256(namespace.encode()).hexdigest()[:32]}"


def collection_name(prefix: str, namespace: str) -> str:
    """The Chroma collection of ``namespace`` under ``prefix`` (3-40 characters, starting alphanumeric)."""
    return f"{prefix}-{storage_name(namespace)}"


def legacy_collection_name(prefix: str, namespace: str) -> str:
    """The name earlier releases gave (cut at 500 characters, 8 hex of SHA-1 for odd names): only to find old
    collections, whose stored namespace is checked before use."""
    cleaned = re.sub(r"[^a-zA-Z0-9._-]", "-", namespace)
    if cleaned != namespace:
        cleaned = f"{cleaned}-{hashlib.sha1(namespace.encode()).hexdigest()[:8]}"
    name = f"{prefix}-{cleaned}"[:500]
    if not name[-1].isalnum():
        name += "0"
    return name
