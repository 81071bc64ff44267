"""Damaged files of the learning stores (experience buffer, adapter registry): opening is refused with an error
naming the file and ``miaflow memory repair``; repair keeps everything still readable and says what is lost."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
from pathlib import Path

import pytest

from miaflow.errors import MemoryStoreError
from miaflow.rl import ExperienceBuffer, ExperienceGroup
from miaflow.rl.buffer import repair_buffer, verify_buffer

pytestmark = pytest.mark.faults

N_GROUPS = 60


def _group(i: int, role: str = "planner") -> ExperienceGroup:
    return ExperienceGroup(group_id=f"e0-q{i}", role=role,
                           prompt=[{"role": "user", "content": f"question {i} " + "padding " * 60}],
                           completions=[f"plan {i} a", f"plan {i} b"], rewards=[1.0, float(i % 3 == 0)],
                           metadata={"question": f"question {i}"})


def _filled(tmp_path: Path, n: int = N_GROUPS, trained: int = 5) -> tuple[Path, dict[str, str]]:
    path = tmp_path / "state" / "buffer.sqlite"
    with ExperienceBuffer(path) as buf:
        for i in range(n):
            buf.add(_group(i, role="executor" if i % 10 == 9 else "planner"))
        buf.mark_trained([f"e0-q{i}" for i in range(trained)], "v1")
        payloads = {g.group_id: g.to_json() for g in buf.all()}
    return path, payloads


def _refused(path: Path, *needles: str) -> str:
    with pytest.raises(MemoryStoreError) as err:
        ExperienceBuffer(path)
    msg = str(err.value)
    assert f"miaflow memory repair {path}" in msg, msg
    for n in needles:
        assert n in msg, msg
    return msg


def _groups(path: Path) -> dict[str, str]:
    with ExperienceBuffer(path) as buf:
        return {g.group_id: g.to_json() for g in buf.all()}


def test_intact_buffer_verifies_and_repair_changes_nothing(tmp_path):
    path, payloads = _filled(tmp_path)
    assert (path.parent / "buffer.manifest.json").exists()
    assert verify_buffer(path).ok
    before = path.read_bytes()
    rep = repair_buffer(path)
    assert rep.ok and rep.lost == {} and path.read_bytes() == before
    assert _groups(path) == payloads


def test_deleted_buffer_is_refused_not_opened_empty(tmp_path):
    path, _ = _filled(tmp_path)
    path.unlink()
    _refused(path, "is missing", f"counts {N_GROUPS} group(s)")
    assert not path.exists()  # the refusal created nothing
    rep = repair_buffer(path)
    assert rep.lost == {"planner groups": 54, "executor groups": 6}
    with ExperienceBuffer(path) as buf:
        assert buf.stats().total == 0
        buf.add(_group(1))  # usable again
    assert verify_buffer(path).ok


def test_older_copy_of_the_file_is_a_count_mismatch(tmp_path):
    path, _ = _filled(tmp_path, n=20)
    old = tmp_path / "old.sqlite"
    shutil.copy(path, old)
    with ExperienceBuffer(path) as buf:
        for i in range(20, 25):
            buf.add(_group(i))
    shutil.copy(old, path)
    _refused(path, "counts 23 planner group(s), the file holds 18 (5 lost)")
    rep = repair_buffer(path)
    assert rep.lost == {"planner groups": 5}
    assert len(_groups(path)) == 20


def test_lost_wal_file_is_detected(tmp_path):
    """Commits still in ``-wal`` when the file alone is copied (or the -wal is lost in a crash)."""
    path = tmp_path / "buffer.sqlite"
    buf = ExperienceBuffer(path)
    buf.add(_group(0))
    buf._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    for i in range(1, 8):
        buf.add(_group(i))
    shutil.copy(path, tmp_path / "main-only.sqlite")  # the last 7 groups live in buffer.sqlite-wal
    buf.close()
    shutil.copy(tmp_path / "main-only.sqlite", path)
    _refused(path, "counts 8 planner group(s), the file holds 1 (7 lost)")
    assert repair_buffer(path).lost == {"planner groups": 7}


def test_training_marks_rolled_back_by_an_old_copy_are_named(tmp_path):
    path, _ = _filled(tmp_path, n=10, trained=0)
    shutil.copy(path, tmp_path / "old.sqlite")
    with ExperienceBuffer(path) as buf:
        buf.mark_trained(["e0-q1", "e0-q2"], "v1")
    shutil.copy(tmp_path / "old.sqlite", path)
    _refused(path, "counts 2 trained planner group(s), the file marks 0")


def test_replaced_file_with_as_many_groups_is_named(tmp_path):
    path, _ = _filled(tmp_path, n=6, trained=0)
    other = tmp_path / "other" / "buffer.sqlite"
    with ExperienceBuffer(other) as buf:
        for i in range(100, 106):
            buf.add(_group(i, role="executor" if i % 10 == 9 else "planner"))
    shutil.copy(other, path)
    _refused(path, "records group 'e0-q5' at sequence number 6", "'e0-q105'")


def test_damaged_pages_keep_every_readable_group(tmp_path):
    path, payloads = _filled(tmp_path)
    size = path.stat().st_size
    page = 4096
    assert size >= 8 * page
    with open(path, "r+b") as fh:  # one leaf page in the middle: its groups are lost, the others are kept
        fh.seek(4 * page)
        fh.write(os.urandom(page))
    with pytest.raises(MemoryStoreError, match="miaflow memory repair"):
        ExperienceBuffer(path).stats()
    rep = verify_buffer(path)
    assert not rep.ok
    rep = repair_buffer(path)
    kept = _groups(path)
    assert set(kept) < set(payloads) or not rep.lost
    assert all(payloads[g] == kept[g] for g in kept)  # nothing altered
    assert sum(rep.lost.values()) == len(payloads) - len(kept)
    assert list(tmp_path.glob("state/buffer.sqlite.damaged-*"))  # the damaged file is kept
    assert verify_buffer(path).ok


def test_a_row_with_broken_json_is_a_clear_error_and_repair_keeps_it_aside(tmp_path):
    path, payloads = _filled(tmp_path, n=10, trained=0)
    con = sqlite3.connect(path)
    con.execute("UPDATE groups SET payload='{\"group_id\": \"e0-q3\", ' WHERE group_id='e0-q3'")
    con.commit()
    con.close()
    with ExperienceBuffer(path) as buf, pytest.raises(MemoryStoreError, match="sequence number 4 is unreadable"):
        buf.all()
    assert any("sequence number 4" in p for p in verify_buffer(path).problems)
    rep = repair_buffer(path)
    assert rep.lost == {"planner groups": 1}
    kept = _groups(path)
    assert set(kept) == set(payloads) - {"e0-q3"}
    (side,) = tmp_path.glob("state/*.rows.jsonl")
    assert json.loads(side.read_text())["group_id"] == "e0-q3"


def test_damaged_manifest_is_named_and_rewritten_with_nothing_lost(tmp_path):
    path, payloads = _filled(tmp_path, n=10)
    manifest = path.parent / "buffer.manifest.json"
    manifest.write_text('{"format": ')
    _refused(path, "buffer.manifest.json is damaged")
    rep = repair_buffer(path)
    assert rep.lost == {} and _groups(path) == payloads
    assert json.loads(manifest.read_text())["namespaces"]["planner"]["count"] == 9
    manifest.unlink()  # a buffer written before manifests existed: adopted on open
    assert _groups(path) == payloads and manifest.exists()


# ---------------------------------------------------------------- adapter registry

from miaflow.rl import AdapterRegistry  # noqa: E402
from miaflow.rl.adapters import repair_registry, verify_registry  # noqa: E402


def _save(tag: str):
    def save(folder: Path) -> None:
        (folder / "adapter_config.json").write_text(json.dumps({"tag": tag, "r": 8}))
        (folder / "adapter_model.safetensors").write_bytes(tag.encode() * 4000)
    return save


def _registry(tmp_path: Path) -> Path:
    """v1 promoted, v2 rejected (parent v1), v3 promoted (parent v1), v4 current candidate (parent v3)."""
    root = tmp_path / "adapters" / "planner"
    reg = AdapterRegistry(root)
    reg.add(_save("a"), metrics={"loss": 0.5})
    reg.promote("v1")
    reg.add(_save("b"))
    reg.reject("v2")
    reg.add(_save("c"))
    reg.promote("v3")
    reg.add(_save("d"))
    reg.update_metrics("v1", held_back=0.5)
    return root


def _state(root: Path) -> tuple:
    reg = AdapterRegistry(root)
    return (reg.current.name, reg.promoted.name, [(v.name, v.status, v.parent, v.metrics) for v in reg.versions()])


def _refused_registry(root: Path, *needles: str) -> str:
    with pytest.raises(MemoryStoreError) as err:
        AdapterRegistry(root)
    msg = str(err.value)
    assert f"miaflow memory repair {root}" in msg, msg
    for n in needles:
        assert n in msg, msg
    return msg


def test_intact_registry_verifies_and_repair_changes_nothing(tmp_path):
    root = _registry(tmp_path)
    before = _state(root)
    assert before[:2] == ("v4", "v3")
    assert verify_registry(root).ok
    rep = repair_registry(root)
    assert rep.ok and rep.lost == {} and _state(root) == before


@pytest.mark.parametrize("damage", ["deleted", "garbage", "older_copy"])
def test_damaged_pointer_is_refused_and_restored_from_the_manifest(tmp_path, damage):
    root = _registry(tmp_path)
    before = _state(root)
    pointer = root / "pointer.json"
    if damage == "deleted":
        pointer.unlink()  # used to restart silently at the base model
        _refused_registry(root, "pointer.json is missing", "current=v4, promoted=v3")
    elif damage == "garbage":
        pointer.write_text("{\"current\": ")
        _refused_registry(root, "pointer.json is damaged")
    else:
        pointer.write_text(json.dumps({"current": "v1", "promoted": "v1"}))
        _refused_registry(root, "pointer.json says current=v1, promoted=v1", "current=v4, promoted=v3")
    rep = repair_registry(root)
    assert rep.lost == {} and any("pointer.json is restored" in n for n in rep.notes)
    assert _state(root) == before and verify_registry(root).ok


def test_lost_meta_json_is_refused_and_restored_so_the_number_is_not_reused(tmp_path):
    root = _registry(tmp_path)
    before = _state(root)
    (root / "versions" / "v4" / "meta.json").unlink()  # used to look like a kill mid-save: v4 reused and deleted
    _refused_registry(root, "v4/meta.json is missing")
    rep = repair_registry(root)
    assert rep.lost == {} and _state(root) == before
    assert AdapterRegistry(root).add(_save("f")).name == "v5"
    assert (root / "versions" / "v4" / "adapter_model.safetensors").read_bytes() == b"d" * 4000


@pytest.mark.parametrize("damage", ["truncated", "deleted", "folder_deleted", "bit_flip"])
def test_damaged_adapter_files_are_set_aside_and_the_pointer_falls_back_to_an_intact_ancestor(tmp_path, damage):
    root = _registry(tmp_path)
    v3 = root / "versions" / "v3"
    weights = v3 / "adapter_model.safetensors"
    if damage == "truncated":
        os.truncate(weights, 100)
    elif damage == "deleted":
        weights.unlink()
    elif damage == "folder_deleted":
        shutil.rmtree(v3)
    else:
        data = bytearray(weights.read_bytes())
        data[1234] ^= 0xFF
        weights.write_bytes(bytes(data))
    if damage == "bit_flip":  # same size: opening (sizes only) cannot tell; verify compares checksums
        AdapterRegistry(root)
        assert any("does not match its recorded SHA-256" in p for p in verify_registry(root).problems)
    else:
        _refused_registry(root, "v3")
    rep = repair_registry(root)
    assert rep.lost == {"adapter versions": 1}
    assert any("v3" in n and "lost" in n for n in rep.notes)
    reg = AdapterRegistry(root)
    assert reg.promoted.name == "v1"  # v3's parent: the newest intact version that served
    assert reg.current.name == "v4"  # intact (trained from the lost v3: kept)
    assert [v.name for v in reg.versions()] == ["v0", "v1", "v2", "v4"]
    assert reg.add(_save("g")).name == "v5"  # the lost number is not given out again
    assert list((root / "versions").glob("damaged-v3-*")) or damage == "folder_deleted"
    assert verify_registry(root).ok


def test_damaged_manifest_is_named_and_rebuilt_from_the_folders(tmp_path):
    root = _registry(tmp_path)
    before = _state(root)
    (root / "miaflow-manifest.json").write_text("[1, 2")
    _refused_registry(root, "miaflow-manifest.json is damaged")
    rep = repair_registry(root)
    assert rep.lost == {} and _state(root) == before and verify_registry(root).ok


def test_kill_points_of_a_write_are_not_damage(tmp_path):
    root = _registry(tmp_path)
    manifest = root / "miaflow-manifest.json"
    data = json.loads(manifest.read_text())
    # killed after pointer.json was replaced, before the manifest recorded it
    data["pending_pointer"], data["pointer"] = data["pointer"], {"current": "v3", "promoted": "v3"}
    # killed after v4's meta.json, before the manifest recorded the version
    del data["namespaces"]["v4"]
    manifest.write_text(json.dumps(data))
    reg = AdapterRegistry(root)
    assert (reg.current.name, reg.promoted.name) == ("v4", "v3")
    data = json.loads(manifest.read_text())
    assert data["pointer"] == {"current": "v4", "promoted": "v3"} and "v4" in data["namespaces"]
    # a registry written before manifests existed is adopted
    manifest.unlink()
    assert _state(root)[:2] == ("v4", "v3") and manifest.exists() and verify_registry(root).ok


# ---------------------------------------------------------------- miaflow memory verify|repair on a state folder

def test_cli_checks_and_repairs_every_store_of_a_session_state_folder(tmp_path):
    from memory_helpers import HashEmbedder
    from typer.testing import CliRunner

    from miaflow.cli import app
    from miaflow.memory import Trajectory, TrajectoryStore

    state = tmp_path / "state"
    with TrajectoryStore(state / "memory", embedder=HashEmbedder()) as store:
        store.add(Trajectory(task_id="t1", question="Where was the band's first show?", answer="Tulsa",
                             judgement="correct"))
    path, _ = _filled(tmp_path, n=12, trained=2)
    root = _registry(state)  # state/adapters/planner
    run = CliRunner().invoke
    res = run(app, ["memory", "verify", str(state)])
    assert res.exit_code == 0, res.output
    assert res.output.count(": ok") == 3

    shutil.copy(path, tmp_path / "old.sqlite")
    with ExperienceBuffer(path) as buf:
        buf.add(_group(50))
    shutil.copy(tmp_path / "old.sqlite", path)  # one group lost
    (root / "pointer.json").unlink()
    res = run(app, ["memory", "verify", str(state)], env={"COLUMNS": "400"})
    assert res.exit_code == 1 and "Traceback" not in res.output
    assert "holds 11 (1 lost)" in res.output and "pointer.json is missing" in res.output
    assert f"{state / 'memory'}: ok" in res.output

    res = run(app, ["memory", "repair", str(state)], env={"COLUMNS": "400"})
    assert res.exit_code == 1, res.output  # something was lost: said, and the exit code says so
    assert "not recoverable: experience buffer" in res.output and "1 planner groups" in res.output
    assert "pointer.json is restored" in res.output
    res = run(app, ["memory", "verify", str(state)])
    assert res.exit_code == 0 and res.output.count(": ok") == 3, res.output
    assert run(app, ["memory", "verify", str(tmp_path / "nothing")]).exit_code == 2


# ---------------------------------------------------------------- kill -9 while writing

WRITER = """
import json, sys
from pathlib import Path
from miaflow.rl import AdapterRegistry, ExperienceBuffer, ExperienceGroup
state = Path(sys.argv[1])
buf, reg = ExperienceBuffer(state / "buffer.sqlite"), AdapterRegistry(state / "adapters" / "planner")
start = buf.stats().total
for i in range(start, start + 10000):
    g = ExperienceGroup(group_id=f"g{i}", prompt=[{"role": "user", "content": f"q{i}"}], completions=["a", "b"],
                        rewards=[1.0, 0.0])
    buf.add(g)
    print("group", g.group_id, flush=True)
    if i % 3 == 0:
        buf.mark_trained([g.group_id], "v1")
        print("trained", g.group_id, flush=True)
    if i % 2 == 0:
        v = reg.add(lambda folder: (folder / "adapter_model.safetensors").write_bytes(b"w" * 50000))
        print("version", v.name, flush=True)
        (reg.promote if i % 4 == 0 else reg.reject)(v.name)
        print("pointer", json.dumps({"current": reg.current.name, "promoted": reg.promoted.name}), flush=True)
"""


def test_kill_9_while_writing_loses_nothing_acknowledged(tmp_path):
    import random
    import signal
    import subprocess
    import sys
    import time as _time

    rng = random.Random(14)
    state = tmp_path / "state"
    acked: dict[str, list[str]] = {"group": [], "trained": [], "version": [], "pointer": []}
    for _ in range(8):
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(state)], stdout=subprocess.PIPE, text=True,
                                env={**os.environ, "HF_HUB_OFFLINE": "1"})
        lines = [proc.stdout.readline()]  # writing has begun
        _time.sleep(rng.uniform(0.05, 1.5))
        os.kill(proc.pid, signal.SIGKILL)
        lines += proc.stdout.read().splitlines(keepends=True)  # what it acknowledged before dying
        proc.wait(timeout=30)
        for line in lines:
            if line.endswith("\n"):  # a line cut by the kill was not acknowledged
                what, value = line.split(" ", 1)
                acked[what].append(value.strip())
        # reopening after each kill: no error, and everything acknowledged is there
        assert verify_buffer(state / "buffer.sqlite").ok
        assert verify_registry(state / "adapters" / "planner").ok
        with ExperienceBuffer(state / "buffer.sqlite") as buf:
            ids = {g.group_id for g in buf.all()}
            pending = {g.group_id for g in buf.pending()}
        assert set(acked["group"]) <= ids
        assert not set(acked["trained"]) & pending
        reg = AdapterRegistry(state / "adapters" / "planner")
        assert set(acked["version"]) <= {v.name for v in reg.versions()}
        if acked["pointer"]:
            last = json.loads(acked["pointer"][-1])
            # the last acknowledged pointer, or a later write that completed before the kill
            assert reg.promoted.number >= int(last["promoted"][1:])
    assert len(acked["group"]) >= 6 and acked["version"]
    print(f"kill -9 x8: {len(acked['group'])} groups, {len(acked['trained'])} trained marks, "
          f"{len(acked['version'])} versions, {len(acked['pointer'])} pointer moves acknowledged; none lost")
