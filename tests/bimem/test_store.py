"""Persistence round trip, deletion everywhere (RAM, JSON, Chroma), and clear errors for malformed input."""

from __future__ import annotations

import json

import pytest

from miaflow.errors import InvalidInputError, MemoryStoreError
from miaflow.memory.bimem import BiMemory, load_locomo, parse_messages

from .conftest import CONVERSATION, SECRET, TOM_EXTRA


def _all_text(mem: BiMemory) -> str:
    """Every byte under the memory folder (JSON state and Chroma's files, its SQLite log included)."""
    return "\n".join(p.read_bytes().decode("utf-8", "replace") for p in mem.root.rglob("*") if p.is_file())


def test_persistence_round_trip(tmp_path, embedder):
    mem = BiMemory(tmp_path, embedder=embedder)
    mem.add_messages("talk", CONVERSATION[:6])
    mem.add_messages("talk", CONVERSATION[6:])
    q = "In which city does Pixel's owner live?"
    before = {m: mem.retrieve(q, "talk", k=6, mode=m) for m in ("graph", "top_down")}
    n_vec = mem.vector_count()
    del mem
    again = BiMemory(tmp_path, embedder=embedder)
    assert again.conversations() == ["talk"]
    assert again.vector_count() == n_vec
    assert [t.id for t in again.turns("talk")] == [m["id"] for m in CONVERSATION]
    for m, items in before.items():
        got = again.retrieve(q, "talk", k=6, mode=m)
        assert [(i.id, i.turn_ids) for i in got] == [(i.id, i.turn_ids) for i in items]
        assert [i.score for i in got] == pytest.approx([i.score for i in items], abs=1e-5)
    # and it keeps growing incrementally after a restart
    assert again.add_messages("talk", TOM_EXTRA) == 2
    assert BiMemory(tmp_path, embedder=embedder).retrieve(f"{SECRET} club", "talk", k=1)[0].turn_ids == ("D4:1",)


def test_reopen_repairs_missing_vectors(tmp_path, embedder):
    mem = BiMemory(tmp_path, embedder=embedder)
    mem.add_messages("talk", CONVERSATION)
    fid = mem.facts("talk")[0].id
    mem._col.delete(ids=[fid])  # as if a crash lost a vector
    again = BiMemory(tmp_path, embedder=embedder)
    assert again._col.get(ids=[fid])["ids"] == [fid]


def test_delete_speaker_leaves_nothing(tmp_path, embedder):
    mem = BiMemory(tmp_path, embedder=embedder)
    mem.add_messages("talk", CONVERSATION + TOM_EXTRA)
    mem.add_messages("other", [{"speaker": "Tom", "text": "Unrelated chat about trains."}])
    assert SECRET in _all_text(mem)
    removed = mem.delete_speaker("talk", "Tom")
    assert removed == sum(m["speaker"] == "Tom" for m in CONVERSATION + TOM_EXTRA)
    tom_texts = [m["text"] for m in CONVERSATION + TOM_EXTRA if m["speaker"] == "Tom"]
    for mem_view in (mem, BiMemory(tmp_path, embedder=embedder)):
        text = _all_text(mem_view)
        assert SECRET not in text
        assert not any(t in text for t in tom_texts)
        assert all(t.speaker == "Ann" for t in mem_view.turns("talk"))
        assert mem_view.persona("Tom", "talk") == ""
        assert all(s.speakers == ("Ann",) for s in mem_view.scenes("talk"))
        assert all(it.speaker != "Tom" for it in mem_view.retrieve(f"{SECRET} club", "talk", k=20, mode="flat"))
        assert set(mem_view._col.get(where={"conversation_id": "talk"})["ids"]) <= {f.id for f in mem_view.facts("talk")}
    assert mem.persona("Tom", "other")  # the same speaker elsewhere is untouched


def test_delete_conversation_leaves_nothing(tmp_path, embedder):
    mem = BiMemory(tmp_path, embedder=embedder)
    mem.add_messages("talk", CONVERSATION + TOM_EXTRA)
    mem.add_messages("other", [{"speaker": "Eve", "text": "Hello there."}])
    mem.delete_conversation("talk")
    assert mem.conversations() == ["other"]
    assert mem.vector_count("talk") == 0
    assert SECRET not in _all_text(mem) and "Lisbon" not in _all_text(mem)
    again = BiMemory(tmp_path, embedder=embedder)
    assert again.conversations() == ["other"] and again.vector_count("talk") == 0
    with pytest.raises(InvalidInputError):
        again.retrieve("Lisbon", "talk")
    assert again.retrieve("Lisbon")[0].conversation_id == "other"


def test_corrupt_state_is_a_clear_error(tmp_path, embedder):
    mem = BiMemory(tmp_path, embedder=embedder)
    mem.add_messages("talk", CONVERSATION[:3])
    (tmp_path / "bimem" / "default" / "manifest.json").write_text("{not json")
    with pytest.raises(MemoryStoreError, match="corrupt"):
        BiMemory(tmp_path, embedder=embedder)


def _sample(**conv):
    base = {"speaker_a": "Ann", "speaker_b": "Tom", "session_1_date_time": "1 May 2023",
            "session_1": [{"speaker": "Ann", "dia_id": "D1:1", "text": "Hi"}]}
    return {"sample_id": "c1", "conversation": {**base, **conv},
            "qa": [{"question": "Q?", "answer": 2022, "evidence": ["D:1:1", "D1:1; D1:2", "D"], "category": 2}]}


def test_locomo_loading_and_evidence_repair(tmp_path):
    path = tmp_path / "ok.json"
    path.write_text(json.dumps([_sample()]))
    (conv,) = load_locomo(path)
    assert conv.sample_id == "c1" and conv.speakers == ("Ann", "Tom")
    assert conv.turns[0].time == "1 May 2023" and conv.turns[0].session == 1
    assert conv.qa[0].answer == "2022" and conv.qa[0].evidence == ("D1:1", "D1:2")


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (b"\xff\xfe not utf-8", "UTF-8"),
        (b"[{", "not valid JSON"),
        (b"[]", "non-empty JSON list"),
        (json.dumps([{"sample_id": "c1"}]).encode(), "conversation"),
        (json.dumps([{"conversation": {"speaker_a": "A"}}]).encode(), "no session_N"),
        (json.dumps([_sample(session_1="oops")]).encode(), "must be a list"),
        (json.dumps([_sample(session_1=[{"text": "no speaker"}])]).encode(), "speaker"),
        (json.dumps([_sample(session_1=[{"speaker": "A", "text": "x", "dia_id": "D1:1"},
                                        {"speaker": "B", "text": "y", "dia_id": "D1:1"}])]).encode(), "duplicate"),
    ],
)
def test_malformed_locomo_files(tmp_path, content, match):
    path = tmp_path / "bad.json"
    path.write_bytes(content)
    with pytest.raises(InvalidInputError, match=match):
        load_locomo(path)


def test_missing_file_and_bad_messages(tmp_path):
    with pytest.raises(InvalidInputError, match="not found"):
        load_locomo(tmp_path / "nope.json")
    with pytest.raises(InvalidInputError, match="speaker"):
        parse_messages([{"text": "hi"}])
    with pytest.raises(InvalidInputError, match="text"):
        parse_messages([{"speaker": "A", "text": 3}])
    with pytest.raises(InvalidInputError, match="mapping"):
        parse_messages(["hello"])
