"""The learning loop's turn on the real research workflow (scripted model): a typed rollout record, the vote run
once per question, write-back under one task id per plan, buffering."""

import importlib.util
import sys
from pathlib import Path

import pytest

import miaflow.agents.judge as judge_mod
import miaflow.workflows.nodes as nodes_mod
from miaflow.errors import InvalidInputError
from miaflow.rl import ExperienceBuffer, GroupRollout, buffer_rollout, remember_rollout, run_group
from miaflow.rl.rewards import majority_vote_scores
from miaflow.testing import FakeChatModel
from miaflow.workflows import ResearchConfig, ResearchWorkflow

_spec = importlib.util.spec_from_file_location("rl_fakes", Path(__file__).parent / "_fakes.py")
fakes = sys.modules.get("rl_fakes") or importlib.util.module_from_spec(_spec)
if "rl_fakes" not in sys.modules:
    sys.modules["rl_fakes"] = fakes
    _spec.loader.exec_module(fakes)

Q = "Where was the first performance of Tinted Windows?"


def _workflow(store=None):
    return ResearchWorkflow(planner=FakeChatModel(fakes.scripted_reply), index=fakes.TinyIndex(), store=store,
                            config=ResearchConfig(reflect=False))


def test_run_group_gives_a_typed_rollout_with_both_rewards(tmp_path):
    roll = run_group(_workflow(), Q, 3, gold="Tulsa", judge_mode="gold", task_id="t1", adapter_version="v0")
    assert isinstance(roll, GroupRollout) and roll.n == 3 and roll.task_id == "t1" and roll.adapter_version == "v0"
    assert roll.answers == ["Tulsa"] * 3 and roll.scores == [1.0] * 3 and roll.judgements == ["correct"] * 3
    assert all("1. Search for the first performance" in c for c in roll.completions)
    assert roll.prompt and roll.prompt[-1]["role"] == "user"
    assert roll.planner_rewards == [1.0] * 3  # accurate first try, well-formed plan, no replan needed
    assert all(r >= 0.9 for r in roll.executor_rewards)  # accurate, searched, cited a document
    assert not roll.has_signal and "results" not in roll.to_dict()
    assert buffer_rollout(ExperienceBuffer(tmp_path / "buffer.sqlite"), roll) is True
    with pytest.raises(InvalidInputError, match="judge_mode"):
        run_group(_workflow(), Q, 2, judge_mode="oracle")


def test_vote_runs_once_per_question_and_gold_stays_hidden(monkeypatch, tmp_path):
    calls = []
    real = judge_mod.majority_vote

    def counting(answers):
        calls.append(list(answers))
        return real(answers)

    monkeypatch.setattr(judge_mod, "majority_vote", counting)
    monkeypatch.setattr(nodes_mod, "majority_vote", counting)
    roll = run_group(_workflow(), Q, 3, gold="Paris", judge_mode="vote", task_id="t2")
    assert len(calls) == 1  # the workflow's vote node voted; the loop reused it
    assert roll.gold == "Paris" and roll.scores == [1.0] * 3  # scored by agreement, not against the (wrong) gold
    # a workflow that does not vote is voted on here, once, with the same rule
    calls.clear()
    fake = fakes.FakeWorkflow(tmp_path / "fake")
    roll = run_group(fake, "question number 3?", 4, judge_mode="vote", task_id="t3")
    assert len(calls) == 1 and roll.scores == majority_vote_scores(roll.answers)


def test_remember_rollout_writes_one_memory_per_plan(tmp_path):
    from miaflow.memory import TrajectoryStore

    store = TrajectoryStore(tmp_path / "mem", embedder=fakes.WordsEmbedder())
    wf = _workflow(store)
    roll = run_group(wf, Q, 2, gold="Tulsa", task_id="t4")
    ids = remember_rollout(wf, roll)
    assert len(ids) == 2 and all(ids)
    assert {r.task_id for r in store.iter_records()} <= {"t4/p0", "t4/p1"}
