"""Faults met by a whole research run: a user the conversation memory has never seen, and an evaluator whose
replies cannot be read."""

from __future__ import annotations

import pytest
from _stores import bimem_embedder
from _tiny import Q
from memory_helpers import HashEmbedder

from miaflow.testing import FakeChatModel

pytestmark = pytest.mark.faults


def test_new_user_with_real_conversation_memory_gets_a_run_through(tmp_path, tiny_index, script):
    from miaflow.memory.bimem import BiMemory
    from miaflow.workflows import ResearchWorkflow

    mem = BiMemory(tmp_path / "conv", embedder=bimem_embedder())
    wf = ResearchWorkflow(planner=FakeChatModel(script), index=tiny_index, conversation_memory=mem)
    res = wf.run(Q, user_id="newuser")
    assert res.answer == "Tulsa"
    assert "newuser" in mem.conversations() and len(mem.turns("newuser")) == 2
    again = wf.run("Who played in Tulsa first?", user_id="newuser")  # now it has something to recall
    assert "Persona of newuser" in again.planner_messages[-1]["content"]
    mem.close()


def test_unreadable_evaluators_store_an_unjudged_run_with_no_reward(tmp_path, tiny_index, script):
    from miaflow.memory import TrajectoryStore
    from miaflow.workflows import ResearchWorkflow

    def garbage_judge(messages, cfg):  # noqa: ANN001
        text = messages[-1]["content"]
        return "no idea" if "score from 0" in text else script(messages, cfg)

    store = TrajectoryStore(tmp_path / "s", embedder=HashEmbedder())
    wf = ResearchWorkflow(planner=FakeChatModel(garbage_judge), index=tiny_index, store=store)
    res = wf.run(Q)
    assert res.judgement == "unknown"
    (rec,) = list(store.iter_records())
    assert rec.judgement == "unknown" and rec.reward == 0.0
