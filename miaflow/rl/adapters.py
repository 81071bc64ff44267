"""Adapter versions on disk, with their metrics, and the eval gate that promotes or rolls back.

Layout under the registry folder::

    versions/v1/            adapter files (PEFT format) + meta.json (parent, metrics, status, created_at)
    versions/v2/ ...
    pointer.json            {"current": "v2", "promoted": "v1"}

``v0`` is the base model (no files). ``promoted`` is the version that serves answers; ``current`` is the one the
trainer continues from (after a rollback it equals ``promoted`` again). Every JSON file is written to a temporary
file, fsynced and renamed into place, so a kill leaves either the old or the new pointer, never half of one.
A version whose folder has no ``meta.json`` (killed while saving) is ignored and its number reused.

Integrity: a manifest (``miaflow-manifest.json``, the design of :mod:`miaflow.memory._integrity`) records each
complete version's files (size and SHA-256), a copy of its ``meta.json``, the highest version number given out, and
the pointer (the next pointer is recorded before ``pointer.json`` is replaced, the new one after). Opening checks
the pointer against it, and that every recorded version still has its ``meta.json`` and files of the recorded sizes
(``miaflow memory verify`` also compares the checksums); a mismatch is an error naming the file and ``miaflow memory
repair``, which restores the pointer and ``meta.json`` files from the manifest, moves a version whose adapter files
are damaged aside (its number is never given out again) and points back to its newest intact ancestor, saying so.
Without this a deleted ``pointer.json`` silently served the base model, and a lost ``meta.json`` made the next
version reuse that number and delete its files.

The gate (:meth:`AdapterRegistry.gate`) scores the candidate with a caller-given evaluator on a small held-back
set and promotes it only when it scores no worse than the promoted version (within ``tolerance``).
"""

from __future__ import annotations

import functools
import hashlib
import json
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .._io import atomic_write_json
from ..errors import InvalidInputError, MemoryStoreError
from ..memory._integrity import Manifest, Report

__all__ = ["AdapterVersion", "AdapterRegistry", "GateDecision", "write_json_atomic", "BASE_VERSION",
           "verify_registry", "repair_registry"]

BASE_VERSION = "v0"
MANIFEST_KIND = "miaflow-registry-manifest"


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

    def __init__(self, root: str | Path, *, check: bool = True):
        self.root = Path(root)
        (self.root / "versions").mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._pointer_path = self.root / "pointer.json"
        manifest = self._manifest  # a damaged manifest is refused here
        if check:
            problems = self.problems()
            if problems:
                more = f" (and {len(problems) - 1} more problem(s))" if len(problems) > 1 else ""
                raise MemoryStoreError(f"adapter registry {self.root} is damaged: {problems[0]}{more}; "
                                       f"{repair_hint(self.root)}")
        if not self._pointer_path.exists() and "pointer" not in manifest.data:
            self._set_pointer({"current": BASE_VERSION, "promoted": BASE_VERSION})
        try:
            self._adopt()
        except PermissionError:  # an installed, read-only registry: checked, not recorded
            pass

    # ----- integrity -----
    @property
    def _manifest(self) -> Manifest:
        # one object per file in this process (several registries on one folder share it)
        return Manifest.shared(self.root, reload=False, kind=MANIFEST_KIND, hint=repair_hint(self.root))

    def _adopt(self) -> None:
        """Record what the manifest does not know yet: a pointer written just before a kill, complete versions
        of a registry written before manifests existed (or killed between meta.json and the manifest)."""
        m = self._manifest
        entries: dict[str, dict[str, Any]] = {}
        for name in _complete(self.root):
            if name not in m.namespaces:
                meta = _read_json(self.root / "versions" / name / "meta.json")
                files = _files(self.root / "versions" / name, digest=True)
                entries[name] = {"count": len(files), "files": files, "meta": meta}
        pointer = _read_json(self._pointer_path) if self._pointer_path.exists() else None
        fields: dict[str, Any] = {}
        if pointer is not None and pointer != m.data.get("pointer"):
            fields.update(pointer=pointer, pending_pointer=None)
        numbers = [int(n[1:]) for n in [*entries, *m.namespaces] if n != BASE_VERSION]
        if max(numbers, default=0) > int(m.data.get("last_number", 0)):
            fields["last_number"] = max(numbers)
        if entries or fields:
            m.update(entries, **fields)

    def problems(self, *, digest: bool = False) -> list[str]:
        """What is wrong with the registry's files against its manifest; ``digest`` also compares checksums."""
        return registry_problems(self.root, self._manifest, digest=digest)

    def _set_pointer(self, pointer: dict[str, str], entries: dict[str, dict[str, Any]] | None = None,
                     **fields: Any) -> None:
        """The manifest records the next pointer, then ``pointer.json`` is replaced, then it is recorded."""
        m = self._manifest
        m.update(entries, pending_pointer=pointer, **fields)
        write_json_atomic(self._pointer_path, pointer)
        m.update(pointer=pointer, pending_pointer=None)

    # ----- reading -----
    def _pointer(self) -> dict[str, str]:
        p = _read_json(self._pointer_path)
        if not isinstance(p, dict) or "current" not in p or "promoted" not in p:
            raise MemoryStoreError(f"{self._pointer_path} is damaged or missing; {repair_hint(self.root)}")
        return p

    @property
    def promoted(self) -> AdapterVersion:
        return self.get(self._pointer()["promoted"])

    @property
    def current(self) -> AdapterVersion:
        return self.get(self._pointer()["current"])

    def get(self, name: str) -> AdapterVersion:
        if name == BASE_VERSION:
            meta_path = self.root / "base.json"
            meta = _read_meta(meta_path, self.root) if meta_path.exists() else {}
            return AdapterVersion(name=BASE_VERSION, path=None, status="base", metrics=meta.get("metrics", {}))
        folder = self.root / "versions" / name
        meta_path = folder / "meta.json"
        if not meta_path.exists():
            raise InvalidInputError(f"no adapter version {name!r} in {self.root}")
        meta = _read_meta(meta_path, self.root)
        return AdapterVersion(name=name, path=folder, parent=meta.get("parent"), status=meta.get("status", "candidate"),
                              metrics=meta.get("metrics", {}), created_at=meta.get("created_at", 0.0))

    def versions(self) -> list[AdapterVersion]:
        """All complete versions, v0 first."""
        return [self.get(BASE_VERSION)] + [self.get(n) for n in _complete(self.root)]

    # ----- writing -----
    def _write_meta(self, v: AdapterVersion, *, record: bool = True) -> dict[str, Any]:
        data = {"parent": v.parent, "status": v.status, "metrics": v.metrics, "created_at": v.created_at}
        if v.name == BASE_VERSION:
            write_json_atomic(self.root / "base.json", data)
        else:
            write_json_atomic(v.path / "meta.json", data)  # type: ignore[operator]
        if record:  # the manifest's copy, from which repair restores a lost meta.json
            m = self._manifest
            m.update({v.name: {**m.namespaces.get(v.name, {"count": 0}), "meta": data}})
        return data

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
            name = f"v{max(*numbers, int(self._manifest.data.get('last_number', 0))) + 1}"
            folder = self.root / "versions" / name
            if folder.exists():  # left over from a kill during save
                shutil.rmtree(folder)
            folder.mkdir(parents=True)
            save(folder)
            v = AdapterVersion(name=name, path=folder, parent=parent or self._pointer()["current"],
                               status="candidate", metrics=dict(metrics or {}), created_at=time.time())
            meta = self._write_meta(v, record=False)
            files = _files(folder, digest=True)
            self._set_pointer({**self._pointer(), "current": name},
                              {name: {"count": len(files), "files": files, "meta": meta}},
                              last_number=int(name[1:]))
            return v

    def promote(self, name: str) -> AdapterVersion:
        with self._lock:
            v = replace(self.get(name), status="promoted" if name != BASE_VERSION else "base")
            self._write_meta(v)
            self._set_pointer({"current": name, "promoted": name})
            return v

    def reject(self, name: str) -> AdapterVersion:
        """Mark ``name`` rejected and point ``current`` back at the promoted version (rollback)."""
        with self._lock:
            v = replace(self.get(name), status="rejected")
            self._write_meta(v)
            p = self._pointer()
            self._set_pointer({"current": p["promoted"], "promoted": p["promoted"]})
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


def registry_problems(root: Path, m: Manifest, *, digest: bool = False) -> list[str]:
    """What is wrong with a registry's files against its manifest; ``digest`` also compares checksums."""
    pointer_path = root / "pointer.json"
    out: list[str] = []
    recorded = m.data.get("pointer")
    pointer = None
    if not pointer_path.exists():
        if recorded:
            out.append(f"{pointer_path} is missing (the manifest {m.path} last recorded current="
                       f"{recorded['current']}, promoted={recorded['promoted']})")
    else:
        pointer = _read_json(pointer_path)
        if not (isinstance(pointer, dict) and isinstance(pointer.get("current"), str)
                and isinstance(pointer.get("promoted"), str)):
            out.append(f"{pointer_path} is damaged (not a pointer)")
            pointer = None
        elif recorded and pointer not in (recorded, m.data.get("pending_pointer")):
            out.append(f"{pointer_path} says current={pointer['current']}, promoted="
                       f"{pointer['promoted']}, but the manifest {m.path} last recorded current="
                       f"{recorded['current']}, promoted={recorded['promoted']} (an older or foreign copy?)")
    complete = set(_complete(root))
    named: set[str] = set()
    for name in sorted(set(m.namespaces) | complete, key=_number):
        if name == BASE_VERSION:
            continue
        folder = root / "versions" / name
        entry = m.namespaces.get(name)
        if not (folder / "meta.json").exists():
            named.add(name)
            out.append(f"{folder / 'meta.json'} is missing" if folder.is_dir() else
                       f"the folder {folder} of version {name} is missing")
            continue
        if not isinstance(_read_json(folder / "meta.json"), dict):
            out.append(f"{folder / 'meta.json'} is damaged")
        if entry is None:
            continue
        have = _files(folder, digest=digest)
        for rel, (size, sha) in sorted(entry.get("files", {}).items()):
            if rel not in have:
                out.append(f"{folder / rel} is missing")
            elif have[rel][0] != size:
                out.append(f"{folder / rel} has {have[rel][0]} bytes, the manifest recorded {size}")
            elif digest and have[rel][1] != sha:
                out.append(f"{folder / rel} does not match its recorded SHA-256")
    if pointer is not None:
        for key in ("current", "promoted"):
            name = pointer[key]
            if name != BASE_VERSION and name not in complete and name not in named:
                out.append(f"{pointer_path} names {key} version {name!r}, which is not in "
                           f"{root / 'versions'}")
    base = root / "base.json"
    if base.exists() and not isinstance(_read_json(base), dict):
        out.append(f"{base} is damaged")
    return out


def repair_hint(root: Path) -> str:
    return (f"run `miaflow memory repair {root}` (it restores the pointer and version records from the manifest and "
            "says which adapter files are lost)")


def _number(name: str) -> int:
    return int(name[1:]) if name[1:].isdigit() else -1


def _complete(root: Path) -> list[str]:
    """Names of the complete versions (a folder with meta.json), oldest first."""
    names = [p.name for p in (root / "versions").iterdir()
             if p.name.startswith("v") and p.name[1:].isdigit() and (p / "meta.json").exists()]
    return sorted(names, key=_number)


def _read_json(path: Path) -> Any:
    """The parsed file, or None when it cannot be read or parsed."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None


def _read_meta(path: Path, root: Path) -> dict[str, Any]:
    meta = _read_json(path)
    if not isinstance(meta, dict):
        raise MemoryStoreError(f"{path} is damaged; {repair_hint(root)}")
    return meta


def _files(folder: Path, *, digest: bool) -> dict[str, list[Any]]:
    """Adapter files of a version folder (not meta.json, not temporary files): relative path -> [size, sha256]."""
    out: dict[str, list[Any]] = {}
    for p in sorted(folder.rglob("*")):
        rel = p.relative_to(folder).as_posix()
        if not p.is_file() or rel == "meta.json" or p.name.startswith("."):
            continue
        sha = None
        if digest:
            h = hashlib.sha256()
            with open(p, "rb") as fh:
                for block in iter(functools.partial(fh.read, 1 << 20), b""):
                    h.update(block)
            sha = h.hexdigest()
        out[rel] = [p.stat().st_size, sha]
    return out


def verify_registry(root: str | Path) -> Report:
    """Check a registry folder against its manifest, checksums included; nothing is changed."""
    root = Path(root)
    rep = Report(folder=str(root), kind="adapter registry")
    try:
        manifest = Manifest(root, kind=MANIFEST_KIND, hint=repair_hint(root))
        rep.problems.extend(registry_problems(root, manifest, digest=True))
    except MemoryStoreError as e:
        rep.problems.append(str(e))
    return rep


def repair_registry(root: str | Path) -> Report:
    """Restore what the manifest holds a copy of, set aside versions whose adapter files are damaged, and point
    back to intact versions; the report says what was lost."""
    root = Path(root)
    found = verify_registry(root)
    rep = Report(folder=str(root), kind="adapter registry", problems=found.problems)
    if found.ok:
        return rep
    hint = repair_hint(root)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    try:
        m = Manifest.shared(root, reload=True, kind=MANIFEST_KIND, hint=hint)
    except MemoryStoreError:
        blank = Manifest(root, kind=MANIFEST_KIND, hint=hint, read=False)
        blank.path.rename(blank.path.with_name(f"{blank.path.name}.damaged-{stamp}"))
        blank.update()
        m = Manifest.shared(root, reload=True, kind=MANIFEST_KIND, hint=hint)
        rep.notes.append(f"the damaged manifest is kept as {blank.path.name}.damaged-{stamp} and written again from "
                         "the version folders (their files are taken as they are)")
    versions = root / "versions"
    lost: list[str] = []
    parents: dict[str, str | None] = {}
    for name in sorted(set(m.namespaces) | set(_complete(root)), key=_number):
        if name == BASE_VERSION:
            continue
        folder, entry = versions / name, m.namespaces.get(name, {})
        meta = _read_json(folder / "meta.json")
        if not isinstance(meta, dict):
            if isinstance(entry.get("meta"), dict) and folder.is_dir():
                write_json_atomic(folder / "meta.json", entry["meta"])
                meta = entry["meta"]
                rep.notes.append(f"{folder / 'meta.json'} is restored from the manifest")
        have = _files(folder, digest=True) if folder.is_dir() else {}
        intact = isinstance(meta, dict) and all(have.get(rel) == [size, sha] for rel, (size, sha)
                                                 in entry.get("files", {}).items())
        parents[name] = (meta if isinstance(meta, dict) else entry.get("meta") or {}).get("parent")
        if intact:
            continue
        lost.append(name)
        if folder.is_dir():
            aside = versions / f"damaged-{name}-{stamp}"
            folder.rename(aside)
            rep.notes.append(f"version {name} is moved aside to {aside}")
        m.namespaces.pop(name, None)
    if lost:
        rep.lost["adapter versions"] = len(lost)
        rep.notes.append(f"adapter files lost (no intact copy): {', '.join(lost)}; their numbers are not reused")
    complete = set(_complete(root))

    def nearest_intact(name: str | None, *, served: bool) -> str:
        """``name`` if intact, else its newest intact ancestor (for ``promoted``: one that served, not a
        rejected one)."""
        seen: set[str] = set()
        while name and name != BASE_VERSION and name not in seen:
            seen.add(name)
            status = (_read_json(versions / name / "meta.json") or {}).get("status") if name in complete else None
            if name in complete and (not served or status == "promoted"):
                return name
            name = parents.get(name)
        return BASE_VERSION

    base = root / "base.json"
    if base.exists() and not isinstance(_read_json(base), dict):
        copy = m.namespaces.get(BASE_VERSION, {}).get("meta")
        if isinstance(copy, dict):
            write_json_atomic(base, copy)
            rep.notes.append(f"{base} is restored from the manifest")
        else:
            base.rename(root / f"base.json.damaged-{stamp}")
            rep.notes.append(f"{base} was damaged and is set aside (the base model's held-back score is measured "
                             "again)")
    pointer = _read_json(root / "pointer.json")
    recorded = m.data.get("pointer")
    if not (isinstance(pointer, dict) and {"current", "promoted"} <= set(pointer)) or (
            recorded and pointer not in (recorded, m.data.get("pending_pointer"))):
        if not recorded:  # no copy either: the newest version that served, as the gate left it
            served = [n for n in _complete(root) if (_read_json(versions / n / "meta.json") or {}).get("status")
                      == "promoted"]
            recorded = {"current": served[-1] if served else BASE_VERSION,
                        "promoted": served[-1] if served else BASE_VERSION}
        pointer = recorded
        rep.notes.append(f"pointer.json is restored from the manifest (current={pointer['current']}, "
                         f"promoted={pointer['promoted']})")
    fixed = {"current": nearest_intact(pointer["current"], served=False),
             "promoted": nearest_intact(pointer["promoted"], served=True)}
    if fixed["promoted"] != pointer["promoted"] and pointer["current"] == pointer["promoted"]:
        fixed["current"] = fixed["promoted"]
    for key in ("current", "promoted"):
        if fixed[key] != pointer[key]:
            rep.notes.append(f"{key} version {pointer[key]} is lost: {key} is now {fixed[key]}, its newest intact "
                             f"ancestor{' that served' if key == 'promoted' else ''}")
    numbers = [_number(n) for n in [*complete, *lost, *m.namespaces] if _number(n) > 0]
    m.update(last_number=max([int(m.data.get("last_number", 0)), *numbers]))
    reg = AdapterRegistry(root, check=False)
    reg._set_pointer(fixed)
    rep.rebuilt["adapter versions"] = len(complete)
    return rep
