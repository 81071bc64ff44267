"""Answers a user can trust: empty, question-restating, unsupported and known-wrong answers are not accepted as is;
they are sampled once more, then replaced by an extractive span, and counted in the execution and the result."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from _index import DOCS, QUESTION, KeywordIndex  # noqa: E402

from miaflow.agents import Executor, ExecutorConfig, default_plan  # noqa: E402
from miaflow.agents.answer_check import check_answer, extractive_span, restates_question, supported  # noqa: E402
from miaflow.testing import FakeChatModel  # noqa: E402

P = [("band", "Tinted Windows (band)", "Tinted Windows was a supergroup. Their first performance was in Tulsa."),
     ("paris", "Paris", "Paris is the capital of France.")]
Q = "The band Tinted Windows had their first performance in what city?"


@pytest.mark.parametrize("answer,cited,reason", [
    ("Tulsa", ["band"], ""),
    ("", ["band"], "empty"),
    ("the", ["band"], "empty"),
    ("The band Tinted Windows", ["band"], "restates_question"),
    ("band Tinted Windows first performance city", [], "restates_question"),
    ("Oslo", ["band"], "unsupported"),
    ("Paris", ["band"], "unsupported"),  # in a shown passage, but not in the one it cites
    ("Paris", [], ""),  # citing nothing: any shown passage may support it
])
def test_check_answer_reasons(answer, cited, reason):
    assert check_answer(answer, Q, P, cited=cited) == reason


def test_yes_no_choice_and_known_wrong():
    yn = "Were Tinted Windows and Blur both American bands?"
    assert check_answer("yes", yn, P) == "" and check_answer("No.", yn, P) == ""
    choice = "Which played first, Tinted Windows or Paris?"
    assert not restates_question("Tinted Windows", choice)
    assert check_answer("Tulsa", Q, P, known_wrong=["tulsa"]) == "known_wrong"
    assert supported("Tulsa, Oklahoma", "first performance was in Tulsa")  # near: half its words
    assert not supported("Oklahoma City Texas", "first performance was in Tulsa, Oklahoma", 0.5)


def test_extractive_span_is_deterministic_and_prefers_the_cited_passage():
    span = extractive_span(Q, P, prefer=["band"])
    assert span == ("Tulsa", "band") and extractive_span(Q, P, prefer=["band"]) == span
    assert extractive_span("What is the capital of France?", P, prefer=["paris"]) == ("Paris", "paris")
    assert extractive_span(Q, P, prefer=["band"], avoid=["Tulsa"])[0] != "Tulsa"
    assert extractive_span(Q, []) == ("", "")


def _answers(*replies):
    it = iter(replies)

    def fn(messages, cfg):
        return next(it)

    return fn


def _answer_calls(model):
    return [c for c in model.calls if "Documents:" in c[0][-1]["content"]]


def test_restating_answer_is_sampled_again_with_temperature():
    model = FakeChatModel(_answers("Where did the band of the debut album Tinted Windows first perform",
                                   "S-Curve Records [album]"))
    ex = Executor(model, KeywordIndex(DOCS)).run(QUESTION, default_plan(QUESTION))
    calls = _answer_calls(model)
    assert len(calls) == 2 and calls[0][1].temperature == 0.0 and calls[1][1].temperature > 0
    assert calls[0][0] == calls[1][0]  # the same prompt, sampled again
    assert ex.answer == "S-Curve Records" and ex.answer_source == "resample"
    assert ex.answer_check == "empty" and ex.answer_fallbacks == 1  # the echo was cut to nothing


def test_unsupported_twice_falls_back_to_a_span_of_the_cited_passage():
    model = FakeChatModel(_answers("Oslo [album]", "Oslo [album]"))
    ex = Executor(model, KeywordIndex(DOCS)).run(QUESTION, default_plan(QUESTION))
    assert ex.answer_check == "unsupported" and ex.answer_source == "extractive" and ex.answer_fallbacks == 1
    assert ex.citations == ("album",) and ex.answer in ex.passages[0][2]
    assert ex.raw_answer == "Oslo [album]"  # the model's own text is kept for training and debugging


def test_checking_off_keeps_the_models_answer():
    model = FakeChatModel(_answers("Oslo [album]"))
    ex = Executor(model, KeywordIndex(DOCS), ExecutorConfig(check_answers=False)).run(QUESTION,
                                                                                      default_plan(QUESTION))
    assert ex.answer == "Oslo" and ex.answer_fallbacks == 0 and len(_answer_calls(model)) == 1
    with pytest.raises(ValueError, match="min_support"):
        ExecutorConfig(min_support=0)


def test_fallbacks_are_surfaced_in_the_research_result():
    from miaflow.workflows import ResearchConfig, ResearchWorkflow

    def fn(messages, cfg):
        text = messages[-1]["content"]
        if "numbered list" in text:
            return "1. Search for the debut album Tinted Windows\n2. Answer the question"
        if "Documents:" in text:
            return QUESTION  # a small model saying the question back
        return "no"

    wf = ResearchWorkflow(planner=FakeChatModel(fn), index=KeywordIndex(DOCS),
                          config=ResearchConfig(reflect=False))
    res = wf.run(QUESTION, gold="Tulsa")
    assert res.answer_fallbacks == 1 and res.answer_source == "extractive"
    assert res.answer and res.answer.lower() not in QUESTION.lower()


def test_answer_stated_in_another_passage_keeps_it_and_moves_the_citation():
    model = FakeChatModel(_answers("S-Curve Records [nile]"))
    index = KeywordIndex(DOCS)
    ex = Executor(model, index, ExecutorConfig(max_evidence=4)).run(QUESTION, ["Search for the Nile river"])
    assert "nile" in ex.evidence_ids and "album" in ex.evidence_ids
    assert ex.answer == "S-Curve Records" and ex.citations == ("album",)
    assert ex.answer_check == "recited" and ex.answer_fallbacks == 0 and not ex.cited_by_model
    assert len(_answer_calls(model)) == 1

