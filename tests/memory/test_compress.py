"""MIA compression: LLM workflow summaries, the extractive fallback, word limits and the compression ratio."""

from __future__ import annotations

import re

import pytest

from miaflow.memory import CompressionConfig, Trajectory, compress
from miaflow.memory.compression import COMPRESS_STATS, extractive_summary
from miaflow.testing import FakeChatModel

STEP = re.compile(r"^\d+\. .+ \(.* -> .*\)$")


def _long_traj(n_steps: int = 12) -> Trajectory:
    steps = [
        {"action": "search", "purpose": f"find fact {i}", "input": f"query number {i} about the Eiffel Tower height",
         "output": "The Eiffel Tower is a wrought-iron lattice tower on the Champ de Mars in Paris. " * 6}
        for i in range(n_steps)
    ]
    return Trajectory(task_id="t1", question="How tall is the Eiffel Tower?", plan="1. search\n2. read\n3. answer",
                      steps=steps, evidence_ids=["d1", "d2"], answer="330 m", judgement="correct", reward=1.0)


def test_extractive_summary_format_limit_and_ratio():
    traj = _long_traj()
    rec = compress(traj)
    lines = rec.summary.splitlines()
    assert rec.compressed_by == "extractive"
    assert all(STEP.match(ln) for ln in lines[:-1]), lines
    assert "query number 0 about the Eiffel Tower height" in rec.summary  # the key query is kept
    assert len(rec.summary.split()) <= 300
    assert rec.compression_ratio > 3
    assert (rec.task_id, rec.question, rec.answer, rec.judgement, rec.reward) == (
        "t1", traj.question, "330 m", "correct", 1.0)


def test_word_limit_is_a_config_field():
    s = extractive_summary(_long_traj(40), CompressionConfig(max_words=50))
    assert 0 < len(s.split()) <= 50


def test_plain_string_steps_and_plan_only():
    t = Trajectory(task_id="t", question="q?", steps=["searched for x", "read doc 3"], answer="y")
    assert compress(t).summary.startswith("1. searched for x\n2. read doc 3")
    t2 = Trajectory(task_id="t", question="q?", plan="1. look up A\n2. compare with B")
    assert compress(t2).summary.splitlines()[:2] == ["1. look up A", "2. compare with B"]


def test_llm_summary_used_when_well_formed():
    llm = FakeChatModel(["Here is the workflow:\n1. search locate tower (Eiffel height -> 330 m)\n2. answer report "
                         "(330 m -> final)"])
    rec = compress(_long_traj(), llm=llm)
    assert rec.compressed_by == "llm"
    assert rec.summary == "1. search locate tower (Eiffel height -> 330 m)\n2. answer report (330 m -> final)"
    prompt = llm.calls[0][0][-1]["content"]
    assert "action purpose (input -> output)" in prompt and "query number 3" in prompt and "300 words" in prompt


def test_llm_garbage_falls_back_and_is_counted():
    before = COMPRESS_STATS["llm_fallback"]
    rec = compress(_long_traj(), llm=FakeChatModel(["I cannot do that."]))
    assert rec.compressed_by == "extractive" and COMPRESS_STATS["llm_fallback"] == before + 1
    assert rec.summary.startswith("1. search find fact 0")


def test_llm_summary_is_cut_to_the_word_limit():
    long = "\n".join(f"{i}. search something (" + "word " * 30 + "-> out)" for i in range(1, 30))
    rec = compress(_long_traj(), llm=FakeChatModel([long]))
    assert len(rec.summary.split()) <= 300


@pytest.mark.slow
def test_real_bundled_model_compresses():
    from miaflow.llm import LocalChatModel

    llm = LocalChatModel()
    rec = compress(_long_traj(3), llm=llm, config=CompressionConfig(max_llm_tokens=96))
    assert rec.summary and len(rec.summary.split()) <= 300
    assert rec.compressed_by in ("llm", "extractive")
