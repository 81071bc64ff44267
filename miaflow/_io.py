"""Atomic file writes: a temporary file in the same folder, flushed and fsynced, then ``os.replace`` over the
target (and the folder fsynced), so a crash leaves the old version or the new one, never half of one.

Every state file miaflow rewrites in place (session progress, adapter pointers, Bi-Mem state, index manifests,
store markers, exports, benchmark reports) goes through here, and so does every folder published whole (the
converted bundled model, the ONNX export of the embedder): :func:`atomic_folder`.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

__all__ = ["atomic_open", "atomic_folder", "atomic_write_bytes", "atomic_write_text", "atomic_write_json"]


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


@contextmanager
def atomic_open(path: str | Path, mode: str = "w", encoding: str | None = "utf-8") -> Iterator[IO[Any]]:
    """A file to write ``path`` through, streamed (for exports too big to hold in memory): it appears at
    ``path``, fsynced, only when the block ends without an exception; otherwise the old file stays and the
    temporary one goes. ``mode`` is "w" or "wb"; parent folders are created.

    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "rows.jsonl"
    >>> with atomic_open(p) as fh:
    ...     _ = fh.write("one\\n")
    >>> p.read_text()
    'one\\n'
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_open writes a whole file: mode 'w' or 'wb', got {mode!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=str(path.parent))
    try:
        with os.fdopen(fd, mode, encoding=None if mode == "wb" else encoding) as fh:
            yield fh
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


@contextmanager
def atomic_folder(target: str | Path, *, taken: Callable[[], bool] | None = None) -> Iterator[Path]:
    """An empty temporary folder beside ``target`` to build a whole folder in (a converted model, an export);
    when the block ends without an exception it replaces ``target`` by one rename, so readers see the old folder
    or the new one, never a half-written one. On an exception the temporary folder goes and ``target`` stays.
    ``taken()``, when given, is asked if the rename fails: True means another process finished the same folder
    first (theirs is kept), False re-raises.

    >>> import tempfile, pathlib
    >>> t = pathlib.Path(tempfile.mkdtemp()) / "model"
    >>> with atomic_folder(t) as tmp:
    ...     _ = (tmp / "weights.bin").write_bytes(b"w")
    >>> sorted(p.name for p in t.iterdir())
    ['weights.bin']
    """
    import shutil

    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        yield tmp
        if target.exists():
            shutil.rmtree(target)
        try:
            os.replace(tmp, target)
        except OSError:
            if taken is None or not taken():
                raise
        _fsync_dir(target.parent)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (parent folders are created).

    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "sub" / "x.bin"
    >>> atomic_write_bytes(p, b"abc"); p.read_bytes()
    b'abc'
    """
    with atomic_open(path, "wb") as fh:
        fh.write(data)


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
