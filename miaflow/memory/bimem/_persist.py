"""Saving Bi-Mem's non-vector state as JSON files, each written atomically (a temporary file in the same folder,
flushed and fsynced, then ``os.replace``), so a crash leaves the old or the new version, never half of one.

Layout per conversation folder: append-only segment files (the turns, facts and new graph edges of one addition,
so adding a session writes only what is new) and ``state.json`` (segment list, scenes, personas, counters), which
is written last and is the commit point. A manifest lists the conversations. Vectors live in Chroma.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from ..._io import atomic_write_bytes, atomic_write_json
from ...errors import MemoryStoreError

__all__ = ["atomic_write_bytes", "atomic_write_json", "read_json", "conversation_dir"]


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise MemoryStoreError(
            f"Bi-Mem state file {path} is unreadable or corrupt ({e}); restore it from a backup or delete the memory "
            "folder to start over") from None


def conversation_dir(root: Path, conversation_id: str) -> Path:
    digest = hashlib.sha1(conversation_id.encode()).hexdigest()[:16]
    return root / f"conv-{digest}"
