"""``miaflow bench learn``: the split builders on their own, and the arms on one tiny HotpotQA-style stream with a
scripted model (real corpus index, real trajectory stores, real session runner)."""

from __future__ import annotations

import json
import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")

from miaflow._text import token_f1  # noqa: E402
from miaflow.bench._streams import (  # noqa: E402
    LearnTask,
    distractor_pairs,
    flip_comparative,
    musique_steps,
    select_stream,
    stream_order,
    template_similarity,
    transfer_split,
)


def _rec(qid, question, answer, support, extra=(), kind="bridge"):
    paras = [(t, f"{t} is described here. {t} relates to {answer}.") for t in support] + list(extra)
    return {"id": qid, "question": question, "answer": answer, "type": kind, "level": "hard",
            "supporting_facts": {"title": list(support), "sent_id": [0] * len(support)},
            "context": {"title": [t for t, _ in paras], "sentences": [[x] for _, x in paras]}}


RECORDS = [
    _rec("q1", "Which city hosted the first concert of Tinted Windows?", "Tulsa", ["Tinted Windows (band)"]),
    _rec("q2", "What is the capital of France?", "Paris", ["Paris"], [("Nile", "The Nile is a river in Africa.")]),
    _rec("q3", "Who was born first, Ada Lovelace or Alan Turing?", "Ada Lovelace", ["Ada Lovelace", "Alan Turing"],
         kind="comparison"),
    _rec("q4", "What is the river of Egypt?", "Nile", ["Nile"]),
    _rec("q5", "Which band's lead singer founded Tinted Windows?", "Hanson", ["Tinted Windows (band)", "Hanson"]),
    _rec("q6", "What type of media do Hot Pixel and PlayStation Portable have in common?", "video game",
         ["Hot Pixel", "PlayStation Portable"]),
    _rec("q7", "What type of media do Bitter Jester and Sicko have in common?", "documentary",
         ["Bitter Jester", "Sicko"]),
]


def _task(rec) -> LearnTask:
    return LearnTask(id=rec["id"], question=rec["question"], answer=rec["answer"],
                     titles=tuple(rec["supporting_facts"]["title"]), source=rec["id"], kind=rec["type"])


def test_transfer_pairs_share_a_supporting_title():
    tasks = [_task(r) for r in RECORDS]
    stream = select_stream(tasks, 2, tasks)
    assert "q1" in {t.id for t in stream}  # q1 has a partner (q5), so it is taken before q2
    transfer = transfer_split(stream, [t for t in tasks if t not in stream])
    assert transfer, "q5 shares 'Tinted Windows (band)' with q1"
    by_id = {t.id: t for t in tasks}
    for t in transfer:
        assert t.split == "transfer" and t.id not in {s.id for s in stream}
        assert set(t.titles) & set(by_id[t.partner].titles)
        assert t.link in by_id[t.partner].titles
    assert transfer_split(stream, stream) == []  # stream questions are never held out


def test_musique_steps_are_single_hop_and_carry_their_paragraph(tmp_path):
    rec = {"id": "2hop__1_2", "question": "What did the actress in My Fair Lady win a Tony for?", "answer": "Ondine",
           "paragraphs": [{"idx": 0, "title": "Keala Settle", "paragraph_text": "x", "is_supporting": False},
                          {"idx": 1, "title": "My Fair Lady (film)", "paragraph_text": "y", "is_supporting": True},
                          {"idx": 2, "title": "Audrey Hepburn", "paragraph_text": "z", "is_supporting": True}],
           "question_decomposition": [
               {"question": "who was the actress in my fair lady", "answer": "Audrey Hepburn",
                "paragraph_support_idx": 1},
               {"question": "what did #1 win a tony for", "answer": "Ondine", "paragraph_support_idx": 2}]}
    path = tmp_path / "musique.json"
    path.write_text(json.dumps([rec]))
    steps = musique_steps(path)
    assert [s.question for s in steps] == ["Who was the actress in my fair lady?"]
    assert steps[0].titles == ("My Fair Lady (film)",) and steps[0].source == "2hop__1_2"
    parent = LearnTask(id="2hop__1_2", question=rec["question"], answer="Ondine",
                       titles=("My Fair Lady (film)", "Audrey Hepburn"), source="2hop__1_2")
    assert [t.partner for t in transfer_split([parent], steps)] == ["2hop__1_2"]


def test_distractor_pairs_are_near_duplicates_with_different_answers():
    tasks = [_task(r) for r in RECORDS]
    pairs = distractor_pairs(tasks, 10)
    links = {b.link.split()[0] for _, b in pairs}
    assert links == {"flipped", "template"}
    for src, dup in pairs:
        assert dup.partner == src.id and dup.split == "near_duplicate"
        if dup.link.startswith("flipped"):  # one word swapped
            a, b = src.question.split(), dup.question.split()
            assert len(a) == len(b) and sum(x != y for x, y in zip(a, b, strict=True)) == 1
        else:
            assert template_similarity(src.question, dup.question) >= 0.8
        assert token_f1(src.answer, dup.answer) < 0.5
    flip = flip_comparative(_task(RECORDS[2]))
    assert flip.question == "Who was born last, Ada Lovelace or Alan Turing?" and flip.answer == "Alan Turing"
    assert flip.titles == ("Ada Lovelace", "Alan Turing")
    assert flip_comparative(_task(RECORDS[1])) is None  # not a two-option comparison


def test_seeds_give_different_orders_of_the_same_tasks():
    tasks = [_task(r) for r in RECORDS]
    orders = {tuple(t.id for t in stream_order(tasks, s)) for s in range(3)}
    assert len(orders) == 3 and all(sorted(o) == sorted(t.id for t in tasks) for o in orders)
    assert stream_order(tasks, 1) == stream_order(tasks, 1)


def _reply(messages, cfg):
    """Plans a search; answers 'Tulsa' only when a recalled case or the documents mention it, else 'Paris'."""
    text = messages[-1]["content"]
    if "numbered list" in text or "supplementary plan" in text:
        return "1. Search for the question's entities\n2. Answer the question"
    if "Reply with one word" in text:
        return "no"
    if "<answer>" in text:
        return "Tulsa" if "Tulsa" in text else "Paris"
    if "correct or incorrect" in text:
        return "correct"
    return "ok"


def test_arms_run_on_one_stream_and_write_json_and_plots(tmp_path, monkeypatch):
    from miaflow.bench.learn import run_bench
    from miaflow.testing import FakeChatModel

    monkeypatch.setenv("MIAFLOW_CACHE", str(tmp_path / "cache"))
    data = tmp_path / "dev.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in RECORDS))
    out = tmp_path / "out"
    payload = run_bench(data=data, format="hotpotqa", limit=2, epochs=2, seeds=2,
                        arms="frozen,similarity,memory", group_size=2, window=2, distractor_limit=1, speed=1,
                        chat=FakeChatModel(_reply), out=out)
    res = payload["results"]
    runs = res["runs"]
    assert {(r["arm"], r["seed"]) for r in runs} == {(a, s) for a in ("frozen", "similarity", "memory")
                                                     for s in (0, 1)}
    n_transfer = len(payload["config"]["transfer"])
    assert n_transfer >= 1
    for r in runs:
        assert len(r["rows"]) == 2 * 2 + n_transfer
        assert [x["epoch"] for x in r["rows"]] == [0] * 2 + [1] * 2 + [2] * n_transfer
        assert len(r["distractor_rows"]) == 2 * 2 * len(payload["config"]["distractor_pairs"])
        assert all(0.0 <= x["accuracy"] <= 1.0 and x["tokens"] >= 0 and x["wall_s"] > 0 for x in r["rows"])
        if r["arm"] == "frozen":  # with memory, a task seen before may be answered from its case's evidence
            assert all(x["tokens"] > 0 for x in r["rows"])
    # every arm answers the same tasks; each seed has its own order, shared by the arms
    orders = {(r["arm"], r["seed"]): r["order"] for r in runs}
    assert orders[("frozen", 0)] == orders[("memory", 0)] and orders[("frozen", 1)] == orders[("memory", 1)]
    assert sorted(orders[("frozen", 0)]) == sorted(orders[("frozen", 1)])
    by = {r["arm"]: r for r in runs if r["seed"] == 0}
    assert by["frozen"]["memories_stored"] == 0 and by["memory"]["memories_stored"] >= 2
    assert all(x["memories_used"] == 0 for x in by["frozen"]["rows"])
    assert any(x["memories_used"] > 0 for x in by["memory"]["rows"] if x["epoch"] == 1)
    assert all(m["recalled"] >= 1 for m in by["similarity"]["mislead"])
    assert set(res["summary"]) == {"frozen", "similarity", "memory"}
    assert res["summary"]["memory"]["epoch2"]["n"] == 2
    assert res["speed"]["ratio"] > 0 and len(res["speed"]["group_s"]) == 1
    stored = json.loads((out / "learn.json").read_text())
    assert stored["headline"]["seeds"] == 2 and "memory_minus_frozen" in stored["headline"]
    for png in ("learn_curve.png", "learn_qvalues.png"):
        assert (out / png).stat().st_size > 1000


def test_bad_arms_are_a_clear_error(tmp_path):
    from miaflow.bench.learn import run_bench
    from miaflow.errors import InvalidInputError

    with pytest.raises(InvalidInputError, match="--arms"):
        run_bench(arms="frozen,magic", out=tmp_path)
    with pytest.raises(InvalidInputError, match="group-size"):
        run_bench(arms="memory+grpo", group_size=1, out=tmp_path)


class _TinyLearner:
    """Stands in for TRL (whose real steps are tested in tests/rl): counts steps, writes an adapter folder."""

    def __init__(self):
        from miaflow.rl.grpo import GRPOSettings

        self.settings = GRPOSettings()
        self.steps = 0

    def step(self, groups):
        from miaflow.rl.grpo import StepResult

        self.steps += 1
        return StepResult(groups=[g.group_id for g in groups], seconds=0.01, prompt_tokens=10, completion_tokens=5,
                          loss=0.0, metrics={})

    def save(self, path):
        (path / "adapter_config.json").write_text("{}")

    def load(self, path):
        pass


def test_grpo_arm_trains_in_the_background_and_reports_versions(tmp_path, monkeypatch):
    """The memory+grpo arm through the session builder: a real session, store, worker and adapter registry."""
    import miaflow.workflows.session as session_mod
    from miaflow.bench.learn import run_bench
    from miaflow.memory import TrajectoryStore
    from miaflow.rl import AdapterRegistry, TrainingWorker
    from miaflow.rl.buffer import ExperienceBuffer
    from miaflow.rl.worker import RoleTrainer
    from miaflow.testing import FakeChatModel
    from miaflow.workflows import ResearchWorkflow

    calls = []

    def build(corpus, state_dir, *, config, chat, index, use_memory, heldback, research_config, grpo, worker_config):
        calls.append({"learn": config.learn, "heldback": [q.id for q in heldback], "n": grpo.num_generations})
        buffer = ExperienceBuffer(state_dir / "buffer.sqlite")
        scores = iter([0.2, 0.4, 0.3, 0.6, 0.5, 0.7, 0.8, 0.9, 1.0, 1.0, 1.0, 1.0])
        worker = TrainingWorker(buffer, RoleTrainer(learner=_TinyLearner(), registry=AdapterRegistry(
            state_dir / "adapters"), evaluator=lambda v: next(scores)), config=worker_config)
        wf = ResearchWorkflow(planner=chat, index=index, store=TrajectoryStore(state_dir / "memory"),
                              config=research_config)
        return session_mod.Session(wf, state_dir, config=config, buffer=buffer, worker=worker)

    monkeypatch.setattr(session_mod, "build_session", build)
    monkeypatch.setenv("MIAFLOW_CACHE", str(tmp_path / "cache"))
    data = tmp_path / "dev.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in RECORDS))

    n = iter(range(10**6))

    def varied(messages, cfg):  # answers alternate so groups carry a GRPO signal
        text = messages[-1]["content"]
        if "<answer>" in text:
            return "Tulsa" if next(n) % 2 else "Paris"
        return _reply(messages, cfg)

    payload = run_bench(data=data, format="hotpotqa", limit=2, epochs=2, seeds=1, arms="memory+grpo",
                        splits="repeat", group_size=2, heldback=1, speed=0, chat=FakeChatModel(varied),
                        out=tmp_path / "out")
    assert calls == [{"learn": True, "heldback": [payload["config"]["heldback"][0]], "n": 2}]
    run = payload["results"]["runs"][0]
    assert run["grpo_steps"] >= 1 and run["learning"]["steps"] == run["grpo_steps"]
    assert len(run["versions"]) >= 2 and all("held_back" in v for v in run["versions"][1:])
    assert (tmp_path / "out" / "learn_heldback.png").exists()
