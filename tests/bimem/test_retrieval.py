"""Retrieval: the two-session question is answered only through spreading activation; every mode returns items
with levels, scores and turn ids."""

from __future__ import annotations

import pytest

from miaflow.errors import InvalidInputError
from miaflow.memory.bimem import MODES, MemoryItem

QUESTION = "In which city does Pixel's owner live?"
NEEDED = {"D1:3", "D3:1"}  # Beth moved to Lisbon (session 1); Beth adopted Pixel (session 3)


def _turns(items: list[MemoryItem]) -> list[str]:
    return list(dict.fromkeys(t for it in items for t in it.turn_ids))


def test_two_sessions_found_only_through_activation(fast_memory):
    k = 5
    flat = fast_memory.retrieve(QUESTION, "talk", k=k, mode="flat")
    graph = fast_memory.retrieve(QUESTION, "talk", k=k, mode="graph")
    assert "D3:1" in _turns(flat)
    assert "D1:3" not in _turns(flat), "the Lisbon turn must not be reachable by similarity alone"
    assert NEEDED <= set(_turns(graph))
    lisbon = next(it for it in graph if "D1:3" in it.turn_ids)
    assert lisbon.extra["via"] in ("entity", "scene"), lisbon.extra


@pytest.mark.parametrize("mode", MODES)
def test_modes_return_levels_scores_and_turn_ids(fast_memory, mode):
    items = fast_memory.retrieve(QUESTION, "talk", k=10, mode=mode)
    assert items
    levels = [it.level for it in items]
    for it in items:
        assert it.level in ("fact", "scene", "persona")
        assert isinstance(it.score, float)
        assert it.conversation_id == "talk"
        assert (it.turn_ids == ()) == (it.level == "persona")
    if mode in ("flat", "graph"):
        assert set(levels) == {"fact"} and len(items) == 10
        scores = [it.score for it in items]
        assert scores == sorted(scores, reverse=True)
    if mode == "top_down":
        assert levels[:2] == ["persona", "persona"] and levels[2:5] == ["scene"] * 3
        assert levels.count("fact") >= 5
    if mode == "bottom_up":
        assert levels[0] == "fact" and "scene" in levels and levels[-1] == "persona"


def test_scenes_and_personas_built(fast_memory):
    scenes = fast_memory.scenes("talk")
    members = [f for s in scenes for f in s.fact_ids]
    assert sorted(members) == sorted(f.id for f in fast_memory.facts("talk"))  # a partition of the facts
    assert all(s.summary for s in scenes)
    assert max(len(s.fact_ids) for s in scenes) <= fast_memory.config.max_scene_size
    assert "Ann:" in fast_memory.persona("Ann") and "Tom:" in fast_memory.persona("Tom")
    assert fast_memory.persona("Nobody") == ""


def test_bad_queries(fast_memory):
    with pytest.raises(InvalidInputError):
        fast_memory.retrieve("  ", "talk")
    with pytest.raises(InvalidInputError):
        fast_memory.retrieve("pottery", "talk", mode="sideways")
    with pytest.raises(InvalidInputError):
        fast_memory.retrieve("pottery", "no-such-conversation")


def test_incremental_add_keeps_old_facts(fast_memory):
    before = {f.id: f for f in fast_memory.facts("talk")}
    added = fast_memory.add_messages("talk", [{"id": "D5:1", "speaker": "Ann", "text": "Pixel learned to sit.",
                                                "session": 5}])
    again = fast_memory.add_messages("talk", [{"id": "D5:1", "speaker": "Ann", "text": "Pixel learned to sit.",
                                                "session": 5}])
    assert (added, again) == (1, 0)
    after = {f.id: f for f in fast_memory.facts("talk")}
    assert all(after[i] == f for i, f in before.items())
    assert len(after) == len(before) + 1


def test_louvain_scenes_and_shared_query_vector(tmp_path, embedder):
    from miaflow.memory.bimem import BiMemConfig, BiMemory

    from .conftest import CONVERSATION

    mem = BiMemory(tmp_path, embedder=embedder, config=BiMemConfig(community="louvain", max_scene_size=4))
    mem.add_messages("talk", CONVERSATION)
    scenes = mem.scenes("talk")
    assert sorted(f for s in scenes for f in s.fact_ids) == sorted(f.id for f in mem.facts("talk"))
    assert max(len(s.fact_ids) for s in scenes) <= 4
    vec = embedder.embed_one(QUESTION)
    assert [i.id for i in mem.retrieve(QUESTION, "talk", query_vector=vec)] == \
        [i.id for i in mem.retrieve(QUESTION, "talk")]
