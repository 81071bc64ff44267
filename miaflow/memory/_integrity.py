"""Damage detection and repair of an embedded trajectory store.

A store folder holds Chroma's ``chroma.sqlite3`` (records, metadata, utilities: the durable part) and one HNSW
folder per collection (the vector index). Losing either used to go unnoticed: without the SQLite file the store
opened empty, and without a whole HNSW folder (or with ``data_level0.bin`` cut short) ``count()`` still said 1,500
while recall no longer found the old records. Three checks, run when the store opens:

- a manifest (``miaflow-manifest.json``) keeps each namespace's record count and a write sequence number. A write
  first records the range of counts it may leave (so a crash mid-write is not mistaken for damage), then the count
  it left. A count outside what the manifest allows means records were lost;
- the HNSW files: the header's element count times the element size must fit in ``data_level0.bin``, and a folder
  the manifest saw must still exist;
- a probe reads the vectors of a few records spread over each collection.

A mismatch is a :class:`~miaflow.errors.MemoryStoreError` naming the file and the repair command. ``repair``
rebuilds a namespace's vector index from its durable records: they are first written to a JSON Lines backup in the
folder, then the collection is rebuilt with the questions embedded again (the embedding of a record is its
question's), and the backup is removed only once the rebuilt count matches. Records whose SQLite rows are gone
cannot be rebuilt: repair says how many, and resets the manifest so the store opens again.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import struct
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import MemoryStoreError
from .bimem._persist import atomic_write_json

if TYPE_CHECKING:
    from .store import TrajectoryStore

__all__ = ["MANIFEST_FILE", "Manifest", "Report", "check_before_open", "check_store", "repair_store"]

MANIFEST_FILE = "miaflow-manifest.json"
SQLITE_FILE = "chroma.sqlite3"
_FORMAT = "miaflow-store-manifest"
_PROBES = 16
_shared: dict[str, Manifest] = {}
_shared_guard = threading.Lock()


def repair_hint(folder: Path) -> str:
    return f"run `miaflow memory repair {folder}` (it rebuilds the vector index from the durable records)"


class Manifest:
    """Per-namespace record counts and a write sequence, kept beside a store (one writer: the lock holder).

    The trajectory store keeps one in its folder (``miaflow-manifest.json``); the experience buffer and the adapter
    registry keep their own (``file`` and ``kind`` tell them apart, ``hint`` is the repair advice a damaged one
    names). An entry may carry fields of its store beside ``count`` (``commit(..., **extra)``), and ``update``
    sets fields of the whole manifest.
    """

    @classmethod
    def shared(cls, folder: Path, *, reload: bool, file: str = MANIFEST_FILE, kind: str = _FORMAT,
               hint: str | None = None) -> Manifest:
        """The one manifest object of a file in this process (stores on one folder share it); ``reload`` reads
        the file again (the lock was just taken, so another process may have written since)."""
        key = str((folder / file).resolve())
        with _shared_guard:
            if reload or key not in _shared or _shared[key].changed():
                _shared[key] = cls(folder, file=file, kind=kind, hint=hint)
            return _shared[key]

    def __init__(self, folder: Path, *, file: str = MANIFEST_FILE, kind: str = _FORMAT, hint: str | None = None,
                 read: bool = True):
        self._guard = threading.RLock()
        self.path = folder / file
        self.kind = kind
        self.data: dict[str, Any] = {"format": kind, "seq": 0, "namespaces": {}}
        self.found = read and self.path.exists()
        """Whether the file existed when read (a store written before manifests existed has none); ``read=False``
        starts a blank one whatever is there (repair, after a damaged file was reported)."""
        if self.found:
            try:
                data = json.loads(self.path.read_text(encoding="utf-8"))
                if data.get("format") != kind or not isinstance(data.get("namespaces"), dict):
                    raise ValueError(f"not a {kind.replace('miaflow-', '').replace('-', ' ')}")
            except (OSError, ValueError, AttributeError) as e:
                raise MemoryStoreError(f"{self.path} is damaged ({e}); {hint or repair_hint(folder)}") from None
            self.data = data
        self._stamp = self._stat()

    def _stat(self) -> tuple[int, int] | None:
        try:
            st = self.path.stat()
        except OSError:
            return None
        return st.st_mtime_ns, st.st_size

    def changed(self) -> bool:
        """Whether the file was written (or removed) since this object last read or wrote it."""
        return self._stat() != self._stamp

    @property
    def namespaces(self) -> dict[str, dict[str, Any]]:
        return self.data["namespaces"]

    def _write(self) -> None:
        self.data["seq"] = int(self.data.get("seq", 0)) + 1
        atomic_write_json(self.path, self.data)
        self.found = True
        self._stamp = self._stat()

    def begin(self, ns: str, low: int, high: int) -> None:
        """Before a write: the counts it may leave, whatever point a crash stops it at."""
        with self._guard:
            entry = dict(self.namespaces.get(ns, {"count": 0}))
            entry["pending"] = [max(0, int(low)), int(high)]
            self.namespaces[ns] = entry
            self._write()

    def commit(self, ns: str, count: int, segment: str | None = None, **extra: Any) -> None:
        with self._guard:
            entry: dict[str, Any] = {"count": int(count), "seq": int(self.data.get("seq", 0)) + 1, **extra}
            if segment:
                entry["segment"] = segment
            self.namespaces[ns] = entry
            self._write()

    def update(self, entries: dict[str, dict[str, Any]] | None = None, **fields: Any) -> None:
        """Replace some entries and set top-level fields, in one write."""
        with self._guard:
            self.namespaces.update(entries or {})
            self.data.update(fields)
            self._write()

    def drop(self, ns: str) -> None:
        with self._guard:
            if self.namespaces.pop(ns, None) is not None:
                self._write()

    def expected(self) -> int:
        return sum(int(e.get("count", 0)) for e in self.namespaces.values())


@dataclass
class Report:
    """What verify or repair found: problems per file, records rebuilt, and what could not be recovered."""

    folder: str
    kind: str = "trajectory store"
    """What was checked: 'trajectory store', 'experience buffer', 'adapter registry' or 'Bi-Mem memory'."""
    problems: list[str] = field(default_factory=list)
    damaged: list[str] = field(default_factory=list)
    """Namespaces whose vector index needs rebuilding."""
    rebuilt: dict[str, int] = field(default_factory=dict)
    lost: dict[str, int] = field(default_factory=dict)
    """Records the manifest counted that no durable copy holds any more, per namespace."""
    notes: list[str] = field(default_factory=list)
    """What repair did, in words (a store other than the trajectory store says here what it rebuilt)."""

    @property
    def ok(self) -> bool:
        return not self.problems


def check_before_open(folder: Path) -> None:
    """Refuse a folder whose SQLite file is gone while the store had records or vector folders (opening it would
    silently start an empty store)."""
    if (folder / SQLITE_FILE).exists():
        return
    manifest = Manifest(folder)
    segments = [p.name for p in folder.iterdir() if p.is_dir() and (p / "header.bin").exists()]
    if manifest.expected() or segments:
        raise MemoryStoreError(
            f"{folder / SQLITE_FILE} is missing, but this store held {manifest.expected()} record(s)"
            f"{f' and {len(segments)} vector index folder(s)' if segments else ''}: restore the file from a backup, "
            f"or {repair_hint(folder)} to reset it to what is left")


def vector_segments(folder: Path) -> dict[str, str]:
    """Chroma collection name -> the id of its HNSW segment folder (read from SQLite, read-only)."""
    db = folder / SQLITE_FILE
    if not db.exists():
        return {}
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        try:
            rows = con.execute("SELECT c.name, s.id FROM segments s JOIN collections c ON s.collection = c.id "
                               "WHERE s.scope = 'VECTOR'").fetchall()
        finally:
            con.close()
    except sqlite3.Error as e:
        raise MemoryStoreError(f"{db} cannot be read ({e}); restore it from a backup") from None
    return {str(name): str(seg) for name, seg in rows}


def hnsw_problem(seg: Path) -> str | None:
    """Why an HNSW folder is damaged (a file missing or cut short), or None."""
    header = seg / "header.bin"
    files = ("header.bin", "data_level0.bin", "length.bin", "link_lists.bin")
    if not any((seg / name).exists() for name in files):
        return None  # nothing flushed to the index yet: the records are still in Chroma's log
    for name in files:
        if not (seg / name).exists():
            return f"{seg / name} is missing"
    raw = header.read_bytes()
    fmt = "<IQQQQQQ"
    if len(raw) < struct.calcsize(fmt):
        return f"{header} is truncated ({len(raw)} bytes)"
    version, _off, _max, count, size, *_ = struct.unpack(fmt, raw[: struct.calcsize(fmt)])
    if version != 1:
        return None  # a layout this check does not know: leave it to the probe
    have = (seg / "data_level0.bin").stat().st_size
    if have < count * size:
        return f"{seg / 'data_level0.bin'} is truncated ({have} bytes, {count} vectors need {count * size})"
    return None


def _probe(col: Any, count: int) -> str | None:
    offsets = sorted({min(count - 1, i * count // _PROBES) for i in range(_PROBES)} | {count - 1})
    for off in offsets:
        try:
            got = col.get(include=["embeddings"], limit=1, offset=off)
            if got["ids"] and got.get("embeddings") is None:
                return f"record at offset {off} has no vector"
        except Exception as e:  # Chroma reports a lost index as an internal error
            return f"the vector of the record at offset {off} cannot be read ({type(e).__name__}: {e})"
    return None


def check_store(store: TrajectoryStore, manifest: Manifest, *, fix_pending: bool = True) -> Report:
    """Compare the store with its manifest and check every namespace's vector index."""
    folder = Path(store.path)  # type: ignore[arg-type]
    rep = Report(folder=str(folder))
    segs = vector_segments(folder)
    present = set(store.namespaces())
    for ns in sorted(present | set(manifest.namespaces)):
        entry = manifest.namespaces.get(ns)
        col = store._collection(ns, create=False) if ns in present else None
        try:
            actual = int(col.count()) if col is not None else 0
        except Exception as e:  # Chroma cannot even count: its index files are beyond reading
            unread = segs.get(col.name, "") if col is not None else ""
            rep.problems.append(f"namespace {ns!r}: {folder / unread} cannot be read ({type(e).__name__}: {e})")
            rep.damaged.append(ns)
            continue
        if entry is not None:
            low, high = entry.get("pending", [entry.get("count", 0)] * 2)
            if "pending" in entry and low <= actual <= high:
                if fix_pending:
                    manifest.commit(ns, actual, entry.get("segment"))
            elif actual != int(entry.get("count", 0)):
                lost = int(entry.get("count", 0)) - actual
                rep.problems.append(
                    f"namespace {ns!r}: the manifest {manifest.path} counts {entry.get('count')} record(s), "
                    f"{folder / SQLITE_FILE} holds {actual}" + (f" ({lost} lost)" if lost > 0 else ""))
                if lost > 0:
                    rep.lost[ns] = lost
        elif fix_pending:
            manifest.commit(ns, actual)  # a store written before manifests existed
        if col is None:
            continue
        seg_id = segs.get(col.name)
        seen = (entry or {}).get("segment")
        problem = None
        if seg_id and seen == seg_id and not (folder / seg_id).is_dir():
            problem = f"the vector index folder {folder / seg_id} is missing"
        elif seg_id and (folder / seg_id).is_dir():
            problem = hnsw_problem(folder / seg_id)
        indexed = bool(seg_id and (folder / seg_id / "header.bin").exists())
        if problem is None and actual and (indexed or (seen is not None and seen == seg_id)):
            # (records not yet flushed to the HNSW files live in Chroma's log, which the SQLite checks cover)
            problem = _probe(col, actual)
            if problem and seg_id:
                problem = f"{folder / seg_id}: {problem}"
        if problem:
            rep.problems.append(f"namespace {ns!r}: {problem}")
            rep.damaged.append(ns)
    return rep


def raise_if_damaged(rep: Report) -> None:
    if rep.problems:
        raise MemoryStoreError(f"the {rep.kind} at {rep.folder} is damaged: {rep.problems[0]}"
                               f"{f' (and {len(rep.problems) - 1} more problem(s))' if len(rep.problems) > 1 else ''}"
                               f"; {repair_hint(Path(rep.folder))}")


def segment_of(store: TrajectoryStore, col: Any) -> str | None:
    """The HNSW folder id of a collection once its files are written (recorded so their loss can be named)."""
    folder = Path(store.path)  # type: ignore[arg-type]
    seg = vector_segments(folder).get(col.name)
    return seg if seg and (folder / seg / "header.bin").exists() else None


def repair_store(store: TrajectoryStore, manifest: Manifest) -> Report:
    """Rebuild the vector index of every damaged namespace from its durable records; report what is lost."""
    from ._portable import export_jsonl, import_jsonl

    folder = Path(store.path)  # type: ignore[arg-type]
    rep = check_store(store, manifest, fix_pending=True)
    segs = vector_segments(folder)
    for ns in rep.damaged:
        backup = folder / f"repair-{ns.encode().hex()[:40]}.jsonl"
        col = store._collection(ns, create=False)
        seg = folder / segs.get(col.name, "-")
        aside = folder / f"damaged-{seg.name}"
        if seg.is_dir():  # Chroma will not even read the metadata while it cannot load this index
            seg.rename(aside)
        n = export_jsonl(store, backup, namespace=ns)
        col = store._collection(ns, create=False)
        store._client.delete_collection(col.name)
        store._cols.pop(ns, None)
        got = import_jsonl(store, backup, namespace=ns)
        if got != n or store.count(ns) != n:
            raise MemoryStoreError(f"rebuilding namespace {ns!r} gave {store.count(ns)} of {n} records; the "
                                   f"records are kept in {backup}")
        backup.unlink()
        shutil.rmtree(aside, ignore_errors=True)
        rep.rebuilt[ns] = n
    for ns in list(manifest.namespaces):
        col = store._collection(ns, create=False)
        count = int(col.count()) if col is not None else 0
        if col is None:
            manifest.drop(ns)
        else:
            manifest.commit(ns, count, segment_of(store, col))
    return rep


def _open(path: str | Path, embedder: Any) -> TrajectoryStore:
    from .config import TrajectoryStoreConfig
    from .store import MARKER_FILE, TrajectoryStore

    folder = Path(path)
    if not (folder / MARKER_FILE).exists() and (folder / "memory" / MARKER_FILE).exists():
        folder = folder / "memory"  # a session's state folder
    if not (folder / MARKER_FILE).exists():
        raise MemoryStoreError(f"{folder} is not a trajectory store (no {MARKER_FILE})")
    return TrajectoryStore(folder, embedder=embedder, config=TrajectoryStoreConfig(verify_on_open=False))


def verify(path: str | Path, *, embedder: Any = None) -> Report:
    """Check an embedded trajectory store folder; nothing is changed except a manifest entry a crash left open."""
    folder = Path(path)
    try:
        check_before_open(folder if (folder / SQLITE_FILE).exists() or not (folder / "memory").is_dir()
                          else folder / "memory")
    except MemoryStoreError as e:
        return Report(folder=str(folder), problems=[str(e)])
    with _open(folder, embedder) as store:
        return check_store(store, store._manifest)  # type: ignore[arg-type]


def repair(path: str | Path, *, embedder: Any = None) -> Report:
    """Rebuild what can be rebuilt (see :func:`repair_store`); records whose SQLite rows are gone are reported."""
    folder = Path(path)
    if not (folder / "miaflow-store.json").exists() and (folder / "memory").is_dir():
        folder = folder / "memory"
    lost_all: dict[str, int] = {}
    if not (folder / SQLITE_FILE).exists():
        manifest = Manifest(folder)
        lost_all = {ns: int(e.get("count", 0)) for ns, e in manifest.namespaces.items() if e.get("count")}
    with _open(folder, embedder) as store:
        backups = sorted(folder.glob("repair-*.jsonl"))
        for b in backups:  # a repair stopped between deleting a collection and rebuilding it
            from ._portable import import_jsonl

            import_jsonl(store, b)
            b.unlink()
        rep = repair_store(store, store._manifest)  # type: ignore[arg-type]
    for ns, n in lost_all.items():
        rep.lost[ns] = max(rep.lost.get(ns, 0), n)
    return rep


# ---------------------------------------------------------------- every store under a path

def targets(path: str | Path) -> list[tuple[str, Path]]:
    """The stores ``path`` names, as (kind, path): a trajectory store folder, a Bi-Mem folder, an experience
    buffer file (also when the file is gone but its manifest is left), an adapter registry folder, or a session's
    state folder holding several (``memory/``, ``buffer.sqlite``, ``adapters/<role>/``)."""
    path = Path(path)
    buffer_manifest = path.with_name(f"{path.stem}.manifest.json")
    if path.is_file() or (not path.exists() and buffer_manifest.exists()):
        return [("experience buffer", path)]
    if not path.is_dir():
        return []
    if (path / "miaflow-store.json").exists() or (path / SQLITE_FILE).exists():
        return [("trajectory store", path)]
    if (path / "pointer.json").exists() or (path / "versions").is_dir():
        return [("adapter registry", path)]
    if (path / "bimem").is_dir():
        return [("Bi-Mem memory", path)]
    found: list[tuple[str, Path]] = []
    if (path / "memory").is_dir():
        found.append(("trajectory store", path / "memory"))
    buffers = {p.with_name(p.name.replace(".manifest.json", ".sqlite")) for p in path.glob("*.manifest.json")}
    found += [("experience buffer", p) for p in sorted(buffers | set(path.glob("buffer.sqlite")))]
    if (path / "adapters").is_dir():
        found += [("adapter registry", p) for p in sorted((path / "adapters").iterdir())
                  if (p / "pointer.json").exists() or (p / "versions").is_dir()]
    return found


def verify_bimem(path: Path, *, repair: bool = False) -> Report:
    """A Bi-Mem folder is checked by opening it: its JSON state is the durable copy, and opening embeds missing
    vectors again and drops stray ones (so opening is also its repair); damaged JSON cannot be rebuilt."""
    from ..errors import MiaflowError
    from .bimem import BiMemory

    rep = Report(folder=str(path), kind="Bi-Mem memory")
    try:
        mem = BiMemory(path)
    except MiaflowError as e:
        rep.problems.append(str(e))
        if repair:
            rep.lost["damaged state file(s), named above"] = 1
        return rep
    try:
        turns = sum(len(mem.turns(c)) for c in mem.conversations())
        rep.notes.append(f"{len(mem.conversations())} conversation(s), {turns} turn(s), {mem.vector_count()} "
                         "vector(s)")
    finally:
        mem.close()
    return rep


def check_path(path: str | Path, *, fix: bool = False) -> list[Report]:
    """Verify (or, with ``fix``, repair) every store under ``path`` (see :func:`targets`); one report each."""
    from ..errors import MiaflowError
    from ..rl.adapters import repair_registry, verify_registry
    from ..rl.buffer import repair_buffer, verify_buffer

    found = targets(path)
    if not found:
        raise MemoryStoreError(f"{path} holds no miaflow store (a trajectory store or Bi-Mem folder, an experience "
                               "buffer file, an adapter registry, or a session's state folder)")
    reports = []
    for kind, where in found:
        if kind == "trajectory store":
            try:
                reports.append(repair(where) if fix else verify(where))
            except MiaflowError as e:
                if fix:
                    raise
                reports.append(Report(folder=str(where), problems=[str(e)]))
        elif kind == "experience buffer":
            reports.append(repair_buffer(where) if fix else verify_buffer(where))
        elif kind == "adapter registry":
            reports.append(repair_registry(where) if fix else verify_registry(where))
        else:
            reports.append(verify_bimem(where, repair=fix))
    return reports
