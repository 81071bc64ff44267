"""The experience buffer: GRPO groups (one prompt, n completions, their rewards) kept durably on disk.

Each group is one row of a SQLite database in WAL mode with ``synchronous=FULL``: once :meth:`ExperienceBuffer.add`
returns, the group survives a kill of the process or a power cut. Adding the same ``group_id`` twice keeps the
first copy (a resumed session re-adds the group of the question it was on). Groups whose rewards are all equal
carry no GRPO signal: they are stored with status ``zero_variance``, counted in :meth:`stats`, and never handed to
the trainer. The trainer takes ``pending`` groups oldest first and marks them ``trained`` with the adapter version
they went into.

Integrity: a manifest beside the file (``buffer.manifest.json`` for ``buffer.sqlite``; the design of
:mod:`miaflow.memory._integrity`) keeps, per role, the group count, how many were trained and the sequence number and
id of the last group, rewritten after every write. Rows are only ever added and only move from pending to trained,
so a file holding fewer groups, fewer trained ones, or another group at the last recorded sequence number has lost
acknowledged groups (a deleted or older copy of the file, a lost ``-wal`` file): opening it is refused with an error
naming the file and ``miaflow memory repair``, which keeps every readable group (:func:`repair_buffer`) and says
how many are lost.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InvalidInputError, MemoryStoreError
from ..memory._integrity import Manifest, Report
from .rewards import has_signal

__all__ = ["ExperienceGroup", "ExperienceBuffer", "BufferStats", "verify_buffer", "repair_buffer"]

MANIFEST_KIND = "miaflow-buffer-manifest"
_COLUMNS = "seq, group_id, role, status, payload, created_at, trained_into"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS groups (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    group_id TEXT UNIQUE NOT NULL,
    role TEXT NOT NULL,
    status TEXT NOT NULL,
    payload TEXT NOT NULL,
    created_at REAL NOT NULL,
    trained_into TEXT
);
CREATE INDEX IF NOT EXISTS groups_status ON groups(role, status, seq);
"""


@dataclass(kw_only=True, frozen=True, slots=True)
class ExperienceGroup:
    """One GRPO group: n completions sampled for the same prompt, with their rewards."""

    group_id: str
    """Stable id (for a session: epoch and position of the question), so re-adding is a no-op."""
    prompt: list[dict[str, str]]
    """Chat messages the policy was given (the planner's messages): the GRPO prompt."""
    completions: list[str]
    """The n sampled completions (plans)."""
    rewards: list[float]
    """Reward of each completion (same order)."""
    role: str = "planner"
    """Which policy produced the completions: 'planner' or 'executor'."""
    columns: dict[str, list[Any]] = field(default_factory=dict)
    """Per-completion reward inputs (accuracy, first_accuracy, replanned, ...) so rewards can be recomputed."""
    metadata: dict[str, Any] = field(default_factory=dict)
    """Anything else: question, task id, adapter version that sampled it, judge."""

    def __post_init__(self) -> None:
        if not self.group_id:
            raise InvalidInputError("group_id must be non-empty")
        if not self.completions or len(self.completions) != len(self.rewards):
            raise InvalidInputError(
                f"group {self.group_id}: {len(self.completions)} completions for {len(self.rewards)} rewards"
            )
        for name, col in self.columns.items():
            if len(col) != len(self.completions):
                raise InvalidInputError(f"group {self.group_id}: column {name!r} has {len(col)} values")

    @property
    def has_signal(self) -> bool:
        """False for a zero-variance group (all rewards equal)."""
        return has_signal(self.rewards)

    def to_json(self) -> str:
        return json.dumps(
            {"group_id": self.group_id, "prompt": self.prompt, "completions": self.completions,
             "rewards": self.rewards, "role": self.role, "columns": self.columns, "metadata": self.metadata},
            default=str,
        )

    @classmethod
    def from_json(cls, text: str) -> ExperienceGroup:
        return cls(**json.loads(text))


@dataclass(kw_only=True, frozen=True, slots=True)
class BufferStats:
    """Counts of groups by status."""

    total: int
    """All groups ever added."""
    pending: int
    """Groups with signal not yet trained on."""
    trained: int
    """Groups already used in a GRPO step."""
    zero_variance: int
    """Groups skipped because all their rewards were equal."""
    stale: int = 0
    """Groups dropped by the trainer as sampled too many adapter versions ago (never trained on)."""

    @property
    def zero_variance_share(self) -> float:
        return self.zero_variance / self.total if self.total else 0.0


class ExperienceBuffer:
    """Durable GRPO groups in ``path`` (a SQLite file; its folder is created). Thread-safe."""

    def __init__(self, path: str | Path, *, check: bool = True):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._manifest = buffer_manifest(self.path)  # read before the rows: they only grow after it
        if not self.path.exists() and self._manifest.expected():
            raise MemoryStoreError(
                f"experience buffer {self.path} is missing, but its manifest {self._manifest.path} counts "
                f"{self._manifest.expected()} group(s): restore the file from a backup, or {repair_hint(self.path)}")
        try:
            self._db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)
        except sqlite3.DatabaseError as e:
            raise MemoryStoreError(f"experience buffer {self.path} is unreadable ({e}); {repair_hint(self.path)}") from e
        if check:
            problems = self.problems(full=False)
            if problems:
                self._db.close()
                more = f" (and {len(problems) - 1} more problem(s))" if len(problems) > 1 else ""
                raise MemoryStoreError(f"experience buffer {self.path} is damaged: {problems[0]}{more}; "
                                       f"{repair_hint(self.path)}")
            if not self._manifest.found and self._counts():
                self._record()  # a buffer written before manifests existed

    # ----- integrity -----
    def _counts(self) -> dict[str, tuple[int, int, int]]:
        """role -> (groups, trained groups, last sequence number)."""
        rows = self._db.execute("SELECT role, COUNT(*), SUM(status='trained'), MAX(seq) FROM groups "
                                "GROUP BY role").fetchall()
        return {r: (int(n), int(t or 0), int(last)) for r, n, t, last in rows}

    def _record(self) -> None:
        """Write the manifest from the file (under the lock, after a committed write)."""
        entries = {}
        for role, (n, trained, last) in self._counts().items():
            gid = self._db.execute("SELECT group_id FROM groups WHERE seq=?", (last,)).fetchone()[0]
            entries[role] = {"count": n, "trained": trained, "last_seq": last, "last_group": gid}
        self._manifest.update(entries)

    def problems(self, *, full: bool = True) -> list[str]:
        """What is wrong with the file: SQLite's own check, then the counts against the manifest; ``full`` also
        reads every group (a damaged row is named by its sequence number)."""
        out: list[str] = []
        mpath = self._manifest.path
        with self._lock:
            try:
                check = [r[0] for r in self._db.execute("PRAGMA quick_check" if not full else
                                                        "PRAGMA integrity_check").fetchall()]
                if check != ["ok"]:
                    return [f"SQLite finds the file damaged ({'; '.join(check[:3])})"]
                counts = self._counts()
                for role, entry in sorted(self._manifest.namespaces.items()):
                    n, trained, _ = counts.get(role, (0, 0, 0))
                    want = int(entry.get("count", 0))
                    if n < want:
                        out.append(f"the manifest {mpath} counts {want} {role} group(s), the file holds {n} "
                                   f"({want - n} lost)")
                        continue
                    if trained < int(entry.get("trained", 0)):
                        out.append(f"the manifest {mpath} counts {entry['trained']} trained {role} group(s), the "
                                   f"file marks {trained} (an older copy of the file?)")
                    last = entry.get("last_seq")
                    if last is not None:
                        row = self._db.execute("SELECT group_id FROM groups WHERE seq=?", (last,)).fetchone()
                        if row is None or row[0] != entry.get("last_group"):
                            out.append(f"the manifest {mpath} records group {entry.get('last_group')!r} at sequence "
                                       f"number {last}, the file has {row[0] if row else 'nothing'!r} there (the "
                                       "file was replaced?)")
                if full:
                    for seq, payload in self._db.execute("SELECT seq, payload FROM groups ORDER BY seq"):
                        try:
                            ExperienceGroup.from_json(payload)
                        except (ValueError, TypeError, InvalidInputError) as e:
                            out.append(f"group at sequence number {seq} is unreadable ({e})")
            except sqlite3.DatabaseError as e:
                out.append(f"SQLite cannot read it ({e})")
        return out

    def _group(self, seq: int, payload: str) -> ExperienceGroup:
        try:
            return ExperienceGroup.from_json(payload)
        except (ValueError, TypeError, InvalidInputError) as e:
            raise MemoryStoreError(f"experience buffer {self.path}: the group at sequence number {seq} is "
                                   f"unreadable ({e}); {repair_hint(self.path)}") from None

    def add(self, group: ExperienceGroup) -> bool:
        """Store a group; True when it was new. Zero-variance groups are stored as skipped."""
        status = "pending" if group.has_signal else "zero_variance"
        with self._lock:
            cur = self._db.execute(
                "INSERT OR IGNORE INTO groups(group_id, role, status, payload, created_at) VALUES (?,?,?,?,?)",
                (group.group_id, group.role, status, group.to_json(), time.time()),
            )
            if cur.rowcount == 1:
                self._record()
            return cur.rowcount == 1

    def __contains__(self, group_id: str) -> bool:
        with self._lock:
            row = self._db.execute("SELECT 1 FROM groups WHERE group_id=?", (group_id,)).fetchone()
        return row is not None

    def pending(self, limit: int | None = None, role: str = "planner") -> list[ExperienceGroup]:
        """Groups with signal not yet trained on, oldest first."""
        sql = "SELECT seq, payload FROM groups WHERE role=? AND status='pending' ORDER BY seq"
        args: tuple = (role,)
        if limit is not None:
            sql += " LIMIT ?"
            args = (role, int(limit))
        with self._lock:
            rows = self._db.execute(sql, args).fetchall()
        return [self._group(*r) for r in rows]

    def count_pending(self, role: str = "planner") -> int:
        with self._lock:
            return self._db.execute(
                "SELECT COUNT(*) FROM groups WHERE role=? AND status='pending'", (role,)
            ).fetchone()[0]

    def mark_trained(self, group_ids: list[str], version: str) -> None:
        """Record that these groups went into adapter ``version`` (in one transaction)."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.executemany(
                    "UPDATE groups SET status='trained', trained_into=? WHERE group_id=?",
                    [(version, g) for g in group_ids],
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._record()

    def mark_stale(self, group_ids: list[str], reason: str) -> None:
        """Set pending groups aside as too old to train on (status ``stale``, ``reason`` kept in ``trained_into``)."""
        with self._lock:
            self._db.executemany("UPDATE groups SET status='stale', trained_into=? WHERE group_id=? AND "
                                 "status='pending'", [(reason, g) for g in group_ids])

    def all(self, role: str | None = None) -> list[ExperienceGroup]:
        """Every group (any status), oldest first."""
        with self._lock:
            if role is None:
                rows = self._db.execute("SELECT seq, payload FROM groups ORDER BY seq").fetchall()
            else:
                rows = self._db.execute("SELECT seq, payload FROM groups WHERE role=? ORDER BY seq",
                                        (role,)).fetchall()
        return [self._group(*r) for r in rows]

    def stats(self, role: str | None = None) -> BufferStats:
        where, args = ("WHERE role=?", (role,)) if role else ("", ())
        with self._lock:
            rows = dict(self._db.execute(f"SELECT status, COUNT(*) FROM groups {where} GROUP BY status", args).fetchall())
        return BufferStats(
            total=sum(rows.values()),
            pending=rows.get("pending", 0),
            trained=rows.get("trained", 0),
            zero_variance=rows.get("zero_variance", 0),
            stale=rows.get("stale", 0),
        )

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> ExperienceBuffer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def repair_hint(path: Path) -> str:
    return f"run `miaflow memory repair {path}` (it keeps every readable group and says which are lost)"


def buffer_manifest(path: Path) -> Manifest:
    return Manifest(path.parent, file=f"{path.stem}.manifest.json", kind=MANIFEST_KIND, hint=repair_hint(path))


def verify_buffer(path: str | Path) -> Report:
    """Check a buffer file against its manifest and read every group; nothing is changed."""
    path = Path(path)
    rep = Report(folder=str(path), kind="experience buffer")
    try:
        manifest = buffer_manifest(path)
        if not path.exists():
            if manifest.expected():
                rep.problems.append(f"{path} is missing, but its manifest {manifest.path} counts "
                                    f"{manifest.expected()} group(s)")
            return rep
        buf = ExperienceBuffer(path, check=False)
    except MemoryStoreError as e:
        rep.problems.append(str(e))
        return rep
    try:
        rep.problems.extend(buf.problems(full=True))
    finally:
        buf.close()
    return rep


def _salvage(path: Path) -> tuple[list[tuple], int]:
    """Every row SQLite can still read from a damaged file (row by row, so one bad page costs only its rows),
    and the highest sequence number seen."""
    rows: list[tuple] = []
    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    except sqlite3.DatabaseError:
        return rows, 0
    try:
        try:
            top = int(con.execute("SELECT MAX(seq) FROM groups").fetchone()[0] or 0)
        except sqlite3.DatabaseError:
            top = 0
        try:  # sqlite_sequence survives where the table's last page does not
            top = max(top, int(con.execute("SELECT seq FROM sqlite_sequence WHERE name='groups'").fetchone()[0]))
        except (sqlite3.DatabaseError, TypeError):
            pass
        for seq in range(1, top + 1):
            try:
                row = con.execute(f"SELECT {_COLUMNS} FROM groups WHERE seq=?", (seq,)).fetchone()
            except sqlite3.DatabaseError:
                continue
            if row is not None:
                rows.append(row)
    finally:
        con.close()
    return rows, top


def _sqlite_ok(path: Path) -> bool:
    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            return [r[0] for r in con.execute("PRAGMA integrity_check").fetchall()] == ["ok"]
        finally:
            con.close()
    except sqlite3.DatabaseError:
        return False


def _move_aside(path: Path, stamp: str) -> Path:
    aside = path.with_name(f"{path.name}.damaged-{stamp}")
    path.rename(aside)
    for ext in ("-wal", "-shm"):
        if Path(f"{path}{ext}").exists():
            Path(f"{path}{ext}").rename(Path(f"{aside}{ext}"))
    return aside


def repair_buffer(path: str | Path) -> Report:
    """Rebuild a damaged buffer from every group that can still be read, and reset its manifest to it.

    The damaged file (with its ``-wal``) is kept beside as ``NAME.damaged-TIME``; groups SQLite cannot read, or
    whose stored JSON is broken, are counted as lost per role (broken rows are also written, as they were, to
    ``NAME.damaged-TIME.rows.jsonl``). A buffer found intact is left as it is."""
    path = Path(path)
    found = verify_buffer(path)
    rep = Report(folder=str(path), kind="experience buffer", problems=found.problems)
    try:
        manifest = buffer_manifest(path)
    except MemoryStoreError:
        manifest = Manifest(path.parent, file=f"{path.stem}.manifest.json", kind=MANIFEST_KIND, read=False)
        rep.notes.append(f"the damaged manifest {manifest.path} is written again from the file")
    if found.ok and manifest.found:
        return rep
    want = {role: int(e.get("count", 0)) for role, e in manifest.namespaces.items()}
    stamp = time.strftime("%Y%m%d-%H%M%S")
    rows: list[tuple] = []
    intact = path.exists() and _sqlite_ok(path)
    if intact:
        con = sqlite3.connect(str(path))
        try:
            rows = con.execute(f"SELECT {_COLUMNS} FROM groups ORDER BY seq").fetchall()
        finally:
            con.close()
    elif path.exists():
        aside = _move_aside(path, stamp)
        rows, _ = _salvage(aside)
        rep.notes.append(f"the damaged file is kept as {aside}; {len(rows)} group(s) could be read from it")
    else:
        rep.notes.append(f"{path} is started again, empty")
    good, broken = [], []
    for row in rows:
        try:
            ExperienceGroup.from_json(row[4])
            good.append(row)
        except (ValueError, TypeError, InvalidInputError):
            broken.append(row)
    if broken:
        side = path.with_name(f"{path.name}.damaged-{stamp}.rows.jsonl")
        side.write_text("".join(json.dumps(dict(zip(_COLUMNS.split(", "), r, strict=True))) + "\n"
                                for r in broken), encoding="utf-8")
        rep.notes.append(f"{len(broken)} group(s) with unreadable JSON are kept as they were in {side}")
    if rows and (not intact or broken):  # write the readable groups, with their sequence numbers, to a new file
        tmp = path.with_name(f".{path.name}.rebuild")
        tmp.unlink(missing_ok=True)
        con = sqlite3.connect(str(tmp), isolation_level=None)
        try:
            con.executescript(_SCHEMA)
            con.execute("BEGIN")
            con.executemany(f"INSERT INTO groups({_COLUMNS}) VALUES (?,?,?,?,?,?,?)", good)
            con.execute("COMMIT")
        finally:
            con.close()
        if path.exists():
            rep.notes.append(f"the file before repair is kept as {_move_aside(path, stamp)}")
        tmp.replace(path)
    have: dict[str, int] = {}
    for row in good:
        have[row[2]] = have.get(row[2], 0) + 1
    for role in sorted(set(want) | {r[2] for r in broken}):
        lost = max(want.get(role, 0) - have.get(role, 0), sum(1 for r in broken if r[2] == role))
        if lost > 0:
            rep.lost[f"{role} groups"] = lost
    manifest.data["namespaces"] = {}
    manifest.update()  # reset first: the file may now hold fewer groups than it counted
    buf = ExperienceBuffer(path, check=False)
    try:
        with buf._lock:
            buf._record()
            rep.rebuilt = {f"{role} groups": n for role, (n, _, _) in buf._counts().items()}
    finally:
        buf.close()
    return rep
