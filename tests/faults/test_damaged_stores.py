"""Damaged files of each store: a clear error naming the file and the repair command, never a store that opens
quietly empty or half-blind; repair rebuilds the vector index from the durable records and says what it could not."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from _stores import N_RECORDS, bimem_embedder, question
from memory_helpers import HashEmbedder

from miaflow.errors import InvalidInputError, MemoryStoreError
from miaflow.memory import TrajectoryStore, _integrity

pytestmark = pytest.mark.faults


def _segment(path: Path) -> Path:
    (seg,) = [d for d in path.iterdir() if d.is_dir() and (d / "header.bin").exists()]
    return seg


def _all_recalled(store: TrajectoryStore, ids: list[str], sample=range(0, N_RECORDS, 97)) -> bool:
    return all(ids[i] in store.recall(question(i)).ids for i in sample)


@pytest.mark.parametrize("damage", ["segment_deleted", "data_level0_truncated", "header_deleted"])
def test_damaged_vector_index_is_named_and_repaired_with_nothing_lost(store_copy, damage):
    path, ids, q = store_copy
    seg = _segment(path)
    if damage == "segment_deleted":
        shutil.rmtree(seg)
    elif damage == "data_level0_truncated":
        os.truncate(seg / "data_level0.bin", (seg / "data_level0.bin").stat().st_size // 3)
    else:
        (seg / "header.bin").unlink()
    with pytest.raises(MemoryStoreError) as err:
        TrajectoryStore(path, embedder=HashEmbedder())
    msg = str(err.value)
    assert seg.name in msg and f"miaflow memory repair {path}" in msg
    assert not _integrity.verify(path, embedder=HashEmbedder()).ok
    rep = _integrity.repair(path, embedder=HashEmbedder())
    assert rep.rebuilt == {"default": N_RECORDS} and rep.lost == {}
    with TrajectoryStore(path, embedder=HashEmbedder()) as store:
        assert store.count() == N_RECORDS
        assert _all_recalled(store, ids)
        assert {i: store.get(ids[i])[0].q_value for i in range(3)} == q  # utilities survive the rebuild
    assert _integrity.verify(path, embedder=HashEmbedder()).ok


def test_deleted_sqlite_is_refused_not_opened_empty(store_copy):
    path, _, _ = store_copy
    (path / "chroma.sqlite3").unlink()
    with pytest.raises(MemoryStoreError, match=r"chroma\.sqlite3 is missing, but this store held 1100 record"):
        TrajectoryStore(path, embedder=HashEmbedder())
    rep = _integrity.repair(path, embedder=HashEmbedder())
    assert rep.lost == {"default": N_RECORDS}  # said, not hidden
    with TrajectoryStore(path, embedder=HashEmbedder()) as store:
        assert store.count() == 0


def test_sqlite_swapped_for_an_older_copy_is_a_count_mismatch(tmp_path):
    path = tmp_path / "s"
    store = TrajectoryStore(path, embedder=HashEmbedder())
    store.add_many([_traj(i) for i in range(5)])
    store.close()
    old = (path / "chroma.sqlite3").read_bytes()
    store = TrajectoryStore(path, embedder=HashEmbedder())
    store.add_many([_traj(i) for i in range(5, 9)])
    store.close()
    (path / "chroma.sqlite3").write_bytes(old)
    for extra in path.glob("chroma.sqlite3-*"):
        extra.unlink()
    with pytest.raises(MemoryStoreError, match=r"counts 9 record\(s\).*holds 5 \(4 lost\)"):
        TrajectoryStore(path, embedder=HashEmbedder())


def _traj(i: int):
    from miaflow.memory import Trajectory

    return Trajectory(task_id=f"t{i}", question=question(i), answer="a", judgement="correct")


@pytest.mark.parametrize("victim", ["miaflow-manifest.json", "miaflow-store.json"])
def test_corrupt_manifest_or_marker_is_a_clear_error(tmp_path, victim):
    path = tmp_path / "s"
    TrajectoryStore(path, embedder=HashEmbedder()).add(_traj(1))
    (path / victim).write_text("{not json")
    with pytest.raises(MemoryStoreError, match=victim.replace(".", r"\.")):
        TrajectoryStore(path, embedder=HashEmbedder())


def test_cli_verify_reports_damage_with_exit_code_1(store_copy):
    from typer.testing import CliRunner

    from miaflow.cli import app

    path, _, _ = store_copy
    shutil.rmtree(_segment(path))
    res = CliRunner().invoke(app, ["memory", "verify", str(path)])
    assert res.exit_code == 1, res.output
    assert "problem:" in res.output and "Traceback" not in res.output
    (path / "chroma.sqlite3").unlink()
    out = subprocess.run([sys.executable, "-c", "from miaflow.cli import main; main()", "memory", "repair", str(path)],
                         capture_output=True, text=True, timeout=120, env={**os.environ, "COLUMNS": "300"})
    assert "not recoverable" in out.stdout and "1100 record(s)" in out.stdout, out.stdout + out.stderr
    assert "Traceback" not in out.stderr


HOLDER = """
import sys, time
sys.path.insert(0, sys.argv[2])
from memory_helpers import HashEmbedder
from miaflow.memory import TrajectoryStore
s = TrajectoryStore(sys.argv[1], embedder=HashEmbedder())
print("ready", flush=True)
time.sleep(60)
"""


def test_second_process_is_refused_and_a_dead_holders_lock_is_taken_over(tmp_path):
    path = tmp_path / "s"
    TrajectoryStore(path, embedder=HashEmbedder()).close()
    helpers = str(Path(__file__).parents[1] / "memory")
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(path), helpers], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "ANONYMIZED_TELEMETRY": "False"})
    try:
        assert proc.stdout.readline().strip() == "ready"
        with pytest.raises(MemoryStoreError) as err:
            TrajectoryStore(path, embedder=HashEmbedder())
        assert f"pid {proc.pid}" in str(err.value) and "server mode" in str(err.value)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    assert (path / "miaflow.lock").read_text().split()[0] == str(proc.pid)  # stale: its holder is dead
    with TrajectoryStore(path, embedder=HashEmbedder()) as store:
        assert store.count() == 0
    assert (path / "miaflow.lock").read_text().strip() in ("", str(os.getpid()))


# ---------------------------------------------------------------- Bi-Mem

TURNS = [{"id": f"D1:{i}", "speaker": "Ann" if i % 2 else "Tom", "text": f"Ann talks about hobby number {i}.",
          "time": "1 May 2023", "session": 1} for i in range(1, 7)]


def _bimem(tmp_path):
    from miaflow.memory.bimem import BiMemory

    mem = BiMemory(tmp_path / "bm", embedder=bimem_embedder())
    mem.add_messages("talk", TURNS)
    mem.close()
    return tmp_path / "bm"


def _conv_dir(root: Path) -> Path:
    (d,) = list((root / "bimem" / "default").glob("conv-*"))
    return d


@pytest.mark.parametrize("damage", ["state", "segment", "manifest"])
def test_bimem_damaged_state_files_are_named(tmp_path, damage):
    from miaflow.memory.bimem import BiMemory

    root = _bimem(tmp_path)
    conv = _conv_dir(root)
    victim = {"state": conv / "state.json", "segment": next(conv.glob("seg-*.json")),
              "manifest": root / "bimem" / "default" / "manifest.json"}[damage]
    if damage == "segment":
        victim.unlink()
    else:
        victim.write_text('{"half": ')
    with pytest.raises(MemoryStoreError) as err:
        BiMemory(root, embedder=bimem_embedder())
    assert victim.name in str(err.value)

    if damage != "segment":
        victim.unlink()


def test_bimem_lost_vectors_are_rebuilt_from_the_json_with_nothing_lost(tmp_path):
    from chromadb.api.shared_system_client import SharedSystemClient

    from miaflow.memory.bimem import BiMemory

    root = _bimem(tmp_path)
    SharedSystemClient.clear_system_cache()  # as a new process would find the folder
    shutil.rmtree(root / "chroma")
    mem = BiMemory(root, embedder=bimem_embedder())
    assert len(mem.turns("talk")) == 6 and mem.vector_count("talk") == 6
    assert mem.retrieve("hobby number 3", conversation_id="talk", k=3)
    mem.close()


def test_bimem_second_process_is_refused(tmp_path):
    root = _bimem(tmp_path)
    code = ("import sys; sys.path[:0] = sys.argv[2:]; from _stores import bimem_embedder; "
            "from miaflow.memory.bimem import BiMemory; from miaflow.errors import MemoryStoreError\n"
            "try:\n    BiMemory(sys.argv[1], embedder=bimem_embedder())\nexcept MemoryStoreError as e:\n"
            "    print('refused', e)\n")
    from miaflow.memory.bimem import BiMemory

    mem = BiMemory(root, embedder=bimem_embedder())
    here = Path(__file__).parent
    out = subprocess.run([sys.executable, "-c", code, str(root), str(here), str(here.parent / "memory")],
                         capture_output=True, text=True, timeout=120,
                         env={**os.environ, "ANONYMIZED_TELEMETRY": "False"}).stdout
    mem.close()
    assert out.startswith("refused") and f"pid {os.getpid()}" in out and "chroma run --path" in out


# ---------------------------------------------------------------- LangGraph checkpoint file

@pytest.mark.parametrize("content", [b"this is not a database", b"\x00" * 100])
def test_checkpoint_that_is_not_sqlite_is_a_clear_error(tmp_path, content):
    from miaflow.workflows._checkpoint import open_checkpointer

    bad = tmp_path / "runs.sqlite"
    bad.write_bytes(content)
    with pytest.raises(InvalidInputError, match="is not a SQLite database"):
        open_checkpointer(bad)
    assert bad.read_bytes() == content  # nothing was changed
    with pytest.raises(InvalidInputError, match="is a folder"):
        open_checkpointer(tmp_path)
    assert open_checkpointer(tmp_path / "new.sqlite") is not None




def test_cli_verify_checks_a_bimem_folder(tmp_path):
    from typer.testing import CliRunner

    from miaflow.cli import app

    root = _bimem(tmp_path)
    (_conv_dir(root) / "state.json").write_text("{")
    res = CliRunner().invoke(app, ["memory", "verify", str(root)])
    assert res.exit_code == 1 and "state.json" in res.output and "Traceback" not in res.output
