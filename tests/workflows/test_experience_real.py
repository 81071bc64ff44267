"""The real path: the bundled model answers over the shipped HotpotQA sample, the default plan runs (the planner's
text is unusable), and the executor still uses a recalled case from a real trajectory store: its queries are
searched, its cited document is opened, and its memory's Q-value moves with the run's reward."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import miaflow

SAMPLE = Path(miaflow.__file__).parent / "data" / "hotpotqa_sample"


@pytest.mark.slow
def test_bundled_model_executor_uses_a_recalled_case_under_the_default_plan(tmp_path):
    from miaflow.agents import ExecutorConfig
    from miaflow.llm import LocalChatModel
    from miaflow.memory import Trajectory, TrajectoryStore
    from miaflow.tools import CorpusIndex
    from miaflow.workflows import ResearchConfig, ResearchWorkflow

    q = json.loads((SAMPLE / "questions.jsonl").read_text().splitlines()[0])
    assert q["answer"] == "Tulsa"
    lines = (SAMPLE / "corpus.jsonl").read_text().splitlines()
    gold = [ln for ln in lines if json.loads(ln)["id"] in q["supporting_ids"]]
    small = tmp_path / "corpus.jsonl"  # the gold pages and 24 distractors of the sample: embedding stays quick
    small.write_text("\n".join(gold + [ln for ln in lines if ln not in gold][:24]) + "\n")
    index = CorpusIndex.open(small, index_dir=tmp_path / "index")
    store = TrajectoryStore(tmp_path / "memory")
    case = Trajectory(task_id="earlier", question="In which city did the supergroup Tinted Windows first perform?",
                      plan="1. Search for the supergroup Tinted Windows", answer="Tulsa", judgement="correct",
                      reward=1.0, cited_ids=["Tinted Windows (band)"], queries=["Tinted Windows supergroup concert"])
    mem_id = store.add(case)
    cfg = ResearchConfig(reflect=False, executor=ExecutorConfig(answer_max_tokens=12))
    wf = ResearchWorkflow(planner=lambda question, memories: "", executor=LocalChatModel(), index=index,
                          store=store, config=cfg)
    res = wf.run(q["question"], gold=q["answer"], task_id="now")
    assert res.plan_fallback  # the default plan ran
    assert res.executor_memory_ids == [mem_id] and mem_id in res.used_memory_ids
    searched = [s["input"] for s in res.steps if s["tool"] == "search"]
    assert "Tinted Windows supergroup concert" in searched
    assert "Tinted Windows (band)" in res.evidence_ids
    assert res.tokens["completion"] > 0 or res.answer_source == "memory"
    assert res.answer and res.answer.lower() != q["question"].lower()
    assert res.judgement in ("correct", "incorrect")
    q_after = store.get(mem_id)[0].q_value
    assert q_after == pytest.approx(0.3 if res.judgement == "correct" else -0.3)
