"""The index manifest: one content hash per document, so a refresh re-embeds only what changed.

``manifest.json`` lives in the index folder next to the Chroma data. It is written with ``complete: false``
before Chroma is touched and ``complete: true`` after, so an interrupted refresh is detected and the index state is
then recovered from the Chroma metadata (every stored passage carries its document id and hash).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._io import atomic_write_json

__all__ = ["Manifest", "doc_hash", "MANIFEST_VERSION"]

MANIFEST_VERSION = 1


def doc_hash(title: str, text: str) -> str:
    """sha256 of the title and text: what the stored passages were embedded from."""
    h = hashlib.sha256()
    h.update(title.encode("utf-8"))
    h.update(b"\x00")
    h.update(text.encode("utf-8"))
    return h.hexdigest()


@dataclass
class Manifest:
    """What the index folder holds: the settings the vectors depend on and ``doc_id -> {hash, passages}``."""

    settings: dict[str, Any] = field(default_factory=dict)
    documents: dict[str, dict[str, Any]] = field(default_factory=dict)
    complete: bool = True
    corpus: str = ""
    format: str = ""

    @classmethod
    def read(cls, path: Path) -> Manifest | None:
        """The manifest at ``path``, or None when missing, unreadable or of another version."""
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if not isinstance(data, dict) or data.get("version") != MANIFEST_VERSION:
            return None
        docs = data.get("documents")
        if not isinstance(docs, dict):
            return None
        return cls(settings=dict(data.get("settings") or {}), documents=docs, complete=bool(data.get("complete")),
                   corpus=str(data.get("corpus", "")), format=str(data.get("format", "")))

    def write(self, path: Path) -> None:
        """Write atomically (temporary file + rename)."""
        data = {"version": MANIFEST_VERSION, "corpus": self.corpus, "format": self.format, "complete": self.complete,
                "settings": self.settings, "n_documents": len(self.documents), "documents": self.documents}
        atomic_write_json(path, data, indent=0, sort_keys=True)
