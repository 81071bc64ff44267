"""Executor groups (one plan, n sampled answers in one batched call), MIA's alternation in sessions, starting from
the shipped trained adapters, and unjudged runs that earn nothing. The research workflow is real; the chat model
is scripted."""

import importlib.util
import itertools
import sys
from pathlib import Path

import pytest

from miaflow.memory import TrajectoryStore
from miaflow.rl import (
    ExperienceBuffer,
    GRPOSettings,
    buffer_rollout,
    remember_rollout,
    rollout_from_results,
    run_group,
)
from miaflow.rl.grpo import unjudged_masked
from miaflow.rl.rewards import executor_reward, planner_reward
from miaflow.testing import FakeChatModel
from miaflow.workflows import ResearchConfig, ResearchWorkflow, SessionConfig, SessionSpec
from miaflow.workflows.session import Session, SessionQuestion

_spec = importlib.util.spec_from_file_location("rl_fakes", Path(__file__).parent / "_fakes.py")
fakes = sys.modules.get("rl_fakes") or importlib.util.module_from_spec(_spec)
if "rl_fakes" not in sys.modules:
    sys.modules["rl_fakes"] = fakes
    _spec.loader.exec_module(fakes)

Q = "Where was the first performance of Tinted Windows?"
ANSWERS = ["Tulsa [band]", "Paris [city]", "", "Tulsa"]


def _chat():
    k = itertools.count()

    def reply(messages, cfg):
        if "Documents:" in messages[-1]["content"]:  # the executor's answer call: a different reply per sample
            return ANSWERS[next(k) % len(ANSWERS)]
        return fakes.scripted_reply(messages, cfg)

    return FakeChatModel(reply)


def _workflow(chat, store=None, **cfg):
    return ResearchWorkflow(planner=chat, index=fakes.TinyIndex(), store=store,
                            config=ResearchConfig(reflect=False, **cfg))


def test_an_executor_group_samples_n_answers_in_one_call_and_trains_the_executor(tmp_path):
    chat = _chat()
    roll = run_group(_workflow(chat), Q, 4, gold="Tulsa", task_id="t1", adapter_version="v3", role="executor",
                     temperature=0.9)
    answer_calls = [cfg for msgs, cfg in chat.calls if "Documents:" in msgs[-1]["content"]]
    assert len(answer_calls) == 1 and answer_calls[0].n == 4 and answer_calls[0].temperature == 0.9
    assert roll.role == "executor" and roll.completions == ANSWERS
    assert roll.answers == ["Tulsa", "Paris", "", "Tulsa"] and roll.scores == [1.0, 0.0, 0.0, 1.0]
    assert len(set(roll.plans)) == 1  # one plan, shared by the group
    assert roll.prompt[0]["role"] == "system" and "Documents:" in roll.prompt[-1]["content"]
    assert roll.rewards == roll.executor_rewards == executor_reward(
        ANSWERS, accuracy=roll.scores, tool_calls=roll.tool_calls, citations=roll.citations)
    assert roll.rewards[0] > roll.rewards[3] > roll.rewards[1]  # the cited correct answer beats the uncited one
    buf = ExperienceBuffer(tmp_path / "b.sqlite")
    assert buffer_rollout(buf, roll, group_id="e0-q1")
    [g] = buf.pending(role="executor")
    assert buf.pending(role="planner") == []
    assert g.completions == ANSWERS and g.metadata["adapter_version"] == "v3"
    assert executor_reward(g.completions, **g.columns) == g.rewards  # what TRL recomputes is what was logged
    with pytest.raises(Exception, match="executor group"):
        roll.planner_group()


def test_unknown_verdicts_are_stored_unjudged_and_earn_nothing(tmp_path):
    """The 'llm' judge gets an unparseable evaluator reply: the run stays 'unknown' in memory (no positive or
    negative case, no Q-value update) and earns 0 for either role, in the log and inside TRL."""
    store = TrajectoryStore(tmp_path / "mem", embedder=fakes.WordsEmbedder())
    wf = _workflow(FakeChatModel(fakes.scripted_reply), store)  # evaluators are answered "ok": no score in it
    wf.judge.config.without_gold = "evaluators"
    roll = run_group(wf, Q, 2, judge_mode="llm", task_id="t2", role="executor")
    assert roll.answers == ["Tulsa", "Tulsa"] and roll.judgements == ["unknown", "unknown"]
    assert roll.unjudged == [True, True] and roll.scores == [0.0, 0.0]
    assert roll.executor_rewards == [0.0, 0.0] and roll.planner_rewards == [0.0, 0.0]
    g = roll.training_group()
    plain = {k: v for k, v in g.columns.items() if k != "unjudged"}
    assert executor_reward(g.completions, **plain) == [0.3, 0.3]  # tool use and a citation would still pay
    assert unjudged_masked(executor_reward)(g.completions, **g.columns) == [0.0, 0.0]
    remember_rollout(wf, roll)
    recs = list(store.iter_records())
    assert len(recs) >= 1 and {r.judgement for r in recs} == {"unknown"}
    assert all(r.q_value == recs[0].q_value for r in recs)
    # a planner group with one unjudged plan: that plan earns nothing, the judged one keeps its reward
    res = [fakes.FakeResult(task_id="t3", question=Q, planner_messages=[{"role": "user", "content": "p"}],
                            plan="1. search", answer=a, first_answer=a, score=s, first_score=s, judgement=j)
           for a, s, j in [("Tulsa", 1.0, "correct"), ("Tulsa", 0.0, "unknown")]]
    roll = rollout_from_results(res, judge_mode="llm", task_id="t3")
    assert roll.judgements == ["correct", "unknown"] and roll.planner_rewards == [1.0, 0.0]
    g = roll.planner_group()
    assert planner_reward(g.completions, **{k: v for k, v in g.columns.items() if k != "unjudged"})[1] > 0
    assert unjudged_masked(planner_reward)(g.completions, **g.columns) == [1.0, 0.0]


def test_a_session_alternates_planner_and_executor_groups(tmp_path):
    spec = SessionSpec(session=SessionConfig(group_size=3, group_role="alternate", learn=True, remember=False))
    assert spec.executor_grpo is not None and spec.executor_grpo.role == "executor"
    assert spec.executor_grpo.num_generations == 3 and spec.worker.alternate
    assert spec.research.executor_adapter == "executor"
    cfg = SessionConfig(group_size=4, group_role="alternate", remember=False)
    sess = Session(_workflow(_chat()), tmp_path / "s", config=cfg, executor_version=lambda: "v7",
                   adapter_version=lambda: "v2")
    qs = [SessionQuestion(id=f"q{i}", question=Q, gold="Tulsa") for i in range(4)]
    summary = sess.run(qs)
    assert [o.role for o in summary.outcomes] == ["planner", "executor"] * 2
    assert [o.adapter_version for o in summary.outcomes] == ["v2", "v7"] * 2
    ex = summary.outcomes[1]
    assert sorted(ex.answers) == sorted(["Tulsa", "Paris", "", "Tulsa"]) and len(ex.rewards) == 4  # one cycle
    groups = {g.group_id: g.role for g in sess.buffer.all()}
    assert groups.get("e0-q1") == "executor" and groups.get("e0-q3") == "executor"  # executor groups with signal
    with pytest.raises(ValueError, match="group_role"):
        SessionConfig(group_role="judge")
    with pytest.raises(ValueError, match="executor_grpo"):
        SessionSpec(session=SessionConfig(group_size=3), executor_grpo=GRPOSettings(role="executor",
                                                                                   num_generations=3))


def test_learning_starts_from_the_shipped_trained_adapters(tmp_path):
    from miaflow.llm.bundled import bundled_adapters
    from miaflow.rl.learning import attach_learning, start_adapter

    shipped = bundled_adapters()
    if set(shipped) != {"planner", "executor"}:
        pytest.skip("no trained adapters ship in this tree")

    class Serving(FakeChatModel):
        def __init__(self):
            super().__init__(fakes.scripted_reply)
            self.model_dir = tmp_path
            (tmp_path / "config.json").write_text("{}")
            self.role_adapters = {"planner": "planner", "executor": "executor"}
            self.adapters, self.loaded = [], []

        def load_adapter(self, name, path):
            self.loaded.append((name, Path(path)))
            self.adapters.append(name)

        def add_adapter(self, name, config=None):
            raise AssertionError("a fresh LoRA would replace the trained adapter")

    chat = Serving()
    assert start_adapter(chat, "executor") == shipped["executor"]
    assert start_adapter(FakeChatModel(), "executor") is None  # a model that serves no trained role
    worker = attach_learning(chat, tmp_path / "state", ExperienceBuffer(tmp_path / "b.sqlite"),
                             settings=GRPOSettings(num_generations=2),
                             executor=GRPOSettings(role="executor", num_generations=2))
    assert [rt.role for rt in worker.roles] == ["planner", "executor"]
    assert chat.loaded == [("planner", shipped["planner"]), ("executor", shipped["executor"])]
    for rt in worker.roles:
        assert rt.learner.adapter_path == rt.learner.base_adapter == shipped[rt.role]
        assert rt.registry.root == tmp_path / "state" / "adapters" / rt.role
        rt.learner.load(None)  # a rollback to v0 before any step keeps the trained start
        assert rt.learner.adapter_path == shipped[rt.role]



def test_group_speed_bench_times_each_mode_on_the_same_questions():
    """``miaflow bench group_speed``'s measurement: the modes interleaved per question; an executor group makes as
    many model calls as one run (its n answers are one call)."""
    from miaflow.bench.group_speed import MODES, measure

    chat = _chat()
    runs = measure(_workflow(chat), [(Q, "Tulsa"), (Q, "Tulsa")], 4)
    assert list(runs) == list(MODES) and all(len(rs) == 2 for rs in runs.values())
    assert all(r["wall"] > 0 and r["cpu"] >= 0 for rs in runs.values() for r in rs)
    assert [len(r["answers"]) for r in runs["executor_group"]] == [4, 4]
    assert [len(r["answers"]) for r in runs["planner_group"]] == [4, 4]
    assert runs["executor_group"][0]["calls"] <= runs["single"][0]["calls"] + 1

@pytest.mark.slow
def test_a_real_executor_step_continues_the_shipped_executor_adapter(tmp_path, bundled_model_dir):
    """The bundled model with its shipped adapters: a real executor group (one batched sampling call), then one
    real GRPO step of the executor learner, which starts from the shipped executor adapter; the new version is
    saved under adapters/executor, promoted and served under the executor's name."""
    from dataclasses import replace

    from safetensors.torch import load_file

    from miaflow.agents import ExecutorConfig, PlannerConfig
    from miaflow.llm import LocalChatModel
    from miaflow.llm.bundled import bundled_adapters
    from miaflow.rl.learning import attach_learning

    shipped = bundled_adapters()
    if "executor" not in shipped:
        pytest.skip("no trained executor adapter ships in this tree")
    chat = LocalChatModel(device="cpu")
    assert chat.role_adapters.get("executor") == "executor"
    wf = ResearchWorkflow(planner=chat, index=fakes.TinyIndex(), config=ResearchConfig(
        reflect=False, planner=PlannerConfig(max_tokens=48), executor=ExecutorConfig(answer_max_tokens=12)))
    roll = run_group(wf, Q, 4, gold="Tulsa", task_id="e0-q0", adapter_version="v0", role="executor",
                     temperature=1.0)
    assert roll.role == "executor" and len(roll.completions) == 4 and "Documents:" in roll.prompt[-1]["content"]
    group = roll.training_group()
    if not group.has_signal:  # four equal samples are possible; the step needs rewards that differ
        group = replace(group, rewards=[1.0, 0.0, 0.0, 0.0], columns={**group.columns, "accuracy": [1.0, 0, 0, 0]})
    buf = ExperienceBuffer(tmp_path / "buffer.sqlite")
    assert buf.add(group)
    common = dict(num_generations=4, max_completion_length=24, learning_rate=1e-3, device="cpu",
                  work_dir=str(tmp_path / "scratch"))
    worker = attach_learning(chat, tmp_path, buf, settings=GRPOSettings(**common),
                             executor=GRPOSettings(role="executor", **common))
    rt = worker.roles[1]
    assert rt.role == "executor" and rt.learner.base_adapter == shipped["executor"]
    result = worker.run_once()
    assert result is not None and result.groups == ["e0-q0"]
    start = {k.replace(".weight", ""): v for k, v in load_file(str(shipped["executor"] / "adapter_model.safetensors")
                                                                ).items()}
    initial = {k.replace(".default", "").replace(".weight", ""): v for k, v in rt.learner._initial.items()}
    shared = [k for k in initial if k in start]
    assert shared and all((initial[k] == start[k]).all() for k in shared), "the learner did not start from it"
    after = rt.learner.lora_state()
    assert any(not (rt.learner._initial[k] == after[k]).all() for k in after), "no LoRA tensor moved"
    v1 = rt.registry.get("v1")
    assert rt.registry.promoted.name == "v1" and v1.path == tmp_path / "adapters" / "executor" / "versions" / "v1"
    assert (v1.path / "optimizer.pt").exists() and buf.stats(role="executor").trained == 1
    assert worker.roles[0].registry.promoted.name == "v0"  # the planner had no group: untouched
