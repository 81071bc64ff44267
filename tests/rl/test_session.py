"""Session runner: rewards per plan, buffered groups, non-blocking training, kill and resume."""

import importlib.util
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from miaflow.rl import (
    AdapterRegistry,
    ExperienceBuffer,
    GRPOSettings,
    RoleTrainer,
    TrainingWorker,
    WorkerConfig,
)
from miaflow.rl.grpo import StepResult
from miaflow.workflows.session import Session, SessionConfig, load_session_questions

HERE = Path(__file__).parent
_spec = importlib.util.spec_from_file_location("rl_fakes", HERE / "_fakes.py")
fakes = importlib.util.module_from_spec(_spec)
sys.modules["rl_fakes"] = fakes
_spec.loader.exec_module(fakes)


class FakeLearner:
    def __init__(self, role="planner"):
        self.settings = GRPOSettings(role=role)
        self.loaded = []
        self.steps = 0

    def step(self, groups):
        self.steps += 1
        return StepResult(groups=[g.group_id for g in groups], seconds=0.01, prompt_tokens=10, completion_tokens=5,
                          loss=0.0, metrics={"reward": 0.5})

    def save(self, path):
        (Path(path) / "adapter_config.json").write_text("{}")

    def load(self, path):
        self.loaded.append(path)


def test_session_scores_rewards_buffers_and_remembers(tmp_path):
    wf = fakes.FakeWorkflow(tmp_path / "mem")
    s = Session(wf, tmp_path / "state", config=SessionConfig(epochs=2, window=2))
    summary = s.run(fakes.questions(3))
    assert len(summary.outcomes) == 6 and len(summary.accuracy_by_epoch) == 2
    o = summary.outcomes[0]
    assert len(o.rewards) == 4
    # first answer always wrong; replanning (the right call then) happened exactly on the correct plans
    for sc, r in zip(o.scores, o.rewards, strict=True):
        assert r == pytest.approx(0.7 * sc + 0.05 + 0.05 * sc)
    st = s.buffer.stats()
    assert st.total == 6 and st.pending + st.zero_variance == 6
    assert summary.buffer["zero_variance"] == st.zero_variance
    mems = [json.loads(x) for x in (tmp_path / "mem" / "memories.jsonl").read_text().splitlines()]
    assert len(mems) == 24 and len({m["task_id"] for m in mems}) == 24  # one task id per plan
    with pytest.raises(Exception, match="resume"):
        s.run(fakes.questions(3))


def test_vote_judge_needs_no_gold(tmp_path):
    wf = fakes.FakeWorkflow(tmp_path / "mem")
    s = Session(wf, tmp_path / "state", config=SessionConfig(judge="vote", remember=False))
    o = s.answer(fakes.questions(1)[0])
    assert set(o.scores) <= {0.0, 1.0} and sum(o.scores) >= 2  # the majority answer wins


def test_answering_continues_while_a_training_step_runs(tmp_path):
    """Event order, no timing: the step starts, a whole answer completes, and only then does the step end."""
    order = []
    step_started, answered = threading.Event(), threading.Event()

    def hook(kind, groups):
        if kind == "start" and not step_started.is_set():
            order.append("step_start")
            step_started.set()
            assert answered.wait(60)
        elif kind == "end":
            order.append("step_end")

    buf = ExperienceBuffer(tmp_path / "state" / "buffer.sqlite")
    learner = FakeLearner()
    worker = TrainingWorker(buf, RoleTrainer(learner=learner, registry=AdapterRegistry(tmp_path / "ad")),
                            config=WorkerConfig(poll_seconds=0.05), step_hook=hook)
    wf = fakes.FakeWorkflow(tmp_path / "mem")
    s = Session(wf, tmp_path / "state", buffer=buf, worker=worker, config=SessionConfig(learn=True))
    qs = [q for q in fakes.questions(20) if True]
    worker.start()
    try:
        i = 0
        while buf.count_pending() == 0:  # answer until a group with signal is buffered
            s.answer(qs[i], index=i)
            i += 1
        assert step_started.wait(60)
        out = s.answer(qs[i], index=i)  # the worker is blocked inside its step right now
        order.append("answer_done")
        answered.set()
    finally:
        worker.stop(timeout=60)
    assert order[:3] == ["step_start", "answer_done", "step_end"]
    assert out.training
    assert [e.kind for e in worker.events][:3] == ["step_start", "step_end", "promoted"]


def test_worker_rolls_back_a_worse_version_and_alternates_roles(tmp_path, make_group):
    buf = ExperienceBuffer(tmp_path / "b.sqlite")
    for i in range(2):
        buf.add(make_group(f"p{i}"))
        buf.add(make_group(f"x{i}", role="executor"))
    planner, executor = FakeLearner(), FakeLearner("executor")
    published = []

    class Pub:
        def publish(self, v):
            published.append(v.name)

    scores = {"v0": 0.5, "v1": 0.25, "v2": 0.75}
    preg = AdapterRegistry(tmp_path / "planner")
    worker = TrainingWorker(buf, RoleTrainer(learner=planner, registry=preg, publisher=Pub(),
                                             evaluator=lambda v: scores[v.name]),
                            executor=RoleTrainer(learner=executor, registry=AdapterRegistry(tmp_path / "executor")),
                            config=WorkerConfig(alternate=True))
    worker.drain()
    kinds = [(e.kind, e.role) for e in worker.events if e.kind != "step_start"]
    assert kinds == [("step_end", "planner"), ("rejected", "planner"), ("step_end", "executor"),
                     ("promoted", "executor"), ("step_end", "planner"), ("promoted", "planner"),
                     ("step_end", "executor"), ("promoted", "executor")]
    assert planner.loaded == [None]  # rolled back to the base (v0 has no files)
    assert published == ["v2"] and preg.promoted.name == "v2" and preg.get("v1").status == "rejected"
    assert buf.stats().trained == 4


def test_exception_at_question_k_then_resume(tmp_path):
    state = tmp_path / "state"
    qs = fakes.questions(5)
    wf = fakes.FakeWorkflow(tmp_path / "mem", fail_on="number 3?")
    with pytest.raises(RuntimeError, match="injected"):
        Session(wf, state, config=SessionConfig()).run(qs)
    assert json.loads((state / "progress.json").read_text())["index"] == 3
    wf2 = fakes.FakeWorkflow(tmp_path / "mem")
    summary = Session(wf2, state, config=SessionConfig()).run(qs, resume=True)
    assert wf2.calls == [q.question for q in qs[3:]]  # nothing redone, nothing skipped
    assert [o.qid for o in summary.outcomes] == [q.id for q in qs]
    assert ExperienceBuffer(state / "buffer.sqlite").stats().total == 5


def test_sigkill_then_resume_loses_nothing(tmp_path):
    state = tmp_path / "state"
    env = {**os.environ, "PYTHONPATH": str(HERE.parent.parent)}
    cmd = [sys.executable, str(HERE / "_fakes.py"), str(state), "4"]
    proc = subprocess.Popen(cmd, env=env)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            p = state / "progress.json"
            if p.exists() and json.loads(p.read_text())["index"] >= 2:
                break
            time.sleep(0.05)
        else:
            pytest.fail("the session made no progress")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    pos = json.loads((state / "progress.json").read_text())
    assert (pos["epoch"], pos["index"]) < (2, 0)
    subprocess.run(cmd + ["resume"], env=env, check=True, timeout=180)
    summary_outs = [json.loads(x) for x in (state / "outcomes.jsonl").read_text().splitlines() if x.strip()]
    keys = {(o["epoch"], o["index"]) for o in summary_outs}
    assert keys == {(e, i) for e in range(2) for i in range(4)}
    assert len(summary_outs) <= 9  # at most the question being answered at the kill is redone
    buf = ExperienceBuffer(state / "buffer.sqlite")
    assert buf.stats().total == 8
    assert json.loads((state / "progress.json").read_text())["epoch"] == 2


def test_load_session_questions(tmp_path):
    p = tmp_path / "q.jsonl"
    p.write_text('{"id": "a", "question": "Q1?", "answer": "A1"}\n\n{"question": "Q2?"}\n')
    qs = load_session_questions(p)
    assert [(q.id, q.gold) for q in qs] == [("a", "A1"), ("line3", None)]
