"""Experience for the executor: recalled queries run first, recalled documents opened, notes only when there is
experience (the prompt without it is byte for byte the one the executor adapter trains on), same-task reuse
through re-opened evidence, and the switches that turn each use off."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from _index import DOCS, QUESTION, KeywordIndex  # noqa: E402

from miaflow.agents import Executor, ExecutorConfig, default_plan, prompts  # noqa: E402
from miaflow.agents.experience import (  # noqa: E402
    Experience,
    ExperienceConfig,
    experience_from_memories,
    question_similarity,
    same_task,
)
from miaflow.testing import FakeChatModel  # noqa: E402

# today's answer prompt for a fixed input, frozen: the executor adapter is trained on exactly this text
FROZEN = ("Question: Who founded Alpha?\n\nDocuments:\n<<<\n[a] Alpha\nAlpha was founded in Tulsa by Ann.\n\n[b] Beta\n"
          "Beta is a band from Ohio. Beta is a band from Ohio. Beta is a band from Ohio....\n>>>\n\n"
          "Question: Who founded Alpha?\nAnswer in a few words from the documents. Then write the id of the document "
          "you used in brackets: <answer> [<document id>]")
PASSAGES = [("a", "Alpha", "Alpha was founded  in Tulsa by Ann."), ("b", "Beta", "Beta is a band from Ohio. " * 40)]

WORKED = {"id": "m-pos", "task_id": "old-1", "question": "Where did the supergroup Tinted Windows play first?",
          "answer": "Tulsa", "judgement": "correct", "queries": ["supergroup opening show"], "cited_ids": ["band"],
          "evidence_ids": ["band", "album"]}
FAILED = {"id": "m-neg", "task_id": "old-2", "question": "Which city hosted the Tinted Windows debut?",
          "answer": "Paris", "judgement": "incorrect", "queries": [], "cited_ids": ["paris"]}


def answering(messages, cfg):
    text = messages[-1]["content"]
    return "Tulsa [band]" if "Tulsa" in text else "Tinted Windows [album]"


def test_answer_prompt_is_unchanged_without_experience():
    assert prompts.answer_prompt("Who founded Alpha?", PASSAGES, chars=80) == FROZEN
    assert prompts.answer_prompt("Who founded Alpha?", PASSAGES, chars=80, experience="") == FROZEN
    assert prompts.answer_prompt("Who founded Alpha?", PASSAGES, chars=80, experience="  \n") == FROZEN
    with_notes = prompts.answer_prompt("Who founded Alpha?", PASSAGES, chars=80, experience="Notes: x")
    assert with_notes == FROZEN.replace("\n\nDocuments:", "\n\nNotes: x\n\nDocuments:", 1)


@pytest.mark.parametrize("experience", [None, Experience()])
def test_executor_prompt_without_experience_is_the_trained_one(experience):
    model = FakeChatModel(answering)
    index = KeywordIndex(DOCS)
    ex = Executor(model, index).run(QUESTION, default_plan(QUESTION), experience=experience)
    sent = model.calls[-1][0][-1]["content"]
    passages = [(d, t, x) for d, t, x in ex.passages]
    assert sent == prompts.answer_prompt(QUESTION, passages, chars=600)
    assert "Notes from earlier research" not in sent and ex.experience_ids == ()
    assert "band" not in ex.retrieved_ids  # the question's own words never find the band page


def test_default_plan_executor_uses_recalled_queries_and_documents():
    model = FakeChatModel(answering)
    index = KeywordIndex(DOCS)
    exp = experience_from_memories({"positive": [WORKED], "negative": [FAILED]}, QUESTION, "new-1")
    ex = Executor(model, index).run(QUESTION, default_plan(QUESTION), experience=exp)
    assert index.queries[:2] == [QUESTION, "supergroup opening show"]  # question first, then the recalled query
    assert "band" in index.opened and "band" in ex.evidence_ids
    assert ex.answer == "Tulsa" and ex.citations == ("band",) and ex.answer_source == "model"
    assert ex.experience_ids == ("m-pos", "m-neg")
    sent = model.calls[-1][0][-1]["content"]
    notes = sent.split("Documents:")[0]
    assert '"supergroup opening show"' in notes and "[band]" in notes
    assert 'the answer "Paris" was wrong' in notes
    assert "Tulsa" not in notes  # a similar question's answer is not handed over, only how it was found
    # the recalled calls come on top of the plan's budget
    assert len(ex.steps) <= ExecutorConfig().max_tool_calls + 3


def test_recalled_document_missing_from_index_is_skipped():
    model = FakeChatModel(answering)
    index = KeywordIndex(DOCS)
    gone = {**WORKED, "cited_ids": ["not-here"], "queries": []}
    ex = Executor(model, index).run(QUESTION, default_plan(QUESTION),
                                    experience=experience_from_memories({"positive": [gone]}, QUESTION, "t"))
    assert "not-here" in index.opened and "not-here" not in ex.evidence_ids
    assert any(s.tool == "open_document" and s.error for s in ex.steps)


def test_same_task_case_is_reused_through_its_reopened_evidence():
    model = FakeChatModel(answering)
    index = KeywordIndex(DOCS)
    same = {**WORKED, "task_id": "e0-q7/p2", "question": "something phrased otherwise"}
    exp = experience_from_memories({"positive": [same]}, QUESTION, "e0-q7")
    assert exp.same_task_case is not None
    ex = Executor(model, index).run(QUESTION, default_plan(QUESTION), experience=exp)
    assert "band" in index.opened  # re-opened, not trusted blindly
    assert ex.answer == "Tulsa" and ex.citations == ("band",) and ex.answer_source == "memory"
    assert ex.evidence_ids[0] == "band"
    assert not any("Documents:" in c[0][-1]["content"] for c in model.calls)  # no answer call was needed


def test_same_task_answer_not_in_its_documents_is_not_copied():
    model = FakeChatModel(lambda m, c: "Tulsa [band]")
    index = KeywordIndex(DOCS)
    stale = {**WORKED, "question": QUESTION, "task_id": "other", "answer": "Oklahoma City"}
    exp = experience_from_memories({"positive": [stale]}, QUESTION, "new")
    assert exp.same_task_case is not None  # near-identical question
    ex = Executor(model, index).run(QUESTION, default_plan(QUESTION), experience=exp)
    assert ex.answer_source == "model" and ex.answer == "Tulsa"
    assert any("Documents:" in c[0][-1]["content"] for c in model.calls)


def test_same_task_known_wrong_answer_is_not_accepted():
    model = FakeChatModel(lambda m, c: "S-Curve Records [album]")
    index = KeywordIndex(DOCS)
    wrong = {**FAILED, "question": QUESTION, "answer": "S-Curve Records"}
    exp = experience_from_memories({"negative": [wrong]}, QUESTION, "new")
    assert exp.known_wrong == ["S-Curve Records"]
    ex = Executor(model, index).run(QUESTION, default_plan(QUESTION), experience=exp)
    assert ex.answer_check == "known_wrong" and ex.answer_fallbacks == 1
    assert len([c for c in model.calls if "Documents:" in c[0][-1]["content"]]) == 2  # sampled once more
    assert ex.answer_source == "extractive"  # the second sample said the same: a passage span instead
    assert ex.answer and ex.answer != "S-Curve Records"


def test_same_task_rules_and_threshold():
    q = "Who founded the Alpha band?"
    assert question_similarity(q, "who founded the alpha band") == 1.0
    assert same_task({"task_id": "t1/p3", "question": "unrelated"}, q, "t1", 0.95)
    assert same_task({"task_id": "x", "question": "Who founded the Alpha band"}, q, "y", 0.95)
    assert not same_task({"task_id": "x", "question": "Who founded the Beta band?"}, q, "y", 0.99)
    assert not same_task({"task_id": "x", "question": "Where is Paris?"}, q, "y", 0.95)
    exp = experience_from_memories({"positive": [{**WORKED, "question": q}]}, q, "z",
                                   ExperienceConfig(reuse_same_task=False))
    assert exp.same_task_case is None  # the switch turns reuse off
    with pytest.raises(ValueError, match="same_task_threshold"):
        ExperienceConfig(same_task_threshold=0.0)


def test_q_value_order_decides_which_cases_are_shown():
    better = {**WORKED, "id": "best", "queries": ["first query"]}
    worse = {**WORKED, "id": "second", "queries": ["second query"]}
    third = {**WORKED, "id": "third", "queries": ["third query"]}
    exp = experience_from_memories({"positive": [better, worse, third]}, QUESTION, "t")  # recall order = score
    assert exp.ids == ["best", "second"]  # max_positive=2, in the store's (Q-value aware) order
    assert exp.queries() == ["first query", "second query"]
