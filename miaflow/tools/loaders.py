"""Corpus loaders: a folder of text files, JSONL, and the HotpotQA / MuSiQue formats, all to :class:`Document`.

Choices made here, so callers know what to expect:

- Folders are walked recursively in sorted order; ``.txt``, ``.md`` and ``.markdown`` files are read, hidden files
  and folders (``.git``, ``.miaflow-index``) are skipped, folder symlinks are not followed, and a file symlink is
  read only when its target is inside the root. The id is the path relative to the root (``notes/a.md``).
- Files that are not valid UTF-8 are decoded with replacement characters (U+FFFD); each one is logged as a warning
  and counted in :attr:`CorpusLoad.decode_errors`, so a stray Latin-1 file does not stop a whole index.
- JSONL (or a JSON list) of ``{id, title, text}``. Without ids, the title is the id (see :func:`title_ids`).
  Duplicate ids or a line that is not JSON are errors naming the line.
- A corpus with no usable document, a missing path or an unreadable one raises :class:`~miaflow.errors.CorpusError`.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import CorpusError, ToolError
from ._paths import corpus_root, resolve_inside
from .records import Document

__all__ = [
    "CorpusLoad",
    "FORMATS",
    "TEXT_SUFFIXES",
    "load_corpus",
    "read_corpus",
    "detect_format",
    "read_records",
    "title_ids",
]

log = logging.getLogger(__name__)

FORMATS = ("auto", "folder", "jsonl", "hotpotqa", "musique")
TEXT_SUFFIXES = (".txt", ".md", ".markdown")
MAX_FILE_BYTES = 20_000_000


@dataclass(kw_only=True, frozen=True, slots=True)
class CorpusLoad:
    """The documents of a corpus and what happened while reading it."""

    documents: tuple[Document, ...]
    """The documents, in a stable order."""
    root: Path
    """The resolved corpus root (a folder or a file); nothing outside it was read."""
    format: str
    """The format used (never ``auto``)."""
    warnings: tuple[str, ...] = ()
    """One line per skipped or repaired file (undecodable bytes, empty files, symlinks leaving the root)."""
    skipped: int = 0
    """Files or records left out."""
    decode_errors: int = 0
    """Files decoded with replacement characters because they were not valid UTF-8."""


def load_corpus(path: str | Path, format: str = "auto") -> list[Document]:  # noqa: A002 - public name
    """The documents of the corpus at ``path`` (a folder or file) in the given format ("auto" detects it)."""
    return list(read_corpus(path, format).documents)


def read_corpus(path: str | Path, format: str = "auto") -> CorpusLoad:  # noqa: A002
    """Like :func:`load_corpus`, with the warnings and counts of the load."""
    if format not in FORMATS:
        raise CorpusError(f"Unknown corpus format {format!r}; use one of {', '.join(FORMATS)}")
    root = corpus_root(path)
    fmt = detect_format(root) if format == "auto" else format
    if fmt == "folder":
        load = _load_folder(root)
    elif root.is_dir():
        raise CorpusError(f"Format {fmt!r} needs a file, but {root} is a folder. Use --format folder or give the file.")
    elif fmt == "jsonl":
        load = _load_jsonl(root)
    else:
        from .qa_formats import hotpotqa_corpus, musique_corpus

        load = (hotpotqa_corpus if fmt == "hotpotqa" else musique_corpus)(root)
    if not load.documents:
        extra = f" ({load.skipped} files or records skipped: {'; '.join(load.warnings[:3])})" if load.skipped else ""
        what = f"no .txt/.md files with text under {root}" if fmt == "folder" else f"no documents in {root}"
        raise CorpusError(f"The corpus is empty: {what}{extra}.")
    return load


def detect_format(path: Path) -> str:
    """Guess the format: folders and text files are "folder"; JSON(L) files by the keys of their first record."""
    if path.is_dir() or path.suffix.lower() in TEXT_SUFFIXES:
        return "folder"
    if path.suffix.lower() not in (".jsonl", ".json", ".ndjson"):
        raise CorpusError(f"Cannot tell the format of {path}: expected a folder, .txt/.md, .jsonl or .json file")
    first = next(read_records(path), None)
    if first is None:
        raise CorpusError(f"The corpus is empty: {path} holds no records.")
    where, rec = first
    if not isinstance(rec, dict):
        raise CorpusError(f"{where}: expected a JSON object, got {type(rec).__name__}")
    if "context" in rec and ("question" in rec or "supporting_facts" in rec):
        return "hotpotqa"
    if "paragraphs" in rec and "question" in rec:
        return "musique"
    if any(k in rec for k in ("text", "contents", "content")):
        return "jsonl"
    raise CorpusError(
        f"Cannot tell the format of {path}: its first record has keys {sorted(rec)[:8]}; expected {{id, title, text}}, "
        "HotpotQA (context) or MuSiQue (paragraphs). Pass --format explicitly."
    )


def read_records(path: Path) -> Iterator[tuple[str, Any]]:
    """Yield ``(where, record)`` from a JSON list or a JSON Lines file; ``where`` is ``file:line`` for messages."""
    try:
        with path.open("rb") as fh:
            head = fh.read(4096).lstrip()
    except OSError as exc:
        raise CorpusError(f"Cannot read {path}: {exc.strerror or exc}") from exc
    if head.startswith(b"\xef\xbb\xbf"):
        head = head[3:].lstrip()
    if head.startswith(b"["):
        text, replaced = _read_text(path)
        if replaced:
            log.warning("%s is not valid UTF-8; undecodable bytes were replaced with U+FFFD", path)
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise CorpusError(f"{path.name}:{exc.lineno}: not valid JSON ({exc.msg})") from exc
        for i, rec in enumerate(data):
            yield f"{path.name}[{i}]", rec
        return
    text, replaced = _read_text(path)
    if replaced:
        log.warning("%s is not valid UTF-8; undecodable bytes were replaced with U+FFFD", path)
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            yield f"{path.name}:{lineno}", json.loads(line)
        except json.JSONDecodeError as exc:
            raise CorpusError(f"{path.name}:{lineno}: not valid JSON ({exc.msg}); expected one object per line") from exc


def title_ids(pairs: list[tuple[str, str]]) -> dict[tuple[str, str], str]:
    """Ids for ``(title, text)`` pairs: the title, or ``"title #<6 hex of sha1(text)>"`` when the title is shared
    by different texts (MuSiQue repeats titles). The same pairs always get the same ids.
    """
    import hashlib

    texts_by_title: dict[str, set[str]] = {}
    for title, text in pairs:
        texts_by_title.setdefault(title, set()).add(text)
    ids: dict[tuple[str, str], str] = {}
    for title, text in pairs:
        if len(texts_by_title[title]) == 1:
            ids[(title, text)] = title
        else:
            ids[(title, text)] = f"{title} #{hashlib.sha1(text.encode('utf-8')).hexdigest()[:6]}"
    return ids


def _read_text(path: Path) -> tuple[str, bool]:
    """Decode a file as UTF-8 (BOM dropped); on bad bytes, decode with replacement and return ``replaced=True``."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise CorpusError(f"Cannot read {path}: {exc.strerror or exc}") from exc
    try:
        return raw.decode("utf-8-sig"), False
    except UnicodeDecodeError:
        return raw.decode("utf-8-sig", errors="replace"), True


def _load_folder(root: Path) -> CorpusLoad:
    docs: list[Document] = []
    warnings: list[str] = []
    decode_errors = 0

    def warn(msg: str) -> None:
        log.warning("corpus %s: %s", root, msg)
        warnings.append(msg)

    def on_error(exc: OSError) -> None:
        if Path(exc.filename or "") == root:
            raise CorpusError(f"Cannot list the corpus folder {root}: {exc.strerror or exc}") from exc
        warn(f"skipped folder {exc.filename}: {exc.strerror or exc}")

    if root.is_file():
        files = [(root.parent, root.name)]
        base = root.parent
    else:
        files = []
        base = root
        for dirpath, dirnames, filenames in os.walk(root, onerror=on_error, followlinks=False):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            files.extend((Path(dirpath), n) for n in sorted(filenames) if not n.startswith("."))
    for folder, name in files:
        path = folder / name
        if path.suffix.lower() not in TEXT_SUFFIXES:
            continue
        rel = path.relative_to(base).as_posix()
        try:
            real = resolve_inside(root if root.is_dir() else base, rel)
            if root.is_file() and real != root:
                raise ToolError(f"refused path {rel!r}: it leaves the corpus root")
        except ToolError:
            warn(f"skipped {rel}: it is a link to a file outside the corpus root")
            continue
        try:
            size = real.stat().st_size if real.is_file() else -1
        except OSError as exc:
            warn(f"skipped {rel}: {exc.strerror or exc}")
            continue
        if size < 0:
            warn(f"skipped {rel}: not a regular file")
            continue
        if size > MAX_FILE_BYTES:
            warn(f"skipped {rel}: larger than {MAX_FILE_BYTES} bytes")
            continue
        try:
            text, replaced = _read_text(real)
        except CorpusError as exc:
            warn(f"skipped {rel}: {exc}")
            continue
        if replaced:
            decode_errors += 1
            warn(f"{rel} is not valid UTF-8; undecodable bytes were replaced with U+FFFD")
        text = text.strip()
        if not text:
            warn(f"skipped {rel}: empty")
            continue
        docs.append(Document(id=rel, title=_title_of(text, path), text=text, source=rel))
    skipped = sum(1 for w in warnings if w.startswith("skipped"))
    return CorpusLoad(documents=tuple(docs), root=root, format="folder", warnings=tuple(warnings),
                      skipped=skipped, decode_errors=decode_errors)


def _title_of(text: str, path: Path) -> str:
    if path.suffix.lower() in (".md", ".markdown"):
        for line in text.splitlines()[:20]:
            if line.startswith("# ") and line[2:].strip():
                return line[2:].strip()
    return path.stem


def _load_jsonl(root: Path) -> CorpusLoad:
    rows: list[tuple[str, str | None, str, str]] = []  # (where, id, title, text)
    warnings: list[str] = []
    for n, (where, rec) in enumerate(read_records(root), start=1):
        if not isinstance(rec, dict):
            raise CorpusError(f"{where}: expected a JSON object with id, title and text")
        text = next((rec[k] for k in ("text", "contents", "content") if k in rec), None)
        if not isinstance(text, str):
            raise CorpusError(f"{where}: the record has no string 'text' field")
        raw_id = next((rec[k] for k in ("id", "_id", "doc_id") if rec.get(k) not in (None, "")), None)
        title = str(rec.get("title") or "").strip()
        if not text.strip():
            warnings.append(f"skipped {where}: empty text")
            log.warning("corpus %s: skipped %s: empty text", root, where)
            continue
        # no id: the title names it (see title_ids); no title either: the record number does
        doc_id = str(raw_id) if raw_id is not None else (None if title else str(n))
        rows.append((where, doc_id, title, text.strip()))
    by_title = title_ids([(t, x) for _, i, t, x in rows if i is None])
    docs: list[Document] = []
    seen: dict[str, str] = {}
    for where, raw_id, title, text in rows:
        doc_id = raw_id if raw_id is not None else by_title[(title, text)]
        if doc_id in seen:
            if raw_id is None and title:  # the very same (title, text) twice: keep one
                continue
            raise CorpusError(f"{where}: duplicate id {doc_id!r} (first at {seen[doc_id]}); ids must be unique")
        seen[doc_id] = where
        docs.append(Document(id=doc_id, title=title or doc_id, text=text, source=where))
    return CorpusLoad(documents=tuple(docs), root=root, format="jsonl", warnings=tuple(warnings),
                      skipped=len(warnings))
