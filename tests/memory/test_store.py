"""The trajectory store on both backends (embedded folder, real Chroma server): write rules, namespaces, recall,
utility updates, deletion, capacity, stats, export/import, and bad input that changes nothing."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
from memory_helpers import make_traj

from miaflow.errors import InvalidInputError, MemoryStoreError
from miaflow.memory import MemoryRecord, Trajectory, TrajectoryStore, TrajectoryStoreConfig
from miaflow.memory.store import MARKER_FILE

QS = [
    "who directed the film jaws",
    "what is the capital city of australia",
    "when was the eiffel tower built",
    "which river flows through cairo egypt",
]


def _snapshot(store, namespace=None):
    return sorted((r.id, r.question, r.summary, r.judgement, r.q_value, r.usage_count)
                  for r in store.iter_records(namespace))


def test_add_get_and_recall_split(store):
    ids = store.add_many([make_traj(0, QS[0]), make_traj(1, QS[1], judgement="incorrect"),
                          make_traj(2, QS[2], judgement="unknown")])
    assert len(set(ids)) == 3 and store.count() == 3
    rec = store.get(ids[1])[0]
    assert isinstance(rec, MemoryRecord) and rec.judgement == "incorrect" and rec.q_value == 0.0
    assert rec.summary.startswith("1. search find the entity") and rec.evidence_ids == ("doc-1",)
    r = store.recall("who directed jaws the film")
    assert r.used_memory and [m.record.id for m in r.positive] == [ids[0]]
    assert r.positive[0].similarity > 0.5 and r.ids[0] == ids[0]
    r2 = store.recall("capital city of australia")
    assert [m.record.id for m in r2.negative] == [ids[1]] and r2.negative[0].record.answer == "an answer"
    assert [m.record.id for m in store.recall("eiffel tower built when").neutral] == [ids[2]]


def test_tau_fallback_uses_no_memory(store):
    store.add(make_traj(0, QS[0]))
    r = store.recall("quantum chromodynamics lattice gauge")
    assert not r.used_memory and r.ids == [] and r.best_similarity is not None
    assert store.counters["recalls_empty"] >= 1


def test_recall_on_a_new_namespace_is_empty(store):
    assert store.recall("anything at all", namespace="never-written").ids == []


def test_write_rules_for_near_duplicates(store):
    first = store.add(make_traj(0, QS[0], judgement="incorrect"))
    # an incorrect entry is replaced, under the same id, with a fresh utility
    store.update_utilities("t-x", [first], -1.0)
    kept = store.add(make_traj(1, QS[0], judgement="correct", answer="Steven Spielberg, the director"))
    assert kept == first and store.count() == 1
    rec = store.get(first)[0]
    assert rec.judgement == "correct" and rec.usage_count == 0 and rec.q_value == 0.0 and rec.task_id == "task-1"
    # a correct entry is kept against an incorrect newcomer and against a longer correct one
    assert store.add(make_traj(2, QS[0], judgement="incorrect")) == first
    assert store.add(make_traj(3, QS[0], answer="Steven Spielberg, the director of the 1975 film")) == first
    assert store.get(first)[0].task_id == "task-1"
    # ... but replaced by a shorter correct one
    assert store.add(make_traj(4, QS[0], answer="Spielberg")) == first
    assert store.get(first)[0].answer == "Spielberg" and store.count() == 1
    assert store.counters["replaced"] == 2 and store.counters["duplicates_kept"] == 2


def test_write_rules_inside_one_batch(store):
    ids = store.add_many([make_traj(0, QS[1], judgement="incorrect"), make_traj(1, QS[1]), make_traj(2, QS[2])])
    assert ids[0] == ids[1] != ids[2] and store.count() == 2
    assert store.get(ids[0])[0].judgement == "correct"


def test_duplicate_rule_threshold_is_configurable(make_store):
    s = make_store(config=TrajectoryStoreConfig(duplicate_threshold=None))
    s.add_many([make_traj(0, QS[0]), make_traj(1, QS[0])])
    assert s.count() == 2


def test_namespaces_never_leak(make_store):
    a = make_store("alice")
    b = make_store("bob")
    a.add(make_traj(0, QS[0]))
    b.add(make_traj(1, QS[1]))
    assert a.recall(QS[1]).ids == [] and b.recall(QS[0]).ids == []
    assert {"alice", "bob"} <= set(a.namespaces())
    ida = a.recall(QS[0]).ids
    with pytest.raises(InvalidInputError):
        b.update_utilities("t", ida, 1.0)  # alice's id is unknown in bob's namespace
    with pytest.raises(InvalidInputError):
        b.delete(ids=ida)
    assert a.get(ida)[0].usage_count == 0
    # odd namespace names map to distinct valid collections
    a.add(make_traj(2, QS[2]), namespace="team/x y")
    assert a.count("team/x y") == 1 and a.count("team-x-y") == 0


def test_update_utilities_rule_counters_and_idempotency(store):
    ids = store.add_many([make_traj(i, q) for i, q in enumerate(QS[:3])])
    up = store.update_utilities("task-a", ids[:2], 1.0)
    assert up.applied == tuple(ids[:2]) and up.q_values[ids[0]] == pytest.approx(0.3)
    again = store.update_utilities("task-a", ids[:2], 1.0)
    assert again.applied == () and again.repeated == tuple(ids[:2])
    store.update_utilities("task-b", [ids[0]], -0.5)
    r0, r1, r2 = store.get(ids)
    assert r0.q_value == pytest.approx(0.3 + 0.3 * (-0.5 - 0.3)) and r0.usage_count == 2 and r0.success_count == 1
    assert r1.q_value == pytest.approx(0.3) and r1.usage_count == 1 and r1.last_used_at is not None
    assert r2.usage_count == 0 and r2.last_used_at is None
    assert store.update_utilities("task-c", [], 1.0).applied == ()


def test_compaction_on_the_store_keeps_counts(make_store):
    s = make_store(config=TrajectoryStoreConfig(compact_after_events=4, compaction_grace_s=0.0))
    mid = s.add(make_traj(0, QS[0]))
    q = 0.0
    for i in range(15):
        r = 1.0 if i % 3 else -1.0
        s.update_utilities(f"t{i}", [mid], r)
        q += 0.3 * (r - q)
    s.update_utilities("t0", [mid], 1.0)  # a repeat of a folded task
    rec = s.get(mid)[0]
    assert rec.usage_count == 15 and rec.q_value == pytest.approx(q) and rec.success_count == 10


def test_delete_by_id_task_and_namespace_leaves_nothing(store):
    ids = store.add_many([make_traj(i, q) for i, q in enumerate(QS)])
    other = store.add(make_traj(9, QS[0]), namespace="other")
    assert store.delete(ids=[ids[0]]) == 1
    with pytest.raises(InvalidInputError):
        store.get(ids[0])
    assert ids[0] not in store.recall(QS[0]).ids
    assert store.delete(task_id="task-1") == 1 and store.count() == 2
    assert ids[1] not in [r.id for r in store.iter_records()]
    assert store.delete(namespace="other") == 1
    assert "other" not in store.namespaces() and store.recall(QS[0], namespace="other").ids == []
    with pytest.raises(InvalidInputError):
        store.get(other, namespace="other")
    assert store.delete(task_id="no-such-task") == 0
    with pytest.raises(InvalidInputError):
        store.delete()


def test_capacity_evicts_low_utility_and_disuse(make_store):
    s = make_store(config=TrajectoryStoreConfig(max_records=4, evict_fraction=0.0))
    ids = s.add_many([make_traj(i, q) for i, q in enumerate(QS)])
    s.update_utilities("good", [ids[0], ids[1]], 1.0)
    s.update_utilities("bad", [ids[2]], -1.0)
    s.add(make_traj(5, "how many moons does jupiter have"))
    left = {r.id for r in s.iter_records()}
    assert len(left) == 4 and ids[2] not in left and {ids[0], ids[1]} <= left
    assert s.counters["evicted"] == 1


def test_stats(store):
    ids = store.add_many([make_traj(0, QS[0]), make_traj(1, QS[1], judgement="incorrect")])
    store.update_utilities("t", ids, 1.0)
    st = store.stats()
    ns = st["namespaces"]["default"]
    assert st["records"] == 2 and ns["correct"] == 1 and ns["incorrect"] == 1
    assert ns["mean_q"] == pytest.approx(0.3) and ns["total_usage"] == 2 and ns["mean_compression_ratio"] > 0
    assert st["counters"]["added"] == 2


def test_export_import_roundtrip_keeps_utilities_and_idempotency(store, tmp_path):
    ids = store.add_many([make_traj(i, q) for i, q in enumerate(QS[:3])])
    store.update_utilities("t1", ids[:2], 1.0)
    path = tmp_path / "mem.jsonl"
    assert store.export_jsonl(path) == 3
    assert store.import_jsonl(path, namespace="copy") == 3
    copy = {r.id: r for r in store.iter_records("copy")}
    assert {i: (r.q_value, r.usage_count) for i, r in copy.items()} == {
        r.id: (r.q_value, r.usage_count) for r in store.iter_records()}
    assert store.update_utilities("t1", ids[:2], 1.0, namespace="copy").applied == ()
    assert ids[0] in store.recall(QS[0], namespace="copy").ids
    # importing again overwrites in place, no duplicates
    store.update_utilities("t2", [ids[2]], 1.0, namespace="copy")
    store.import_jsonl(path, namespace="copy")
    assert store.count("copy") == 3 and store.get(ids[2], namespace="copy")[0].usage_count == 0


def test_epsilon_greedy_explores(make_store):
    s = make_store(config=TrajectoryStoreConfig(epsilon=1.0, seed=0, k2=1, delta=-1.0, tau=-1.0))
    s.add_many([make_traj(i, q) for i, q in enumerate(QS)])
    picks = {tuple(s.recall(QS[0]).ids) for _ in range(30)}
    assert len(picks) > 1 and s.counters["recalls_explored"] == 30
    assert all(m.explored for m in s.recall(QS[0]).all)


# ---------------------------------------------------------------------------- bad input changes nothing
def test_bad_input_is_rejected_and_changes_nothing(store, tmp_path):
    ids = store.add_many([make_traj(i, q) for i, q in enumerate(QS[:2])])
    store.update_utilities("t", ids, 0.5)
    before = _snapshot(store)
    for bad in ("", "   ", None, 3):
        with pytest.raises(InvalidInputError):
            store.recall(bad)  # type: ignore[arg-type]
    for reward in (math.nan, math.inf, -math.inf, 1.5, "x"):
        with pytest.raises(InvalidInputError):
            store.update_utilities("t-new", ids, reward)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError):
        store.update_utilities("t-new", [ids[0], "no-such-id"], 1.0)
    with pytest.raises(InvalidInputError):
        store.update_utilities("", ids, 1.0)
    with pytest.raises(InvalidInputError):
        store.delete(ids=[ids[0], "no-such-id"])
    with pytest.raises(InvalidInputError):
        store.get(["no-such-id"])
    with pytest.raises(InvalidInputError):
        Trajectory(task_id="t", question="  ")
    with pytest.raises(InvalidInputError):
        Trajectory(task_id="t", question="q", reward=math.nan)
    with pytest.raises(InvalidInputError):
        store.add_many([make_traj(7, QS[3]), "not a trajectory"])  # type: ignore[list-item]
    with pytest.raises(InvalidInputError):
        store.add(replace(store.get(ids[0])[0]))  # an id that is already stored
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "z", "question": "fine", "judgement": "correct"}\n{"broken json\n')
    with pytest.raises(InvalidInputError):
        store.import_jsonl(bad)
    assert _snapshot(store) == before and store.count() == 2


def test_folder_that_is_not_a_store(tmp_path, hash_embedder):
    other = tmp_path / "photos"
    other.mkdir()
    (other / "cat.jpg").write_bytes(b"\xff\xd8")
    with pytest.raises(MemoryStoreError, match="not a miaflow trajectory store"):
        TrajectoryStore(other, embedder=hash_embedder)
    assert sorted(p.name for p in other.iterdir()) == ["cat.jpg"]
    f = tmp_path / "file.txt"
    f.write_text("x")
    with pytest.raises(MemoryStoreError):
        TrajectoryStore(f, embedder=hash_embedder)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / MARKER_FILE).write_text("{not json")
    with pytest.raises(MemoryStoreError):
        TrajectoryStore(broken, embedder=hash_embedder)
    with pytest.raises(InvalidInputError):
        TrajectoryStore(embedder=hash_embedder)


def test_unreachable_server_is_a_clear_error():
    with pytest.raises(MemoryStoreError, match="could not connect"):
        TrajectoryStore(host="127.0.0.1", port=9)


def test_reopening_an_embedded_store_keeps_everything(tmp_path, hash_embedder):
    s = TrajectoryStore(tmp_path / "s", embedder=hash_embedder)
    ids = s.add_many([make_traj(i, q) for i, q in enumerate(QS)])
    s.update_utilities("t", ids[:1], 1.0)
    s.close()
    s2 = TrajectoryStore(tmp_path / "s", embedder=hash_embedder)
    assert s2.count() == 4 and s2.get(ids[0])[0].q_value == pytest.approx(0.3)


def test_real_embedder_recalls_paraphrases(tmp_path):
    s = TrajectoryStore(tmp_path / "real")
    ids = s.add_many([make_traj(0, "Who directed the movie Jaws?"),
                      make_traj(1, "What is the boiling point of water at sea level?")])
    r = s.recall("Which film director made Jaws?")
    assert r.ids[:1] == [ids[0]] and ids[1] not in r.ids


def test_namespace_deleted_by_another_client(make_store):
    a, b = make_store(), make_store()
    a.add(make_traj(0, QS[0]))
    assert a.recall(QS[0]).ids
    b.delete(namespace="default")
    try:
        assert a.recall(QS[0]).ids == []
    except MemoryStoreError as e:  # the first call may see the stale handle; it is retryable and then clean
        assert e.is_retryable()
        assert a.recall(QS[0]).ids == []


def test_collections_named_by_an_earlier_release_stay_readable(tmp_path, hash_embedder):
    """Plain short namespaces keep their collection name; an odd one written under the old 8-hex name is found
    through its stored namespace, and a cut old name that belongs to another namespace is never used."""
    from miaflow.memory._chroma import open_client
    from miaflow.memory._namespace import collection_name, legacy_collection_name

    assert collection_name("mia-traj", "default") == legacy_collection_name("mia-traj", "default")
    path = tmp_path / "old"
    store = TrajectoryStore(path, embedder=hash_embedder)
    store.close()
    client = open_client(path)
    old = client.create_collection(legacy_collection_name("mia-traj", "user:alice"), embedding_function=None,
                                   metadata={"hnsw:space": "cosine", "namespace": "user:alice",
                                             "format": "miaflow-trajectory-store"})
    rec = store._to_record(make_traj(0, QS[0]), "user:alice")
    from miaflow.memory._codec import to_metadata

    old.add(ids=[rec.id], embeddings=hash_embedder.embed([rec.question]), metadatas=[to_metadata(rec)])
    with TrajectoryStore(path, embedder=hash_embedder, namespace="user:alice") as again:
        assert again.count() == 1 and again.recall(QS[0]).ids == [rec.id]
        again.add(make_traj(1, QS[1]))
        assert again.count() == 2  # written to the collection it found
