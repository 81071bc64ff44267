"""One remember path for single runs, group runs and sessions (trajectory store with its own compression settings,
Q-value updates, Bi-Mem), and recalled cases reaching the executor whatever plan runs, each use behind a switch."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "agents"))

from _index import DOCS, HashEmbedder, KeywordIndex  # noqa: E402

from miaflow.memory import CompressionConfig, TrajectoryStore  # noqa: E402
from miaflow.testing import FakeChatModel  # noqa: E402
from miaflow.workflows import ResearchConfig, ResearchWorkflow  # noqa: E402

Q1 = "Where did the supergroup Tinted Windows play its opening show?"
Q2 = "Where did the band of the debut album Tinted Windows first perform?"
GOOD_PLAN = "Thinking: find the show.\n1. Search for supergroup opening show\n2. Answer the question"


class Script:
    """Plans well until ``garble`` is set (then the planner's text is unusable: the default plan runs)."""

    def __init__(self, replan: bool = False):
        self.garble = False
        self.replan = replan

    def __call__(self, messages, cfg):
        text = messages[-1]["content"]
        if "numbered list" in text or "supplementary plan" in text:
            return "### ~~~" if self.garble else GOOD_PLAN
        if "Reply with one word: yes (replan)" in text:
            return "yes" if self.replan else "no"
        if "Documents:" in text and "<answer>" in text:
            return "Tulsa [band]" if "Tulsa" in text else "S-Curve Records [album]"
        return "no"


def _store(path, **kw):
    return TrajectoryStore(path, embedder=HashEmbedder(), **kw)


def _fields(rec):
    return (rec.question, rec.plan, rec.summary, rec.answer, rec.judgement, rec.evidence_ids, rec.cited_ids,
            rec.queries, rec.task_id)


def test_graph_node_and_workflow_remember_write_the_same_record(tmp_path):
    a, b = _store(tmp_path / "a"), _store(tmp_path / "b")
    wf_a = ResearchWorkflow(planner=FakeChatModel(Script(replan=True)), index=KeywordIndex(DOCS), store=a)
    wf_b = ResearchWorkflow(planner=FakeChatModel(Script(replan=True)), index=KeywordIndex(DOCS), store=b)
    res_a = wf_a.run(Q1, gold="Tulsa", task_id="t1")
    res_b = wf_b.run(Q1, gold="Tulsa", task_id="t1", remember=False)
    assert res_a.replan is not None and res_b.memory_id is None and b.count() == 0
    kept = wf_b.remember(res_b)
    assert kept == res_b.memory_id
    rec_a, rec_b = a.get(res_a.memory_id)[0], b.get(kept)[0]
    assert _fields(rec_a) == _fields(rec_b)
    assert "Replan:" in rec_a.plan
    assert rec_a.cited_ids == ("band",) and rec_a.queries == (Q1, "supergroup opening show")
    assert rec_a.judgement == "correct"


def test_store_compression_settings_and_model_are_the_ones_used(tmp_path):
    summarizer = FakeChatModel(["1. search find the show (supergroup opening show -> band)\n2. answer report (Tulsa)"])
    store = _store(tmp_path / "m", compression=CompressionConfig(max_words=14), llm=summarizer)
    wf = ResearchWorkflow(planner=FakeChatModel(Script()), index=KeywordIndex(DOCS), store=store,
                          config=ResearchConfig(reflect=False))
    rec = store.get(wf.run(Q1, gold="Tulsa").memory_id)[0]
    assert rec.compressed_by == "llm" and summarizer.calls  # the store's model, not an extractive summary
    assert len(rec.summary.split()) + sum(len(q.split()) for q in rec.queries) + len(rec.answer.split()) <= 14
    # a workflow-level compression model replaces the store's model, the store's word budget still holds
    own = FakeChatModel(["1. search look it up (q -> band)\n2. read open (band -> Tulsa)\n3. answer give (Tulsa)"])
    store2 = _store(tmp_path / "m2", compression=CompressionConfig(max_words=10))
    wf2 = ResearchWorkflow(planner=FakeChatModel(Script()), index=KeywordIndex(DOCS), store=store2,
                           config=ResearchConfig(reflect=False), compress_model=own)
    rec2 = store2.get(wf2.run(Q1, gold="Tulsa").memory_id)[0]
    assert rec2.compressed_by == "llm" and own.calls and len(rec2.summary.split()) <= 10


def test_default_plan_executor_uses_the_recalled_case_and_its_q_value_moves(tmp_path):
    store = _store(tmp_path / "m")
    script = Script()
    index = KeywordIndex(DOCS)
    wf = ResearchWorkflow(planner=FakeChatModel(script), index=index, store=store,
                          config=ResearchConfig(reflect=False))
    first = wf.run(Q1, gold="Tulsa", task_id="t1")
    assert first.answer == "Tulsa" and first.judgement == "correct"
    script.garble = True
    index.queries.clear()
    second = wf.run(Q2, gold="Tulsa", task_id="t2")
    assert second.plan_fallback  # the planner's text was unusable
    assert first.memory_id in second.used_memory_ids and second.executor_memory_ids == [first.memory_id]
    assert "supergroup opening show" in index.queries  # the recalled query ran
    assert second.answer == "Tulsa" and "band" in second.citations
    assert store.get(first.memory_id)[0].q_value > 0  # Q-values still learn from the run's reward


def _answer_prompts(model):
    return [c[0][-1]["content"] for c in model.calls if "<answer>" in c[0][-1]["content"]]


@pytest.mark.parametrize("planner_on,executor_on", [(True, False), (False, True), (False, False)])
def test_each_use_of_memory_has_its_switch(tmp_path, planner_on, executor_on):
    store = _store(tmp_path / "m")
    script = Script()
    model = FakeChatModel(script)
    cfg = ResearchConfig(reflect=False, planner_experience=planner_on, executor_experience=executor_on)
    wf = ResearchWorkflow(planner=model, index=KeywordIndex(DOCS), store=store, config=cfg)
    first = wf.run(Q1, gold="Tulsa", task_id="t1")
    script.garble = True
    second = wf.run(Q2, gold="Tulsa", task_id="t2")
    assert ("Plans that worked" in second.planner_messages[-1]["content"]) is planner_on
    notes = "Notes from earlier research" in _answer_prompts(model)[-1]
    assert notes is executor_on and bool(second.executor_memory_ids) is executor_on
    assert (second.answer == "Tulsa") is executor_on  # only the recalled query finds the answer's page
    used = second.used_memory_ids
    assert (first.memory_id in used) is (planner_on or executor_on)  # only memories shown are credited


def test_group_rollouts_use_memory_and_sessions_remember_through_one_path(tmp_path):
    from miaflow.memory.bimem import BiMemory
    from miaflow.rl.loop import remember_rollout, rollout_from_results

    store = _store(tmp_path / "m")
    conv = BiMemory(tmp_path / "conv", embedder=HashEmbedder())
    script = Script()
    wf = ResearchWorkflow(planner=FakeChatModel(script), index=KeywordIndex(DOCS), store=store,
                          conversation_memory=conv, config=ResearchConfig(reflect=False))
    first = wf.run(Q1, gold="Tulsa", task_id="t1", user_id="ann")
    assert len(conv.turns("ann")) == 2  # the single run's exchange
    script.garble = True
    group = wf.run_group(Q2, n=3, gold="Tulsa", task_id="e0-q2", user_id="ann")
    assert all(r.executor_memory_ids == [first.memory_id] for r in group)  # every plan's executor got the case
    assert all(r.answer == "Tulsa" for r in group)
    roll = rollout_from_results(group, judge_mode="gold", gold="Tulsa", task_id="e0-q2")
    ids = remember_rollout(wf, roll)  # what a session does after each question
    assert len(ids) == 3 and all(ids)
    recs = store.get([i for i in ids if i])
    assert {r.task_id for r in recs} <= {"e0-q2/p0", "e0-q2/p1", "e0-q2/p2"}
    assert all(r.queries and r.cited_ids == ("band",) for r in recs)
    assert len(conv.turns("ann")) == 4  # the group's plans wrote one exchange, not three
    assert store.get(first.memory_id)[0].usage_count == 3  # each plan is its own use of the case


def test_remember_accepts_a_result_edited_by_the_caller(tmp_path):
    store = _store(tmp_path / "m")
    wf = ResearchWorkflow(planner=FakeChatModel(Script()), index=KeywordIndex(DOCS), store=store,
                          config=ResearchConfig(reflect=False))
    res = wf.run(Q1, task_id="t1", remember=False)
    kept = wf.remember(replace(res, judgement="incorrect", task_id="t1/p0"))
    rec = store.get(kept)[0]
    assert rec.judgement == "incorrect" and rec.task_id == "t1/p0"
