"""Unit tests of the agents without a graph: plan parsing and fallback, executor loop and answer parsing, judges,
manager recall/remember with fake memories."""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace

import pytest

from miaflow.agents import (
    Executor,
    ExecutorConfig,
    Judge,
    JudgeConfig,
    Manager,
    Planner,
    PlannerConfig,
    default_plan,
    majority_vote,
    parse_plan,
    step_query,
)
from miaflow.agents.executor import parse_answer, strip_echo
from miaflow.errors import ToolError
from miaflow.testing import FakeChatModel


@dataclass(frozen=True)
class Hit:
    doc_id: str
    title: str
    text: str
    score: float = 1.0


class Index:
    def __init__(self):
        self.docs = {"a": ("Alpha", "Alpha was founded in Tulsa."), "b": ("Beta", "Beta is a band from Ohio.")}
        self.opened = []

    def search(self, query, k=5):
        return [Hit(d, t, x) for d, (t, x) in self.docs.items()][:k]

    def open_document(self, doc_id):
        self.opened.append(doc_id)
        if doc_id not in self.docs:
            raise ToolError("unknown")
        t, x = self.docs[doc_id]
        return SimpleNamespace(id=doc_id, title=t, text=x)


@pytest.mark.parametrize("text,steps", [
    ("Thinking: easy.\n1. Search for Alpha\n2. Read its page", ("Search for Alpha", "Read its page")),
    ("- search alpha founder\n- compare both bands", ("search alpha founder", "compare both bands")),
    ('{"steps": ["find the band", "find the city"]}', ("find the band", "find the city")),
    ("1. Search for Alpha\n2. The answer is Tulsa\n3. Search for Alpha", ("Search for Alpha",)),
])
def test_parse_plan_variants(text, steps):
    assert parse_plan(text, "q").steps == steps


@pytest.mark.parametrize("garbage", ["", "The band released an album in Los Angeles.", "1. 1.1.1.1.1.1.1.1",
                                     "1. Think: Thinking: Thinking: Thinking: Thinking: Thinking: Thinking:"])
def test_garbled_plans_fall_back(garbage):
    plan = parse_plan(garbage, "Who founded Alpha?")
    assert plan.fallback and plan.steps == default_plan("Who founded Alpha?")


def test_planner_samples_n_in_one_call_and_counts_fallbacks():
    model = FakeChatModel(["1. Search for Alpha founder", "garbage"])
    planner = Planner(model, PlannerConfig(group_temperature=0.7, adapter="v2"))
    plans = planner.plan("Who founded Alpha?", {"positive": [{"question": "q", "plan": "1. x"}], "negative": []}, n=2)
    assert len(model.calls) == 1 and model.calls[0][1].n == 2 and model.calls[0][1].temperature == 0.7
    assert model.calls[0][1].adapter == "v2"
    assert [p.fallback for p in plans] == [False, True] and planner.stats["fallback"] == 1
    assert "Plans that worked" in model.calls[0][0][-1]["content"]


def test_reflect_and_replan():
    planner = Planner(FakeChatModel(["Yes.", "1. Search for Alpha city"]))
    plan = parse_plan("1. Search Alpha", "q")
    assert planner.reflect("q", plan, "Tulsa", "[a] Alpha")
    assert planner.replan("q", plan, "Tulsa", "[a] Alpha").steps == ("Search for Alpha city",)
    assert Planner(FakeChatModel(["yes"])).reflect("q", plan, "", "") is True  # empty answer always replans


def test_executor_only_opens_searched_ids_and_cites_evidence():
    index = Index()
    ex = Executor(FakeChatModel(["Answer: Tulsa [a] [/etc/passwd]"]), index, ExecutorConfig(read_k=1))
    out = ex.run("Where was Alpha founded?", ["Search for Alpha founding city", "Open /etc/passwd", "Answer it"])
    assert out.answer == "Tulsa" and out.citations == ("a",) and out.cited_by_model
    assert set(index.opened) <= {"a", "b"}
    assert [s.tool for s in out.steps][:2] == ["search", "open_document"]


def test_executor_bounds_tool_calls_and_falls_back_citation():
    ex = Executor(FakeChatModel(["Tulsa"]), Index(), ExecutorConfig(max_tool_calls=2, read_k=1))
    out = ex.run("Where was Alpha founded?", [f"Search for thing {i}" for i in range(10)])
    assert len(out.steps) == 2
    assert out.citations == ("a",) and not out.cited_by_model  # best-matching evidence document


def test_step_query_and_answer_parsing():
    assert step_query("Search for the founder of Alpha.", "q") == "the founder of Alpha"
    assert step_query("Search.", "Who founded Alpha?") == "Who founded Alpha?"
    assert parse_answer("Tulsa [a, b]\nmore", ["a", "b"]) == ("Tulsa", ["a", "b"])
    assert strip_echo("Alpha was founded in Tulsa.", "Where was Alpha founded?") == "Tulsa"


def test_judge_gold_threshold_and_aliases():
    j = Judge(config=JudgeConfig(f1_threshold=0.5))
    assert j.judge("q", "the Tulsa", "Tulsa").label == "correct"
    assert j.judge("q", "Tulsa Oklahoma United States", "Tulsa").label == "incorrect"  # F1 0.4
    assert j.judge("q", "Tulsa Oklahoma", "Tulsa").label == "correct"
    assert j.judge("q", "Big Apple", ["New York", "Big Apple"]).em == 1.0


def test_llm_judge_with_gold_and_evaluators_without():
    j = Judge(FakeChatModel(["yes"]), JudgeConfig(llm_with_gold=True))
    assert j.judge("q", "NYC", "New York City").method == "llm"
    j2 = Judge(FakeChatModel(["10", "5", "0", "maybe"]))
    res = j2.judge("q", "Tulsa", None, "[a] Alpha was founded in Tulsa.")
    assert res.method == "evaluators" and res.details["scores"] == {"reasoning": 10, "sourcing": 5, "validity": 0}
    assert res.score == pytest.approx(0.65) and res.label == "correct" and j2.stats["arbiter_unparsed"] == 1
    assert Judge(None).judge("q", "x").label == "unknown"


def test_majority_vote():
    majority, js = majority_vote(["Tulsa", "tulsa", "Ohio", ""])
    assert majority == "Tulsa" and [j.label for j in js] == ["correct", "correct", "incorrect", "incorrect"]


def test_manager_recall_and_remember_with_fakes():
    rec = SimpleNamespace(id="m1", question="old q", plan="1. x", summary="s", answer="Tulsa", judgement="correct",
                          q_value=0.2)
    store = SimpleNamespace(recall=lambda q: SimpleNamespace(positive=[SimpleNamespace(record=rec, similarity=0.9,
                                                                                     score=1.0)],
                                                             negative=[], ids=["m1"]))
    m = Manager(store)
    got = m.recall("new q")
    assert got["used_ids"] == ["m1"] and got["positive"][0]["answer"] == "Tulsa"
    assert Manager().recall("q") == {"positive": [], "negative": [], "used_ids": [], "conversation": ""}
    assert Manager().remember(task_id="t", question="q", plan="", steps=[], evidence_ids=[], answer="",
                              judgement="unknown", used_ids=[]) is None


def test_recall_for_a_conversation_the_memory_has_not_seen_is_empty():
    class Mem:
        def conversations(self):
            return ["ann"]

        def persona(self, speaker, conversation_id=None):
            raise AssertionError("an unknown conversation must not be asked for")

        retrieve = persona

    out = Manager(None, Mem()).recall("q", user_id="newuser")
    assert out["conversation"] == ""


def test_unparseable_evaluator_is_unknown_not_a_pass():
    j = Judge(FakeChatModel(["10", "n/a", "10", "correct"]))
    res = j.judge("Where was Alpha founded?", "Tulsa", None, "[a] Alpha was founded in Tulsa.")
    assert res.label == "unknown" and res.score == 0.0 and j.stats["evaluator_unparsed"] == 1
