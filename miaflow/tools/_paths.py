"""Keeping every read inside the corpus root.

A corpus is given as a folder or a file; that is the root. Paths named relative to it are resolved (symlinks
followed, ``..`` collapsed) and refused with a :class:`~miaflow.errors.ToolError` unless the result is still inside
the root. Absolute paths are refused outright, so no text in a document can steer a read to ``/etc/passwd``.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath, PureWindowsPath

from ..errors import CorpusError, ToolError

__all__ = ["corpus_root", "resolve_inside", "is_inside"]


def corpus_root(path: str | Path) -> Path:
    """The resolved corpus root, or a :class:`CorpusError` saying why it cannot be used."""
    raw = Path(path).expanduser()
    if not raw.exists():
        raise CorpusError(f"Corpus not found: {raw}. Give a folder of .txt/.md files or a JSONL/JSON corpus file.")
    root = raw.resolve()
    if not os.access(root, os.R_OK) or (root.is_dir() and not os.access(root, os.X_OK)):
        raise CorpusError(f"Corpus is not readable: {root}. Check its permissions.")
    if not (root.is_dir() or root.is_file()):
        raise CorpusError(f"Corpus must be a folder or a regular file: {root}")
    return root


def is_inside(path: Path, root: Path) -> bool:
    """True when the resolved ``path`` is ``root`` or below it."""
    try:
        path.resolve().relative_to(root)
    except ValueError:
        return False
    return True


def resolve_inside(root: Path, relative: str | os.PathLike[str]) -> Path:
    """Resolve ``relative`` against ``root`` and refuse anything that ends up outside it.

    >>> import tempfile
    >>> root = Path(tempfile.mkdtemp()).resolve()
    >>> resolve_inside(root, "a/b.txt") == root / "a" / "b.txt"
    True
    >>> resolve_inside(root, "../x")
    Traceback (most recent call last):
    ...
    miaflow.errors.ToolError: refused path '../x': it leaves the corpus root
    """
    text = os.fspath(relative)
    if "\x00" in text:
        raise ToolError(f"refused path {text!r}: it contains a NUL byte")
    if PurePosixPath(text).is_absolute() or PureWindowsPath(text).is_absolute() or text.startswith("~"):
        raise ToolError(f"refused path {text!r}: absolute paths are not allowed, only paths inside the corpus root")
    candidate = (root / text).resolve()
    try:
        candidate.relative_to(root)
    except ValueError:
        raise ToolError(f"refused path {text!r}: it leaves the corpus root") from None
    return candidate
