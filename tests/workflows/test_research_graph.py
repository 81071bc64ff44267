"""The research graph with a scripted model over a tiny index: the path through the nodes, group runs, builder."""

from __future__ import annotations

import pytest

from miaflow.errors import CorpusError, InvalidInputError
from miaflow.testing import FakeChatModel
from miaflow.workflows import ResearchBuilder, ResearchConfig, ResearchWorkflow

Q = "The band who released the debut album Tinted Windows had their first performance in what city?"


def test_run_answers_with_citations(tiny_index, script):
    scripted = script
    model = FakeChatModel(scripted)
    wf = ResearchWorkflow(planner=model, index=tiny_index)
    res = wf.run(Q, gold="Tulsa")
    assert res.answer == "Tulsa"
    assert res.citations == ["tinted_band"]
    assert "tinted_band" in res.evidence_ids
    assert res.judgement == "correct" and res.score == 1.0 and res.em == 1.0
    assert res.plan.startswith("1. Search for the debut album")
    assert not res.plan_fallback and not res.replan_decision and res.replan is None
    assert res.first_answer == res.answer and res.first_score == res.score
    assert res.planner_messages[0]["role"] == "system"
    assert any(s["tool"] == "search" for s in res.steps) and any(s["tool"] == "open_document" for s in res.steps)
    assert res.tokens["calls"] == 3  # plan, reflect, answer
    assert res.timings["total"] > 0 and 0 <= res.timings["overhead_share"] <= 1


def test_reflection_replans_and_reexecutes(script, tiny_index):
    scripted = script
    def fn(messages, cfg):
        text = messages[-1]["content"]
        if "Reply with one word: yes (replan)" in text:
            return "yes"
        return scripted(messages, cfg)

    wf = ResearchWorkflow(planner=FakeChatModel(fn), index=tiny_index)
    res = wf.run(Q, gold="Tulsa")
    assert res.replan_decision and res.replan is not None
    assert res.answer == "Tulsa"
    steps = {s["step"] for s in res.steps}
    assert 0 in steps  # the question search of the first run


def test_garbled_plan_falls_back_to_default_plan(script, tiny_index):
    scripted = script
    def fn(messages, cfg):
        text = messages[-1]["content"]
        if "numbered list" in text:
            return "!!! ### ~~~"
        return scripted(messages, cfg)

    wf = ResearchWorkflow(planner=FakeChatModel(fn), index=tiny_index)
    res = wf.run(Q, gold="Tulsa")
    assert res.plan_fallback
    assert res.plan.startswith("1. Search for The band who released")
    assert wf.planner.stats["fallback"] == 1
    assert res.answer == "Tulsa"


def test_without_gold_three_evaluators_and_arbiter(script, tiny_index):
    scripted = script
    model = FakeChatModel(scripted)
    wf = ResearchWorkflow(planner=model, index=tiny_index)
    res = wf.run(Q)
    assert res.judgement == "correct" and res.judge_method == "evaluators"
    assert res.score == pytest.approx(0.8)
    assert res.gold is None and res.em is None


def test_run_group_fans_out_plans_sampled_in_one_call(script, tiny_index):
    scripted = script
    answers = iter(["Tulsa [tinted_band]", "Tulsa [tinted_band]", "a supergroup [tinted_band]"])  # all supported

    def fn(messages, cfg):
        text = messages[-1]["content"]
        if "Documents:" in text and "<answer>" in text:
            return next(answers)
        return scripted(messages, cfg)

    model = FakeChatModel(fn)
    wf = ResearchWorkflow(planner=model, index=tiny_index, config=ResearchConfig(reflect=False))
    group = wf.run_group(Q, n=3, task_id="g1")
    assert len(group) == 3
    plan_calls = [c for c in model.calls if "numbered list" in c[0][-1]["content"]]
    assert len(plan_calls) == 1 and plan_calls[0][1].n == 3 and plan_calls[0][1].temperature > 0
    labels = sorted(r.judgement for r in group)
    assert labels == ["correct", "correct", "incorrect"]  # majority vote without gold
    assert {r.task_id for r in group} == {"g1"}
    assert all(r.planner_messages == group[0].planner_messages for r in group)
    assert all(r.judge_method == "vote" for r in group)


def test_run_group_with_gold_scores_each(script, tiny_index):
    scripted = script
    wf = ResearchWorkflow(planner=FakeChatModel(scripted), index=tiny_index, config=ResearchConfig(reflect=False))
    group = wf.run_group(Q, n=2, gold="Tulsa")
    assert [r.judgement for r in group] == ["correct", "correct"]
    assert all(r.f1 == 1.0 for r in group)


def test_best_of_n_picks_the_models_choice(script, tiny_index):
    scripted = script
    model = FakeChatModel(scripted)
    wf = ResearchWorkflow(planner=model, index=tiny_index, config=ResearchConfig(best_of_n=2))
    res = wf.run(Q, gold="Tulsa")
    assert res.answer == "Tulsa"
    assert any("Reply with the plan's letter" in c[0][-1]["content"] for c in model.calls)


def test_errors(script, tiny_index, tmp_path):
    scripted = script
    wf = ResearchWorkflow(planner=FakeChatModel(scripted), index=tiny_index)
    with pytest.raises(InvalidInputError):
        wf.run("   ")
    with pytest.raises(CorpusError):
        ResearchWorkflow(planner=FakeChatModel(scripted), index=tmp_path / "missing")
    with pytest.raises(CorpusError):
        ResearchWorkflow(planner=FakeChatModel(scripted), index=None)


def test_streaming_reports_progress(script, tiny_index):
    scripted = script
    wf = ResearchWorkflow(planner=FakeChatModel(scripted), index=tiny_index)
    events = list(wf.stream(Q, gold="Tulsa"))
    nodes = [next(iter(c)) for m, c in events if m == "updates"]
    assert nodes == ["recall", "plan", "execute", "reflect", "judge", "remember"]
    custom = [c["event"] for m, c in events if m == "custom"]
    assert "plan" in custom and "search" in custom and "answer" in custom
    assert events[-1][0] == "result" and events[-1][1].answer == "Tulsa"


def test_builder_swaps_roles_and_adds_nodes_and_tools(tiny_index, script, hit):
    scripted = script
    seen = {}

    def my_planner(question, memories):
        return ["Search for Paris capital"]

    def web(query, k):
        return [hit("web:1", "Web", "Paris is in France.", 1.0)]

    def audit(state):
        seen["answer"] = state["final"]["answer"]
        return {"extra": {"audited": True}}

    api_model = FakeChatModel(scripted, name="api-model")
    wf = (ResearchBuilder().planner(my_planner).executor(api_model).corpus(tiny_index)
          .add_tool("web", web).add_node("audit", audit, after="judge").build())
    res = wf.run("What is the capital of France?", gold="Paris")
    assert res.answer == "Paris" and res.judgement == "correct"
    assert seen["answer"] == "Paris"
    assert any(s["tool"] == "web" for s in res.steps)
    assert "audit" in wf.draw_mermaid()
