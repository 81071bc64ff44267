"""``miaflow session --learn --group-size 3`` trains: a scripted serving model answers (fast), and the real GRPO
learner (TRL, the bundled model's weights) takes a step on the session's groups of three plans. A trainer that
gives up is visible in the session summary and the log."""

import importlib.util
import itertools
import json
import logging
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

import miaflow.llm
from miaflow.rl import (
    AdapterRegistry,
    ExperienceBuffer,
    GRPOSettings,
    RoleTrainer,
    TrainingWorker,
    WorkerConfig,
)
from miaflow.testing import FakeChatModel
from miaflow.workflows.session import Session, SessionConfig, SessionQuestion

_spec = importlib.util.spec_from_file_location("rl_fakes", Path(__file__).parent / "_fakes.py")
fakes = sys.modules.get("rl_fakes") or importlib.util.module_from_spec(_spec)
if "rl_fakes" not in sys.modules:
    sys.modules["rl_fakes"] = fakes
    _spec.loader.exec_module(fakes)


class ServingFake(FakeChatModel):
    """A scripted chat model with the adapter surface of LocalChatModel; the weights it names are real."""

    def __init__(self, model_dir):
        self._plans = itertools.count()
        super().__init__(self._reply, name="fake-smollm")
        self.model_dir = Path(model_dir)
        self.adapters: list[str] = []
        self.loaded: list[tuple[str, str]] = []

    def _reply(self, messages, cfg) -> str:
        text = messages[-1]["content"]
        if "Documents:" in text:  # the executor's answer: whatever the passages it was shown say
            return "Naples [pizza]" if "Naples" in text else "Tulsa [band]"
        if "yes (replan)" in text:
            return "no"
        if "score from 0" in text:
            return "5"
        if "correct or incorrect" in text:
            return "incorrect"
        if "numbered" in text:  # plans: one in three looks for the wrong thing
            k = next(self._plans)
            topic = "pizza ovens in Naples" if k % 3 == 0 else "the band first performance"
            return f"Thinking: one hop.\n1. Search for {topic}\n2. Answer the question"
        return "ok"

    def add_adapter(self, name, config=None):
        self.adapters.append(name)

    def load_adapter(self, name, path):
        self.loaded.append((name, str(path)))
        if name not in self.adapters:
            self.adapters.append(name)

    def delete_adapter(self, name):
        self.adapters.remove(name)


@pytest.mark.slow
def test_cli_session_learn_group_size_3_trains_a_step(tmp_path, monkeypatch, bundled_model_dir):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "band.txt").write_text("Tinted Windows was a supergroup. Their first performance was in Tulsa.")
    (corpus / "pizza.txt").write_text("Pizza ovens are wood fired. Naples is the home of pizza.")
    for i, band in enumerate(["The Strokes", "Blur", "Pulp", "Oasis", "Suede", "Elastica"]):  # the question's
        (corpus / f"band{i}.txt").write_text(f"{band} was a band. The first performance of {band} was in a pub.")
    qs = tmp_path / "q.jsonl"
    qs.write_text(json.dumps({"id": "q0", "question": "Where was the first performance of the band Tinted Windows?",
                              "answer": "Tulsa"}) + "\n")
    serving = ServingFake(bundled_model_dir)
    monkeypatch.setattr(miaflow.llm, "LocalChatModel", lambda *a, **k: serving)
    state = tmp_path / "state"
    from miaflow.cli import app

    res = CliRunner().invoke(app, ["session", str(qs), "--corpus", str(corpus), "--state", str(state), "--learn",
                                   "--group-size", "3", "--no-memory"])
    assert res.exit_code == 0, res.output
    assert "training: 1 GRPO steps, 1 versions promoted" in res.output, res.output
    outcome = json.loads((state / "outcomes.jsonl").read_text().splitlines()[0])
    assert len(outcome["answers"]) == 3 and not outcome["zero_variance"]
    buf = ExperienceBuffer(state / "buffer.sqlite")
    assert buf.stats().trained == 1
    registry = AdapterRegistry(state / "adapters" / "planner")
    v1 = registry.get("v1")
    assert registry.promoted.name == "v1" and (v1.path / "adapter_config.json").exists()
    assert v1.metrics["groups"] == 1 and v1.metrics["loss"] is not None
    assert serving.loaded == [("planner", str(v1.path))]  # the trained version serves, under the one name
    spec = json.loads((state / "session.json").read_text())["spec"]
    assert spec["grpo"]["num_generations"] == 3 and spec["research"]["planner"]["adapter"] == "planner"


def test_cli_refuses_contradictory_learning_settings(tmp_path):
    from miaflow.cli import app

    qs = tmp_path / "q.jsonl"
    qs.write_text('{"question": "Q?", "answer": "A"}\n')
    res = CliRunner().invoke(app, ["session", str(qs), "--corpus", str(tmp_path), "--state", str(tmp_path / "s"),
                                   "--learn", "--group-size", "1"])
    assert res.exit_code == 2 and "session.group_size=1" in res.output and "Traceback" not in res.output


class FailingLearner:
    def __init__(self):
        self.settings = GRPOSettings(num_generations=4)

    def step(self, groups):
        raise RuntimeError("the trainer broke")


def test_a_worker_that_gives_up_is_reported(tmp_path, caplog, make_group):
    buf = ExperienceBuffer(tmp_path / "state" / "buffer.sqlite")
    worker = TrainingWorker(buf, RoleTrainer(learner=FailingLearner(), registry=AdapterRegistry(tmp_path / "ad")),
                            config=WorkerConfig(poll_seconds=0.05, max_failures=2))
    buf.add(make_group("g0"))
    caplog.set_level(logging.WARNING)
    worker.start()
    worker._thread.join(30)
    assert not worker.alive and worker.gave_up
    assert any("GRPO training stopped after 2 failed steps" in r.getMessage() for r in caplog.records)

    s = Session(fakes.FakeWorkflow(tmp_path / "mem"), tmp_path / "state", buffer=buf, worker=worker,
                config=SessionConfig(learn=True, remember=False))
    summary = s.run([SessionQuestion(id="q", question="question number 1?", gold="g")])
    assert summary.learning["gave_up"] and "the trainer broke" in summary.learning["error"]
    assert summary.learning["errors"] == 2 and summary.learning["steps"] == 0
    assert any("gave up" in r.getMessage() for r in caplog.records)
