"""Faults and concurrency with real processes: two writers updating the same memories through a real Chroma server
lose no update (and a task both of them apply counts once); a writer killed with SIGKILL in the middle of its
batches leaves every acknowledged write readable and no half-applied utility update."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from memory_helpers import HashEmbedder, make_traj

from miaflow.memory import TrajectoryStore, TrajectoryStoreConfig
from miaflow.memory._utility import event_key

HERE = Path(__file__).parent
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), str(HERE.parents[1])]), "ANONYMIZED_TELEMETRY": "False"}
N_MEM = 5


def _reward(task: int) -> float:
    return 1.0 if task % 2 == 0 else -0.5


UPDATER = textwrap.dedent("""
    import sys, time
    from miaflow.memory import TrajectoryStore, TrajectoryStoreConfig
    host, port, ns, prefix, lo, hi = sys.argv[1:7]
    ids = sys.argv[7:]
    cfg = TrajectoryStoreConfig(collection_prefix=prefix, compact_after_events=6, compaction_grace_s=3.0)
    store = TrajectoryStore(host=host, port=int(port), namespace=ns, config=cfg)
    for t in range(int(lo), int(hi)):
        store.update_utilities(f"task-{t}", ids, 1.0 if t % 2 == 0 else -0.5)
        time.sleep(0.03)
    print("done", store.counters["utility_updates"], store.counters["utility_repeats"], flush=True)
""")


def test_two_processes_through_the_server_lose_no_update(chroma_server):
    host, port = chroma_server
    cfg = TrajectoryStoreConfig(collection_prefix="conc", compact_after_events=6, compaction_grace_s=3.0)
    store = TrajectoryStore(host=host, port=port, namespace="shared", config=cfg, embedder=HashEmbedder())
    ids = store.add_many([make_traj(i, f"question number {i} about topic {i}") for i in range(N_MEM)])
    # process A applies tasks 0..59, process B tasks 30..89: 30 tasks overlap and must count once
    ranges = [(0, 60), (30, 90)]
    procs = [subprocess.Popen([sys.executable, "-c", UPDATER, host, str(port), "shared", "conc", str(lo), str(hi),
                               *ids], env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for lo, hi in ranges]
    outs = [p.communicate(timeout=240) for p in procs]
    for p, (out, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err[-3000:]
        assert out.startswith("done")
    tasks = range(0, 90)
    for rec in store.get(ids):
        assert rec.usage_count == len(tasks), rec
        assert rec.success_count == sum(_reward(t) > 0 for t in tasks)
        assert -1.0 <= rec.q_value <= 1.0
    # compaction did run in both processes (events folded into a base), and nothing was lost doing it
    metas = store._collection("shared", create=False).get(ids=ids, include=["metadatas"])["metadatas"]
    assert all(any(k.startswith("b.") for k in m) for m in metas)
    # a repeat of any task, from anywhere, still counts once
    assert store.update_utilities("task-3", ids, 1.0).applied == ()


WRITER = textwrap.dedent("""
    import sys
    from memory_helpers import HashEmbedder, make_traj
    from miaflow.memory import TrajectoryStore
    store = TrajectoryStore(sys.argv[1], embedder=HashEmbedder())
    first = store.add_many([make_traj(f"seed{i}", f"seed question {i} about things") for i in range(5)])
    b = 0
    while True:
        ids = store.add_many([make_traj(f"{b}-{i}", f"batch {b} question {i} on subject {b * 20 + i}")
                              for i in range(20)])
        print("ack", *ids, flush=True)
        store.update_utilities(f"task-{b}", first, 1.0 if b % 2 else -1.0)
        print("upd", b, flush=True)
        b += 1
""")


def test_sigkilled_writer_keeps_every_acknowledged_write(tmp_path):
    path = tmp_path / "store"
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], env=ENV, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    acked: list[str] = []
    updates = 0
    deadline = time.time() + 180
    try:
        while updates < 6 and time.time() < deadline:
            line = proc.stdout.readline()
            if not line:
                pytest.fail(f"writer died: {proc.stderr.read()[-3000:]}")
            if line.startswith("ack"):
                acked += line.split()[1:]
            elif line.startswith("upd"):
                updates += 1
        time.sleep(0.05)  # let it get into the middle of the next batch
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert updates >= 6, "the writer was too slow to reach six batches"
    store = TrajectoryStore(path, embedder=HashEmbedder())
    assert len(store.get(acked)) == len(acked) and store.count() >= len(acked) + 5
    # each task's utility update is all or nothing across the memories it touched
    metas = store._collection("default", create=False).get(include=["metadatas"], where={"task_id": {"$in": [
        f"task-seed{i}" for i in range(5)]}})["metadatas"]
    assert len(metas) == 5
    for b in range(updates + 2):
        present = {event_key(f"task-{b}") in m for m in metas}
        assert len(present) == 1, f"task-{b} was applied to only some memories"
    assert all(event_key(f"task-{b}") in metas[0] for b in range(updates))
    # and the store is usable
    r = store.recall("batch 2 question 3 on subject 43")
    best = max(r.all, key=lambda m: m.similarity)
    assert best.record.id == acked[2 * 20 + 3] and best.similarity > 0.999
    new = store.add(make_traj("after", "a question written after the crash"))
    assert store.get(new)[0].question == "a question written after the crash"
