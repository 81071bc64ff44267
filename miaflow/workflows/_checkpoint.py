"""Open a LangGraph checkpointer from what a user passes: None, a saver object, or a path to a SQLite file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import InvalidInputError, MissingDependencyError

__all__ = ["open_checkpointer"]


def open_checkpointer(spec: Any) -> Any:
    """None -> None; ``"memory"`` -> InMemorySaver; a path -> SqliteSaver on that file; a saver -> itself."""
    if spec is None or spec is False:
        return None
    if spec == "memory" or spec is True:
        from langgraph.checkpoint.memory import InMemorySaver

        return InMemorySaver()
    if isinstance(spec, str | Path):
        import sqlite3

        try:
            from langgraph.checkpoint.sqlite import SqliteSaver
        except ImportError as e:
            raise MissingDependencyError("durable checkpoints need langgraph-checkpoint-sqlite: "
                                         "pip install langgraph-checkpoint-sqlite") from e

        path = Path(spec)
        _check_sqlite_file(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(str(path), check_same_thread=False)
        saver = SqliteSaver(conn)
        try:
            saver.setup()
        except sqlite3.Error as e:
            conn.close()
            raise InvalidInputError(f"checkpoint file {path} cannot be used as a SQLite checkpoint ({e}); give a new "
                                    "path or the file a previous run wrote") from None
        return saver
    return spec


_SQLITE_HEADER = b"SQLite format 3\x00"


def _check_sqlite_file(path: Path) -> None:
    """Refuse a folder or an existing file that is not SQLite, before SQLite says "file is not a database"."""
    if path.is_dir():
        raise InvalidInputError(f"checkpoint path {path} is a folder; give a file path such as {path / 'runs.sqlite'}")
    if path.exists() and path.stat().st_size > 0:
        try:
            with path.open("rb") as fh:
                head = fh.read(len(_SQLITE_HEADER))
        except OSError as e:
            raise InvalidInputError(f"cannot read checkpoint file {path}: {e.strerror or e}") from None
        if head != _SQLITE_HEADER:
            raise InvalidInputError(f"checkpoint file {path} is not a SQLite database; give a new path or the file "
                                    "a previous run wrote (nothing was changed)")
