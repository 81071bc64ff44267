"""The trajectory store's batch interface (``_iter_records`` / ``_stored`` / ``_put_records``), which export,
import and stats use instead of the store's Chroma plumbing: pages, raw metadata with utility keys, embeddings,
overwrites, and a bad record that writes nothing. Run on both backends."""

from __future__ import annotations

import json

import numpy as np
import pytest
from memory_helpers import make_traj

from miaflow._io import atomic_open
from miaflow.errors import InvalidInputError

QS = [f"which town in region {i} has the oldest bridge" for i in range(7)]


def test_pages_carry_records_metadata_and_embeddings(store):
    ids = store.add_many([make_traj(i, q) for i, q in enumerate(QS)])
    store.update_utilities("t1", ids[:3], 1.0)
    pages = list(store._iter_records(batch=3, embeddings=True))
    assert [len(p) for p in pages] == [3, 3, 1]
    rows = {s.record.id: s for p in pages for s in p}
    assert set(rows) == set(ids)
    for s in rows.values():
        assert s.embedding is not None and s.embedding.shape == store.embedder.embed([QS[0]])[0].shape
        assert np.allclose(s.embedding, store.embedder.embed([s.record.question])[0], atol=1e-5)
    used = [rows[i] for i in ids[:3]]
    assert all(s.utility and s.record.usage_count == 1 for s in used)
    assert all(not rows[i].utility for i in ids[3:])
    assert list(store._iter_records(batch=3, namespace="nothing-here")) == []


def test_put_records_copies_exactly_and_overwrites(store):
    ids = store.add_many([make_traj(i, q) for i, q in enumerate(QS[:3])])
    store.update_utilities("t1", ids[:2], 1.0)
    stored = [s for p in store._iter_records() for s in p]
    copies = [store._stored(s.record.id, s.meta, "copy") for s in stored]  # no embedding: embedded again
    assert store._put_records(copies) == 3
    got = {r.id: (r.question, r.q_value, r.usage_count) for r in store.iter_records("copy")}
    assert got == {r.id: (r.question, r.q_value, r.usage_count) for r in store.iter_records()}
    assert store.update_utilities("t1", ids[:2], 1.0, namespace="copy").applied == ()  # idempotency keys kept
    # an overwrite drops utility keys the new metadata lacks
    store.update_utilities("t2", [ids[2]], 1.0, namespace="copy")
    fresh = next(s for s in stored if s.record.id == ids[2])
    store._put_records([store._stored(fresh.record.id, fresh.meta, "copy", fresh.embedding)])
    assert store.count("copy") == 3 and store.get(ids[2], namespace="copy")[0].usage_count == 0


def test_a_bad_record_is_refused_and_export_import_write_nothing(store, tmp_path):
    store.add_many([make_traj(i, q) for i, q in enumerate(QS[:2])])
    good = next(s for p in store._iter_records() for s in p)
    with pytest.raises(InvalidInputError):
        store._stored("x", {**good.meta, "rec": json.dumps({"question": "  "})})
    with pytest.raises((InvalidInputError, ValueError)):
        store._stored("x", {**good.meta, "rec": json.dumps({"question": "q", "reward": 5.0})})
    with pytest.raises(InvalidInputError):
        store._stored("x", {**good.meta, "stray": "value"})
    path = tmp_path / "mem.jsonl"
    assert store.export_jsonl(path, embeddings=True) == 2
    lines = path.read_text().splitlines()
    assert all(len(json.loads(line)["embedding"]) > 0 for line in lines)
    bad = tmp_path / "bad.jsonl"
    bad.write_text(lines[0] + "\n" + json.dumps({**json.loads(lines[1]), "reward": 9}) + "\n")
    with pytest.raises(InvalidInputError, match=r"bad.jsonl:2"):
        store.import_jsonl(bad, namespace="copy")
    assert store.count("copy") == 0
    assert store.import_jsonl(path, namespace="copy") == 2 and store.count("copy") == 2


def test_a_failed_export_keeps_the_old_file(store, tmp_path, monkeypatch):
    store.add_many([make_traj(0, QS[0])])
    (tmp_path / "out").mkdir()
    path = tmp_path / "out" / "mem.jsonl"
    path.write_text("old\n")

    def broken(*a, **k):
        yield [next(s for p in type(store)._iter_records(store) for s in p)]
        raise RuntimeError("disk gone")

    monkeypatch.setattr(store, "_iter_records", broken)
    with pytest.raises(RuntimeError):
        store.export_jsonl(path)
    assert path.read_text() == "old\n" and [p.name for p in path.parent.iterdir()] == ["mem.jsonl"]
    with pytest.raises(ValueError, match="mode"):
        with atomic_open(path, "a"):
            pass
