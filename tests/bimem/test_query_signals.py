"""The query-side signals of fact seeding: semantic expansion over the conversation's vocabulary (persisted,
repaired, purged on deletion), dates named in the question, and the penalty on turns that only ask."""

from __future__ import annotations

import datetime as dt
import logging

import pytest

from miaflow.memory.bimem import BiMemConfig, BiMemory
from miaflow.memory.bimem._dates import DateSpan, in_spans, parse_time, query_spans
from miaflow.memory.bimem.vocabulary import Vocabulary

from .conftest import CONVERSATION, SECRET, TOM_EXTRA

S_MAY, S_JUNE = "10:00 am on 2 May, 2023", "9:15 am on 14 June, 2023"


def _rank(mem: BiMemory, query: str, turn: str, mode: str = "flat") -> int:
    turns = [t for it in mem.retrieve(query, "talk", k=20, mode=mode) for t in it.turn_ids]
    return turns.index(turn) if turn in turns else 99


def _vocab_words(mem: BiMemory, conversation: str) -> list[str]:
    from miaflow.memory.bimem import _persist

    return Vocabulary.load(_persist.conversation_dir(mem._state_dir, conversation) / "vocab.npz").words


def test_expansion_bridges_a_kind_and_its_instances(tmp_path, embedder):
    """"crafts" is never said; "pottery" is. Expansion finds the pottery turns lexically, with their similarity."""
    from miaflow.memory.bimem.retrieval import _expandable, _expansion

    mem = BiMemory(tmp_path, embedder=embedder)
    mem.add_messages("talk", CONVERSATION)
    st = mem._states["talk"]
    words = _expandable(st, "What crafts does Ann do?", mem.config)
    assert words == ["crafts"]  # "ann" is a speaker, "what"/"does" are stop words
    terms = _expansion(st, words, mem.config, mem._word_vectors(words))
    assert "pottery" in terms and 0.5 <= terms["pottery"] <= 1.0
    assert _expansion(st, ["crafts"], mem.config, {}) == {}  # an unknown word without a vector expands to nothing
    off = BiMemory(tmp_path / "off", embedder=embedder, config=BiMemConfig(expansion_weight=0.0))
    off.add_messages("talk", CONVERSATION)
    q = "What crafts does Ann do?"
    assert _rank(mem, q, "D1:5") <= 1
    on_score = next(i.score for i in mem.retrieve(q, "talk", k=20, mode="flat") if i.turn_ids == ("D1:5",))
    off_score = next(i.score for i in off.retrieve(q, "talk", k=20, mode="flat") if i.turn_ids == ("D1:5",))
    assert on_score > off_score + 0.05  # the lexical half now counts the pottery turn


def test_common_words_names_and_months_are_not_expanded(tmp_path, embedder):
    from miaflow.memory.bimem.retrieval import _expandable

    mem = BiMemory(tmp_path, embedder=embedder, config=BiMemConfig(expansion_max_df=0.1))
    mem.add_messages("talk", CONVERSATION)
    st = mem._states["talk"]
    # "pottery" is in 3 of 16 facts (> 10%); Tom is a speaker; June is a month
    assert _expandable(st, "Did Tom talk about pottery in June?", mem.config) == ["talk"]


def test_vocabulary_persists_is_repaired_and_forgets_deleted_words(tmp_path, embedder, caplog):
    mem = BiMemory(tmp_path, embedder=embedder)
    mem.add_messages("talk", CONVERSATION + TOM_EXTRA)
    words = set(_vocab_words(mem, "talk"))
    assert {"pottery", "greyhound", SECRET} <= words
    before = mem.retrieve("What crafts does Ann do?", "talk", k=5)
    # a corrupt vocabulary file is derived data: reopening re-embeds it and loses nothing
    from miaflow.memory.bimem import _persist

    path = _persist.conversation_dir(mem._state_dir, "talk") / "vocab.npz"
    path.write_bytes(b"not a zip file")
    with caplog.at_level(logging.WARNING):
        again = BiMemory(tmp_path, embedder=embedder)
    assert "unreadable" in caplog.text
    assert set(_vocab_words(again, "talk")) == words
    after = again.retrieve("What crafts does Ann do?", "talk", k=5)
    assert [i.turn_ids for i in after] == [i.turn_ids for i in before]
    assert [i.score for i in after] == pytest.approx([i.score for i in before], abs=1e-3)
    # deleting a speaker drops the words only they used, in RAM and on disk
    again.delete_speaker("talk", "Tom")
    left = set(_vocab_words(again, "talk"))
    assert SECRET not in left and "greyhound" in left and "trams" not in left
    assert SECRET not in again._states["talk"].vocab


def test_dates_in_questions_and_turn_times():
    assert parse_time("7:49 pm on 20 May, 2022") == dt.date(2022, 5, 20)
    assert parse_time("2023-05-08T13:56:00") == dt.date(2023, 5, 8)
    assert parse_time("on 31 February, 2023") is None and parse_time("") is None
    day = query_spans("What did Tim say about his injury on 16 November, 2023?")
    assert day == [DateSpan(dt.date(2023, 11, 16), dt.date(2023, 11, 16))]
    assert query_spans("What book did Tim finish on December 8th, 2023?")[0].start == dt.date(2023, 12, 8)
    month = query_spans("Which tournament did Nate win in the beginning of November 2022?")
    assert month == [DateSpan(dt.date(2022, 11, 1), dt.date(2022, 11, 30))]
    assert query_spans("What kind of deal did John get in December?") == [DateSpan(month=12)]
    assert query_spans("What did John say about May?") == [] and query_spans("Where is Ann from?") == []
    assert in_spans(dt.date(2022, 12, 5), month, 2, 7) and not in_spans(dt.date(2022, 12, 9), month, 2, 7)
    assert in_spans(dt.date(2022, 10, 30), month, 2, 7) and not in_spans(None, month, 2, 7)
    assert in_spans(dt.date(2019, 12, 24), [DateSpan(month=12)], 2, 7)


def test_a_named_date_lifts_the_facts_of_that_time(tmp_path, embedder):
    talk = [
        {"id": "D1:1", "speaker": "Ann", "text": "I went to a jazz concert downtown yesterday.", "time": S_MAY,
         "session": 1},
        {"id": "D1:2", "speaker": "Tom", "text": "Nice, I stayed home and cooked.", "time": S_MAY, "session": 1},
        {"id": "D2:1", "speaker": "Ann", "text": "Yesterday I went to a rock concert at the stadium.", "time": S_JUNE,
         "session": 2},
        {"id": "D2:2", "speaker": "Tom", "text": "I was at the beach all day.", "time": S_JUNE, "session": 2},
    ]
    on = BiMemory(tmp_path / "on", embedder=embedder)
    off = BiMemory(tmp_path / "off", embedder=embedder, config=BiMemConfig(date_boost=0.0))
    for mem in (on, off):
        mem.add_messages("talk", talk)
    for q, turn in (("Which concert did Ann go to in June 2023?", "D2:1"),
                    ("Which concert did Ann go to on 2 May, 2023?", "D1:1")):
        assert _rank(on, q, turn, "graph") == 0
        top = on.retrieve(q, "talk", k=1, mode="flat")[0]
        base = next(i for i in off.retrieve(q, "talk", k=4, mode="flat") if i.turn_ids == top.turn_ids)
        assert top.score == pytest.approx(base.score + on.config.date_boost, abs=1e-4)


def test_turns_that_only_ask_rank_below_answers(tmp_path, embedder):
    mem = BiMemory(tmp_path, embedder=embedder)
    mem.add_messages("talk", CONVERSATION)
    st = mem._states["talk"]
    asking = {st.facts[f].turn_ids[0] for f in st.question_facts()}
    assert asking == {"D1:1", "D2:4", "D3:2"}
    off = BiMemory(tmp_path / "off", embedder=embedder, config=BiMemConfig(question_penalty=0.0))
    off.add_messages("talk", CONVERSATION)
    q = "Where would Tom live if he had to move out?"
    penalised = {i.turn_ids[0]: i.score for i in mem.retrieve(q, "talk", k=16, mode="flat")}
    plain = {i.turn_ids[0]: i.score for i in off.retrieve(q, "talk", k=16, mode="flat")}
    assert penalised["D2:4"] == pytest.approx(plain["D2:4"] - 0.1, abs=1e-4)
    assert penalised["D2:5"] == pytest.approx(plain["D2:5"], abs=1e-4)
    assert _rank(mem, q, "D2:5", "graph") < _rank(mem, q, "D2:4", "graph")


def test_new_settings_are_validated():
    for bad in (dict(expansion_weight=-1), dict(date_window=(1,)), dict(session_top=0), dict(expansion_max_df=2)):
        with pytest.raises(ValueError, match="invalid BiMemConfig"):
            BiMemConfig(**bad)
