"""Offline training (``miaflow train``): example builders, recipes and resume checks, and a tiny real run of the
recipe on the bundled model (SFT of both roles, alternating GRPO through TRL) whose adapters load and change the
output. Training data here is made from the shipped sample; no test reads the shared datasets."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from miaflow.agents import prompts
from miaflow.agents.planner import parse_plan
from miaflow.errors import InvalidInputError
from miaflow.rl.train import data as D
from miaflow.rl.train.recipe import DataFiles, TrainRecipe, recipe_preset

SAMPLE = Path(__file__).resolve().parents[2] / "miaflow" / "data" / "hotpotqa_sample"


def _sample_hotpot(n: int = 8) -> list[dict]:
    """HotpotQA-schema records built from the shipped sample: the gold paragraphs plus two distractors each."""
    docs = {json.loads(ln)["id"]: json.loads(ln) for ln in (SAMPLE / "corpus.jsonl").read_text().splitlines()}
    qs = [json.loads(ln) for ln in (SAMPLE / "questions.jsonl").read_text().splitlines()][:n]
    ids = list(docs)
    out = []
    for i, q in enumerate(qs):
        gold = [t for t in q["supporting_ids"] if t in docs]
        extra = [d for d in ids[i * 3: i * 3 + 6] if d not in gold][:2]
        titles = gold + extra
        out.append({"id": q["id"], "question": q["question"], "answer": q["answer"], "type": q.get("type", "bridge"),
                    "level": "hard", "supporting_facts": {"title": gold, "sent_id": [0] * len(gold)},
                    "context": {"title": titles, "sentences": [[docs[t]["text"]] for t in titles]}})
    return out


def _write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_reader_examples_use_the_executors_own_prompt():
    recs = _sample_hotpot()
    ex = D.hotpot_reader_examples(recs, seed=1)
    assert ex, "the sample has readable questions"
    for e, rec in zip(ex, [r for r in recs if r["id"] in {x.qid for x in ex}], strict=False):
        user = e.prompt[-1]["content"]
        assert e.prompt[0]["content"] == prompts.EXECUTOR_SYSTEM
        answer, _, cite = e.completion.rpartition(" [")
        cite = cite.rstrip("]")
        assert f"[{cite}]" in user, "the cited id is one of the passages shown"
        # the prompt is exactly what the executor renders for these passages
        shown = [(t, t, "".join(s)) for t, s in zip(rec["context"]["title"], rec["context"]["sentences"], strict=True)
                 if f"[{t}] " in user]
        order = sorted(shown, key=lambda p: user.index(f"[{p[0]}] "))
        assert user == prompts.answer_prompt(rec["question"], order, chars=600)
        assert D._norm(answer) == D._norm(rec["answer"])


def test_squad_examples_cite_the_paragraph_holding_the_answer():
    rows = [{"id": f"s{i}", "title": "Super_Bowl_50", "context": ctx, "question": q, "answers": [a]}
            for i, (ctx, q, a) in enumerate([
                ("Super Bowl 50 was won by the Denver Broncos.", "Who won Super Bowl 50?", "Denver Broncos"),
                ("The game was played in Santa Clara, California.", "Where was the game played?", "Santa Clara"),
                ("Coldplay headlined the halftime show.", "Who headlined the halftime show?", "Coldplay")])]
    ex = D.squad_reader_examples(rows, seed=0)
    assert len(ex) == 3
    for e in ex:
        answer, _, cite = e.completion.rpartition(" [")
        user = e.prompt[-1]["content"]
        block = user.split(f"[{cite.rstrip(']')}] ", 1)[1]
        assert answer in block.split("\n\n[", 1)[0]


def test_planner_targets_parse_and_state_no_answer():
    musique = [{"id": "m1", "question": "Who was the first president of the association which published Journal X?",
                "answer": "G. Stanley Hall",
                "question_decomposition": [{"question": "What company published Journal X?", "answer": "APA"},
                                           {"question": "Who was the first president of #1 ?", "answer": "Hall"}]}]
    items = D.musique_planner_examples(musique) + D.hotpot_planner_examples(_sample_hotpot())
    assert items
    for _qid, q, _a, target in items:
        plan = parse_plan(target, q)
        assert not plan.fallback and len(plan.steps) >= 2
    assert "the result of step 1" in items[0][3] and "APA" not in items[0][3]
    ex = D.planner_examples(items, seed=0, exemplar_rate=1.0)
    by_id = {it[0]: it for it in items}
    assert len(ex) >= len(items) - 1
    for e in ex:
        _, q, a, target = by_id[e.qid]
        assert e.completion == target and D.planner_target_ok(target, q, a)
    assert any("Plans that worked" in e.prompt[-1]["content"] for e in ex)


def test_leaking_plan_is_rejected():
    assert not D.planner_target_ok("Thinking: x.\n1. Search for Tulsa Oklahoma.\n2. Answer.", "Where?", "Tulsa Oklahoma")


def test_recipe_round_trip_and_resume_checks(tmp_path):
    from miaflow.rl.train.run import TrainRun

    r = recipe_preset("tiny", DataFiles(hotpot=("a.jsonl",)))
    assert TrainRecipe.from_json(json.loads(json.dumps(r.to_json()))) == r
    TrainRun(tmp_path / "run", r)
    with pytest.raises(InvalidInputError, match="--resume"):
        TrainRun(tmp_path / "run", r)
    with pytest.raises(InvalidInputError, match="different recipe"):
        TrainRun(tmp_path / "run", replace(r, seed=5), resume=True)
    TrainRun(tmp_path / "run", r, resume=True)
    with pytest.raises(InvalidInputError):
        recipe_preset("nope", DataFiles())
    with pytest.raises(InvalidInputError):
        TrainRecipe(roles=("judge",))


def test_hotpot_records_drop_repeated_ids_but_keep_records_without_one(tmp_path):
    from miaflow.rl.train.run import _hotpot_records

    rows = [{"id": "a", "question": "q1"}, {"question": "q2"}, {"question": "q3"}, {"id": "a", "question": "q1 again"},
            {"id": "b", "question": "q4"}]
    first, second = tmp_path / "one.jsonl", tmp_path / "two.jsonl"
    first.write_text("".join(json.dumps(r) + "\n" for r in rows[:3]))
    second.write_text("".join(json.dumps(r) + "\n" for r in rows[3:]))
    recipe = recipe_preset("tiny", DataFiles(hotpot=(str(first), str(second))))
    assert [r["question"] for r in _hotpot_records(recipe)] == ["q1", "q2", "q3", "q4"]


def test_missing_data_file_is_a_clear_error(tmp_path):
    with pytest.raises(InvalidInputError, match="not found"):
        D.read_jsonl(tmp_path / "missing.jsonl")
    from miaflow.rl.train.sft import init_adapter

    r = replace(recipe_preset("reader", DataFiles(hotpot=("a.jsonl",))), init_from=str(tmp_path))
    with pytest.raises(InvalidInputError, match="no executor adapter"):
        init_adapter(r, "executor")
    (tmp_path / "executor" / "versions" / "v2").mkdir(parents=True)
    (tmp_path / "executor" / "versions" / "v2" / "adapter_config.json").write_text("{}")
    (tmp_path / "executor" / "versions" / "v10").mkdir(parents=True)
    (tmp_path / "executor" / "versions" / "v10" / "adapter_config.json").write_text("{}")
    assert init_adapter(r, "executor").name == "v10", "a run folder: its newest version"
    assert init_adapter(replace(r, init_from=""), "executor") is None


@pytest.mark.slow
def test_tiny_recipe_trains_both_roles_for_real(tmp_path, monkeypatch):
    """SFT + alternating GRPO on the real bundled model: LoRA weights move, versions load, outputs change."""
    from safetensors.torch import load_file

    from miaflow.llm import LocalChatModel
    from miaflow.llm.bundled import bundled_adapters
    from miaflow.rl.train import train
    from miaflow.rl.train.bundle import install_run

    monkeypatch.setenv("MIAFLOW_CACHE", str(tmp_path / "cache"))
    from miaflow.llm.bundled import prepare_bundled_model

    monkeypatch.delenv("MIAFLOW_CACHE")
    model_dir = prepare_bundled_model()
    data = _write_jsonl(tmp_path / "hotpot.jsonl", _sample_hotpot(10))
    recipe = recipe_preset("tiny", DataFiles(hotpot=(str(data),)))
    run = train(recipe, tmp_path / "run", model_dir=model_dir, device="cpu")
    for role in ("executor", "planner"):
        versions = run.registry(role).versions()
        assert [v.name for v in versions] == ["v0", "v1", "v2"], "SFT then GRPO, one version each"
        sft = versions[1]
        assert sft.metrics["steps"] == 3 if role == "executor" else 2
        assert sft.metrics["tokens"] > 0 and sft.metrics["data"]
        weights = load_file(str(sft.path / "adapter_model.safetensors"))
        assert any("lora_B" in k and float(v.abs().sum()) > 0 for k, v in weights.items()), "LoRA B moved from 0"
    grpo = json.loads((run.root / "metrics.json").read_text())["grpo"]
    assert set(grpo["rewards"]) == {"planner", "executor"}
    assert (run.root / "curves.png").stat().st_size > 0

    target = install_run(run.root, command="miaflow train --recipe tiny", target=tmp_path / "adapters")
    assert set(bundled_adapters(target)) == {"planner", "executor"}
    assert "miaflow train --recipe tiny" in (target / "MODEL_CARD.md").read_text()

    # A second pass of the executor alone continues the first run's adapter (2 steps: the first is warm-up at lr 0);
    # installing it keeps the planner.
    cont = replace(recipe, name="tiny-reader", roles=("executor",), init_from=str(run.root), seed=1,
                   executor_sft=replace(recipe.executor_sft, max_steps=2), grpo=replace(recipe.grpo, rounds=0))
    run2 = train(cont, tmp_path / "run2", model_dir=model_dir, device="cpu")
    before = load_file(str(run.registry("executor").current.path / "adapter_model.safetensors"))
    after = load_file(str(run2.registry("executor").current.path / "adapter_model.safetensors"))
    assert set(before) == set(after), "the same LoRA, continued"
    moved = max(float((after[k] - before[k]).abs().max()) for k in before)
    assert 0 < moved < 0.05, "more steps move the continued weights a little, not from a fresh start"
    planner_bytes = (target / "planner" / "adapter_model.safetensors").read_bytes()
    install_run(run2.root, command="miaflow train --recipe tiny-reader --init-from run", target=target)
    assert (target / "planner" / "adapter_model.safetensors").read_bytes() == planner_bytes
    manifest = json.loads((target / "manifest.json").read_text())
    assert [s["stage"] for s in manifest["roles"]["executor"]["stages"]] == ["sft-executor", "grpo", "sft-executor"]
    assert len(manifest["commands"]) == 2

    import torch

    llm = LocalChatModel(model_dir)
    llm.load_adapter("executor", target / "executor")
    msgs = D.executor_messages("Where did the band first perform?", [("Tinted Windows (band)", "Tinted Windows",
                                "Tinted Windows was a supergroup. Their first performance was in Tulsa.")])
    enc = llm.tokenizer(llm.render(msgs), return_tensors="pt", add_special_tokens=False)
    with torch.no_grad():
        llm.model.set_adapter("executor")
        trained = llm.model(**enc).logits[0, -1]
        with llm.model.disable_adapter():
            base = llm.model(**enc).logits[0, -1]
    assert float((trained - base).abs().max()) > 1e-3, "the trained executor adapter changes the model's output"
