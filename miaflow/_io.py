"""Atomic file writes: a temporary file in the same folder, flushed and fsynced, then ``os.replace`` over the
target (and the folder fsynced), so a crash leaves the old version or the new one, never half of one.

Every state file miaflow rewrites in place (session progress, adapter pointers, Bi-Mem state, index manifests,
exports) goes through here.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

__all__ = ["atomic_write_bytes", "atomic_write_text", "atomic_write_json"]


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(str(folder), os.O_RDONLY)
    except OSError:  # some platforms cannot open a folder; the rename is still atomic there
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (parent folders are created).

    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "sub" / "x.bin"
    >>> atomic_write_bytes(p, b"abc"); p.read_bytes()
    b'abc'
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=str(path.parent))
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    _fsync_dir(path.parent)


def atomic_write_text(path: str | Path, text: str, encoding: str = "utf-8") -> None:
    """Write ``text`` to ``path`` atomically."""
    atomic_write_bytes(path, text.encode(encoding))


def atomic_write_json(path: str | Path, data: Any, *, indent: int | None = None, sort_keys: bool = False) -> None:
    """Write ``data`` as JSON (UTF-8, non-ASCII kept; unknown objects through ``str``) to ``path`` atomically.

    >>> import tempfile, pathlib, json
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "s.json"
    >>> atomic_write_json(p, {"a": 1}); json.loads(p.read_text())
    {'a': 1}
    """
    text = json.dumps(data, ensure_ascii=False, indent=indent, sort_keys=sort_keys, default=str)
    atomic_write_bytes(path, text.encode("utf-8"))
