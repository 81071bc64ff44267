"""Adapter versions on disk, with their metrics, and the eval gate that promotes or rolls back.

Layout under the registry folder::

    versions/v1/            adapter files (PEFT format) + meta.json (parent, metrics, status, created_at)
    versions/v2/ ...
    pointer.json            {"current": "v2", "promoted": "v1"}

``v0`` is the base model (no files). ``promoted`` is the version that serves answers; ``current`` is the one the
trainer continues from (after a rollback it equals ``promoted`` again). Every JSON file is written to a temporary
file, fsynced and renamed into place, so a kill leaves either the old or the new pointer, never half of one.
A version whose folder has no ``meta.json`` (killed while saving) is ignored and its number reused.

The gate (:meth:`AdapterRegistry.gate`) scores the candidate with a caller-given evaluator on a small held-back
set and promotes it only when it scores no worse than the promoted version (within ``tolerance``).
"""

from __future__ import annotations

import json
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .._io import atomic_write_json
from ..errors import InvalidInputError

__all__ = ["AdapterVersion", "AdapterRegistry", "GateDecision", "write_json_atomic", "BASE_VERSION"]

BASE_VERSION = "v0"


def write_json_atomic(path: str | Path, data: Any) -> None:
    """Write JSON to ``path`` so a crash leaves the old file or the new one, never a torn one."""
    atomic_write_json(path, data, indent=1)


@dataclass(kw_only=True, frozen=True, slots=True)
class AdapterVersion:
    """One adapter version and what is known about it."""

    name: str
    """'v0' (the base model), 'v1', 'v2', ..."""
    path: Path | None
    """Folder with the adapter files; None for the base model."""
    parent: str | None = None
    """Version it was trained from."""
    status: str = "candidate"
    """'base', 'candidate', 'promoted' (served at some point) or 'rejected' (rolled back)."""
    metrics: dict[str, Any] = field(default_factory=dict)
    """Training metrics (steps, groups, loss, step seconds) and the held-back score ('held_back')."""
    created_at: float = 0.0

    @property
    def number(self) -> int:
        return int(self.name[1:])


@dataclass(kw_only=True, frozen=True, slots=True)
class GateDecision:
    """Result of the promotion gate."""

    candidate: str
    """Version that was checked."""
    baseline: str
    """Promoted version it was compared with."""
    candidate_score: float
    baseline_score: float
    promoted: bool
    """True: the candidate now serves. False: it was rolled back (the trainer resets to the baseline)."""


class AdapterRegistry:
    """Versions of one role's adapter (planner or executor) in ``root``. Thread-safe."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        (self.root / "versions").mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._pointer_path = self.root / "pointer.json"
        if not self._pointer_path.exists():
            write_json_atomic(self._pointer_path, {"current": BASE_VERSION, "promoted": BASE_VERSION})

    # ----- reading -----
    def _pointer(self) -> dict[str, str]:
        return json.loads(self._pointer_path.read_text())

    @property
    def promoted(self) -> AdapterVersion:
        return self.get(self._pointer()["promoted"])

    @property
    def current(self) -> AdapterVersion:
        return self.get(self._pointer()["current"])

    def get(self, name: str) -> AdapterVersion:
        if name == BASE_VERSION:
            meta_path = self.root / "base.json"
            meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
            return AdapterVersion(name=BASE_VERSION, path=None, status="base", metrics=meta.get("metrics", {}))
        folder = self.root / "versions" / name
        meta_path = folder / "meta.json"
        if not meta_path.exists():
            raise InvalidInputError(f"no adapter version {name!r} in {self.root}")
        meta = json.loads(meta_path.read_text())
        return AdapterVersion(name=name, path=folder, parent=meta.get("parent"), status=meta.get("status", "candidate"),
                              metrics=meta.get("metrics", {}), created_at=meta.get("created_at", 0.0))

    def versions(self) -> list[AdapterVersion]:
        """All complete versions, v0 first."""
        names = [p.name for p in (self.root / "versions").iterdir()
                 if p.name.startswith("v") and p.name[1:].isdigit() and (p / "meta.json").exists()]
        return [self.get(BASE_VERSION)] + [self.get(n) for n in sorted(names, key=lambda n: int(n[1:]))]

    # ----- writing -----
    def _write_meta(self, v: AdapterVersion) -> None:
        data = {"parent": v.parent, "status": v.status, "metrics": v.metrics, "created_at": v.created_at}
        if v.name == BASE_VERSION:
            write_json_atomic(self.root / "base.json", data)
        else:
            write_json_atomic(v.path / "meta.json", data)  # type: ignore[operator]

    def update_metrics(self, name: str, **metrics: Any) -> AdapterVersion:
        with self._lock:
            v = self.get(name)
            v = replace(v, metrics={**v.metrics, **metrics})
            self._write_meta(v)
            return v

    def add(self, save: Callable[[Path], Any], *, parent: str | None = None, metrics: dict | None = None) -> AdapterVersion:
        """Create the next version: ``save(folder)`` writes the adapter files, then meta.json marks it complete.

        The new version becomes ``current`` (the trainer's state); ``promoted`` moves only through :meth:`gate`
        or :meth:`promote`.
        """
        with self._lock:
            numbers = [v.number for v in self.versions()]
            name = f"v{max(numbers) + 1}"
            folder = self.root / "versions" / name
            if folder.exists():  # left over from a kill during save
                shutil.rmtree(folder)
            folder.mkdir(parents=True)
            save(folder)
            v = AdapterVersion(name=name, path=folder, parent=parent or self._pointer()["current"],
                               status="candidate", metrics=dict(metrics or {}), created_at=time.time())
            self._write_meta(v)
            write_json_atomic(self._pointer_path, {**self._pointer(), "current": name})
            return v

    def promote(self, name: str) -> AdapterVersion:
        with self._lock:
            v = replace(self.get(name), status="promoted" if name != BASE_VERSION else "base")
            self._write_meta(v)
            write_json_atomic(self._pointer_path, {"current": name, "promoted": name})
            return v

    def reject(self, name: str) -> AdapterVersion:
        """Mark ``name`` rejected and point ``current`` back at the promoted version (rollback)."""
        with self._lock:
            v = replace(self.get(name), status="rejected")
            self._write_meta(v)
            p = self._pointer()
            write_json_atomic(self._pointer_path, {"current": p["promoted"], "promoted": p["promoted"]})
            return v

    def held_back_score(self, name: str, evaluator: Callable[[AdapterVersion], float]) -> float:
        """The version's held-back score, evaluated once and cached in its metrics."""
        v = self.get(name)
        if "held_back" not in v.metrics:
            v = self.update_metrics(name, held_back=float(evaluator(v)))
        return float(v.metrics["held_back"])

    def gate(self, candidate: str, evaluator: Callable[[AdapterVersion], float], *,
             tolerance: float = 0.0) -> GateDecision:
        """Promote ``candidate`` if it scores no worse than the promoted version on the held-back set, else roll back."""
        baseline = self._pointer()["promoted"]
        base_score = self.held_back_score(baseline, evaluator)
        cand_score = self.held_back_score(candidate, evaluator)
        ok = cand_score >= base_score - tolerance
        if ok:
            self.promote(candidate)
        else:
            self.reject(candidate)
        return GateDecision(candidate=candidate, baseline=baseline, candidate_score=cand_score,
                            baseline_score=base_score, promoted=ok)
