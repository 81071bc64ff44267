"""The examples run (with a scripted model), the CLI commands are wired, langgraph.json points at a real factory."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from miaflow.testing import FakeChatModel

ROOT = Path(__file__).resolve().parents[2]


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"example_{name}", ROOT / "examples" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_custom_planner_example_runs(capsys):
    mod = _load("custom_planner")
    answer = mod.main(FakeChatModel(["Tulsa [Tinted Windows (band)]"]))
    assert answer == "Tulsa"
    assert "plan:" in capsys.readouterr().out


def test_compose_graphs_example_runs():
    mod = _load("compose_graphs")
    def reply(messages, cfg):
        text = messages[-1]["content"]
        if "numbered list" in text:
            return "1. Search for Tinted Windows"
        return "Tulsa [Tinted Windows (band)]" if "Documents:" in text else "no"

    report = mod.main(FakeChatModel(reply))
    assert report.count("\n") == 1 and "Tulsa" in report


def test_langgraph_json_points_at_graph_factory():
    cfg = json.loads((ROOT / "langgraph.json").read_text())
    target = cfg["graphs"]["research"]
    module, func = target.split(":")
    assert module == "miaflow.workflows.graph_factory", "a module path, so the factory's relative imports work"
    from miaflow.workflows import graph_factory

    assert callable(getattr(graph_factory, func))
    wf = graph_factory.make_workflow(model=FakeChatModel(["no"]))
    mermaid = wf.draw_mermaid()
    for node in ("recall", "plan", "execute", "reflect", "replan", "judge", "remember"):
        assert node in mermaid
    out = wf.graph.invoke({"question": "Where did Tinted Windows first perform?"})  # as LangGraph's tools call it
    assert out["task_id"] and "final" in out


def test_cli_research_errors_are_clear(tmp_path):
    from typer.testing import CliRunner

    from miaflow.cli import app

    runner = CliRunner()
    res = runner.invoke(app, ["research", "What?", "--corpus", str(tmp_path / "missing")])
    assert res.exit_code == 2 and "corpus not found" in res.output
    res = runner.invoke(app, ["research", "  ", "--corpus", str(tmp_path)])
    assert res.exit_code == 2 and "empty" in res.output


def test_cli_research_streams_with_a_fake_model(monkeypatch, tmp_path):
    from typer.testing import CliRunner

    import miaflow.llm
    from miaflow.cli import app

    (tmp_path / "band.md").write_text("# Tinted Windows\nTheir first performance was in Tulsa.\n")
    def reply(messages, cfg):
        text = messages[-1]["content"]
        if "numbered list" in text:
            return "1. Search for Tinted Windows first show"
        return "Tulsa [band.md]" if "Documents:" in text else "no"

    monkeypatch.setattr(miaflow.llm, "load_chat_model", lambda spec=None, **kw: FakeChatModel(reply))
    res = CliRunner(env={"COLUMNS": "200"}).invoke(app, ["research", "Where did Tinted Windows first perform?", "--corpus", str(tmp_path),
                                   "--gold", "Tulsa"])
    assert res.exit_code == 0, res.output
    assert "Plan" in res.output and "search" in res.output and "Answer: Tulsa" in res.output
    assert "[band.md]" in res.output


@pytest.mark.slow
def test_end_to_end_with_the_bundled_model(tmp_path):
    from miaflow.agents import ExecutorConfig, PlannerConfig
    from miaflow.llm import LocalChatModel
    from miaflow.memory import TrajectoryStore
    from miaflow.tools import CorpusIndex
    from miaflow.workflows import ResearchConfig, ResearchWorkflow

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "tinted.md").write_text("# Tinted Windows (band)\nTinted Windows was an American supergroup. "
                                      "Their first performance was in Tulsa, Oklahoma.\n")
    (corpus / "paris.md").write_text("# Paris\nParis is the capital and largest city of France.\n")
    (corpus / "nile.md").write_text("# Nile\nThe Nile is a major river in northeastern Africa.\n")
    index = CorpusIndex.open(corpus, index_dir=tmp_path / "index")
    store = TrajectoryStore(tmp_path / "memory")
    cfg = ResearchConfig(planner=PlannerConfig(max_tokens=48), executor=ExecutorConfig(answer_max_tokens=12),
                         reflect=False)
    wf = ResearchWorkflow(planner=LocalChatModel(), index=index, store=store, config=cfg)
    for q, gold in [("What is the capital of France?", "Paris"),
                    ("In which city was the first performance of Tinted Windows?", "Tulsa")]:
        res = wf.run(q, gold=gold)
        assert res.plan.startswith("1. ")
        assert res.steps and res.steps[0]["tool"] == "search"
        assert set(res.citations) <= set(index.ids) and set(res.evidence_ids) <= set(index.ids)
        assert res.judgement in ("correct", "incorrect") and res.f1 is not None
        assert res.tokens["completion"] > 0 and res.timings["model"] > 0
        assert res.memory_id
    assert store.count() == 2


def test_research_bench_writes_json_and_png(tmp_path, script):
    import json as _json

    from miaflow.bench.research import run_bench

    recs = [
        {"id": "q1", "question": "Where did Tinted Windows first perform?", "answer": "Tulsa", "type": "bridge",
         "level": "hard", "supporting_facts": {"title": ["Tinted Windows (band)"], "sent_id": [0]},
         "context": {"title": ["Tinted Windows (band)", "Paris"],
                     "sentences": [["Tinted Windows was a supergroup.", " Their first performance was in Tulsa."],
                                   ["Paris is the capital of France."]]}},
        {"id": "q2", "question": "What is the capital of France?", "answer": "Paris", "type": "bridge",
         "level": "hard", "supporting_facts": {"title": ["Paris"], "sent_id": [0]},
         "context": {"title": ["Paris", "Nile"],
                     "sentences": [["Paris is the capital of France."], ["The Nile is a river."]]}},
    ]
    data = tmp_path / "dev.jsonl"
    data.write_text("".join(_json.dumps(r) + "\n" for r in recs))

    def reply(messages, cfg):
        text = messages[-1]["content"]
        if "Documents:" in text and "<answer>" in text:
            return "Tulsa [Tinted Windows (band)]" if "Tinted" in text.split("Documents:")[0] else "Paris [Paris]"
        return script(messages, cfg)

    payload = run_bench(data=data, format="hotpotqa", limit=2, llm=FakeChatModel(reply), out=tmp_path / "out",
                        index_dir=tmp_path / "index")
    assert (tmp_path / "out" / "research.json").exists() and (tmp_path / "out" / "research.png").exists()
    assert payload["results"]["summary_off"]["em"] == 1.0 and payload["results"]["summary_on"]["em"] == 1.0
    assert payload["results"]["summary_off"]["support_recall"] == 1.0
    assert payload["results"]["memory_on"]["memories_stored"] == 2
    assert payload["results"]["memory_on"]["questions"][1]["used_memories"] >= 0
