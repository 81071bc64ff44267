"""One writer process per embedded store folder: an exclusive lock file holding the owner's pid.

Chroma's embedded ``PersistentClient`` is not safe with two processes on one folder, so the second process is
refused with a message pointing to the server mode. The lock is ``fcntl.flock`` on ``miaflow.lock``: the kernel
drops it when its process dies, so a lock left by a killed process is taken over (the stale pid in the file is
only reported). Stores opened on the same folder inside one process share the lock (Chroma shares its client
there too). Where ``fcntl`` is missing, the pid file alone is checked: a live pid refuses, a dead one is taken over.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

from ..errors import MemoryStoreError

__all__ = ["LOCK_FILE", "StoreLock", "acquire"]

LOCK_FILE = "miaflow.lock"
_held: dict[str, tuple[int, int]] = {}  # resolved folder -> (fd, users) in this process
_guard = threading.Lock()


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _read_pid(path: Path) -> int:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 0


class StoreLock:
    """A held lock on a store folder; :meth:`release` (or garbage collection of the store) gives it back."""

    def __init__(self, folder: Path, what: str):
        self.key = str(folder.resolve())
        self.path = folder / LOCK_FILE
        self.what = what
        self.first = True
        """Whether this process took the lock now (False: a store of this process already held it)."""
        self._released = False

    def release(self) -> None:
        if self._released:
            return
        self._released = True
        with _guard:
            fd, users = _held.get(self.key, (-1, 0))
            if users > 1:
                _held[self.key] = (fd, users - 1)
                return
            _held.pop(self.key, None)
        if fd >= 0:
            try:
                os.ftruncate(fd, 0)
            except OSError:
                pass
            os.close(fd)  # closing the descriptor drops the flock


def _refuse(path: Path, pid: int, what: str, serve: Path) -> MemoryStoreError:
    return MemoryStoreError(
        f"the {what} at {path.parent} is open for writing by another process (pid {pid or 'unknown'}, lock file "
        f"{path}). An embedded store takes one process; to share it, serve it with `chroma run --path {serve} "
        "--port 8000` and open it with host=/port= (server mode), or stop the other process.")


def acquire(folder: str | Path, what: str = "store", serve: str | Path | None = None) -> StoreLock:
    """Take the folder's writer lock for this process, or raise :class:`MemoryStoreError` naming the holder.
    ``serve`` is the Chroma folder the message tells to serve (the folder itself by default)."""
    folder = Path(folder)
    serve = Path(serve) if serve is not None else folder
    folder.mkdir(parents=True, exist_ok=True)
    lock = StoreLock(folder, what)
    with _guard:
        if lock.key in _held:
            fd, users = _held[lock.key]
            _held[lock.key] = (fd, users + 1)
            lock.first = False
            return lock
        fd = os.open(lock.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                import fcntl
            except ImportError:  # no flock: trust a live pid in the file
                holder = _read_pid(lock.path)
                if holder and holder != os.getpid() and _alive(holder):
                    raise _refuse(lock.path, holder, what, serve) from None
            else:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError:
                    raise _refuse(lock.path, _read_pid(lock.path), what, serve) from None
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        except BaseException:
            os.close(fd)
            raise
        _held[lock.key] = (fd, 1)
    return lock
