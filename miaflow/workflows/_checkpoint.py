"""Open a LangGraph checkpointer from what a user passes: None, a saver object, or a path to a SQLite file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import MissingDependencyError

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
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(str(path), check_same_thread=False)
        saver = SqliteSaver(conn)
        saver.setup()
        return saver
    return spec
