"""The experience buffer: GRPO groups (one prompt, n completions, their rewards) kept durably on disk.

Each group is one row of a SQLite database in WAL mode with ``synchronous=FULL``: once :meth:`ExperienceBuffer.add`
returns, the group survives a kill of the process or a power cut. Adding the same ``group_id`` twice keeps the
first copy (a resumed session re-adds the group of the question it was on). Groups whose rewards are all equal
carry no GRPO signal: they are stored with status ``zero_variance``, counted in :meth:`stats`, and never handed to
the trainer. The trainer takes ``pending`` groups oldest first and marks them ``trained`` with the adapter version
they went into.
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
from .rewards import has_signal

__all__ = ["ExperienceGroup", "ExperienceBuffer", "BufferStats"]

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

    @property
    def zero_variance_share(self) -> float:
        return self.zero_variance / self.total if self.total else 0.0


class ExperienceBuffer:
    """Durable GRPO groups in ``path`` (a SQLite file; its folder is created). Thread-safe."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        try:
            self._db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)
        except sqlite3.DatabaseError as e:
            raise MemoryStoreError(f"experience buffer {self.path} is unreadable ({e}); move it away to start over") from e

    def add(self, group: ExperienceGroup) -> bool:
        """Store a group; True when it was new. Zero-variance groups are stored as skipped."""
        status = "pending" if group.has_signal else "zero_variance"
        with self._lock:
            cur = self._db.execute(
                "INSERT OR IGNORE INTO groups(group_id, role, status, payload, created_at) VALUES (?,?,?,?,?)",
                (group.group_id, group.role, status, group.to_json(), time.time()),
            )
            return cur.rowcount == 1

    def __contains__(self, group_id: str) -> bool:
        with self._lock:
            row = self._db.execute("SELECT 1 FROM groups WHERE group_id=?", (group_id,)).fetchone()
        return row is not None

    def pending(self, limit: int | None = None, role: str = "planner") -> list[ExperienceGroup]:
        """Groups with signal not yet trained on, oldest first."""
        sql = "SELECT payload FROM groups WHERE role=? AND status='pending' ORDER BY seq"
        args: tuple = (role,)
        if limit is not None:
            sql += " LIMIT ?"
            args = (role, int(limit))
        with self._lock:
            rows = self._db.execute(sql, args).fetchall()
        return [ExperienceGroup.from_json(r[0]) for r in rows]

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

    def all(self, role: str | None = None) -> list[ExperienceGroup]:
        """Every group (any status), oldest first."""
        with self._lock:
            if role is None:
                rows = self._db.execute("SELECT payload FROM groups ORDER BY seq").fetchall()
            else:
                rows = self._db.execute("SELECT payload FROM groups WHERE role=? ORDER BY seq", (role,)).fetchall()
        return [ExperienceGroup.from_json(r[0]) for r in rows]

    def stats(self, role: str | None = None) -> BufferStats:
        where, args = ("WHERE role=?", (role,)) if role else ("", ())
        with self._lock:
            rows = dict(self._db.execute(f"SELECT status, COUNT(*) FROM groups {where} GROUP BY status", args).fetchall())
        return BufferStats(
            total=sum(rows.values()),
            pending=rows.get("pending", 0),
            trained=rows.get("trained", 0),
            zero_variance=rows.get("zero_variance", 0),
        )

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> ExperienceBuffer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
