"""Opening ChromaDB clients the same way everywhere: telemetry off, embedded folder or HTTP server."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .._import_utils import require

__all__ = ["open_client", "close_client", "collection_name"]


def open_client(path: str | Path | None = None, *, host: str | None = None, port: int | None = None) -> Any:
    """A ``PersistentClient(path)`` by default, an ``HttpClient(host, port)`` when a host is given."""
    os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
    require("chromadb")
    import chromadb
    from chromadb.config import Settings

    settings = Settings(anonymized_telemetry=False, allow_reset=False)
    if host:
        return chromadb.HttpClient(host=host, port=int(port or 8000), settings=settings)
    if path is None:
        raise ValueError("give either a folder path or a host for the Chroma client")
    Path(path).mkdir(parents=True, exist_ok=True)
    return chromadb.PersistentClient(path=str(path), settings=settings)


def close_client(client: Any) -> None:
    """Release a client's Chroma system. Chroma keeps one system (with its vector index in memory) per folder per
    process; without this, opening the folder again in the same process reuses that stale system and misses, or
    fails to read, what another process wrote meanwhile."""
    close = getattr(client, "close", None)
    if close is not None:
        try:
            close()
        except Exception:  # noqa: BLE001 - closing is best effort; the data is on disk already
            pass


def collection_name(prefix: str, namespace: str) -> str:
    """A valid Chroma collection name for ``prefix`` + ``namespace``, never cut and never shared by two namespaces
    (see :mod:`._namespace`)."""
    from ._namespace import collection_name as mapped

    return mapped(prefix, namespace)
